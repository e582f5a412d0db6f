/*
 * Drawing a watched push. On a terminal: a header line and one progress bar
 * per phase, redrawn in place (cursor up, clear line), each line cut to the
 * terminal's width so wrapping never breaks the redraw. Elsewhere (a pipe, a
 * file, a CI log): plain lines, one per event and one per change of progress.
 */
#include <string.h>

#include "cli.h"
#include "watch.h"

#define BAR_WIDTH 24

/* Whether the push is still running or paused. */
bool
watch_active(const WatchState *st)
{
	return strcmp(st->state, "running") == 0 || strcmp(st->state, "paused") == 0;
}

/* "[#######.........]" for done of total (all dots when total is unknown or zero). */
static void
format_bar(char *buf, size_t size, int done, int total, int width)
{
	int			fill = 0;
	size_t		i = 0;

	if (total > 0 && done > 0)
		fill = (int) ((long long) width * (done > total ? total : done) / total);
	if (size < (size_t) width + 3)
	{
		buf[0] = '\0';
		return;
	}
	buf[i++] = '[';
	for (int k = 0; k < width; k++)
		buf[i++] = k < fill ? '#' : '.';
	buf[i++] = ']';
	buf[i] = '\0';
}

/* Seconds as h:mm:ss. */
static void
format_duration(char *buf, size_t size, double seconds)
{
	long		s = seconds > 0 ? (long) (seconds + 0.5) : 0;

	snprintf(buf, size, "%ld:%02ld:%02ld", s / 3600, (s / 60) % 60, s % 60);
}

/* What a phase is doing, in words: pending, updating, baking 0:01:02 left, succeeded... */
static void
format_phase_status(char *buf, size_t size, const WatchState *st, const WatchPhase *ph, double since_fetch)
{
	char		left[32];

	if (strcmp(ph->state, "running") == 0 && ph->number == st->phase)
	{
		if (strcmp(st->state, "paused") == 0)
			snprintf(buf, size, "paused");
		else if (strcmp(st->step, "bake") == 0 && ph->bake_left_s >= 0)
		{
			format_duration(left, sizeof(left), ph->bake_left_s - since_fetch);
			snprintf(buf, size, "baking, %s left", left);
		}
		else if (ph->in_flight > 0)
			snprintf(buf, size, "updating, %d in flight", ph->in_flight);
		else
			snprintf(buf, size, "%s", strcmp(st->step, "plan") == 0 ? "planning" : "updating");
	}
	else if (strcmp(ph->state, "pending") == 0 && ph->number == st->phase && strcmp(st->state, "paused") == 0)
		snprintf(buf, size, "paused");
	else if (strcmp(ph->state, "failed") == 0 && ph->failed > 0)
		snprintf(buf, size, "failed, %d failed update%s", ph->failed, ph->failed == 1 ? "" : "s");
	else
		snprintf(buf, size, "%s", ph->state);
}

/* The header: push id, service and version, state, phase k/N, overall progress, health. */
static void
format_header(char *buf, size_t size, const WatchState *st, double since_fetch)
{
	char		total[64] = "";
	char		elapsed[32];

	if (st->subunits_total >= 0 && st->percent >= 0)
		snprintf(total, sizeof(total), "  %.0f%% of %d subunits", st->percent, st->subunits_total);
	format_duration(elapsed, sizeof(elapsed), st->elapsed_s + (watch_active(st) ? since_fetch : 0));
	snprintf(buf, size, "push %lld  %s %s%s  %s  phase %d/%d%s%s%s  %s",
			 st->id, st->service, st->version, strcmp(st->kind, "revert") == 0 ? " (revert)" : "",
			 st->state, st->phase, st->phases, total,
			 st->health[0] ? "  health: " : "", st->health, elapsed);
}

