/*
 * test_plan.c - unit tests for the push planner (src/plan.c)
 *
 * Build and run from the repository root:
 *   gcc -O2 -g -Wall -Wextra -Werror -std=gnu99 -Isrc src/plan.c test/unit/test_plan.c -o /tmp/test_plan && /tmp/test_plan
 * With sanitizers:
 *   gcc -O1 -g -fsanitize=address,undefined -fno-sanitize-recover=all -Wall -Wextra -Werror -std=gnu99 -Isrc src/plan.c test/unit/test_plan.c -o /tmp/test_plan_asan && /tmp/test_plan_asan
 *
 * Every CHECK counts as one test.  The last line printed is
 * "N passed, M failed"; the exit status is non-zero when M > 0.
 */
#include "plan.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "unit_check.h"

/* ------------------------------------------------------------------------
 * Helpers: owned strings and fleets
 * ------------------------------------------------------------------------ */

static char **pool;
static int	npool;
static int	pool_cap;

/* printf into a fresh string that lives until pool_release(). */
__attribute__((format(printf, 1, 2)))
static char *
pstr(const char *fmt,...)
{
	va_list		ap;
	char	   *s;
	int			n;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	s = malloc((size_t) n + 1);
	va_start(ap, fmt);
	vsnprintf(s, (size_t) n + 1, fmt, ap);
	va_end(ap);
	if (npool == pool_cap)
	{
		pool_cap = pool_cap ? pool_cap * 2 : 1024;
		pool = realloc(pool, sizeof(char *) * (size_t) pool_cap);
	}
	pool[npool++] = s;
	return s;
}

/* Free every string pstr() made. */
static void
pool_release(void)
{
	int			i;

	for (i = 0; i < npool; i++)
		free(pool[i]);
	free(pool);
	pool = NULL;
	npool = pool_cap = 0;
}

/* A test fleet: units whose label and subunit arrays the fleet owns. */
typedef struct Fleet
{
	int			nunits;
	CvUnit	   *units;
} Fleet;

static const char *const regions[] = {"eu", "us", "ap"};

/*
 * nunits units "u<i>" of `size` subunits "u<i>-s<j>" at version "v1",
 * labelled region (cycling eu, us, ap) and tier=web.
 */
static Fleet
fleet_make(int nunits, int size)
{
	Fleet		f;
	int			i;
	int			j;

	f.nunits = nunits;
	f.units = calloc((size_t) (nunits > 0 ? nunits : 1), sizeof(CvUnit));
	for (i = 0; i < nunits; i++)
	{
		CvLabel    *labels = calloc(2, sizeof(CvLabel));
		CvSubunit  *subs = calloc((size_t) (size > 0 ? size : 1), sizeof(CvSubunit));

		labels[0].key = "region";
		labels[0].value = regions[i % 3];
		labels[1].key = "tier";
		labels[1].value = "web";
		for (j = 0; j < size; j++)
		{
			subs[j].name = pstr("u%d-s%d", i, j);
			subs[j].version = "v1";
		}
		f.units[i].name = pstr("u%d", i);
		f.units[i].labels = labels;
		f.units[i].nlabels = 2;
		f.units[i].subunits = subs;
		f.units[i].nsubunits = size;
	}
	return f;
}

/* Free a fleet's arrays (names stay in the pool). */
static void
fleet_free(Fleet *f)
{
	int			i;

	for (i = 0; i < f->nunits; i++)
	{
		free((void *) f->units[i].labels);
		free((void *) f->units[i].subunits);
	}
	free(f->units);
	f->units = NULL;
	f->nunits = 0;
}

/* Parse a scope that the test knows is valid. */
static CvScope *
scope(const char *text)
{
	CvScope    *s = NULL;
	char		err[128];
	int			pos;

	if (cv_scope_parse(text, &s, err, sizeof(err), &pos) != CV_PARSE_OK)
	{
		fprintf(stderr, "test bug: scope \"%s\" rejected: %s at %d\n",
				text, err, pos);
		exit(2);
	}
	return s;
}

/* Parse an amount that the test knows is valid. */
static CvAmount
amount(const char *text)
{
	CvAmount	a;
	char		err[128];

	if (cv_amount_parse(text, &a, err, sizeof(err)) != CV_PARSE_OK)
	{
		fprintf(stderr, "test bug: amount \"%s\" rejected: %s\n", text, err);
		exit(2);
	}
	return a;
}

/* Build a phase list from "scope", "amount" pairs; free with phases_free. */
static CvPhaseSpec *
phases_make(int n, const char *const *pairs)
{
	CvPhaseSpec *ph = calloc((size_t) (n > 0 ? n : 1), sizeof(CvPhaseSpec));
	int			i;

	for (i = 0; i < n; i++)
	{
		ph[i].scope = scope(pairs[2 * i]);
		ph[i].amount = amount(pairs[2 * i + 1]);
	}
	return ph;
}

/* Free phases and their scopes. */
static void
phases_free(CvPhaseSpec *ph, int n)
{
	int			i;

	for (i = 0; i < n; i++)
		cv_scope_free((CvScope *) ph[i].scope);
	free(ph);
}

/* Number of phase p's targets. */
static int
phase_len(const CvPlan *plan, int p)
{
	return plan->phase_offset[p + 1] - plan->phase_offset[p];
}

/* Targets phase p gives unit u. */
static int
phase_unit_count(const CvPlan *plan, int p, int u)
{
	int			i;
	int			n = 0;

	for (i = plan->phase_offset[p]; i < plan->phase_offset[p + 1]; i++)
		if (plan->targets[i].unit == u)
			n++;
	return n;
}

/*
 * Structural soundness: offsets run 0..ntargets, every target is a real
 * subunit not at the version, none repeats, and each phase is ordered by
 * unit index then rank.
 */
