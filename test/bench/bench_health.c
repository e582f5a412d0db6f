/*
 * bench_health.c - benchmark of the healthcheck math (src/health_stats.c)
 *
 * Build and run from the repository root:
 *   gcc -O2 -Wall -Wextra -Werror -std=gnu99 -Isrc src/health_stats.c test/bench/bench_health.c -lm -o /tmp/bench_health && /tmp/bench_health
 *
 * Prints median times next to baselines measured in the same run:
 *   - the Mann-Whitney test with the Hodges-Lehmann estimate and its 98%
 *     interval on 2 x 100,000 samples (continuous, then integer-valued with
 *     ties everywhere), beside qsort of the same 200,000 doubles, the work of
 *     merely ordering the samples (target: under 100 ms);
 *   - each reducer over a window of 1,000,000 samples, beside a plain C loop
 *     summing the same samples' values.
 * The exit status is non-zero only when a result is wrong, never because of
 * timing.  Results are checked without the code under test: U and the rank
 * of each reported order statistic are recounted with binary searches over
 * the sorted samples, and the reducers against straightforward loops and a
 * full sort.
 */
#include "health_stats.h"
#include "bench_util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MW_SIZE		100000
#define MW_REPS		9
#define WINDOW		1000000
#define RED_REPS	7

/* Uniform in [0, 1). */
static double
uniform(uint64_t *state)
{
	return (double) (next_random(state) >> 11) / 9007199254740992.0;
}

/* Roughly normal: the sum of four uniforms, centred and scaled. */
static double
normalish(uint64_t *state, double mean, double sd)
{
	double		s = uniform(state) + uniform(state) + uniform(state) + uniform(state);

	return mean + sd * (s - 2.0) * 1.7320508075688772;
}

