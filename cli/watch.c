/*
 * watch: follow one push until it ends. LISTEN on conveyor_events, then
 * sleep in select() on the connection's socket; each notification about the
 * push (a step's events arrive together, at its commit) triggers one re-read
 * of the push and its phases. On a terminal a timer redraws the bake
 * countdown from what was last read, without a query; after 5 s without a
 * notification the push is read again, in case one was missed.
 */
#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/select.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "watch.h"

/* Seconds of silence after which watch reads the push again anyway. */
#define WATCH_RECHECK_S 5.0

static const char *const sql_push =
	"SELECT p.service, p.version, p.kind, p.state, p.step, p.phase + 1, p.phases,"
	"       coalesce(p.outcome, ''), coalesce(p.outcome_reason, ''),"
	"       coalesce(pr.subunits_done, -1), coalesce(pr.subunits_total, -1), coalesce(pr.percent, -1),"
	"       coalesce(pr.health, ''),"
	"       coalesce((SELECT max(r.id) FROM conveyor.push r WHERE r.reverts = p.id), 0),"
	"       extract(epoch FROM coalesce(p.ended_at, clock_timestamp()) - p.created_at)"
	"  FROM conveyor.push p LEFT JOIN conveyor.push_progress pr ON pr.push_id = p.id"
	" WHERE p.id = $1::bigint";

static const char *const sql_phases =
	"SELECT f.position + 1, f.scope, f.amount, f.state, coalesce(f.targets, -1),"
	"       count(s.push_id) FILTER (WHERE s.state = 'done'),"
	"       count(s.push_id) FILTER (WHERE s.state IN ('failed', 'gone')),"
	"       count(s.push_id) FILTER (WHERE s.state = 'sent'),"
	"       extract(epoch FROM f.bake),"
	"       CASE WHEN f.state = 'running' AND f.bake_until IS NOT NULL"
	"            THEN greatest(extract(epoch FROM f.bake_until - clock_timestamp()), 0) ELSE -1 END,"
	"       f.bake_skipped"
	"  FROM conveyor.push_phase f"
	"  LEFT JOIN conveyor.push_subunit s ON s.push_id = f.push_id AND s.phase = f.position"
	" WHERE f.push_id = $1::bigint"
	" GROUP BY f.push_id, f.position ORDER BY f.position";

/* Seconds on a clock that never jumps. */
static double
monotonic_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
}

/* The terminal's width (80 if it cannot say). */
static int
terminal_width(void)
{
	struct winsize ws;

	if (ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 10)
		return ws.ws_col;
	return 80;
}

/* Copy a result cell into a fixed buffer (cut if longer). */
static void
copy_cell(char *buf, size_t size, const PGresult *res, int row, int col)
{
	snprintf(buf, size, "%s", PQgetvalue(res, row, col));
}