static bool
plan_sound(const CvPlan *plan, const Fleet *f, const char *version,
		   uint64_t seed)
{
	char	  **seen = calloc((size_t) (f->nunits > 0 ? f->nunits : 1), sizeof(char *));
	bool		ok = true;
	int			p;
	int			i;

	for (i = 0; i < f->nunits; i++)
		seen[i] = calloc((size_t) f->units[i].nsubunits + 1, 1);
	if (plan->phase_offset[0] != 0 ||
		plan->phase_offset[plan->nphases] != plan->ntargets)
		ok = false;
	for (p = 0; ok && p < plan->nphases; p++)
	{
		if (plan->phase_offset[p + 1] < plan->phase_offset[p] || plan->already[p] < 0)
			ok = false;
		for (i = plan->phase_offset[p]; ok && i < plan->phase_offset[p + 1]; i++)
		{
			const CvTarget *t = &plan->targets[i];
			const CvUnit *unit;

			if (t->unit < 0 || t->unit >= f->nunits ||
				t->subunit < 0 || t->subunit >= f->units[t->unit].nsubunits)
			{
				ok = false;
				break;
			}
			unit = &f->units[t->unit];
			if (seen[t->unit][t->subunit] ||
				(unit->subunits[t->subunit].version != NULL &&
				 strcmp(unit->subunits[t->subunit].version, version) == 0))
				ok = false;
			seen[t->unit][t->subunit] = 1;
			if (i > plan->phase_offset[p])
			{
				const CvTarget *prev = &plan->targets[i - 1];

				if (prev->unit > t->unit)
					ok = false;
				else if (prev->unit == t->unit &&
						 cv_subunit_rank(seed, unit->name,
										 unit->subunits[prev->subunit].name) >
						 cv_subunit_rank(seed, unit->name,
										 unit->subunits[t->subunit].name))
					ok = false;
			}
		}
	}
	for (i = 0; i < f->nunits; i++)
		free(seen[i]);
	free(seen);
	return ok;
}

/* ------------------------------------------------------------------------
 * Scope parsing
 * ------------------------------------------------------------------------ */

/* Scopes that must compile, and whether each is the bare '*'. */
static void
test_scope_accept(void)
{
	static const struct
	{
		const char *text;
		bool		is_all;
	}			cases[] = {
		{"*", true},
		{"  *\t", true},
		{"region=eu", false},
		{"region=eu,us tier=web", false},
		{"region=eu & !tier=canary", false},
		{"web-*", false},
		{"name=db-?? | region=ap", false},
		{"region!=eu", false},
		{"region = eu", false},
		{"region != eu", false},
		{"region\t=\teu", false},
		{"a&b", false},
		{"a|b", false},
		{"a | b | c", false},
		{"\n region=eu \n", false},
		{"!web-*", false},
		{"!region=eu", false},
		{"!region!=eu", false},
		{"k.e-y_1=v", false},
		{"_k=v", false},
		{"region=*", false},
		{"a:b/c@d+e.f_g-h", false},
		{"?", false},
		{"a* *b", false},
		{"x=a**b", false},
		{"region=eu,us,ap", false},
	};
	size_t		i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
	{
		CvScope    *s = NULL;
		char		err[128] = "unset";
		int			pos = 99;
		int			rc = cv_scope_parse(cases[i].text, &s, err, sizeof(err), &pos);

		CHECK(rc == CV_PARSE_OK && s != NULL, "scope \"%s\": %s at %d",
			  cases[i].text, err, pos);
		CHECK(cv_scope_is_all(s) == cases[i].is_all, "scope \"%s\" is_all",
			  cases[i].text);
		CHECK(err[0] == '\0' && pos == -1, "scope \"%s\" left err/pos set",
			  cases[i].text);
		cv_scope_free(s);
	}
}

/* Scopes that must be refused, with message substring and byte offset. */
static void
test_scope_reject(void)
{
	static const struct
	{
		const char *text;
		const char *msg;
		int			pos;
	}			cases[] = {
		{"", "empty scope", 0},
		{"   \t", "empty scope", 0},
		{"region==eu", "expected a value after \"=\"", 7},
		{"region=", "expected a value after \"=\"", 7},
		{"region!=", "expected a value after \"!=\"", 8},
		{"=eu", "missing label key before \"=\"", 0},
		{" = eu", "missing label key before \"=\"", 1},
		{"!=eu", "missing label key before \"=\"", 1},
		{"region=eu,", "expected a value after \",\"", 10},
		{"region=eu,,us", "expected a value after \",\"", 10},
		{"region=eu, us", "expected a value after \",\"", 10},
		{"region=eu &", "expected a term after \"&\"", 11},
		{"region=eu & ", "expected a term after \"&\"", 11},
		{"a & & b", "expected a term after \"&\"", 4},
		{"| region=eu", "expected a term", 0},
		{"region=eu |", "expected a term after \"|\"", 11},
		{"a || b", "expected a term after \"|\"", 3},
		{"a |& b", "expected a term after \"|\"", 3},
		{"& a", "expected a term", 0},
		{",a", "expected a term", 0},
		{"region=eu#", "unexpected \"#\"", 9},
		{"reg#ion=eu", "unexpected \"#\"", 3},
		{"region=eu=x", "unexpected \"=\"", 9},
		{"region=(eu)", "expected a value after \"=\"", 7},
		{"a!b", "unexpected \"!\"", 1},
		{"(a)", "unexpected \"(\"", 0},
		{"a \"b\"", "unexpected \"\"\"", 2},
		{"caf\xc3\xa9", "unexpected byte 0xc3", 3},
		{"a\x01", "unexpected byte 0x01", 1},
		{"* region=eu", "\"*\" must be the whole scope", 0},
		{"region=eu | *", "\"*\" must be the whole scope", 12},
		{"**", "\"*\" must be the whole scope", 0},
		{"!*", "\"*\" must be the whole scope", 1},
		{"!", "expected a term after \"!\"", 1},
		{"!!a", "expected a term after \"!\"", 1},
		{"! a", "expected a term after \"!\"", 1},
		{"1region=eu", "label key must start with a letter", 0},
		{"-x=eu", "label key must start with a letter", 0},
		{"re*gion=eu", "invalid character \"*\" in label key", 2},
		{"re:gion!=eu", "invalid character \":\" in label key", 2},
	};
	size_t		i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
	{
		CvScope    *s = (CvScope *) 1;	/* must come back NULL */
		char		err[128] = "";
		int			pos = -7;
		int			rc = cv_scope_parse(cases[i].text, &s, err, sizeof(err), &pos);

		CHECK(rc != CV_PARSE_OK && s == NULL, "scope \"%s\" accepted",
			  cases[i].text);
		CHECK(strstr(err, cases[i].msg) != NULL,
			  "scope \"%s\": message \"%s\" lacks \"%s\"",
			  cases[i].text, err, cases[i].msg);
		CHECK(pos == cases[i].pos, "scope \"%s\": errpos %d, want %d (%s)",
			  cases[i].text, pos, cases[i].pos, err);
	}
}

