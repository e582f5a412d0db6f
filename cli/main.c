/*
 * conveyor: the command line of the conveyor extension. Reads the global
 * connection options, connects with libpq, and hands the rest of the command
 * line to the subcommand.
 */
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

#define CONVEYOR_CLI_VERSION "0.3"

typedef struct Subcommand
{
	const char *name;
	const char *synopsis;
	const char *help;
} Subcommand;

/* Every subcommand's usage, in the order --help lists them. */
static const Subcommand subcommands[] = {
	{"status", "status [--service NAME]",
	 "Services and their active pushes: phase k/N, subunits done, health, bake left, ETA\n"
	 "(conveyor.services and conveyor.push_progress).\n"
	 "  --service NAME   only this service\n"},
	{"push", "push ACTION ...",
	 "Start and control pushes; each action calls the SQL function conveyor.push_ACTION.\n"
	 "  push start SERVICE VERSION [--plan PLAN] [--reason TEXT] [--watch]\n"
	 "                                       start a push, print its id (--watch: follow it, as watch does)\n"
	 "  push pause PUSH [--reason TEXT]      running -> paused\n"
	 "  push resume PUSH [--reason TEXT]     paused -> running\n"
	 "  push cancel PUSH [--reason TEXT]     end an active push (a good failure)\n"
	 "  push revert PUSH [--reason TEXT]     start a revert push, print its id\n"
	 "  push skip-phase PUSH [--reason TEXT]         end the current phase, move on\n"
	 "  push skip-healthchecks PUSH [--reason TEXT]  no more health checks for this push\n"
	 "  push skip-bake PUSH [--reason TEXT]          end the current phase's bake\n"},
	{"watch", "watch PUSH [--timeout SECONDS]",
	 "Follow a push until it ends: progress bars per phase on a terminal, a line per event\n"
	 "otherwise. Woken by the notifications on channel conveyor_events, never polling.\n"
	 "  --timeout SECONDS   give up after this long (exit 7)\n"
	 "Exit status: 0 succeeded, 3 failed (good failure), 4 cancelled, 5 reverted,\n"
	 "6 bad failure, 7 timed out, 1 error.\n"},
	{"history", "history [--service NAME] [--limit N]",
	 "Recent pushes, newest first, with outcome, duration, phases and subunits\n"
	 "(conveyor.push_history).\n"
	 "  --service NAME   only this service\n"
	 "  --limit N        at most N pushes (default 20)\n"},
	{"plan-preview", "plan-preview SERVICE VERSION [--plan PLAN]",
	 "What each phase of a push would update, per unit, without starting anything\n"
	 "(conveyor.plan_preview).\n"
	 "  --plan PLAN      another plan than the service's\n"},
	{"report", "report --out FILE.html [--days N] [--limit N]",
	 "Write a self-contained HTML page: a timeline of recent pushes and their phases,\n"
	 "coloured by outcome, and the weekly SLO chart. No external assets.\n"
	 "  --out FILE       where to write it (- for standard output)\n"
	 "  --days N         pushes started in the last N days (default 30)\n"
	 "  --limit N        at most N pushes (default 50)\n"},
};

#define N_SUBCOMMANDS (sizeof(subcommands) / sizeof(subcommands[0]))

/* The general usage: options and the list of subcommands. */
static void
usage(FILE *out)
{
	fprintf(out,
			"conveyor: control and follow pushes of the conveyor PostgreSQL extension\n\n"
			"Usage:\n  conveyor [OPTION]... COMMAND [ARG]...\n\nCommands:\n");
	for (size_t i = 0; i < N_SUBCOMMANDS; i++)
		fprintf(out, "  %s\n", subcommands[i].synopsis);
	fprintf(out,
			"\nConnection options (default: libpq's environment, PGHOST, PGDATABASE, PGSERVICE, ...):\n"
			"  -d, --dbname=DBNAME      database name or connection string (conninfo or URI)\n"
			"  -h, --host=HOSTNAME      server host or socket directory\n"
			"  -p, --port=PORT          server port\n"
			"  -U, --username=USERNAME  role to connect as\n"
			"\nOther options:\n"
			"  -v, --verbose            show the SQLSTATE of server errors\n"
			"  -V, --version            print the version and exit\n"
			"  -?, --help               this help; conveyor COMMAND --help for a command's\n"
			"\nExit status: 0 done, 1 connection or server error, 2 bad command line;\n"
			"watch also 3-7 for how the push ended (conveyor watch --help).\n");
}