/* Read the push and its phases into st; false after printing why. */
static bool
fetch_push(PGconn *conn, long long id, WatchState *st)
{
	char		id_text[32];
	const char *params[1] = {id_text};
	PGresult   *res;
	WatchPhase *list;
	int			n;

	snprintf(id_text, sizeof(id_text), "%lld", id);
	res = cli_query(conn, sql_push, 1, params, PGRES_TUPLES_OK);
	if (res == NULL)
		return false;
	if (PQntuples(res) != 1)
	{
		fprintf(stderr, "conveyor: push %lld does not exist (or is not yours to see)\n", id);
		PQclear(res);
		return false;
	}
	st->id = id;
	copy_cell(st->service, sizeof(st->service), res, 0, 0);
	copy_cell(st->version, sizeof(st->version), res, 0, 1);
	copy_cell(st->kind, sizeof(st->kind), res, 0, 2);
	copy_cell(st->state, sizeof(st->state), res, 0, 3);
	copy_cell(st->step, sizeof(st->step), res, 0, 4);
	st->phase = atoi(PQgetvalue(res, 0, 5));
	st->phases = atoi(PQgetvalue(res, 0, 6));
	copy_cell(st->outcome, sizeof(st->outcome), res, 0, 7);
	copy_cell(st->outcome_reason, sizeof(st->outcome_reason), res, 0, 8);
	st->subunits_done = atoi(PQgetvalue(res, 0, 9));
	st->subunits_total = atoi(PQgetvalue(res, 0, 10));
	st->percent = atof(PQgetvalue(res, 0, 11));
	copy_cell(st->health, sizeof(st->health), res, 0, 12);
	st->revert_id = strtoll(PQgetvalue(res, 0, 13), NULL, 10);
	st->elapsed_s = atof(PQgetvalue(res, 0, 14));
	PQclear(res);

	res = cli_query(conn, sql_phases, 1, params, PGRES_TUPLES_OK);
	if (res == NULL)
		return false;
	n = PQntuples(res);
	list = n > 0 ? calloc((size_t) n, sizeof(WatchPhase)) : NULL;
	if (n > 0 && list == NULL)
	{
		fprintf(stderr, "conveyor: out of memory\n");
		PQclear(res);
		return false;
	}
	for (int i = 0; i < n; i++)
	{
		WatchPhase *ph = &list[i];

		ph->number = atoi(PQgetvalue(res, i, 0));
		copy_cell(ph->scope, sizeof(ph->scope), res, i, 1);
		copy_cell(ph->amount, sizeof(ph->amount), res, i, 2);
		copy_cell(ph->state, sizeof(ph->state), res, i, 3);
		ph->targets = atoi(PQgetvalue(res, i, 4));
		ph->updated = atoi(PQgetvalue(res, i, 5));
		ph->failed = atoi(PQgetvalue(res, i, 6));
		ph->in_flight = atoi(PQgetvalue(res, i, 7));
		ph->bake_s = atof(PQgetvalue(res, i, 8));
		ph->bake_left_s = atof(PQgetvalue(res, i, 9));
		ph->bake_skipped = PQgetvalue(res, i, 10)[0] == 't';
	}
	PQclear(res);
	free(st->phase_list);
	st->phase_list = list;
	st->nphases = n;
	st->fetched_at = monotonic_now();
	return true;
}

/* The exit code that says how an ended push ended. */
static int
exit_code_of(const WatchState *st)
{
	if (strcmp(st->state, "succeeded") == 0)
		return EXIT_OK;
	if (strcmp(st->outcome, "bad failure") == 0)
		return EXIT_PUSH_BAD;
	if (strcmp(st->state, "cancelled") == 0)
		return EXIT_PUSH_CANCELLED;
	if (strcmp(st->state, "reverted") == 0)
		return EXIT_PUSH_REVERTED;
	return EXIT_PUSH_FAILED;
}

/* Wait for the socket to be readable, at most timeout seconds (< 0: forever); -1 on error. */
static int
wait_socket(PGconn *conn, double timeout)
{
	int			sock = PQsocket(conn);
	fd_set		rfds;
	struct timeval tv;
	int			r;

	if (sock < 0)
	{
		fprintf(stderr, "conveyor: the connection to the server was lost\n");
		return -1;
	}
	FD_ZERO(&rfds);
	FD_SET(sock, &rfds);
	if (timeout >= 0)
	{
		tv.tv_sec = (time_t) timeout;
		tv.tv_usec = (suseconds_t) ((timeout - (double) tv.tv_sec) * 1e6);
	}
	r = select(sock + 1, &rfds, NULL, NULL, timeout >= 0 ? &tv : NULL);
	if (r < 0 && errno == EINTR)
		return 0;
	if (r < 0)
		fprintf(stderr, "conveyor: waiting for the server failed: %s\n", strerror(errno));
	return r;
}

/*
 * Take every pending notification; true if one was about push id. Off a
 * terminal, print a line per event of the push.
 */
static bool
drain_notifications(PGconn *conn, const WatchState *st, bool tty)
{
	PGnotify   *n;
	bool		ours = false;

	while ((n = PQnotifies(conn)) != NULL)
	{
		long long	push;
		long long	phase = -1;
		char		kind[64] = "?";
		char		at[64] = "";

		if (json_get_int(n->extra, "push", &push) && push == st->id)
		{
			ours = true;
			if (!tty)
			{
				json_get_string(n->extra, "kind", kind, sizeof(kind));
				json_get_string(n->extra, "at", at, sizeof(at));
				if (!json_get_int(n->extra, "phase", &phase))
					phase = -1;
				render_event_line(stdout, st, kind, phase, at);
			}
		}
		PQfreemem(n);
	}
	return ours;
}

/*
 * LISTEN for push events; call before watch_push, and before starting the
 * push to watch when there is one to start: a step that commits after this is
 * seen, one before it is in watch_push's first read.
 */
bool
watch_listen(PGconn *conn)
{
	return cli_command(conn, "LISTEN conveyor_events");
}

