/*
 * conveyor command line: declarations shared by its files.
 *
 *   main.c        options, dispatch to the subcommands, --help
 *   conn.c        connecting (libpq settings), running queries, server errors
 *   table.c       printing query results as aligned tables
 *   commands.c    status, push ..., history, plan-preview
 *   watch.c       watch: LISTEN conveyor_events, select() on the socket
 *   render.c      watch's progress bars (terminal) and plain lines (pipes)
 *   json.c        reading fields of a notification's JSON payload
 *   report.c      report: the data of the HTML page
 *   report_page.c report: the page's fixed HTML, CSS and script
 */
#ifndef CONVEYOR_CLI_H
#define CONVEYOR_CLI_H

#include <stdbool.h>
#include <stdio.h>
#include <libpq-fe.h>

/* Exit codes (docs/cli.md). watch adds how the push ended. */
#define EXIT_OK             0
#define EXIT_ERROR          1   /* connection or server error */
#define EXIT_USAGE          2   /* bad command line */
#define EXIT_PUSH_FAILED    3   /* watch: failed, a good failure (unhealthy, over tolerance) */
#define EXIT_PUSH_CANCELLED 4   /* watch: cancelled */
#define EXIT_PUSH_REVERTED  5   /* watch: reverted (by a person or the revert policy) */
#define EXIT_PUSH_BAD       6   /* watch: a bad failure (push type down, internal error) */
#define EXIT_WATCH_TIMEOUT  7   /* watch: --timeout passed, the push is still active */

/* Connection settings from the global options; NULL leaves libpq's default. */
typedef struct CliConnOptions
{
	const char *dbname;			/* a database name or a conninfo string / URI */
	const char *host;
	const char *port;
	const char *user;
	bool		verbose;		/* errors with SQLSTATE */
} CliConnOptions;

/* conn.c */
extern PGconn *cli_connect(const CliConnOptions *opts);
extern void cli_print_error(const PGresult *res);
extern PGresult *cli_query(PGconn *conn, const char *sql, int nparams, const char *const *params,
						   ExecStatusType expect);
extern bool cli_command(PGconn *conn, const char *sql);
extern bool cli_parse_id(const char *arg, const char *what, long long *out);

/* table.c */
extern void cli_print_table(FILE *out, const PGresult *res);

/* commands.c */
extern int	cmd_status(PGconn *conn, int argc, char **argv);
extern int	cmd_push(PGconn *conn, int argc, char **argv);
extern int	cmd_history(PGconn *conn, int argc, char **argv);
extern int	cmd_plan_preview(PGconn *conn, int argc, char **argv);

/* watch.c */
extern int	cmd_watch(PGconn *conn, int argc, char **argv);
extern bool watch_listen(PGconn *conn);
extern int	watch_push(PGconn *conn, long long push_id, double timeout_s);

/* report.c */
extern int	cmd_report(PGconn *conn, int argc, char **argv);
extern void report_write_page_head(FILE *out, const char *title);
extern void report_write_page_script(FILE *out);

/* json.c: fields of a flat JSON object (nested values are skipped) */
extern bool json_get_int(const char *json, const char *key, long long *out);
extern bool json_get_string(const char *json, const char *key, char *buf, size_t size);

/* usage texts (main.c) */
extern void usage_command(FILE *out, const char *command);

#endif
