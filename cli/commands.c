/*
 * The subcommands that run a query and print its answer: status, push
 * actions, history, plan-preview. Each calls the extension's SQL functions
 * or views with parameters; the SQL text is fixed.
 */
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

/* A usage error: say why, point at --help, exit code 2. */
static int
usage_error(const char *command, const char *why, const char *arg)
{
	if (arg != NULL)
		fprintf(stderr, "conveyor %s: %s \"%s\"\n", command, why, arg);
	else
		fprintf(stderr, "conveyor %s: %s\n", command, why);
	fprintf(stderr, "Try \"conveyor %s --help\" for more information.\n", command);
	return EXIT_USAGE;
}

/* Run a query and print its rows as a table; EXIT_OK or EXIT_ERROR. */
static int
print_query(PGconn *conn, const char *sql, int nparams, const char *const *params)
{
	PGresult   *res = cli_query(conn, sql, nparams, params, PGRES_TUPLES_OK);

	if (res == NULL)
		return EXIT_ERROR;
	cli_print_table(stdout, res);
	PQclear(res);
	return EXIT_OK;
}

/* ---------------------------------------------------------------- status */

static const char *const sql_status_services =
	"SELECT name AS service, coalesce(pushed_version, '') AS version, coalesce(active_push::text, '') AS active_push,"
	"       coalesce(last_push::text, '') AS last_push, coalesce(last_state || ' (' || last_outcome || ')', '') AS last_ended,"
	"       plan, failure_policy, owner::text AS owner"
	"  FROM conveyor.services WHERE $1::text IS NULL OR name = $1 ORDER BY name";

static const char *const sql_status_active =
	"SELECT push_id AS push, service, version, kind, state, format('%s/%s', phase, phases) AS phase, step,"
	"       coalesce(subunits_done::text, '?') || '/' || coalesce(subunits_total::text, '?') AS subunits,"
	"       coalesce(percent::text || '%', '') AS done, health, coalesce(bake_left::text, '') AS bake_left,"
	"       coalesce(to_char(eta, 'YYYY-MM-DD HH24:MI:SS'), '') AS eta, started_by::text AS started_by"
	"  FROM conveyor.push_progress WHERE $1::text IS NULL OR service = $1 ORDER BY push_id";

int
cmd_status(PGconn *conn, int argc, char **argv)
{
	static const struct option options[] = {
		{"service", required_argument, NULL, 's'},
		{NULL, 0, NULL, 0}
	};
	const char *service = NULL;
	const char *params[1];
	PGresult   *res;
	int			c;

	while ((c = getopt_long(argc, argv, "s:", options, NULL)) != -1)
	{
		if (c == 's')
			service = optarg;
		else
			return usage_error("status", "bad option", NULL);
	}
	if (optind < argc)
		return usage_error("status", "unexpected argument", argv[optind]);
	params[0] = service;

	res = cli_query(conn, sql_status_services, 1, params, PGRES_TUPLES_OK);
	if (res == NULL)
		return EXIT_ERROR;
	if (service != NULL && PQntuples(res) == 0)
	{
		fprintf(stderr, "conveyor: service \"%s\" does not exist (or is not yours to see)\n", service);
		PQclear(res);
		return EXIT_ERROR;
	}
	printf("Services\n");
	cli_print_table(stdout, res);
	PQclear(res);

	res = cli_query(conn, sql_status_active, 1, params, PGRES_TUPLES_OK);
	if (res == NULL)
		return EXIT_ERROR;
	printf("\nActive pushes\n");
	if (PQntuples(res) == 0)
		printf("(none)\n");
	else
		cli_print_table(stdout, res);
	PQclear(res);
	return EXIT_OK;
}

/* ---------------------------------------------------------------- push */

typedef struct PushAction
{
	const char *name;			/* on the command line */
	const char *sql;			/* $1 push id, $2 reason */
	const char *done;			/* printed after "push N " */
	bool		returns_id;		/* the function returns a new push's id */
} PushAction;

static const PushAction push_actions[] = {
	{"pause", "SELECT conveyor.push_pause($1::bigint, $2::text)", "paused", false},
	{"resume", "SELECT conveyor.push_resume($1::bigint, $2::text)", "resumed", false},
	{"cancel", "SELECT conveyor.push_cancel($1::bigint, $2::text)", "cancelled", false},
	{"revert", "SELECT conveyor.push_revert($1::bigint, $2::text)", "reverted", true},
	{"skip-phase", "SELECT conveyor.push_skip_phase($1::bigint, $2::text)", "skipped its phase", false},
	{"skip-healthchecks", "SELECT conveyor.push_skip_healthchecks($1::bigint, $2::text)", "skips its healthchecks", false},
	{"skip-bake", "SELECT conveyor.push_skip_bake($1::bigint, $2::text)", "skipped its bake", false},
};

static const char *const sql_push_start =
	"SELECT conveyor.push_start($1::text, $2::text, $3::text, $4::text)";

/* push start SERVICE VERSION [--plan] [--reason] [--watch] */
static int
push_start(PGconn *conn, int nargs, char **args, const char *plan, const char *reason, bool watch)
{
	const char *params[4];
	PGresult   *res;
	long long	id;
	int			rc = EXIT_OK;

	if (nargs != 2)
		return usage_error("push", "push start takes a SERVICE and a VERSION", NULL);
	params[0] = args[0];
	params[1] = args[1];
	params[2] = reason;
	params[3] = plan;
	/* --watch listens before the push exists, or a worker's first step could
	 * commit unseen */
	if (watch && !watch_listen(conn))
		return EXIT_ERROR;
	res = cli_query(conn, sql_push_start, 4, params, PGRES_TUPLES_OK);
	if (res == NULL)
		return EXIT_ERROR;
	id = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
	printf("push %lld started: %s %s\n", id, args[0], args[1]);
	fflush(stdout);
	PQclear(res);
	if (watch)
		rc = watch_push(conn, id, 0);
	return rc;
}