/* The usage of one subcommand (as "conveyor COMMAND --help" prints it). */
void
usage_command(FILE *out, const char *command)
{
	for (size_t i = 0; i < N_SUBCOMMANDS; i++)
	{
		if (strcmp(subcommands[i].name, command) == 0)
		{
			fprintf(out, "Usage:\n  conveyor [OPTION]... %s\n\n%s", subcommands[i].synopsis, subcommands[i].help);
			return;
		}
	}
	usage(out);
}

/* Whether the subcommand's arguments ask for help (checked before connecting). */
static bool
wants_help(int argc, char **argv)
{
	for (int i = 1; i < argc; i++)
	{
		if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-?") == 0)
			return true;
		if (strcmp(argv[i], "--") == 0)
			break;
	}
	return false;
}

int
main(int argc, char **argv)
{
	static const struct option long_options[] = {
		{"dbname", required_argument, NULL, 'd'},
		{"host", required_argument, NULL, 'h'},
		{"port", required_argument, NULL, 'p'},
		{"username", required_argument, NULL, 'U'},
		{"verbose", no_argument, NULL, 'v'},
		{"version", no_argument, NULL, 'V'},
		{"help", no_argument, NULL, 'H'},
		{NULL, 0, NULL, 0}
	};
	CliConnOptions opts = {0};
	const char *command;
	const Subcommand *sub = NULL;
	PGconn	   *conn;
	int			c;
	int			rc;

	/* -? is help as in psql (getopt would take it for an unknown option) */
	for (int i = 1; i < argc && argv[i][0] == '-'; i++)
	{
		if (strcmp(argv[i], "-?") == 0)
		{
			usage(stdout);
			return EXIT_OK;
		}
	}
	/* "+": stop at the subcommand; its options are its own */
	while ((c = getopt_long(argc, argv, "+d:h:p:U:vV", long_options, NULL)) != -1)
	{
		switch (c)
		{
			case 'd':
				opts.dbname = optarg;
				break;
			case 'h':
				opts.host = optarg;
				break;
			case 'p':
				opts.port = optarg;
				break;
			case 'U':
				opts.user = optarg;
				break;
			case 'v':
				opts.verbose = true;
				break;
			case 'V':
				printf("conveyor %s (libpq %d)\n", CONVEYOR_CLI_VERSION, PQlibVersion());
				return EXIT_OK;
			case 'H':
				usage(stdout);
				return EXIT_OK;
			default:
				fprintf(stderr, "Try \"conveyor --help\" for more information.\n");
				return EXIT_USAGE;
		}
	}
	if (optind >= argc)
	{
		usage(stderr);
		return EXIT_USAGE;
	}
	command = argv[optind];
	for (size_t i = 0; i < N_SUBCOMMANDS; i++)
		if (strcmp(subcommands[i].name, command) == 0)
			sub = &subcommands[i];
	if (sub == NULL)
	{
		fprintf(stderr, "conveyor: unknown command \"%s\"\nTry \"conveyor --help\" for more information.\n", command);
		return EXIT_USAGE;
	}
	/* the subcommand sees argv[0] = its name */
	argc -= optind;
	argv += optind;
	if (wants_help(argc, argv))
	{
		usage_command(stdout, sub->name);
		return EXIT_OK;
	}

	conn = cli_connect(&opts);
	if (conn == NULL)
		return EXIT_ERROR;

	optind = 0;					/* glibc: start getopt afresh for the subcommand */
	if (strcmp(sub->name, "status") == 0)
		rc = cmd_status(conn, argc, argv);
	else if (strcmp(sub->name, "push") == 0)
		rc = cmd_push(conn, argc, argv);
	else if (strcmp(sub->name, "watch") == 0)
		rc = cmd_watch(conn, argc, argv);
	else if (strcmp(sub->name, "history") == 0)
		rc = cmd_history(conn, argc, argv);
	else if (strcmp(sub->name, "plan-preview") == 0)
		rc = cmd_plan_preview(conn, argc, argv);
	else
		rc = cmd_report(conn, argc, argv);

	PQfinish(conn);
	return rc;
}