/* One phase's line: number, scope, amount, bar, counts, status. */
static void
format_phase(char *buf, size_t size, const WatchState *st, const WatchPhase *ph, double since_fetch)
{
	char		bar[BAR_WIDTH + 3];
	char		counts[32];
	char		status[96];

	format_bar(bar, sizeof(bar), ph->updated, ph->targets, BAR_WIDTH);
	if (ph->targets >= 0)
		snprintf(counts, sizeof(counts), "%d/%d", ph->updated, ph->targets);
	else
		snprintf(counts, sizeof(counts), "-");
	format_phase_status(status, sizeof(status), st, ph, since_fetch);
	snprintf(buf, size, "  %d/%d %-14.14s %5s %s %9s  %s",
			 ph->number, st->phases, ph->scope, ph->amount, bar, counts, status);
}

/* Write text cut to width columns (ASCII-safe; a cut never splits a UTF-8 sequence). */
static void
emit_cut(FILE *out, const char *text, int width)
{
	int			cols = 0;
	const char *p = text;

	while (*p)
	{
		if (((unsigned char) *p & 0xC0) != 0x80)
		{
			if (cols == width)
				break;
			cols++;
		}
		p++;
	}
	fwrite(text, 1, (size_t) (p - text), out);
}

/* Redraw the whole picture in place of the previous one. */
void
render_tty(FILE *out, const WatchState *st, double now, int width, int *lines_drawn)
{
	char		line[1024];
	double		since = now - st->fetched_at;
	int			lines = 0;

	if (*lines_drawn > 0)
		fprintf(out, "\033[%dA", *lines_drawn);
	format_header(line, sizeof(line), st, since);
	fputs("\r\033[2K", out);
	emit_cut(out, line, width - 1);
	fputc('\n', out);
	lines++;
	for (int i = 0; i < st->nphases; i++)
	{
		format_phase(line, sizeof(line), st, &st->phase_list[i], since);
		fputs("\r\033[2K", out);
		emit_cut(out, line, width - 1);
		fputc('\n', out);
		lines++;
	}
	/* a shorter picture than last time: clear what is left below */
	for (int i = lines; i < *lines_drawn; i++)
		fputs("\r\033[2K\n", out);
	if (*lines_drawn > lines)
		fprintf(out, "\033[%dA", *lines_drawn - lines);
	*lines_drawn = lines;
	fflush(out);
}

/* A plain line of the current phase's progress, printed only when it changed. */
void
render_progress_line(FILE *out, const WatchState *st, char *last, size_t last_size)
{
	char		line[1024];
	char		bar[BAR_WIDTH + 3];
	const WatchPhase *ph = NULL;

	for (int i = 0; i < st->nphases; i++)
		if (st->phase_list[i].number == st->phase)
			ph = &st->phase_list[i];
	if (ph == NULL)
		return;
	format_bar(bar, sizeof(bar), ph->updated, ph->targets, BAR_WIDTH);
	snprintf(line, sizeof(line), "push %lld %s phase %d/%d %s %s %d/%d updated, %d failed, %d in flight; %s",
			 st->id, st->state, st->phase, st->phases, st->step, bar, ph->updated, ph->targets < 0 ? 0 : ph->targets,
			 ph->failed, ph->in_flight,
			 !watch_active(st) ? "ended" : st->health[0] ? st->health : "health not checked");
	if (strcmp(line, last) == 0)
		return;
	fprintf(out, "%s\n", line);
	fflush(out);
	snprintf(last, last_size, "%s", line);
}

/* A plain line for one event of the push: its time, kind and phase. */
void
render_event_line(FILE *out, const WatchState *st, const char *kind, long long phase, const char *at)
{
	/* "2024-05-01T12:00:00.123+00:00": the time of day is enough beside the push */
	char		when[16] = "";

	if (strlen(at) >= 19)
		snprintf(when, sizeof(when), "%.8s ", at + 11);
	if (phase >= 0)
		fprintf(out, "%spush %lld event %s (phase %lld/%d)\n", when, st->id, kind, phase + 1, st->phases);
	else
		fprintf(out, "%spush %lld event %s\n", when, st->id, kind);
	fflush(out);
}

/* The last line: how the push ended, and where a revert went. */
void
render_final(FILE *out, const WatchState *st)
{
	fprintf(out, "push %lld %s (%s): %s\n", st->id, st->state, st->outcome, st->outcome_reason);
	if (st->revert_id > 0)
		fprintf(out, "push %lld reverts it: conveyor watch %lld\n", st->revert_id, st->revert_id);
	fflush(out);
}