/* Length and term limits, NULL text, tiny or missing error buffers. */
static void
test_scope_limits(void)
{
	char		text[CV_SCOPE_MAX_LEN + 64];
	char		err[128];
	char		tiny[5];
	CvScope    *s = NULL;
	int			pos;
	int			i;
	int			len;

	/* Exactly 1024 bytes is fine: "a=" then 1022 value bytes. */
	memset(text, 'x', CV_SCOPE_MAX_LEN);
	text[0] = 'a';
	text[1] = '=';
	text[CV_SCOPE_MAX_LEN] = '\0';
	CHECK(cv_scope_parse(text, &s, err, sizeof(err), &pos) == CV_PARSE_OK,
		  "1024-byte scope refused: %s", err);
	cv_scope_free(s);
	s = NULL;

	text[CV_SCOPE_MAX_LEN] = 'x';
	text[CV_SCOPE_MAX_LEN + 1] = '\0';
	CHECK(cv_scope_parse(text, &s, err, sizeof(err), &pos) != CV_PARSE_OK &&
		  strstr(err, "longer than 1024 bytes") && pos == 1024,
		  "1025-byte scope: %s at %d", err, pos);

	/* 64 one-letter terms pass, a 65th is refused at its own offset. */
	len = 0;
	for (i = 0; i < CV_SCOPE_MAX_TERMS; i++)
		len += sprintf(text + len, "%sa", i ? " " : "");
	CHECK(cv_scope_parse(text, &s, err, sizeof(err), &pos) == CV_PARSE_OK,
		  "64 terms refused: %s", err);
	cv_scope_free(s);
	s = NULL;
	sprintf(text + len, " | b");
	CHECK(cv_scope_parse(text, &s, err, sizeof(err), &pos) != CV_PARSE_OK &&
		  strstr(err, "too many terms") && pos == len + 3,
		  "65 terms: %s at %d (want %d)", err, pos, len + 3);

	/* The largest value count the fixed arrays must hold: "k=a,a,a,...". */
	len = sprintf(text, "k=a");
	while (len + 2 <= CV_SCOPE_MAX_LEN)
		len += sprintf(text + len, ",a");
	CHECK(cv_scope_parse(text, &s, err, sizeof(err), &pos) == CV_PARSE_OK,
		  "max values refused: %s", err);
	cv_scope_free(s);
	s = NULL;

	/* The most one-byte bare globs: "a&a&a...". */
	len = sprintf(text, "a");
	for (i = 1; i < CV_SCOPE_MAX_TERMS; i++)
		len += sprintf(text + len, "&a");
	CHECK(cv_scope_parse(text, &s, err, sizeof(err), &pos) == CV_PARSE_OK,
		  "64 '&' terms refused: %s", err);
	cv_scope_free(s);
	s = NULL;

	CHECK(cv_scope_parse(NULL, &s, err, sizeof(err), &pos) != CV_PARSE_OK &&
		  strstr(err, "null") && s == NULL, "NULL scope: %s", err);

	memset(tiny, 'Z', sizeof(tiny));
	CHECK(cv_scope_parse("region==eu", &s, tiny, sizeof(tiny), &pos) != CV_PARSE_OK &&
		  tiny[4] == '\0' && strlen(tiny) == 4 && pos == 7,
		  "tiny errbuf not truncated safely");
	CHECK(cv_scope_parse("region==eu", &s, NULL, 0, NULL) != CV_PARSE_OK,
		  "NULL errbuf/errpos");
	CHECK(cv_scope_parse("region=eu", NULL, NULL, 0, NULL) == CV_PARSE_OK,
		  "validate-only parse (out NULL)");
	CHECK(cv_scope_parse("region=", NULL, err, sizeof(err), &pos) != CV_PARSE_OK,
		  "validate-only parse accepted a bad scope");
	cv_scope_free(NULL);
	CHECK(!cv_scope_is_all(NULL), "NULL scope is not '*'");
}

/* ------------------------------------------------------------------------
 * Matching
 * ------------------------------------------------------------------------ */

/* Glob matcher cases, backtracking included. */
static void
test_glob(void)
{
	static const struct
	{
		const char *glob;
		const char *text;
		bool		match;
	}			cases[] = {
		{"a*b*c", "aXbYbZc", true},
		{"a*b*c", "aXbYbZ", false},
		{"a*b*c", "abc", true},
		{"a*b*c", "acb", false},
		{"*", "", true},
		{"*", "anything", true},
		{"**", "", true},
		{"?", "", false},
		{"?", "a", true},
		{"?", "ab", false},
		{"a?c", "abc", true},
		{"a?c", "ac", false},
		{"*a", "bbba", true},
		{"*a", "bbbab", false},
		{"**a**", "a", true},
		{"a*", "a", true},
		{"", "", true},
		{"", "a", false},
		{"abc", "abd", false},
		{"abc", "ab", false},
		{"ab", "abc", false},
		{"db-??", "db-01", true},
		{"db-??", "db-1", false},
		{"db-??", "db-001", false},
		{"*-canary", "web-canary", true},
		{"web-*-eu", "web-1-2-eu", true},
		{"web-*-eu", "web-1-2-us", false},
		{"*x*x*x*", "axbxcxd", true},
		{"*x*x*x*", "axbxcd", false},
		{"A", "a", false},
	};
	size_t		i;
	char	   *longtext;
	char		pathological[64];

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		CHECK(cv_glob_match(cases[i].glob, cases[i].text) == cases[i].match,
			  "glob \"%s\" on \"%s\"", cases[i].glob, cases[i].text);

	/* Many stars against a long near-miss: must finish, not explode. */
	longtext = malloc(100001);
	memset(longtext, 'a', 100000);
	longtext[100000] = '\0';
	strcpy(pathological, "*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*b");
	CHECK(!cv_glob_match(pathological, longtext), "pathological glob matched");
	longtext[99999] = 'b';
	CHECK(cv_glob_match(pathological, longtext), "pathological glob missed");
	free(longtext);
	CHECK(!cv_glob_match(NULL, "a") && !cv_glob_match("a", NULL), "NULL glob args");
}