int
cmd_push(PGconn *conn, int argc, char **argv)
{
	static const struct option options[] = {
		{"reason", required_argument, NULL, 'r'},
		{"plan", required_argument, NULL, 'P'},
		{"watch", no_argument, NULL, 'w'},
		{NULL, 0, NULL, 0}
	};
	const char *reason = NULL;
	const char *plan = NULL;
	bool		watch = false;
	const char *action;
	const PushAction *act = NULL;
	const char *params[2];
	char		id_text[32];
	long long	id;
	PGresult   *res;
	int			c;

	while ((c = getopt_long(argc, argv, "r:P:w", options, NULL)) != -1)
	{
		switch (c)
		{
			case 'r':
				reason = optarg;
				break;
			case 'P':
				plan = optarg;
				break;
			case 'w':
				watch = true;
				break;
			default:
				return usage_error("push", "bad option", NULL);
		}
	}
	if (optind >= argc)
		return usage_error("push", "which action? start, pause, resume, cancel, revert, skip-phase, "
						   "skip-healthchecks or skip-bake", NULL);
	action = argv[optind++];
	if (strcmp(action, "start") == 0)
		return push_start(conn, argc - optind, argv + optind, plan, reason, watch);

	for (size_t i = 0; i < sizeof(push_actions) / sizeof(push_actions[0]); i++)
		if (strcmp(push_actions[i].name, action) == 0)
			act = &push_actions[i];
	if (act == NULL)
		return usage_error("push", "unknown action", action);
	if (plan != NULL || watch)
		return usage_error("push", "--plan and --watch go with push start only", NULL);
	if (argc - optind != 1)
		return usage_error("push", "the action takes one PUSH id", NULL);
	if (!cli_parse_id(argv[optind], "PUSH", &id))
		return EXIT_USAGE;

	snprintf(id_text, sizeof(id_text), "%lld", id);
	params[0] = id_text;
	params[1] = reason;
	res = cli_query(conn, act->sql, 2, params, PGRES_TUPLES_OK);
	if (res == NULL)
		return EXIT_ERROR;
	if (act->returns_id)
		printf("push %lld %s by push %s\n", id, act->done, PQgetvalue(res, 0, 0));
	else
		printf("push %lld %s\n", id, act->done);
	PQclear(res);
	return EXIT_OK;
}

/* ---------------------------------------------------------------- history */

static const char *const sql_history =
	"SELECT push_id AS push, service, version, kind, state, coalesce(outcome, '') AS outcome,"
	"       to_char(started_at, 'YYYY-MM-DD HH24:MI:SS') AS started, date_trunc('second', duration)::text AS duration,"
	"       phases_passed || '/' || phases AS phases, subunits_updated AS updated, subunits_failed AS failed,"
	"       coalesce(outcome_reason, '') AS reason"
	"  FROM conveyor.push_history WHERE $1::text IS NULL OR service = $1"
	" ORDER BY push_id DESC LIMIT $2::int";

int
cmd_history(PGconn *conn, int argc, char **argv)
{
	static const struct option options[] = {
		{"service", required_argument, NULL, 's'},
		{"limit", required_argument, NULL, 'n'},
		{NULL, 0, NULL, 0}
	};
	const char *service = NULL;
	const char *limit = "20";
	long long	n;
	const char *params[2];
	int			c;

	while ((c = getopt_long(argc, argv, "s:n:", options, NULL)) != -1)
	{
		if (c == 's')
			service = optarg;
		else if (c == 'n')
			limit = optarg;
		else
			return usage_error("history", "bad option", NULL);
	}
	if (optind < argc)
		return usage_error("history", "unexpected argument", argv[optind]);
	if (!cli_parse_id(limit, "--limit", &n) || n > 1000000)
		return EXIT_USAGE;
	params[0] = service;
	params[1] = limit;
	return print_query(conn, sql_history, 2, params);
}

/* ---------------------------------------------------------------- plan-preview */

static const char *const sql_plan_preview =
	"SELECT phase, scope, amount, bake::text AS bake, fault_tolerance || '%' AS tolerance,"
	"       coalesce(unit, '(no unit)') AS unit, updates, already"
	"  FROM conveyor.plan_preview($1::text, $2::text, $3::text)";

int
cmd_plan_preview(PGconn *conn, int argc, char **argv)
{
	static const struct option options[] = {
		{"plan", required_argument, NULL, 'P'},
		{NULL, 0, NULL, 0}
	};
	const char *params[3] = {NULL, NULL, NULL};
	int			c;

	while ((c = getopt_long(argc, argv, "P:", options, NULL)) != -1)
	{
		if (c == 'P')
			params[2] = optarg;
		else
			return usage_error("plan-preview", "bad option", NULL);
	}
	if (argc - optind != 2)
		return usage_error("plan-preview", "takes a SERVICE and a VERSION", NULL);
	params[0] = argv[optind];
	params[1] = argv[optind + 1];
	return print_query(conn, sql_plan_preview, 3, params);
}
