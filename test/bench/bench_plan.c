/*
 * bench_plan.c - benchmark of the push planner (src/plan.c)
 *
 * Build and run from the repository root:
 *   gcc -O2 -Wall -Wextra -Werror -std=gnu99 -Isrc src/plan.c test/bench/bench_plan.c -o /tmp/bench_plan && /tmp/bench_plan
 *
 * For fleets of 10k, 100k and 1M subunits (units of 100, labelled region
 * eu/us/ap) it plans `region=eu` 1%, `*` 10%, `*` 50% and the completion
 * phase `*` 100%, and prints the median time next to a baseline measured in
 * the same run: qsort of as many random 64-bit keys, the irreducible work of
 * ordering that many subunits.  The exit status is non-zero only when a plan
 * is wrong (target counts per phase), never because of timing.
 */
#include "plan.h"
#include "bench_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define UNIT_SIZE	100
#define NPHASES		4

static const char *const regions[] = {"eu", "us", "ap"};

/* qsort comparator for the baseline's 64-bit keys. */
static int
cmp_u64(const void *a, const void *b)
{
	uint64_t	x = *(const uint64_t *) a;
	uint64_t	y = *(const uint64_t *) b;

	return (x > y) - (x < y);
}

/* A fleet of nsub subunits in units of UNIT_SIZE, names in one buffer. */
typedef struct BenchFleet
{
	int			nunits;
	CvUnit	   *units;
	CvLabel    *labels;
	CvSubunit  *subs;
	char	   *names;
} BenchFleet;

/* Build the fleet: unit "job-<i>", subunits "job-<i>/task-<j>" at "v1". */
static BenchFleet
fleet_make(int nsub)
{
	BenchFleet	f;
	size_t		off = 0;
	int			i;
	int			j;

	f.nunits = nsub / UNIT_SIZE;
	f.units = calloc((size_t) f.nunits, sizeof(CvUnit));
	f.labels = calloc((size_t) f.nunits, sizeof(CvLabel));
	f.subs = calloc((size_t) nsub, sizeof(CvSubunit));
	f.names = malloc((size_t) nsub * 32 + (size_t) f.nunits * 16);
	for (i = 0; i < f.nunits; i++)
	{
		f.labels[i].key = "region";
		f.labels[i].value = regions[i % 3];
		f.units[i].name = f.names + off;
		off += (size_t) sprintf(f.names + off, "job-%d", i) + 1;
		f.units[i].labels = &f.labels[i];
		f.units[i].nlabels = 1;
		f.units[i].subunits = &f.subs[(size_t) i * UNIT_SIZE];
		f.units[i].nsubunits = UNIT_SIZE;
		for (j = 0; j < UNIT_SIZE; j++)
		{
			CvSubunit  *s = &f.subs[(size_t) i * UNIT_SIZE + j];

			s->name = f.names + off;
			off += (size_t) sprintf(f.names + off, "job-%d/task-%d", i, j) + 1;
			s->version = "v1";
		}
	}
	return f;
}

/* Free a bench fleet. */
static void
fleet_free(BenchFleet *f)
{
	free(f->units);
	free(f->labels);
	free(f->subs);
	free(f->names);
}

/* Check per-phase target counts against the arithmetic; true when right. */
static bool
plan_correct(const CvPlan *plan, int nunits)
{
	int			eu = (nunits + 2) / 3;	/* units 0, 3, 6, ... */
	int			want[NPHASES];
	int			p;
	bool		ok = plan->nphases == NPHASES &&
		plan->ntargets == nunits * UNIT_SIZE;

	want[0] = eu * 1;					/* 1% of 100 on eu units */
	want[1] = nunits * 10 - eu;			/* up to 10 everywhere */
	want[2] = nunits * 40;				/* 10 -> 50 */
	want[3] = nunits * 50;				/* 50 -> 100 */
	for (p = 0; ok && p < NPHASES; p++)
		if (plan->phase_offset[p + 1] - plan->phase_offset[p] != want[p])
			ok = false;
	return ok;
}

/* Time the planner and the qsort baseline at each size and print both. */
int
main(void)
{
	static const int sizes[] = {10000, 100000, 1000000};
	static const int reps[] = {15, 9, 7};
	static const char *const spec[NPHASES][2] = {
		{"region=eu", "1%"}, {"*", "10%"}, {"*", "50%"}, {"*", "100%"},
	};
	CvPhaseSpec phases[NPHASES];
	double		per_k[3];
	int			failures = 0;
	int			s;
	int			p;

	for (p = 0; p < NPHASES; p++)
	{
		CvScope    *scope;
		char		err[128];
		int			pos;

		if (cv_scope_parse(spec[p][0], &scope, err, sizeof(err), &pos) != CV_PARSE_OK ||
			cv_amount_parse(spec[p][1], &phases[p].amount, err, sizeof(err)) != CV_PARSE_OK)
		{
			fprintf(stderr, "bench: bad phase %d: %s\n", p, err);
			return 1;
		}
		phases[p].scope = scope;
	}

	for (s = 0; s < 3; s++)
	{
		int			n = sizes[s];
		BenchFleet	f = fleet_make(n);
		uint64_t   *keys = malloc(sizeof(uint64_t) * (size_t) n);
		uint64_t   *work = malloc(sizeof(uint64_t) * (size_t) n);
		double		t_plan[16];
		double		t_sort[16];
		double		m_plan;
		double		m_sort;
		uint64_t	state = UINT64_C(0x9e3779b97f4a7c15) ^ (uint64_t) n;
		int			r;
		int			i;

		for (i = 0; i < n; i++)
			keys[i] = next_random(&state);
		for (r = 0; r < reps[s]; r++)
		{
			CvPlan		plan;
			double		t0;

			t0 = now_ms();
			cv_plan_compute(f.units, f.nunits, phases, NPHASES, 0, "v2",
							(uint64_t) r + 1, &plan);
			t_plan[r] = now_ms() - t0;
			if (!plan_correct(&plan, f.nunits))
			{
				fprintf(stderr, "bench: wrong plan for %d subunits: %d targets\n",
						n, plan.ntargets);
				failures++;
			}
			cv_plan_free(&plan);

			/* The baseline sorts a fresh copy each time, timing only qsort. */
			memcpy(work, keys, sizeof(uint64_t) * (size_t) n);
			t0 = now_ms();
			qsort(work, (size_t) n, sizeof(uint64_t), cmp_u64);
			t_sort[r] = now_ms() - t0;
		}
		m_plan = median(t_plan, reps[s]);
		m_sort = median(t_sort, reps[s]);
		per_k[s] = m_plan / (n / 1000.0);
		printf("planner %8d subunits: %8.2f ms (baseline qsort %8d keys: %8.2f ms, ratio %.2f)\n",
			   n, m_plan, n, m_sort, m_sort > 0 ? m_plan / m_sort : 0.0);
		free(keys);
		free(work);
		fleet_free(&f);
	}
	printf("linearity: ms per 1k subunits: %.4f at 10k, %.4f at 100k, %.4f at 1M\n",
		   per_k[0], per_k[1], per_k[2]);

	for (p = 0; p < NPHASES; p++)
		cv_scope_free((CvScope *) phases[p].scope);
	if (failures)
	{
		printf("%d wrong plans\n", failures);
		return 1;
	}
	return 0;
}