/* Scope truth tables over a small fleet with missing and repeated labels. */
static void
test_scope_match(void)
{
	static const CvLabel eu_web[] = {{"region", "eu"}, {"tier", "web"}};
	static const CvLabel us_db[] = {{"region", "us"}, {"tier", "db"}};
	static const CvLabel eu_canary[] = {{"region", "eu"}, {"tier", "canary"}};
	static const CvLabel ap[] = {{"region", "ap"}};
	static const CvLabel dup[] = {{"region", "us"}, {"region", "eu"}, {NULL, "x"}, {"tier", NULL}};
	static const CvLabel name_label[] = {{"name", "shadowed"}};
	const CvUnit units[] = {
		{"web-01", eu_web, 2, NULL, 0},
		{"db-01", us_db, 2, NULL, 0},
		{"web-02", NULL, 0, NULL, 0},
		{"web-canary", eu_canary, 2, NULL, 0},
		{"db-7", ap, 1, NULL, 0},
		{"multi", dup, 4, NULL, 0},
		{"n1", name_label, 1, NULL, 0},
		{NULL, NULL, 3, NULL, 0},
	};
	/* One character per unit above: 1 = in scope. */
	static const struct
	{
		const char *scope;
		const char *expect;
	}			cases[] = {
		{"*", "11111111"},
		{"region=eu", "10010100"},
		{"region!=eu", "01101011"},
		{"!region=eu", "01101011"},
		{"!region!=eu", "10010100"},
		{"region=eu,us", "11010100"},
		{"region=eu,us tier=web", "10000000"},
		{"region=eu & !tier=canary", "10000100"},
		{"region=eu !tier=canary", "10000100"},
		{"web-*", "10110000"},
		{"!web-*", "01001111"},
		{"name=db-?? | region=ap", "01001000"},
		{"name=db-??", "01000000"},
		{"db-?", "00001000"},
		{"region=*", "11011100"},
		{"region!=*", "00100011"},
		{"tier=*", "11010100"},
		{"tier=web | tier=db", "11000000"},
		{"region=e?", "10010100"},
		{"region=E*", "00000000"},
		{"name=shadowed", "00000000"},
		{"name=n1", "00000010"},
		{"nomatch", "00000000"},
		{"multi & region=us & region=eu", "00000100"},
		{"region=eu | region=us | region=ap", "11011100"},
		{"web-01 | web-02 | db-7", "10101000"},
		{"?????", "01000100"},
	};
	size_t		i;
	size_t		u;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
	{
		CvScope    *s = scope(cases[i].scope);

		for (u = 0; u < sizeof(units) / sizeof(units[0]); u++)
		{
			bool		want = cases[i].expect[u] == '1';

			CHECK(cv_scope_matches(s, &units[u]) == want,
				  "scope \"%s\" on unit %zu (%s): want %d",
				  cases[i].scope, u, units[u].name ? units[u].name : "(null)", want);
		}
		cv_scope_free(s);
	}
	CHECK(!cv_scope_matches(NULL, &units[0]), "NULL scope matched");
	{
		CvScope    *s = scope("*");

		CHECK(!cv_scope_matches(s, NULL), "NULL unit matched");
		cv_scope_free(s);
	}
}

/* ------------------------------------------------------------------------
 * Amounts
 * ------------------------------------------------------------------------ */

/* Amounts that must parse, with their value. */
static void
test_amount_accept(void)
{
	static const struct
	{
		const char *text;
		bool		is_percent;
		int64_t		value;
	}			cases[] = {
		{"5%", true, 50000},
		{"12.5%", true, 125000},
		{"100%", true, 1000000},
		{"100.0000%", true, 1000000},
		{"0.0001%", true, 1},
		{"33.3333%", true, 333333},
		{"  7.25%\t", true, 72500},
		{"005%", true, 50000},
		{"3", false, 3},
		{" 3 ", false, 3},
		{"1", false, 1},
		{"007", false, 7},
		{"1000000", false, 1000000},
	};
	size_t		i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
	{
		CvAmount	a;
		char		err[128] = "unset";
		int			rc = cv_amount_parse(cases[i].text, &a, err, sizeof(err));

		CHECK(rc == CV_PARSE_OK && err[0] == '\0', "amount \"%s\": %s",
			  cases[i].text, err);
		CHECK(a.is_percent == cases[i].is_percent &&
			  (a.is_percent ? a.scaled_pct : a.count) == cases[i].value,
			  "amount \"%s\" parsed wrong", cases[i].text);
	}
	CHECK(cv_amount_parse("5%", NULL, NULL, 0) == CV_PARSE_OK, "validate-only amount");
}

/* Amounts that must be refused, with message substring. */
static void
test_amount_reject(void)
{
	static const struct
	{
		const char *text;
		const char *msg;
	}			cases[] = {
		{"", "empty amount"},
		{"  ", "empty amount"},
		{"0", "at least 1"},
		{"000", "at least 1"},
		{"0%", "greater than 0%"},
		{"0.0000%", "greater than 0%"},
		{"-5%", "negative"},
		{"-3", "negative"},
		{"100.0001%", "at most 100%"},
		{"101%", "at most 100%"},
		{"99999999999999999999999999%", "at most 100%"},
		{"1000001", "at most 1000000"},
		{"99999999999999999999999999", "at most 1000000"},
		{"3.5", "whole number"},
		{"3.0", "whole number"},
		{"1.23456%", "4 decimal places"},
		{"abc", "invalid amount"},
		{"5%%", "invalid amount"},
		{"%", "invalid amount"},
		{".5%", "invalid amount"},
		{"5.%", "invalid amount"},
		{"5 %", "invalid amount"},
		{"+5", "invalid amount"},
		{"5e2", "invalid amount"},
		{"0x10", "invalid amount"},
		{"1,5%", "invalid amount"},
		{"5%x", "invalid amount"},
		{"3 4", "invalid amount"},
	};
	size_t		i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
	{
		CvAmount	a;
		char		err[128] = "";
		int			rc = cv_amount_parse(cases[i].text, &a, err, sizeof(err));

		CHECK(rc != CV_PARSE_OK, "amount \"%s\" accepted", cases[i].text);
		CHECK(strstr(err, cases[i].msg) != NULL,
			  "amount \"%s\": message \"%s\" lacks \"%s\"",
			  cases[i].text, err, cases[i].msg);
	}
	{
		char		err[128] = "";

		CHECK(cv_amount_parse(NULL, NULL, err, sizeof(err)) != CV_PARSE_OK &&
			  strstr(err, "null"), "NULL amount: %s", err);
	}
}

