/*
 * fuzz_plan.c - libFuzzer target for the push planner (src/plan.c)
 *
 * Build and run from the repository root (clang):
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all -Isrc src/plan.c test/unit/fuzz_plan.c -o /tmp/fuzz_plan
 *   mkdir -p /tmp/fuzz_plan_corpus && /tmp/fuzz_plan -max_total_time=60 /tmp/fuzz_plan_corpus
 *
 * Input layout: up to 8 leading bytes shape the fleet and the push (seed,
 * unit count, sizes, start phase); the rest splits at '\n' into fields that
 * alternate scope text and amount text.  Every field goes to its parser;
 * what parses feeds the matcher and the planner on a small generated fleet,
 * and every invariant the planner promises is checked, aborting on a
 * violation so the fuzzer reports it.
 */
#include "plan.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_FIELDS	8
#define MAX_UNITS	12
#define MAX_SUBS	9

/* Stop with a message; the fuzzer records the input that got here. */
#define REQUIRE(cond) \
	do { \
		if (!(cond)) \
		{ \
			fprintf(stderr, "invariant failed at %s:%d: %s\n", __FILE__, __LINE__, #cond); \
			abort(); \
		} \
	} while (0)

static const char *const unit_names[] = {
	"web-01", "db-7", "", "a*b", "web-canary", "x?y", "name", "db-01",
};
static const char *const region_values[] = {"eu", "us", "ap", ""};
static const char *const sub_names[] = {"s0", "s1", "", "s1", "s'; --", "s5", "s6", "s7", "s8"};

/* Read byte i of the header, or a fixed default past its end. */
static unsigned
hdr(const uint8_t *data, size_t size, size_t i)
{
	return i < size ? data[i] : (unsigned) (i * 37 + 11);
}

/* Check what a failed parse reports: a message and, for scopes, a position. */
static void
check_error(const char *err, int errpos, int len, bool is_scope)
{
	REQUIRE(err[0] != '\0');
	REQUIRE(strlen(err) < 128);
	if (is_scope)
		REQUIRE(errpos >= 0 && errpos <= len);
}

/* Check cv_amount_count's promises and the format/parse round trip. */
static void
check_amount(const CvAmount *a)
{
	static const int64_t sizes[] = {0, 1, 2, 3, 7, 100, 1000000, INT64_MAX};
	char		buf[CV_AMOUNT_FORMAT_LEN];
	char		err[128];
	CvAmount	back;
	int64_t		prev = 0;
	size_t		i;

	for (i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++)
	{
		int64_t		c = cv_amount_count(a, sizes[i]);

		/* Within the unit, at least one for a non-empty unit, monotone. */
		REQUIRE(c >= 0 && c <= sizes[i]);
		REQUIRE(sizes[i] == 0 || c >= 1);
		REQUIRE(c >= prev);
		prev = c;
	}
	cv_amount_format(a, buf, sizeof(buf));
	REQUIRE(cv_amount_parse(buf, &back, err, sizeof(err)) == CV_PARSE_OK);
	REQUIRE(cv_amount_compare(a, &back) == 0 && cv_amount_same_kind(a, &back));
}

/* Fuzz entry point: parse every field, then match and plan on a fleet. */
int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t		hlen = size < 8 ? size : 8;
	const char *body = (const char *) data + hlen;
	size_t		blen = size - hlen;
	char	   *fields[MAX_FIELDS];
	int			nfields = 0;
	CvPhaseSpec phases[MAX_FIELDS / 2 + 1];
	CvScope    *scopes[MAX_FIELDS / 2 + 1];
	int			nphases = 0;
	CvScope    *pending_scope = NULL;
	CvUnit		units[MAX_UNITS];
	CvLabel		labels[MAX_UNITS][3];
	CvSubunit	subs[MAX_UNITS][MAX_SUBS];
	int			nunits;
	uint64_t	seed = 0;
	int			start_phase;
	CvPlan		plan;
	size_t		from = 0;
	size_t		i;
	int			u;
	int			j;
	int			p;
	int64_t		total = 0;
	int64_t		waiting = 0;
	int64_t		covered;
	char	   *seen;

	/* Split the body at '\n' into NUL-terminated copies. */
	for (i = 0; i <= blen && nfields < MAX_FIELDS; i++)
	{
		if (i == blen || body[i] == '\n')
		{
			char	   *f = malloc(i - from + 1);

			memcpy(f, body + from, i - from);
			f[i - from] = '\0';
			fields[nfields++] = f;
			from = i + 1;
		}
	}

	/* A small fleet shaped by the header, named partly by the input. */
	for (i = 0; i < 8; i++)
		seed = (seed << 8) | hdr(data, size, i);
	nunits = (int) (hdr(data, size, 0) % (MAX_UNITS + 1));
	for (u = 0; u < nunits; u++)
	{
		unsigned	shape = hdr(data, size, 1 + (size_t) u % 7) ^ (unsigned) (u * 29);
		int			nlabels = 0;

		if (shape & 1)
		{
			labels[u][nlabels].key = "region";
			labels[u][nlabels++].value = region_values[(shape >> 1) % 4];
		}
		if (shape & 8)
		{
			labels[u][nlabels].key = "tier";
			labels[u][nlabels++].value = (shape & 16) ? "web" : "canary";
		}
		if (nfields > 0 && (shape & 32))
		{
			/* The first field as a label value and, below, a unit name. */
			labels[u][nlabels].key = "region";
			labels[u][nlabels++].value = fields[0];
		}
		units[u].name = (u % 3 == 2 && nfields > 1) ? fields[1]
			: unit_names[(shape + (unsigned) u) % 8];
		units[u].labels = nlabels ? labels[u] : NULL;
		units[u].nlabels = nlabels;
		units[u].nsubunits = (int) ((shape * 7 + (unsigned) u) % (MAX_SUBS + 1));
		for (j = 0; j < units[u].nsubunits; j++)
		{
			subs[u][j].name = sub_names[j];
			subs[u][j].version = ((shape >> (j % 8)) & 1) ? "v2" : "v1";
		}
		units[u].subunits = subs[u];
	}

	/* Parse fields: even ones as scopes, odd ones as amounts. */
	for (p = 0; p < nfields; p++)
	{
		char		err[128];
		int			errpos = -2;
		int			len = (int) strlen(fields[p]);

		memset(err, 0, sizeof(err));
		if (p % 2 == 0)
		{
			CvScope    *s = NULL;

			if (cv_scope_parse(fields[p], &s, err, sizeof(err), &errpos) == CV_PARSE_OK)
			{
				REQUIRE(s != NULL && errpos == -1);
				for (u = 0; u < nunits; u++)
				{
					bool		m = cv_scope_matches(s, &units[u]);

					REQUIRE(!cv_scope_is_all(s) || m);
				}
				pending_scope = s;
			}
			else
			{
				REQUIRE(s == NULL);
				check_error(err, errpos, len, true);
				pending_scope = NULL;
			}
		}
		else
		{
			CvAmount	a;

			if (cv_amount_parse(fields[p], &a, err, sizeof(err)) == CV_PARSE_OK)
			{
				check_amount(&a);
				if (pending_scope)
				{
					scopes[nphases] = pending_scope;
					phases[nphases].scope = pending_scope;
					phases[nphases].amount = a;
					nphases++;
					pending_scope = NULL;
				}
			}
			else
				check_error(err, 0, len, false);
		}
		if (pending_scope && p % 2 == 1)
		{
			cv_scope_free(pending_scope);
			pending_scope = NULL;
		}
	}
	cv_scope_free(pending_scope);
	if (nfields >= 2)
		(void) cv_glob_match(fields[0], fields[1]);

	/* The completion phase the caller always appends. */
	REQUIRE(cv_scope_parse("*", &scopes[nphases], NULL, 0, NULL) == CV_PARSE_OK);
	phases[nphases].scope = scopes[nphases];
	REQUIRE(cv_amount_parse("100%", &phases[nphases].amount, NULL, 0) == CV_PARSE_OK);
	nphases++;

	/* Plan from phase 0: every waiting subunit exactly once, none deployed. */
	cv_plan_compute(units, nunits, phases, nphases, 0, "v2", seed, &plan);
	for (u = 0; u < nunits; u++)
		for (j = 0; j < units[u].nsubunits; j++)
		{
			total++;
			waiting += strcmp(units[u].subunits[j].version, "v2") != 0;
		}
	REQUIRE(plan.nphases == nphases && plan.ntargets == waiting);
	REQUIRE(plan.phase_offset[0] == 0 && plan.phase_offset[nphases] == plan.ntargets);
	seen = calloc(MAX_UNITS * MAX_SUBS, 1);
	covered = plan.ntargets;
	for (p = 0; p < nphases; p++)
	{
		REQUIRE(plan.phase_offset[p] <= plan.phase_offset[p + 1]);
		REQUIRE(plan.already[p] >= 0);
		covered += plan.already[p];
		for (j = plan.phase_offset[p]; j < plan.phase_offset[p + 1]; j++)
		{
			const CvTarget *t = &plan.targets[j];

			REQUIRE(t->unit >= 0 && t->unit < nunits);
			REQUIRE(t->subunit >= 0 && t->subunit < units[t->unit].nsubunits);
			REQUIRE(strcmp(units[t->unit].subunits[t->subunit].version, "v2") != 0);
			REQUIRE(!seen[t->unit * MAX_SUBS + t->subunit]);
			seen[t->unit * MAX_SUBS + t->subunit] = 1;
			if (j > plan.phase_offset[p])
				REQUIRE(plan.targets[j - 1].unit <= t->unit);
		}
	}
	REQUIRE(covered == total);
	free(seen);
	cv_plan_free(&plan);

	/* Re-plan from an arbitrary phase: never more than the full plan. */
	start_phase = (int) (hdr(data, size, 3) % (unsigned) (nphases + 2)) - 1;
	cv_plan_compute(units, nunits, phases, nphases, start_phase, "v2", seed, &plan);
	REQUIRE(plan.ntargets <= waiting);
	REQUIRE(plan.phase_offset[plan.nphases] == plan.ntargets);
	cv_plan_free(&plan);

	for (p = 0; p < nphases; p++)
		cv_scope_free(scopes[p]);
	for (p = 0; p < nfields; p++)
		free(fields[p]);
	return 0;
}
