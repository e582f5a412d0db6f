/*
 * What watch knows about a push between notifications: read by watch.c,
 * drawn by render.c.
 */
#ifndef CONVEYOR_CLI_WATCH_H
#define CONVEYOR_CLI_WATCH_H

#include <stdbool.h>
#include <stdio.h>

typedef struct WatchPhase
{
	int			number;			/* from 1 */
	char		scope[128];
	char		amount[32];
	char		state[16];		/* pending, running, succeeded, skipped, failed */
	int			targets;		/* -1 until planned */
	int			updated;
	int			failed;
	int			in_flight;
	double		bake_s;			/* the bake the plan asks for */
	double		bake_left_s;	/* at fetch time; < 0 when not baking */
	bool		bake_skipped;
} WatchPhase;

typedef struct WatchState
{
	long long	id;
	char		service[128];
	char		version[128];
	char		kind[16];
	char		state[16];
	char		step[16];
	char		outcome[32];
	char		outcome_reason[512];
	char		health[256];
	int			phase;			/* current, from 1 */
	int			phases;
	int			subunits_done;	/* -1 unknown */
	int			subunits_total;
	double		percent;		/* < 0 unknown */
	long long	revert_id;		/* latest revert of this push, 0 if none */
	double		elapsed_s;		/* at fetch time */
	double		fetched_at;		/* monotonic clock at fetch time */
	int			nphases;
	WatchPhase *phase_list;
} WatchState;

/* render.c */
extern void render_tty(FILE *out, const WatchState *st, double now, int width, int *lines_drawn);
extern void render_progress_line(FILE *out, const WatchState *st, char *last, size_t last_size);
extern void render_event_line(FILE *out, const WatchState *st, const char *kind, long long phase, const char *at);
extern void render_final(FILE *out, const WatchState *st);
extern bool watch_active(const WatchState *st);

#endif