/* Ceiling semantics, caps, comparison and formatting. */
static void
test_amount_count(void)
{
	static const struct
	{
		const char *amount;
		int64_t		n;
		int64_t		want;
	}			cases[] = {
		{"5%", 1, 1},
		{"33.3333%", 3, 1},
		{"33.3334%", 3, 2},
		{"0.5%", 200, 1},
		{"0.5%", 201, 2},
		{"100%", 7, 7},
		{"3", 2, 2},
		{"3", 10, 3},
		{"1%", 100, 1},
		{"1%", 101, 2},
		{"10%", 100, 10},
		{"50%", 0, 0},
		{"3", 0, 0},
		{"0.0001%", 1, 1},
		{"12.5%", 8, 1},
		{"12.5%", 9, 2},
		{"66.6667%", 3, 3},
		{"66.6666%", 3, 2},
		{"100%", INT64_MAX, INT64_MAX},
		{"50%", INT64_MAX, INT64_MAX / 2 + 1},
		{"0.0001%", INT64_MAX, INT64_MAX / 1000000 + 1},
		{"1000000", INT64_MAX, 1000000},
	};
	size_t		i;
	CvAmount	a;
	CvAmount	b;
	char		buf[CV_AMOUNT_FORMAT_LEN];

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
	{
		a = amount(cases[i].amount);
		CHECK(cv_amount_count(&a, cases[i].n) == cases[i].want,
			  "%s of %lld: got %lld, want %lld", cases[i].amount,
			  (long long) cases[i].n, (long long) cv_amount_count(&a, cases[i].n),
			  (long long) cases[i].want);
	}
	CHECK(cv_amount_count(NULL, 10) == 0, "NULL amount counts 0");
	a = amount("5%");
	CHECK(cv_amount_count(&a, -5) == 0, "negative size counts 0");

	a = amount("5%");
	b = amount("10%");
	CHECK(cv_amount_compare(&a, &b) < 0 && cv_amount_compare(&b, &a) > 0,
		  "5%% < 10%%");
	CHECK(cv_amount_compare(&a, &a) == 0, "5%% == 5%%");
	a = amount("3");
	b = amount("2");
	CHECK(cv_amount_compare(&a, &b) > 0, "3 > 2");
	b = amount("50%");
	CHECK(!cv_amount_same_kind(&a, &b) && cv_amount_compare(&a, &b) < 0 &&
		  cv_amount_compare(&b, &a) > 0, "mixed kinds: count sorts first");
	b = amount("7");
	CHECK(cv_amount_same_kind(&a, &b), "same kind");

	{
		static const char *const texts[][2] = {
			{"12.5%", "12.5%"}, {"100%", "100%"}, {"0.0001%", "0.0001%"},
			{"33.3333%", "33.3333%"}, {"7.2500%", "7.25%"}, {" 3 ", "3"},
			{"1000000", "1000000"}, {"005.10%", "5.1%"},
		};

		for (i = 0; i < sizeof(texts) / sizeof(texts[0]); i++)
		{
			a = amount(texts[i][0]);
			cv_amount_format(&a, buf, sizeof(buf));
			CHECK(strcmp(buf, texts[i][1]) == 0, "format \"%s\": \"%s\"",
				  texts[i][0], buf);
		}
	}
}

/* ------------------------------------------------------------------------
 * Planner
 * ------------------------------------------------------------------------ */

/* Zero units, units without subunits, and degenerate arguments. */
static void
test_plan_degenerate(void)
{
	static const char *const spec[] = {"region=eu", "10%", "*", "100%"};
	CvPhaseSpec *ph = phases_make(2, spec);
	CvPlan		plan;
	Fleet		f;
	CvUnit		empty[2] = {{"e0", NULL, 0, NULL, 0}, {"e1", NULL, 0, NULL, 5}};

	cv_plan_compute(NULL, 0, ph, 2, 0, "v2", 1, &plan);
	CHECK(plan.nphases == 2 && plan.ntargets == 0 && plan.phase_offset[0] == 0 &&
		  plan.phase_offset[2] == 0 && plan.already[0] == 0 && plan.already[1] == 0,
		  "zero units must give empty phases");
	cv_plan_free(&plan);
	CHECK(plan.phase_offset == NULL && plan.targets == NULL, "free zeroes");
	cv_plan_free(&plan);		/* twice is harmless */

	cv_plan_compute(empty, 2, ph, 2, 0, "v2", 1, &plan);
	CHECK(plan.nphases == 2 && plan.ntargets == 0 && plan.phase_offset[2] == 0,
		  "units without subunits contribute nothing");
	cv_plan_free(&plan);

	f = fleet_make(3, 4);
	cv_plan_compute(f.units, 3, ph, 2, 2, "v2", 1, &plan);
	CHECK(plan.nphases == 0 && plan.ntargets == 0 && plan.phase_offset[0] == 0,
		  "start_phase == nphases plans nothing");
	cv_plan_free(&plan);
	cv_plan_compute(f.units, 3, ph, 2, 9, "v2", 1, &plan);
	CHECK(plan.nphases == 0 && plan.ntargets == 0, "start_phase past the end");
	cv_plan_free(&plan);
	cv_plan_compute(f.units, 3, ph, 2, -3, "v2", 1, &plan);
	CHECK(plan.nphases == 2 && plan.ntargets == 12, "negative start_phase is 0");
	cv_plan_free(&plan);
	cv_plan_compute(f.units, 3, NULL, 0, 0, "v2", 1, &plan);
	CHECK(plan.nphases == 0 && plan.ntargets == 0, "no phases");
	cv_plan_free(&plan);
	cv_plan_compute(f.units, 3, ph, 2, 0, "v2", 1, NULL);	/* must not crash */
	cv_plan_compute(f.units, -1, ph, 2, 0, "v2", 1, &plan);
	CHECK(plan.nphases == 2 && plan.ntargets == 0, "negative nunits");
	cv_plan_free(&plan);

	/* A NULL version: nothing counts as deployed. */
	cv_plan_compute(f.units, 3, ph, 2, 0, NULL, 1, &plan);
	CHECK(plan.ntargets == 12, "NULL version pushes everything");
	cv_plan_free(&plan);

	/* A phase with a NULL scope matches nothing. */
	{
		CvPhaseSpec nul = {NULL, amount("100%")};

		cv_plan_compute(f.units, 3, &nul, 1, 0, "v2", 1, &plan);
		CHECK(plan.ntargets == 0, "NULL scope matches nothing");
		cv_plan_free(&plan);
	}
	fleet_free(&f);
	phases_free(ph, 2);
}

/* Tiny units: 1 subunit at 5% gets one target. */
static void
test_plan_tiny(void)
{
	static const char *const spec[] = {"*", "5%", "*", "100%"};
	CvPhaseSpec *ph = phases_make(2, spec);
	Fleet		f = fleet_make(1, 1);
	CvPlan		plan;

	cv_plan_compute(f.units, 1, ph, 2, 0, "v2", 42, &plan);
	CHECK(plan.ntargets == 1 && phase_len(&plan, 0) == 1 && phase_len(&plan, 1) == 0,
		  "1 subunit at 5%%: phases %d, %d", phase_len(&plan, 0), phase_len(&plan, 1));
	CHECK(plan.targets[0].unit == 0 && plan.targets[0].subunit == 0, "target is it");
	CHECK(plan_sound(&plan, &f, "v2", 42), "plan unsound");
	cv_plan_free(&plan);
	fleet_free(&f);
	phases_free(ph, 2);
}

/* A scope that matches nothing leaves its phase empty. */
static void
test_plan_empty_scope(void)
{
	static const char *const spec[] = {"region=mars", "50%", "name=zzz*", "3", "*", "100%"};
	CvPhaseSpec *ph = phases_make(3, spec);
	Fleet		f = fleet_make(6, 10);
	CvPlan		plan;

	cv_plan_compute(f.units, 6, ph, 3, 0, "v2", 7, &plan);
	CHECK(phase_len(&plan, 0) == 0 && phase_len(&plan, 1) == 0 &&
		  phase_len(&plan, 2) == 60, "empty scopes: %d %d %d",
		  phase_len(&plan, 0), phase_len(&plan, 1), phase_len(&plan, 2));
	CHECK(plan_sound(&plan, &f, "v2", 7), "plan unsound");
	cv_plan_free(&plan);
	fleet_free(&f);
	phases_free(ph, 3);
}

