/*
 * Connecting with the usual libpq settings, running queries with
 * parameters (never SQL built from strings), and showing server errors the
 * way PostgreSQL reports them: severity, message, detail, hint.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static bool verbose_errors = false;

/* Print one field of an error report, psql style ("DETAIL:  ..."), if present. */
static void
print_field(const PGresult *res, int field, const char *label)
{
	const char *value = PQresultErrorField(res, field);

	if (value != NULL && value[0] != '\0')
		fprintf(stderr, "%s:  %s\n", label, value);
}

/* Show a failed result as the server reported it; exit codes are the caller's. */
void
cli_print_error(const PGresult *res)
{
	const char *severity = PQresultErrorField(res, PG_DIAG_SEVERITY);
	const char *primary = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
	const char *sqlstate = PQresultErrorField(res, PG_DIAG_SQLSTATE);

	if (primary == NULL)
	{
		/* not from the server (a lost connection, out of memory): libpq's own message */
		const char *msg = res != NULL ? PQresultErrorMessage(res) : "";

		fprintf(stderr, "conveyor: %s", msg[0] != '\0' ? msg : "query failed\n");
		if (msg[0] != '\0' && msg[strlen(msg) - 1] != '\n')
			fputc('\n', stderr);
		return;
	}
	if (verbose_errors && sqlstate != NULL)
		fprintf(stderr, "%s:  %s: %s\n", severity ? severity : "ERROR", sqlstate, primary);
	else
		fprintf(stderr, "%s:  %s\n", severity ? severity : "ERROR", primary);
	print_field(res, PG_DIAG_MESSAGE_DETAIL, "DETAIL");
	print_field(res, PG_DIAG_MESSAGE_HINT, "HINT");
	if (verbose_errors)
		print_field(res, PG_DIAG_CONTEXT, "CONTEXT");
}

/* Notices and warnings (RAISE NOTICE) go to stderr in the same format. */
static void
notice_receiver(void *arg, const PGresult *res)
{
	(void) arg;
	cli_print_error(res);
}

/* Connect; on failure print libpq's message and return NULL. */
PGconn *
cli_connect(const CliConnOptions *opts)
{
	const char *keywords[6];
	const char *values[6];
	int			n = 0;
	PGconn	   *conn;

	verbose_errors = opts->verbose;
	/* dbname first: with expand_dbname a conninfo in it sets the rest, and later keywords override it */
	keywords[n] = "dbname";
	values[n++] = opts->dbname;
	keywords[n] = "host";
	values[n++] = opts->host;
	keywords[n] = "port";
	values[n++] = opts->port;
	keywords[n] = "user";
	values[n++] = opts->user;
	keywords[n] = "fallback_application_name";
	values[n++] = "conveyor";
	keywords[n] = NULL;
	values[n] = NULL;

	conn = PQconnectdbParams(keywords, values, 1);
	if (conn == NULL)
	{
		fprintf(stderr, "conveyor: out of memory\n");
		return NULL;
	}
	if (PQstatus(conn) != CONNECTION_OK)
	{
		fprintf(stderr, "conveyor: %s", PQerrorMessage(conn));
		PQfinish(conn);
		return NULL;
	}
	PQsetNoticeReceiver(conn, notice_receiver, NULL);
	return conn;
}

/*
 * Run sql with text parameters; return the result if its status is expect,
 * else print the error, free the result and return NULL.
 */
PGresult *
cli_query(PGconn *conn, const char *sql, int nparams, const char *const *params, ExecStatusType expect)
{
	PGresult   *res = PQexecParams(conn, sql, nparams, NULL, params, NULL, NULL, 0);

	if (res == NULL)
	{
		fprintf(stderr, "conveyor: %s", PQerrorMessage(conn));
		return NULL;
	}
	if (PQresultStatus(res) != expect)
	{
		cli_print_error(res);
		PQclear(res);
		return NULL;
	}
	return res;
}

/* Run a statement without parameters or rows (LISTEN); false after printing the error. */
bool
cli_command(PGconn *conn, const char *sql)
{
	PGresult   *res = cli_query(conn, sql, 0, NULL, PGRES_COMMAND_OK);

	if (res == NULL)
		return false;
	PQclear(res);
	return true;
}

/* Parse a positive id (a push id) from the command line; false after saying why. */
bool
cli_parse_id(const char *arg, const char *what, long long *out)
{
	char	   *end;
	long long	v;

	errno = 0;
	v = strtoll(arg, &end, 10);
	if (arg[0] == '\0' || *end != '\0' || errno != 0 || v <= 0)
	{
		fprintf(stderr, "conveyor: %s must be a positive whole number, not \"%s\"\n", what, arg);
		return false;
	}
	*out = v;
	return true;
}
