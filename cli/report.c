/*
 * report --out FILE.html: one self-contained page (no external assets).
 * The server writes the data as JSON (so every string is escaped by
 * PostgreSQL); the page's script draws the timeline and the SLO chart as
 * SVG from it. A plain HTML table of the same pushes, escaped here, keeps the
 * page useful without scripts.
 */
#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

/* The page's data: recent pushes with their phases, and the SLO per week. Times in epoch ms. */
static const char *const sql_report_data =
	"WITH recent AS ("
	"  SELECT h.* FROM conveyor.push_history h"
	"   WHERE h.started_at >= now() - make_interval(days => $1::int)"
	"   ORDER BY h.push_id DESC LIMIT $2::int)"
	"SELECT json_build_object("
	"  'generated_at', extract(epoch FROM now()) * 1000,"
	"  'generated', to_char(now(), 'YYYY-MM-DD HH24:MI:SS TZ'),"
	"  'database', current_database(),"
	"  'days', $1::int,"
	"  'pushes', coalesce((SELECT json_agg(json_build_object("
	"       'id', r.push_id, 'service', r.service, 'version', r.version, 'kind', r.kind, 'state', r.state,"
	"       'outcome', r.outcome, 'reason', r.outcome_reason,"
	"       'start', extract(epoch FROM r.started_at) * 1000, 'end', extract(epoch FROM r.ended_at) * 1000,"
	"       'phases', coalesce((SELECT json_agg(json_build_object("
	"              'phase', f.phase, 'scope', f.scope, 'amount', f.amount, 'state', f.state,"
	"              'start', extract(epoch FROM f.started_at) * 1000,"
	"              'updates_done', extract(epoch FROM f.updates_done_at) * 1000,"
	"              'end', extract(epoch FROM f.ended_at) * 1000,"
	"              'targets', f.targets, 'updated', f.updated, 'failed', f.failed) ORDER BY f.phase)"
	"            FROM conveyor.phase_history f WHERE f.push_id = r.push_id), '[]'::json))"
	"       ORDER BY r.push_id DESC) FROM recent r), '[]'::json),"
	"  'slo', coalesce((SELECT json_agg(json_build_object("
	"       'week', s.week, 'pushes', s.pushes, 'success', s.success, 'good_failure', s.good_failure,"
	"       'bad_failure', s.bad_failure, 'good_share', s.good_share, 'target', s.target, 'met', s.met)"
	"       ORDER BY s.week)"
	"     FROM (SELECT * FROM conveyor.slo_weekly ORDER BY week DESC LIMIT 12) s), '[]'::json)"
	")::text";

/* The same pushes as rows, for the page's plain table. */
static const char *const sql_report_rows =
	"SELECT h.push_id, h.service, h.version, h.kind, h.state, coalesce(h.outcome, ''),"
	"       to_char(h.started_at, 'YYYY-MM-DD HH24:MI:SS'), date_trunc('second', h.duration)::text,"
	"       h.phases_passed || '/' || h.phases, coalesce(h.outcome_reason, '')"
	"  FROM conveyor.push_history h"
	" WHERE h.started_at >= now() - make_interval(days => $1::int)"
	" ORDER BY h.push_id DESC LIMIT $2::int";

/* Text as HTML: the five characters that matter escaped. */
static void
write_html(FILE *out, const char *s)
{
	for (; *s; s++)
	{
		switch (*s)
		{
			case '&':
				fputs("&amp;", out);
				break;
			case '<':
				fputs("&lt;", out);
				break;
			case '>':
				fputs("&gt;", out);
				break;
			case '"':
				fputs("&quot;", out);
				break;
			case '\'':
				fputs("&#39;", out);
				break;
			default:
				fputc(*s, out);
		}
	}
}

/*
 * JSON inside <script>: "</script>" or "<!--" in a string must not end the
 * element, so <, > and & become \u escapes, which JSON reads back the same
 * (they only ever occur inside strings).
 */
static void
write_script_json(FILE *out, const char *s)
{
	for (; *s; s++)
	{
		if (*s == '<')
			fputs("\\u003c", out);
		else if (*s == '>')
			fputs("\\u003e", out);
		else if (*s == '&')
			fputs("\\u0026", out);
		else
			fputc(*s, out);
	}
}

/* The CSS class of an outcome, for the table's colours. */
static const char *
outcome_class(const char *state, const char *outcome)
{
	if (strcmp(outcome, "success") == 0)
		return "success";
	if (strcmp(outcome, "good failure") == 0)
		return "good";
	if (strcmp(outcome, "bad failure") == 0)
		return "bad";
	return strcmp(state, "paused") == 0 ? "paused" : "active";
}