/* Subunits already at the version are skipped and counted in already[]. */
static void
test_plan_already(void)
{
	static const char *const spec[] = {"*", "50%", "*", "100%"};
	CvPhaseSpec *ph = phases_make(2, spec);
	Fleet		f = fleet_make(2, 10);
	CvSubunit  *subs0 = (CvSubunit *) f.units[0].subunits;
	CvSubunit  *subs1 = (CvSubunit *) f.units[1].subunits;
	CvPlan		plan;
	int			i;

	/* Unit 0: 4 of 10 deployed; unit 1: 7 of 10 deployed. */
	for (i = 0; i < 4; i++)
		subs0[i * 2].version = "v2";
	for (i = 0; i < 7; i++)
		subs1[i].version = "v2";
	cv_plan_compute(f.units, 2, ph, 2, 0, "v2", 3, &plan);
	CHECK(phase_unit_count(&plan, 0, 0) == 1 && phase_unit_count(&plan, 0, 1) == 0,
		  "50%% phase: unit0 %d (want 1), unit1 %d (want 0)",
		  phase_unit_count(&plan, 0, 0), phase_unit_count(&plan, 0, 1));
	CHECK(phase_unit_count(&plan, 1, 0) == 5 && phase_unit_count(&plan, 1, 1) == 3,
		  "100%% phase: unit0 %d (want 5), unit1 %d (want 3)",
		  phase_unit_count(&plan, 1, 0), phase_unit_count(&plan, 1, 1));
	/* Phase 0 grows each unit 0 -> 5: unit0 has 4 deployed, unit1 5 of its 7. */
	CHECK(plan.already[0] == 9 && plan.already[1] == 2,
		  "already %d, %d (want 9, 2)", plan.already[0], plan.already[1]);
	CHECK(plan.ntargets + plan.already[0] + plan.already[1] == 20,
		  "targets + already must cover the fleet");
	CHECK(plan_sound(&plan, &f, "v2", 3), "plan pushed a deployed subunit");
	cv_plan_free(&plan);

	/* Everything deployed: no targets at all, everything already. */
	for (i = 0; i < 10; i++)
		subs0[i].version = subs1[i].version = "v2";
	cv_plan_compute(f.units, 2, ph, 2, 0, "v2", 3, &plan);
	CHECK(plan.ntargets == 0 && plan.already[0] + plan.already[1] == 20,
		  "fully deployed fleet");
	cv_plan_free(&plan);
	fleet_free(&f);
	phases_free(ph, 2);
}

/* A unit's cumulative count never shrinks when a later phase skips it. */
static void
test_plan_cumulative(void)
{
	static const char *const spec[] = {
		"region=eu", "50%",		/* eu units -> 5 */
		"region=us", "10%",		/* us -> 1; eu stays 5 */
		"*", "3",				/* ap -> 3; us -> 3; eu stays 5 */
		"*", "60%",				/* everyone -> 6 */
		"region=eu", "20%",		/* smaller than 6: nothing */
		"*", "100%",
	};
	static const int want[6][3] = {
		{5, 0, 0}, {0, 1, 0}, {0, 2, 3}, {1, 3, 3}, {0, 0, 0}, {4, 4, 4},
	};
	CvPhaseSpec *ph = phases_make(6, spec);
	Fleet		f = fleet_make(3, 10);	/* u0 eu, u1 us, u2 ap */
	CvPlan		plan;
	int			p;
	int			u;

	cv_plan_compute(f.units, 3, ph, 6, 0, "v2", 11, &plan);
	for (p = 0; p < 6; p++)
		for (u = 0; u < 3; u++)
			CHECK(phase_unit_count(&plan, p, u) == want[p][u],
				  "phase %d unit %d: %d targets, want %d", p, u,
				  phase_unit_count(&plan, p, u), want[p][u]);
	CHECK(plan.ntargets == 30, "completion covers all: %d", plan.ntargets);
	CHECK(plan_sound(&plan, &f, "v2", 11), "plan unsound");
	cv_plan_free(&plan);

	/*
	 * With 3 of u0's subunits deployed, phase 0 covers all 3 and takes 2;
	 * no later phase may count them again, even the smaller eu phase 4.
	 */
	for (u = 0; u < 3; u++)
		((CvSubunit *) f.units[0].subunits)[u].version = "v2";
	cv_plan_compute(f.units, 3, ph, 6, 0, "v2", 11, &plan);
	CHECK(phase_unit_count(&plan, 0, 0) == 2, "u0 phase 0: %d targets",
		  phase_unit_count(&plan, 0, 0));
	for (p = 0; p < 6; p++)
		CHECK(plan.already[p] == (p == 0 ? 3 : 0), "phase %d already %d",
			  p, plan.already[p]);
	CHECK(plan.ntargets == 27, "27 pending, %d planned", plan.ntargets);
	cv_plan_free(&plan);
	fleet_free(&f);
	phases_free(ph, 6);
}

/* Union of all phases = every subunit not at the version, exactly once. */
static void
test_plan_union(void)
{
	static const char *const spec[] = {
		"region=eu", "1%", "u1*", "2", "*", "10%", "region!=ap", "50%", "*", "100%",
	};
	CvPhaseSpec *ph = phases_make(5, spec);
	Fleet		f = fleet_make(30, 33);
	CvPlan		plan;
	int			u;
	int			i;
	int			pending = 0;

	/* A scattering of deployed subunits, and one unit of each odd size. */
	for (u = 0; u < f.nunits; u++)
	{
		CvSubunit  *subs = (CvSubunit *) f.units[u].subunits;

		for (i = 0; i < f.units[u].nsubunits; i++)
			if ((u * 7 + i * 3) % 5 == 0)
				subs[i].version = "v2";
		f.units[u].nsubunits = u % 7 == 3 ? u % 5 : f.units[u].nsubunits;
		for (i = 0; i < f.units[u].nsubunits; i++)
			pending += strcmp(subs[i].version, "v2") != 0;
	}
	cv_plan_compute(f.units, f.nunits, ph, 5, 0, "v2", 99, &plan);
	CHECK(plan.ntargets == pending, "union %d, pending %d", plan.ntargets, pending);
	CHECK(plan_sound(&plan, &f, "v2", 99), "plan unsound (duplicate or deployed)");
	{
		int			covered = plan.ntargets;
		int			total = 0;

		for (i = 0; i < plan.nphases; i++)
			covered += plan.already[i];
		for (u = 0; u < f.nunits; u++)
			total += f.units[u].nsubunits;
		CHECK(covered == total, "targets + already = %d, fleet %d", covered, total);
	}
	cv_plan_free(&plan);
	fleet_free(&f);
	phases_free(ph, 5);
}