/* Index of the first element of sorted v (length n) that is > x (or >= x). */
static size_t
upper(const double *v, size_t n, double x, bool or_equal)
{
	size_t		lo = 0;
	size_t		hi = n;

	while (lo < hi)
	{
		size_t		mid = lo + (hi - lo) / 2;

		if (or_equal ? v[mid] < x : v[mid] <= x)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/*
 * Recount, independently of the code under test, how many differences
 * y[j] - x[i] are < d and <= d: for each i, a binary search over sorted y
 * for the first y with y - x[i] >= d (or > d).  Monotone rounding makes the
 * predicate monotone in j, so binary search is exact.
 */
static void
count_diffs(const double *x, size_t m, const double *y, size_t n, double d,
			int64_t *lt, int64_t *le)
{
	size_t		i;

	*lt = *le = 0;
	for (i = 0; i < m; i++)
	{
		size_t		a = 0;
		size_t		b = n;

		while (a < b)			/* first j with y[j] - x[i] >= d */
		{
			size_t		mid = a + (b - a) / 2;

			if (y[mid] - x[i] < d)
				a = mid + 1;
			else
				b = mid;
		}
		*lt += (int64_t) a;
		b = n;
		while (a < b)			/* first j with y[j] - x[i] > d */
		{
			size_t		mid = a + (b - a) / 2;

			if (y[mid] - x[i] <= d)
				a = mid + 1;
			else
				b = mid;
		}
		*le += (int64_t) a;
	}
}

/* True when d is the k-th smallest difference (1-based). */
static bool
is_kth(const double *x, size_t m, const double *y, size_t n, double d, int64_t k)
{
	int64_t		lt;
	int64_t		le;

	count_diffs(x, m, y, n, d, &lt, &le);
	return lt < k && k <= le;
}

/* Check a Mann-Whitney result against recounts; true when right. */
static bool
mw_correct(const double *old, const double *new, size_t m, size_t n, const CvMwResult *r)
{
	double	   *x = malloc(m * sizeof(double));
	double	   *y = malloc(n * sizeof(double));
	int64_t		mn = (int64_t) m * (int64_t) n;
	double		twice_u = 0;
	bool		ok;
	size_t		j;

	memcpy(x, old, m * sizeof(double));
	memcpy(y, new, n * sizeof(double));
	qsort(x, m, sizeof(double), cmp_double);
	qsort(y, n, sizeof(double), cmp_double);
	/* 2U = sum over new values of 2 * (#old below) + (#old equal). */
	for (j = 0; j < n; j++)
	{
		size_t		below = upper(x, m, y[j], true);
		size_t		upto = upper(x, m, y[j], false);

		twice_u += (double) (below + upto);
	}
	ok = r->status == CV_HEALTH_OK && r->u == twice_u / 2 &&
		r->ci_k >= 1 && r->ci_low <= r->hl && r->hl <= r->ci_high &&
		is_kth(x, m, y, n, r->ci_low, r->ci_k) &&
		is_kth(x, m, y, n, r->ci_high, mn + 1 - r->ci_k);
	/* hl is the median, or the midpoint of the two middle differences. */
	if (ok && mn % 2 == 1)
		ok = is_kth(x, m, y, n, r->hl, (mn + 1) / 2);
	else if (ok)
	{
		int64_t		lt;
		int64_t		le;

		count_diffs(x, m, y, n, r->hl, &lt, &le);
		/* Half the differences lie on each side of the midpoint. */
		ok = lt <= mn / 2 && le >= mn / 2;
	}
	if (!ok)
		fprintf(stderr, "bench: wrong Mann-Whitney result: U %.1f (recount %.1f), k %lld, [%.17g, %.17g], hl %.17g\n",
				r->u, twice_u / 2, (long long) r->ci_k, r->ci_low, r->ci_high, r->hl);
	free(x);
	free(y);
	return ok;
}

/* Time the Mann-Whitney test on one kind of data, beside qsort; 0 when right. */
static int
bench_mw(const char *label, bool integers)
{
	double	   *old = malloc(MW_SIZE * sizeof(double));
	double	   *new = malloc(MW_SIZE * sizeof(double));
	double	   *work = malloc(2 * MW_SIZE * sizeof(double));
	double		t_mw[MW_REPS];
	double		t_sort[MW_REPS];
	double		m_mw;
	double		m_sort;
	uint64_t	state = UINT64_C(0x243f6a8885a308d3) ^ (integers ? 1 : 0);
	CvMwResult	r;
	int			failures = 0;
	int			rep;
	size_t		i;

	for (i = 0; i < MW_SIZE; i++)
	{
		old[i] = normalish(&state, 100.0, 15.0);
		new[i] = normalish(&state, 100.5, 15.0);
		if (integers)
		{
			old[i] = floor(old[i] / 5);
			new[i] = floor(new[i] / 5);
		}
	}
	for (rep = 0; rep < MW_REPS; rep++)
	{
		double		t0;

		t0 = now_ms();
		cv_mann_whitney(old, MW_SIZE, new, MW_SIZE, CV_MW_DEFAULT_CONFIDENCE,
						CV_MW_AUTO, &r);
		t_mw[rep] = now_ms() - t0;
		if (rep == 0 && !mw_correct(old, new, MW_SIZE, MW_SIZE, &r))
			failures++;

		/* The baseline sorts a fresh copy of both samples, timing only qsort. */
		memcpy(work, old, MW_SIZE * sizeof(double));
		memcpy(work + MW_SIZE, new, MW_SIZE * sizeof(double));
		t0 = now_ms();
		qsort(work, 2 * MW_SIZE, sizeof(double), cmp_double);
		t_sort[rep] = now_ms() - t0;
	}
	m_mw = median(t_mw, MW_REPS);
	m_sort = median(t_sort, MW_REPS);
	printf("mann-whitney %s %d x %d: %8.2f ms (baseline qsort %d doubles: %8.2f ms, ratio %.2f)\n",
		   label, MW_SIZE, MW_SIZE, m_mw, 2 * MW_SIZE, m_sort, m_sort > 0 ? m_mw / m_sort : 0.0);
	printf("    U %.1f  z %.3f  p %.3g  hl %.6g  98%% interval [%.6g, %.6g] (k %lld)\n",
		   r.u, r.z, r.p_two_sided, r.hl, r.ci_low, r.ci_high, (long long) r.ci_k);
	free(old);
	free(new);
	free(work);
	return failures;
}

/* A reducer's value computed the plain way, to check the fast one. */
static double
reference(CvReducer red, const CvSample *s, size_t n, const double *sorted)
{
	double		acc = 0;
	size_t		i;

	switch (red)
	{
		case CV_REDUCE_AVG:
		case CV_REDUCE_SUM:
			for (i = 0; i < n; i++)
				acc += s[i].value;
			return red == CV_REDUCE_AVG ? acc / (double) n : acc;
		case CV_REDUCE_MIN:
			return sorted[0];
		case CV_REDUCE_MAX:
			return sorted[n - 1];
		case CV_REDUCE_COUNT:
			return (double) n;
		case CV_REDUCE_RATE:
			for (i = 1; i < n; i++)
				acc += s[i].value >= s[i - 1].value ? s[i].value - s[i - 1].value : s[i].value;
			return acc / (s[n - 1].ts - s[0].ts);
		case CV_REDUCE_STDDEV:
			{
				double		mean = 0;

				for (i = 0; i < n; i++)
					mean += s[i].value;
				mean /= (double) n;
				for (i = 0; i < n; i++)
					acc += (s[i].value - mean) * (s[i].value - mean);
				return sqrt(acc / (double) (n - 1));
			}
		default:
			{
				double		f = red == CV_REDUCE_P50 ? 0.5 : red == CV_REDUCE_P90 ? 0.9
					: red == CV_REDUCE_P95 ? 0.95 : 0.99;
				double		pos = f * (double) (n - 1);
				size_t		lo = (size_t) floor(pos);

				return pos == floor(pos) ? sorted[lo]
					: sorted[lo] + (pos - floor(pos)) * (sorted[lo + 1] - sorted[lo]);
			}
	}
}

/* Time every reducer on a 1M-sample window beside a plain loop sum; 0 when right. */
static int
bench_reducers(void)
{
	CvSample   *s = malloc(WINDOW * sizeof(CvSample));
	double	   *sorted = malloc(WINDOW * sizeof(double));
	double		t_base[RED_REPS];
	double		m_base;
	double		sink = 0;
	uint64_t	state = 77;
	int			failures = 0;
	int			rep;
	int			red;
	size_t		i;

	/* A counter that mostly grows, restarting now and then, with noise. */
	for (i = 0; i < WINDOW; i++)
	{
		s[i].ts = 1.7e9 + 15.0 * (double) i;
		s[i].value = (i % 50000 == 0 ? 0 : s[i - 1].value) + floor(uniform(&state) * 40);
		sorted[i] = s[i].value;
	}
	qsort(sorted, WINDOW, sizeof(double), cmp_double);

	for (rep = 0; rep < RED_REPS; rep++)
	{
		double		t0 = now_ms();
		double		acc = 0;

		for (i = 0; i < WINDOW; i++)
			acc += s[i].value;
		t_base[rep] = now_ms() - t0;
		sink += acc;
	}
	m_base = median(t_base, RED_REPS);

	for (red = 0; red < CV_REDUCER_COUNT; red++)
	{
		double		t[RED_REPS];
		double		m;
		double		want = reference((CvReducer) red, s, WINDOW, sorted);
		CvReduced	got;

		got.status = CV_HEALTH_INVALID;
		got.value = 0;
		for (rep = 0; rep < RED_REPS; rep++)
		{
			double		t0 = now_ms();

			got = cv_reduce((CvReducer) red, s, WINDOW);
			t[rep] = now_ms() - t0;
		}
		/* Plain loops round differently from compensated sums: 1e-9 is ample. */
		if (got.status != CV_HEALTH_OK || fabs(got.value - want) > 1e-9 * fabs(want))
		{
			fprintf(stderr, "bench: reducer %s: got %.17g (status %d), want %.17g\n",
					cv_reducer_name((CvReducer) red), got.value, got.status, want);
			failures++;
		}
		m = median(t, RED_REPS);
		printf("reducer %-6s %d samples: %8.2f ms (baseline loop sum %d samples: %8.2f ms, ratio %.2f)\n",
			   cv_reducer_name((CvReducer) red), WINDOW, m, WINDOW, m_base,
			   m_base > 0 ? m / m_base : 0.0);
	}
	if (sink == 42.0)			/* keep the baseline loop from being optimized away */
		printf(" ");
	free(s);
	free(sorted);
	return failures;
}

/* Run both benchmarks; non-zero exit only for wrong results. */
int
main(void)
{
	int			failures = 0;

	failures += bench_mw("continuous", false);
	failures += bench_mw("ties", true);
	failures += bench_reducers();
	if (failures)
	{
		printf("%d wrong results\n", failures);
		return 1;
	}
	return 0;
}