/* Write the page; false if writing failed. */
static bool
write_page(FILE *out, const char *data, const PGresult *rows, int days)
{
	int			n = PQntuples(rows);

	report_write_page_head(out, "conveyor report");
	fprintf(out, "<body data-rendered=\"no\">\n<header><h1>conveyor: recent pushes</h1>\n"
			"<p class=\"meta\" id=\"cv-meta\">%d push%s started in the last %d days</p></header>\n",
			n, n == 1 ? "" : "es", days);
	fputs("<pre id=\"cv-errors\"></pre>\n"
		  "<section><h2>Timeline</h2><div id=\"timeline\" class=\"chart\"></div>\n"
		  "<p class=\"legend\"><span class=\"sw success\"></span>success <span class=\"sw good\"></span>good failure "
		  "<span class=\"sw bad\"></span>bad failure <span class=\"sw active\"></span>running "
		  "<span class=\"sw paused\"></span>paused; a phase is darker while updating, lighter while baking</p></section>\n"
		  "<section><h2>Weekly SLO: pushes ending in success or a good failure (target 99.9%)</h2>"
		  "<div id=\"slo\" class=\"chart\"></div></section>\n"
		  "<section><h2>Pushes</h2>\n<table id=\"pushes\"><thead><tr><th>push</th><th>service</th><th>version</th>"
		  "<th>kind</th><th>state</th><th>outcome</th><th>started</th><th>duration</th><th>phases</th>"
		  "<th>reason</th></tr></thead><tbody>\n", out);
	for (int r = 0; r < n; r++)
	{
		fprintf(out, "<tr class=\"%s\">", outcome_class(PQgetvalue(rows, r, 4), PQgetvalue(rows, r, 5)));
		for (int c = 0; c < PQnfields(rows); c++)
		{
			fputs("<td>", out);
			write_html(out, PQgetvalue(rows, r, c));
			fputs("</td>", out);
		}
		fputs("</tr>\n", out);
	}
	fputs("</tbody></table></section>\n"
		  "<p id=\"cv-status\">not drawn: the page's script did not run</p>\n"
		  "<script id=\"cv-data\" type=\"application/json\">", out);
	write_script_json(out, data);
	fputs("</script>\n", out);
	report_write_page_script(out);
	fputs("</body>\n</html>\n", out);
	return !ferror(out);
}

int
cmd_report(PGconn *conn, int argc, char **argv)
{
	static const struct option options[] = {
		{"out", required_argument, NULL, 'o'},
		{"days", required_argument, NULL, 'D'},
		{"limit", required_argument, NULL, 'n'},
		{NULL, 0, NULL, 0}
	};
	const char *path = NULL;
	const char *days = "30";
	const char *limit = "50";
	const char *params[2];
	long long	v;
	PGresult   *data;
	PGresult   *rows;
	FILE	   *out;
	bool		ok;
	int			c;

	while ((c = getopt_long(argc, argv, "o:D:n:", options, NULL)) != -1)
	{
		if (c == 'o')
			path = optarg;
		else if (c == 'D')
			days = optarg;
		else if (c == 'n')
			limit = optarg;
		else
		{
			fprintf(stderr, "Try \"conveyor report --help\" for more information.\n");
			return EXIT_USAGE;
		}
	}
	if (path == NULL || optind < argc)
	{
		fprintf(stderr, "conveyor report: --out FILE.html is required, and nothing else\n"
				"Try \"conveyor report --help\" for more information.\n");
		return EXIT_USAGE;
	}
	if (!cli_parse_id(days, "--days", &v) || v > 36500 || !cli_parse_id(limit, "--limit", &v) || v > 100000)
		return EXIT_USAGE;

	params[0] = days;
	params[1] = limit;
	data = cli_query(conn, sql_report_data, 2, params, PGRES_TUPLES_OK);
	if (data == NULL)
		return EXIT_ERROR;
	rows = cli_query(conn, sql_report_rows, 2, params, PGRES_TUPLES_OK);
	if (rows == NULL)
	{
		PQclear(data);
		return EXIT_ERROR;
	}

	out = strcmp(path, "-") == 0 ? stdout : fopen(path, "w");
	if (out == NULL)
	{
		fprintf(stderr, "conveyor: could not open \"%s\" for writing: %s\n", path, strerror(errno));
		PQclear(data);
		PQclear(rows);
		return EXIT_ERROR;
	}
	ok = write_page(out, PQgetvalue(data, 0, 0), rows, atoi(days));
	if (out != stdout)
	{
		if (fclose(out) != 0)
			ok = false;
	}
	else if (fflush(out) != 0)
		ok = false;
	if (!ok)
		fprintf(stderr, "conveyor: could not write \"%s\": %s\n", path, strerror(errno));
	else if (out != stdout)
		fprintf(stderr, "conveyor: wrote %s (%d pushes)\n", path, PQntuples(rows));
	PQclear(data);
	PQclear(rows);
	return ok ? EXIT_OK : EXIT_ERROR;
}