/* Absolute counts per unit, capped at the unit's size. */
static void
test_plan_counts(void)
{
	static const char *const spec[] = {"*", "3", "*", "100%"};
	CvPhaseSpec *ph = phases_make(2, spec);
	Fleet		f = fleet_make(4, 5);
	CvPlan		plan;

	f.units[1].nsubunits = 2;
	f.units[2].nsubunits = 0;
	cv_plan_compute(f.units, 4, ph, 2, 0, "v2", 5, &plan);
	CHECK(phase_unit_count(&plan, 0, 0) == 3 && phase_unit_count(&plan, 0, 1) == 2 &&
		  phase_unit_count(&plan, 0, 2) == 0 && phase_unit_count(&plan, 0, 3) == 3,
		  "count 3 per unit, capped");
	CHECK(phase_len(&plan, 1) == 4, "completion adds the rest: %d", phase_len(&plan, 1));
	cv_plan_free(&plan);
	fleet_free(&f);
	phases_free(ph, 2);
}

/* Strings "unit/subunit@phase" for a plan, sorted, for order-free compare. */
static char **
plan_keys(const CvPlan *plan, const CvUnit *units)
{
	char	  **keys = calloc((size_t) plan->ntargets + 1, sizeof(char *));
	int			p;
	int			i;

	for (p = 0; p < plan->nphases; p++)
		for (i = plan->phase_offset[p]; i < plan->phase_offset[p + 1]; i++)
		{
			const CvUnit *u = &units[plan->targets[i].unit];

			keys[i] = pstr("%s/%s@%d", u->name,
						   u->subunits[plan->targets[i].subunit].name, p);
		}
	return keys;
}

/* qsort comparator for C strings. */
static int
str_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *) a, *(char *const *) b);
}

/* Same seed, shuffled units and subunits: the same subunits in each phase. */
static void
test_plan_determinism(void)
{
	static const char *const spec[] = {"region=eu", "10%", "*", "25%", "*", "100%"};
	CvPhaseSpec *ph = phases_make(3, spec);
	Fleet		f = fleet_make(24, 37);
	CvUnit	   *shuffled = calloc(24, sizeof(CvUnit));
	int		   *perm = calloc(24, sizeof(int));
	CvPlan		a;
	CvPlan		b;
	char	  **ka;
	char	  **kb;
	int			i;
	int			same = 1;
	unsigned	rnd = 12345;

	/* Some deployed already, so skipping is shuffled too. */
	for (i = 0; i < 24; i++)
		((CvSubunit *) f.units[i].subunits)[i % 37].version = "v2";
	cv_plan_compute(f.units, 24, ph, 3, 0, "v2", 2024, &a);

	/* Fisher-Yates over units, and over each unit's copied subunits. */
	for (i = 0; i < 24; i++)
		perm[i] = i;
	for (i = 23; i > 0; i--)
	{
		int			j;
		int			t;

		rnd = rnd * 1103515245u + 12345u;
		j = (int) ((rnd >> 8) % (unsigned) (i + 1));
		t = perm[i];
		perm[i] = perm[j];
		perm[j] = t;
	}
	for (i = 0; i < 24; i++)
	{
		const CvUnit *src = &f.units[perm[i]];
		CvSubunit  *subs = malloc(sizeof(CvSubunit) * (size_t) src->nsubunits);
		int			k;

		memcpy(subs, src->subunits, sizeof(CvSubunit) * (size_t) src->nsubunits);
		for (k = src->nsubunits - 1; k > 0; k--)
		{
			CvSubunit	t;
			int			j;

			rnd = rnd * 1103515245u + 12345u;
			j = (int) ((rnd >> 8) % (unsigned) (k + 1));
			t = subs[k];
			subs[k] = subs[j];
			subs[j] = t;
		}
		shuffled[i] = *src;
		shuffled[i].subunits = subs;
	}
	cv_plan_compute(shuffled, 24, ph, 3, 0, "v2", 2024, &b);

	CHECK(a.ntargets == b.ntargets && a.ntargets == 24 * 36,
		  "target counts %d vs %d", a.ntargets, b.ntargets);
	for (i = 0; i < 3; i++)
		CHECK(phase_len(&a, i) == phase_len(&b, i), "phase %d lengths differ", i);
	ka = plan_keys(&a, f.units);
	kb = plan_keys(&b, shuffled);
	qsort(ka, (size_t) a.ntargets, sizeof(char *), str_cmp);
	qsort(kb, (size_t) b.ntargets, sizeof(char *), str_cmp);
	for (i = 0; i < a.ntargets && i < b.ntargets; i++)
		if (strcmp(ka[i], kb[i]) != 0)
			same = 0;
	CHECK(same, "shuffled input chose different subunits");
	{
		Fleet		fs = {24, shuffled};

		CHECK(plan_sound(&b, &fs, "v2", 2024), "shuffled plan unsound");
	}

	/* Planning twice with identical input gives identical arrays. */
	{
		CvPlan		c;

		cv_plan_compute(f.units, 24, ph, 3, 0, "v2", 2024, &c);
		CHECK(c.ntargets == a.ntargets &&
			  memcmp(c.targets, a.targets, sizeof(CvTarget) * (size_t) a.ntargets) == 0,
			  "replanning the same input differs");
		cv_plan_free(&c);
	}

	free(ka);
	free(kb);
	for (i = 0; i < 24; i++)
		free((void *) shuffled[i].subunits);
	free(shuffled);
	free(perm);
	cv_plan_free(&a);
	cv_plan_free(&b);
	fleet_free(&f);
	phases_free(ph, 3);
}