/* Read the push again; in a pipe, print its progress line if it changed. */
static bool
refetch(PGconn *conn, long long id, WatchState *st, bool tty, char *last_line, size_t last_size,
		double *last_fetch)
{
	if (!fetch_push(conn, id, st))
		return false;
	*last_fetch = monotonic_now();
	if (!tty)
		render_progress_line(stdout, st, last_line, last_size);
	return true;
}

/*
 * Follow push id until it ends or timeout_s (0: no limit) passes; returns the
 * exit code. The caller has called watch_listen.
 */
int
watch_push(PGconn *conn, long long id, double timeout_s)
{
	WatchState	st;
	bool		tty = isatty(STDOUT_FILENO) == 1;
	double		start = monotonic_now();
	char		last_line[1024] = "";
	int			lines_drawn = 0;
	int			rc;
	double		last_fetch;

	memset(&st, 0, sizeof(st));
	if (!refetch(conn, id, &st, tty, last_line, sizeof(last_line), &last_fetch))
	{
		free(st.phase_list);
		return EXIT_ERROR;
	}
	if (tty)
		render_tty(stdout, &st, monotonic_now(), terminal_width(), &lines_drawn);

	while (watch_active(&st))
	{
		double		now = monotonic_now();
		double		wait = -1;
		int			r;

		if (timeout_s > 0)
		{
			wait = start + timeout_s - now;
			if (wait <= 0)
				break;
		}
		/* on a terminal, tick once a second for the clocks on screen */
		if (tty && (wait < 0 || wait > 1.0))
			wait = 1.0;
		/*
		 * A safety net, not polling: a push whose step committed while this
		 * session's LISTEN was committing can end without a notification
		 * reaching us, so after WATCH_RECHECK_S of silence read it again.
		 */
		if (wait < 0 || wait > WATCH_RECHECK_S)
			wait = WATCH_RECHECK_S;
		r = wait_socket(conn, wait);
		if (r < 0)
		{
			free(st.phase_list);
			return EXIT_ERROR;
		}
		if (r == 0 && monotonic_now() - last_fetch >= WATCH_RECHECK_S &&
			!refetch(conn, id, &st, tty, last_line, sizeof(last_line), &last_fetch))
		{
			free(st.phase_list);
			return EXIT_ERROR;
		}
		if (r > 0)
		{
			if (!PQconsumeInput(conn))
			{
				fprintf(stderr, "conveyor: %s", PQerrorMessage(conn));
				free(st.phase_list);
				return EXIT_ERROR;
			}
			if (drain_notifications(conn, &st, tty) &&
				!refetch(conn, id, &st, tty, last_line, sizeof(last_line), &last_fetch))
			{
				free(st.phase_list);
				return EXIT_ERROR;
			}
		}
		if (tty)
			render_tty(stdout, &st, monotonic_now(), terminal_width(), &lines_drawn);
	}

	if (watch_active(&st))
	{
		printf("push %lld is still %s after %.0f s (--timeout)\n", id, st.state, timeout_s);
		rc = EXIT_WATCH_TIMEOUT;
	}
	else
	{
		render_final(stdout, &st);
		rc = exit_code_of(&st);
	}
	free(st.phase_list);
	return rc;
}

int
cmd_watch(PGconn *conn, int argc, char **argv)
{
	static const struct option options[] = {
		{"timeout", required_argument, NULL, 't'},
		{NULL, 0, NULL, 0}
	};
	double		timeout_s = 0;
	long long	id;
	char	   *end;
	int			c;

	while ((c = getopt_long(argc, argv, "t:", options, NULL)) != -1)
	{
		if (c == 't')
		{
			timeout_s = strtod(optarg, &end);
			if (end == optarg || *end != '\0' || !(timeout_s > 0) || timeout_s > 1e9)
			{
				fprintf(stderr, "conveyor watch: --timeout takes a number of seconds, not \"%s\"\n", optarg);
				return EXIT_USAGE;
			}
		}
		else
		{
			fprintf(stderr, "Try \"conveyor watch --help\" for more information.\n");
			return EXIT_USAGE;
		}
	}
	if (argc - optind != 1)
	{
		fprintf(stderr, "conveyor watch: takes one PUSH id\nTry \"conveyor watch --help\" for more information.\n");
		return EXIT_USAGE;
	}
	if (!cli_parse_id(argv[optind], "PUSH", &id))
		return EXIT_USAGE;
	if (!watch_listen(conn))
		return EXIT_ERROR;
	return watch_push(conn, id, timeout_s);
}