/* Different seeds choose different subsets, and each subunit fairly often. */
static void
test_plan_seeds(void)
{
	static const char *const spec[] = {"*", "10%"};
	CvPhaseSpec *ph = phases_make(1, spec);
	Fleet		big = fleet_make(1, 1000);
	Fleet		small = fleet_make(1, 100);
	CvPlan		a;
	CvPlan		b;
	char	   *chosen = calloc(1000, 1);
	int			hits[100] = {0};
	int			overlap = 0;
	int			i;
	int			lo = 1 << 30;
	int			hi = 0;
	uint64_t	seed;

	cv_plan_compute(big.units, 1, ph, 1, 0, "v2", 1, &a);
	cv_plan_compute(big.units, 1, ph, 1, 0, "v2", 2, &b);
	CHECK(a.ntargets == 100 && b.ntargets == 100, "10%% of 1000");
	for (i = 0; i < a.ntargets; i++)
		chosen[a.targets[i].subunit] = 1;
	for (i = 0; i < b.ntargets; i++)
		overlap += chosen[b.targets[i].subunit];
	/* Independent picks overlap by ~10; identical picks would be 100. */
	CHECK(overlap < 30, "seeds 1 and 2 overlap in %d of 100", overlap);
	cv_plan_free(&a);
	cv_plan_free(&b);

	/* 2000 seeds x 10 of 100: each subunit expected 200 times. */
	for (seed = 0; seed < 2000; seed++)
	{
		cv_plan_compute(small.units, 1, ph, 1, 0, "v2", seed * 0x9e3779b97f4a7c15ULL, &a);
		for (i = 0; i < a.ntargets; i++)
			hits[a.targets[i].subunit]++;
		cv_plan_free(&a);
	}
	for (i = 0; i < 100; i++)
	{
		if (hits[i] < lo)
			lo = hits[i];
		if (hits[i] > hi)
			hi = hits[i];
	}
	CHECK(lo > 130 && hi < 270, "picks per subunit range %d..%d, want ~200", lo, hi);

	CHECK(cv_subunit_rank(1, "u", "s") == cv_subunit_rank(1, "u", "s"), "rank stable");
	CHECK(cv_subunit_rank(1, "u", "s") != cv_subunit_rank(2, "u", "s"), "seed ignored");
	CHECK(cv_subunit_rank(1, "ab", "c") != cv_subunit_rank(1, "a", "bc"),
		  "unit/subunit boundary ignored");
	CHECK(cv_subunit_rank(1, "u", "") != cv_subunit_rank(1, "", "u"), "empty names");
	CHECK(cv_subunit_rank(1, NULL, NULL) == cv_subunit_rank(1, "", ""), "NULL names");

	free(chosen);
	fleet_free(&big);
	fleet_free(&small);
	phases_free(ph, 1);
}

/* Re-planning from start_phase after a crash picks exactly what remains. */
static void
test_plan_restart(void)
{
	static const char *const spec[] = {
		"region=eu", "20%", "*", "30%", "region=us", "70%", "*", "100%",
	};
	CvPhaseSpec *ph = phases_make(4, spec);
	Fleet		f = fleet_make(9, 20);
	CvPlan		full;
	CvPlan		again;
	int			i;
	int			p;
	int			pending = 0;
	int			ok = 1;

	cv_plan_compute(f.units, 9, ph, 4, 0, "v2", 77, &full);

	/* Phase 0 done, phase 1 done for its first half, then a crash. */
	for (i = 0; i < full.phase_offset[1] + phase_len(&full, 1) / 2; i++)
	{
		const CvTarget *t = &full.targets[i];

		((CvSubunit *) f.units[t->unit].subunits)[t->subunit].version = "v2";
	}
	for (i = 0; i < 9; i++)
		for (p = 0; p < 20; p++)
			pending += strcmp(f.units[i].subunits[p].version, "v2") != 0;

	cv_plan_compute(f.units, 9, ph, 4, 1, "v2", 77, &again);
	CHECK(again.nphases == 3, "replan phases %d", again.nphases);
	CHECK(again.ntargets == pending, "replan targets %d, pending %d",
		  again.ntargets, pending);
	CHECK(plan_sound(&again, &f, "v2", 77), "replan unsound");

	/* Resumed phase 1 = the undone half of the original phase 1. */
	CHECK(phase_len(&again, 0) == phase_len(&full, 1) - phase_len(&full, 1) / 2,
		  "resumed phase has %d targets", phase_len(&again, 0));
	for (i = 0; i < phase_len(&again, 0); i++)
	{
		const CvTarget *x = &again.targets[again.phase_offset[0] + i];
		const CvTarget *y = &full.targets[full.phase_offset[1] + phase_len(&full, 1) / 2 + i];

		/* Both are ordered by unit then rank, so they line up pairwise. */
		if (x->unit != y->unit || x->subunit != y->subunit)
			ok = 0;
	}
	CHECK(ok, "resumed phase picked different subunits");

	/* Later phases are unchanged by the restart. */
	for (p = 2; p < 4; p++)
	{
		ok = phase_len(&again, p - 1) == phase_len(&full, p) &&
			memcmp(again.targets + again.phase_offset[p - 1],
				   full.targets + full.phase_offset[p],
				   sizeof(CvTarget) * (size_t) phase_len(&full, p)) == 0;
		CHECK(ok, "phase %d changed after restart", p);
	}
	cv_plan_free(&full);
	cv_plan_free(&again);
	fleet_free(&f);
	phases_free(ph, 4);
}

/* Any strings: empty names, SQL metacharacters, odd versions, duplicates. */
static void
test_plan_strings(void)
{
	static const CvSubunit subs[] = {
		{"", "'; DROP TABLE pushes; --"},
		{"a'b", ""},
		{"a'b", ""},			/* duplicate name: tie broken by index */
		{"x\"y\\z", NULL},
		{"\xff\xfe", "v2"},
		{"%s%n", "v1"},
	};
	static const CvLabel labels[] = {{"region", "eu'--"}};
	CvUnit		units[2] = {
		{"", labels, 1, subs, 6},
		{"robert'); --", NULL, 0, subs, 6},
	};
	static const char *const spec[] = {"*", "50%", "*", "100%"};
	CvPhaseSpec *ph = phases_make(2, spec);
	CvPlan		plan;
	Fleet		f = {2, units};

	cv_plan_compute(units, 2, ph, 2, 0, "", 5, &plan);
	/* Two subunits per unit already at "" (both "a'b"). */
	CHECK(plan.ntargets == 8, "strings: %d targets, want 8", plan.ntargets);
	CHECK(plan_sound(&plan, &f, "", 5), "strings plan unsound");
	cv_plan_free(&plan);
	cv_plan_compute(units, 2, ph, 2, 0, "v2", 5, &plan);
	CHECK(plan.ntargets == 10 && plan_sound(&plan, &f, "v2", 5),
		  "strings v2: %d targets, want 10", plan.ntargets);
	cv_plan_free(&plan);
	phases_free(ph, 2);
}

/* Run every test and print the tally. */
int
main(void)
{
	test_scope_accept();
	test_scope_reject();
	test_scope_limits();
	test_glob();
	test_scope_match();
	test_amount_accept();
	test_amount_reject();
	test_amount_count();
	test_plan_degenerate();
	test_plan_tiny();
	test_plan_empty_scope();
	test_plan_already();
	test_plan_cumulative();
	test_plan_union();
	test_plan_counts();
	test_plan_determinism();
	test_plan_seeds();
	test_plan_restart();
	test_plan_strings();
	pool_release();
	return CHECK_REPORT();
}
