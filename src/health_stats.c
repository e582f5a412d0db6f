/*
 * health_stats.c - conveyor's healthcheck math: reducers, simple and
 * comparison checks, the Mann-Whitney U test with the Hodges-Lehmann
 * interval, and Kayenta's classification of it
 *
 * Pure C: no PostgreSQL headers beyond what cv_alloc.h pulls in for the
 * backend build, no backend calls.  See health_stats.h for the definitions
 * every function here implements.
 */
#include "cv_alloc.h"
#include "health_stats.h"

#include <float.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define CV_SQRT2		1.41421356237309504880
#define CV_SQRT_2PI		2.50662827463100050242

/* ------------------------------------------------------------------------
 * Small helpers
 * ------------------------------------------------------------------------ */

/* printf into a reason buffer, cutting what does not fit. */
__attribute__((format(printf, 2, 3)))
static void
set_reason(char *buf, const char *fmt,...)
{
	va_list		ap;

	va_start(ap, fmt);
	vsnprintf(buf, CV_HEALTH_REASON_LEN, fmt, ap);
	va_end(ap);
}

/* A reduction that produced a value. */
static CvReduced
reduced_ok(double value, size_t n)
{
	CvReduced	r;

	memset(&r, 0, sizeof(r));
	r.status = CV_HEALTH_OK;
	r.value = value;
	r.nsamples = n;
	return r;
}

/* A reduction without a value, with its static reason. */
static CvReduced
reduced_none(CvHealthStatus status, size_t n, size_t at, const char *reason)
{
	CvReduced	r;

	memset(&r, 0, sizeof(r));
	r.status = status;
	r.nsamples = n;
	r.at = at;
	r.reason = reason;
	return r;
}

/* Turn -0.0 into 0.0 so reported numbers never print as "-0". */
static inline double
no_negative_zero(double v)
{
	return v == 0.0 ? 0.0 : v;
}

/* ------------------------------------------------------------------------
 * Sorting and selection of doubles
 * ------------------------------------------------------------------------ */

#define RADIX_BITS		11
#define RADIX_SIZE		(1 << RADIX_BITS)
#define RADIX_PASSES	6		/* 6 x 11 bits cover 64 */
#define SIGN_BIT		UINT64_C(0x8000000000000000)

/*
 * An unsigned key that orders like the double: flip every bit of negative
 * numbers (their magnitude order is reversed), set the sign bit of the
 * others.  -0.0 is made +0.0 first so the two zeros share a key.
 */
static inline uint64_t
double_key(double d)
{
	uint64_t	u;

	if (d == 0.0)
		d = 0.0;
	memcpy(&u, &d, sizeof(u));
	return (u & SIGN_BIT) ? ~u : (u | SIGN_BIT);
}

/* The double a key came from. */
static inline double
key_double(uint64_t k)
{
	uint64_t	u = (k & SIGN_BIT) ? (k & ~SIGN_BIT) : ~k;
	double		d;

	memcpy(&d, &u, sizeof(d));
	return d;
}

/* Insertion sort: the fastest way to order a handful of values. */
static void
insertion_sort(double *v, size_t n)
{
	size_t		i;

	for (i = 1; i < n; i++)
	{
		double		x = v[i];
		size_t		j = i;

		while (j > 0 && v[j - 1] > x)
		{
			v[j] = v[j - 1];
			j--;
		}
		v[j] = x;
	}
}

/*
 * Sort finite doubles ascending.  An LSD radix sort on the ordered keys:
 * linear, no comparisons, and passes whose digit is the same for every key
 * (the exponent bytes of similar numbers) are skipped.
 */
static void
sort_doubles(double *v, size_t n)
{
	uint64_t   *a;
	uint64_t   *b;
	size_t	   *count;
	size_t		i;
	int			p;

	if (n < 64)
	{
		insertion_sort(v, n);
		return;
	}
	a = cv_alloc(n * sizeof(uint64_t));
	b = cv_alloc(n * sizeof(uint64_t));
	count = cv_alloc0((size_t) RADIX_PASSES * RADIX_SIZE * sizeof(size_t));
	for (i = 0; i < n; i++)
	{
		uint64_t	k = double_key(v[i]);

		a[i] = k;
		for (p = 0; p < RADIX_PASSES; p++)
			count[p * RADIX_SIZE + ((k >> (p * RADIX_BITS)) & (RADIX_SIZE - 1))]++;
	}
	for (p = 0; p < RADIX_PASSES; p++)
	{
		size_t	   *c = count + (size_t) p * RADIX_SIZE;
		int			shift = p * RADIX_BITS;
		size_t		sum = 0;
		uint64_t   *t;
		int			d;

		if (c[(a[0] >> shift) & (RADIX_SIZE - 1)] == n)
			continue;			/* every key has this digit */
		for (d = 0; d < RADIX_SIZE; d++)
		{
			size_t		here = c[d];

			c[d] = sum;
			sum += here;
		}
		for (i = 0; i < n; i++)
			b[c[(a[i] >> shift) & (RADIX_SIZE - 1)]++] = a[i];
		t = a;
		a = b;
		b = t;
	}
	for (i = 0; i < n; i++)
		v[i] = key_double(a[i]);
	cv_free(a);
	cv_free(b);
	cv_free(count);
}

/* The median of three values. */
static inline double
median3(double a, double b, double c)
{
	if (a < b)
		return b < c ? b : (a < c ? c : a);
	return a < c ? a : (b < c ? c : b);
}

/*
 * Reorder v so that v[k] is the k-th smallest (0-based), nothing before it
 * is larger and nothing after it smaller.  Hoare-style quickselect with a
 * median-of-three pivot (equal values stop both scans, so runs of ties
 * split evenly); should a bad input defeat the pivots, it sorts what is
 * left after 2 log2(n) + 16 rounds, so the worst case stays O(n log n).
 */
static void
select_inplace(double *v, size_t n, size_t k)
{
	ptrdiff_t	l = 0;
	ptrdiff_t	r = (ptrdiff_t) n - 1;
	ptrdiff_t	kk = (ptrdiff_t) k;
	int			budget = 16;
	size_t		s;

	for (s = n; s > 1; s >>= 1)
		budget += 2;
	while (l < r)
	{
		double		x;
		ptrdiff_t	i;
		ptrdiff_t	j;

		if (--budget < 0)
		{
			sort_doubles(v + l, (size_t) (r - l + 1));
			return;
		}
		x = median3(v[l], v[l + (r - l) / 2], v[r]);
		i = l;
		j = r;
		do
		{
			while (v[i] < x)
				i++;
			while (x < v[j])
				j--;
			if (i <= j)
			{
				double		t = v[i];

				v[i] = v[j];
				v[j] = t;
				i++;
				j--;
			}
		} while (i <= j);
		/* Now v[l..j] <= x, v[i..r] >= x, and anything between equals x. */
		if (j < kk)
			l = i;
		if (kk < i)
			r = j;
	}
}

/* ------------------------------------------------------------------------
 * Reducers
 * ------------------------------------------------------------------------ */

static const char *const reducer_names[CV_REDUCER_COUNT] = {
	"avg", "min", "max", "sum", "count", "rate", "stddev",
	"p50", "p90", "p95", "p99",
};

/* The fraction each percentile reducer stands for. */
static double
reducer_fraction(CvReducer reducer)
{
	switch (reducer)
	{
		case CV_REDUCE_P50:
			return 0.5;
		case CV_REDUCE_P90:
			return 0.9;
		case CV_REDUCE_P95:
			return 0.95;
		default:
			return 0.99;
	}
}

/* Look a reducer up by name. */
bool
cv_reducer_parse(const char *name, CvReducer *out)
{
	int			r;

	if (name == NULL)
		return false;
	for (r = 0; r < CV_REDUCER_COUNT; r++)
		if (strcmp(name, reducer_names[r]) == 0)
		{
			*out = (CvReducer) r;
			return true;
		}
	return false;
}

/* The name of a reducer. */
const char *
cv_reducer_name(CvReducer reducer)
{
	if ((int) reducer < 0 || (int) reducer >= CV_REDUCER_COUNT)
		return "unknown";
	return reducer_names[reducer];
}

/* A value computed elsewhere. */
CvReduced
cv_reduced_value(double value)
{
	return reduced_ok(value, 0);
}

/* No data. */
CvReduced
cv_reduced_nodata(void)
{
	return reduced_none(CV_HEALTH_NODATA, 0, 0, "no data");
}

/* Index of the first sample with a non-finite value, or n. */
static size_t
first_non_finite(const CvSample *s, size_t n)
{
	size_t		i;

	for (i = 0; i < n; i++)
		if (!isfinite(s[i].value))
			return i;
	return n;
}

/*
 * Neumaier's compensated sum: like Kahan's, it carries the low-order bits
 * lost by each addition, and it stays exact when an addend is larger than
 * the running sum.  The error is O(eps) instead of O(n eps).
 */
static double
compensated_sum(const CvSample *s, size_t n)
{
	double		sum = 0.0;
	double		carry = 0.0;
	size_t		i;

	for (i = 0; i < n; i++)
	{
		double		x = s[i].value;
		double		t = sum + x;

		if (fabs(sum) >= fabs(x))
			carry += (sum - t) + x;
		else
			carry += (x - t) + sum;
		sum = t;
	}
	return sum + carry;
}

/* A finite result, or INVALID when the arithmetic overflowed. */
static CvReduced
finite_or_overflow(double value, size_t n)
{
	if (!isfinite(value))
		return reduced_none(CV_HEALTH_INVALID, n, 0,
							"result out of the range of double precision");
	return reduced_ok(value, n);
}

/*
 * stddev_samp by the corrected two-pass formula: with d = x - mean,
 * var = (sum d^2 - (sum d)^2 / n) / (n - 1).  The second term cancels the
 * rounding error of the mean, so no catastrophic cancellation as with
 * sum x^2 - n mean^2.  Equal values give exactly 0.
 */
static CvReduced
reduce_stddev(const CvSample *s, size_t n)
{
	double		mean;
	double		s1 = 0.0;
	double		s2 = 0.0;
	double		lo = s[0].value;
	double		hi = s[0].value;
	double		var;
	size_t		i;

	for (i = 1; i < n; i++)
	{
		if (s[i].value < lo)
			lo = s[i].value;
		if (s[i].value > hi)
			hi = s[i].value;
	}
	if (lo == hi)
		return reduced_ok(0.0, n);
	mean = compensated_sum(s, n) / (double) n;
	if (!isfinite(mean))
		return finite_or_overflow(mean, n);
	for (i = 0; i < n; i++)
	{
		double		d = s[i].value - mean;

		s1 += d;
		s2 += d * d;
	}
	var = (s2 - s1 * s1 / (double) n) / (double) (n - 1);
	if (var < 0.0)
		var = 0.0;
	return finite_or_overflow(sqrt(var), n);
}

/* rate as defined in health_stats.h: increase over time, resets counted. */
static CvReduced
reduce_rate(const CvSample *s, size_t n)
{
	double		increase = 0.0;
	double		carry = 0.0;
	double		span;
	size_t		i;

	for (i = 0; i < n; i++)
	{
		if (!isfinite(s[i].ts))
			return reduced_none(CV_HEALTH_INVALID, n, i, "timestamp is not finite");
		if (i > 0 && s[i].ts < s[i - 1].ts)
			return reduced_none(CV_HEALTH_INVALID, n, i,
								"timestamps are not in ascending order");
	}
	if (n < 2)
		return reduced_none(CV_HEALTH_NODATA, n, 0, "rate needs at least 2 samples");
	span = s[n - 1].ts - s[0].ts;
	if (!(span > 0.0))
		return reduced_none(CV_HEALTH_NODATA, n, 0, "samples span no time");
	for (i = 1; i < n; i++)
	{
		double		d = s[i].value - s[i - 1].value;
		double		x = d >= 0.0 ? d : s[i].value;	/* a drop is a reset */
		double		t = increase + x;

		/* Neumaier again: increments are many and small. */
		if (fabs(increase) >= fabs(x))
			carry += (increase - t) + x;
		else
			carry += (x - t) + increase;
		increase = t;
	}
	return finite_or_overflow((increase + carry) / span, n);
}

/* percentile_cont of values, reordering them in place. */
CvReduced
cv_percentile_inplace(double *v, size_t n, double fraction)
{
	double		pos;
	double		first;
	double		second;
	double		lo;
	double		hi;
	size_t		i;
	size_t		k;

	if (!(fraction >= 0.0 && fraction <= 1.0))
		return reduced_none(CV_HEALTH_INVALID, n, 0,
							"percentile fraction must be between 0 and 1");
	for (i = 0; i < n; i++)
		if (!isfinite(v[i]))
			return reduced_none(CV_HEALTH_INVALID, n, i, "value is not finite");
	if (n == 0)
		return reduced_none(CV_HEALTH_NODATA, 0, 0, "no samples");
	/* The same arithmetic as PostgreSQL's percentile_cont_final_common. */
	pos = fraction * (double) (n - 1);
	first = floor(pos);
	second = ceil(pos);
	k = (size_t) first;
	select_inplace(v, n, k);
	lo = v[k];
	if (second == first)
		return reduced_ok(lo, n);
	/* The next order statistic is the smallest value after position k. */
	hi = v[k + 1];
	for (i = k + 2; i < n; i++)
		if (v[i] < hi)
			hi = v[i];
	if (isfinite(hi - lo))
		return reduced_ok(lo + (pos - first) * (hi - lo), n);
	/* hi - lo overflows only for extreme values; weigh the ends instead. */
	return reduced_ok(lo * (1.0 - (pos - first)) + hi * (pos - first), n);
}

/* percentile_cont of a window's values. */
CvReduced
cv_reduce_percentile(const CvSample *samples, size_t n, double fraction)
{
	double	   *v;
	CvReduced	r;
	size_t		i;

	if (!(fraction >= 0.0 && fraction <= 1.0))
		return reduced_none(CV_HEALTH_INVALID, n, 0,
							"percentile fraction must be between 0 and 1");
	i = first_non_finite(samples, n);
	if (i < n)
		return reduced_none(CV_HEALTH_INVALID, n, i, "value is not finite");
	if (n == 0)
		return reduced_none(CV_HEALTH_NODATA, 0, 0, "no samples");
	v = cv_alloc(n * sizeof(double));
	for (i = 0; i < n; i++)
		v[i] = samples[i].value;
	r = cv_percentile_inplace(v, n, fraction);
	cv_free(v);
	return r;
}

/* Apply a reducer to a window. */
CvReduced
cv_reduce(CvReducer reducer, const CvSample *samples, size_t n)
{
	size_t		bad;
	size_t		i;
	double		m;

	if ((int) reducer < 0 || (int) reducer >= CV_REDUCER_COUNT)
		return reduced_none(CV_HEALTH_INVALID, n, 0, "unknown reducer");
	bad = first_non_finite(samples, n);
	if (bad < n)
		return reduced_none(CV_HEALTH_INVALID, n, bad, "value is not finite");
	if (reducer == CV_REDUCE_COUNT)
		return reduced_ok((double) n, n);
	if (reducer == CV_REDUCE_RATE)
		return reduce_rate(samples, n);
	if (n == 0)
		return reduced_none(CV_HEALTH_NODATA, 0, 0, "no samples");

	switch (reducer)
	{
		case CV_REDUCE_AVG:
			return finite_or_overflow(compensated_sum(samples, n) / (double) n, n);
		case CV_REDUCE_SUM:
			return finite_or_overflow(compensated_sum(samples, n), n);
		case CV_REDUCE_MIN:
			m = samples[0].value;
			for (i = 1; i < n; i++)
				if (samples[i].value < m)
					m = samples[i].value;
			return reduced_ok(m, n);
		case CV_REDUCE_MAX:
			m = samples[0].value;
			for (i = 1; i < n; i++)
				if (samples[i].value > m)
					m = samples[i].value;
			return reduced_ok(m, n);
		case CV_REDUCE_STDDEV:
			if (n < 2)
				return reduced_none(CV_HEALTH_NODATA, n, 0,
									"stddev needs at least 2 samples");
			return reduce_stddev(samples, n);
		default:
			return cv_reduce_percentile(samples, n, reducer_fraction(reducer));
	}
}

/* ------------------------------------------------------------------------
 * Simple and comparison checks
 * ------------------------------------------------------------------------ */

/* The verdict's name. */
const char *
cv_verdict_name(CvVerdict verdict)
{
	switch (verdict)
	{
		case CV_VERDICT_PASS:
			return "pass";
		case CV_VERDICT_FAIL:
			return "fail";
		case CV_VERDICT_NODATA:
			return "no data";
		case CV_VERDICT_INVALID:
			return "invalid";
	}
	return "unknown";
}

/* True when the observed number breaks the bound (equal passes). */
static bool
breaks_bound(double observed, double threshold, CvBound bound)
{
	return bound == CV_BOUND_UPPER ? observed > threshold : observed < threshold;
}

/* Start a check result; false (and INVALID) for an unusable threshold. */
static bool
check_begin(CvCheckResult *out, double threshold, CvBound bound)
{
	memset(out, 0, sizeof(*out));
	out->threshold = threshold;
	out->bound = bound;
	if (bound != CV_BOUND_UPPER && bound != CV_BOUND_LOWER)
	{
		out->verdict = CV_VERDICT_INVALID;
		set_reason(out->reason, "invalid: unknown bound");
		return false;
	}
	if (!isfinite(threshold))
	{
		out->verdict = CV_VERDICT_INVALID;
		set_reason(out->reason, "invalid: the threshold is not a finite number");
		return false;
	}
	return true;
}

/*
 * Copy a side's missing or bad data into the result; true when the side
 * has a value.  INVALID wins over NODATA when both sides lack a value.
 */
static bool
check_side(CvCheckResult *out, const CvReduced *side, const char *name)
{
	const char *why;

	if (side != NULL && side->status == CV_HEALTH_OK && isfinite(side->value))
		return true;
	why = side == NULL ? "missing" : side->reason ? side->reason : "no value";
	if (side != NULL && (side->status == CV_HEALTH_INVALID ||
						 (side->status == CV_HEALTH_OK && !isfinite(side->value))))
	{
		out->verdict = CV_VERDICT_INVALID;
		set_reason(out->reason, "invalid: %s value: %s", name,
				   side->status == CV_HEALTH_OK ? "not a finite number" : why);
	}
	else if (out->verdict != CV_VERDICT_INVALID)
	{
		out->verdict = CV_VERDICT_NODATA;
		set_reason(out->reason, "no data: %s value: %s", name, why);
	}
	return false;
}

/* A simple check. */
void
cv_check_simple(const CvReduced *value, double threshold, CvBound bound,
				CvCheckResult *out)
{
	const char *side = bound == CV_BOUND_UPPER ? "upper" : "lower";

	if (!check_begin(out, threshold, bound) || !check_side(out, value, "the"))
		return;
	out->observed = no_negative_zero(value->value);
	out->has_observed = true;
	if (breaks_bound(out->observed, threshold, bound))
	{
		out->verdict = CV_VERDICT_FAIL;
		set_reason(out->reason, "fail: value %.6g is %s the %s bound %.6g",
				   out->observed, bound == CV_BOUND_UPPER ? "above" : "below",
				   side, threshold);
	}
	else
	{
		out->verdict = CV_VERDICT_PASS;
		set_reason(out->reason, "pass: value %.6g is within the %s bound %.6g",
				   out->observed, side, threshold);
	}
}

/* A comparison check. */
void
cv_check_comparison(const CvReduced *old_value, const CvReduced *new_value,
					double threshold, CvBound bound, CvCheckResult *out)
{
	const char *side = bound == CV_BOUND_UPPER ? "upper" : "lower";
	double		o;
	double		n;
	double		change;
	bool		fail;
	bool		has_old;
	bool		has_new;

	if (!check_begin(out, threshold, bound))
		return;
	/* Look at both sides, so a bad one is reported even if the other is empty. */
	has_old = check_side(out, old_value, "old");
	has_new = check_side(out, new_value, "new");
	if (!has_old || !has_new)
		return;
	o = old_value->value;
	n = new_value->value;
	if (o == 0.0)
	{
		/* The zero-baseline rules of health_stats.h. */
		change = n == 0.0 ? 0.0 : n > 0.0 ? INFINITY : -INFINITY;
	}
	else
		change = (n - o) / fabs(o);
	out->observed = no_negative_zero(change);
	out->has_observed = true;
	fail = breaks_bound(change, threshold, bound);
	out->verdict = fail ? CV_VERDICT_FAIL : CV_VERDICT_PASS;
	if (isfinite(change))
		set_reason(out->reason,
				   "%s: change %+.4g%% (old %.6g, new %.6g) is %s the %s bound %+.4g%%",
				   fail ? "fail" : "pass", 100.0 * out->observed, o, n,
				   fail ? (bound == CV_BOUND_UPPER ? "above" : "below") : "within",
				   side, 100.0 * threshold);
	else
		set_reason(out->reason,
				   "%s: infinite %s from a zero baseline (old 0, new %.6g) is %s the %s bound %+.4g%%",
				   fail ? "fail" : "pass", change > 0 ? "increase" : "decrease", n,
				   fail ? (bound == CV_BOUND_UPPER ? "above" : "below") : "within",
				   side, 100.0 * threshold);
}

/* ------------------------------------------------------------------------
 * Normal distribution
 * ------------------------------------------------------------------------ */

/* Upper tail Q(z) = 1 - Phi(z); erfc keeps it accurate far out. */
static double
normal_sf(double z)
{
	return 0.5 * erfc(z / CV_SQRT2);
}

/*
 * Phi^-1(p): a start from Abramowitz & Stegun 26.2.23 (error < 4.5e-4),
 * then Halley steps on Phi(x) - p, which converge cubically, so three
 * reach full double precision.  Works on the lower tail and mirrors, so
 * small tail probabilities keep their relative accuracy.
 */
double
cv_normal_quantile(double p)
{
	double		q;
	double		t;
	double		x;
	int			i;

	if (!(p > 0.0 && p < 1.0))
		return NAN;
	if (p == 0.5)
		return 0.0;
	q = p < 0.5 ? p : 1.0 - p;
	t = sqrt(-2.0 * log(q));
	x = -(t - (2.515517 + t * (0.802853 + t * 0.010328)) /
		  (1.0 + t * (1.432788 + t * (0.189269 + t * 0.001308))));
	for (i = 0; i < 3; i++)
	{
		double		e = 0.5 * erfc(-x / CV_SQRT2) - q;
		double		u = e * CV_SQRT_2PI * exp(0.5 * x * x);

		x -= u / (1.0 + 0.5 * x * u);
	}
	return p < 0.5 ? x : -x;
}

/* ------------------------------------------------------------------------
 * Exact null distribution of U (small samples without ties)
 * ------------------------------------------------------------------------ */

/*
 * The lower half of the null distribution of U for samples of m and n.
 * The number of orderings with U = u is the coefficient of q^u in the
 * Gaussian binomial [m+n choose m]_q, built with the q-Pascal rule
 *   [K choose j] = [K-1 choose j-1] + q^j [K-1 choose j]
 * which only adds positive numbers, so no cancellation.  Coefficient u
 * depends only on coefficients <= u, and the distribution is symmetric
 * about mn/2, so polynomials are cut at half = floor(mn/2).
 */
typedef struct ExactDist
{
	int64_t		mn;
	int64_t		half;
	double	   *cum;			/* cum[u] = orderings with U <= u, u <= half */
	double		total;			/* all orderings: C(m+n, m) */
} ExactDist;

/* Build the lower half of the distribution (m, n < CV_MW_EXACT_LIMIT). */
static void
exact_dist_build(ExactDist *ed, int m, int n)
{
	int			a = m < n ? m : n;
	int			b = m < n ? n : m;
	int64_t		half = (int64_t) a * b / 2;
	size_t		width = (size_t) half + 1;
	double	   *poly = cv_alloc0((size_t) (a + 1) * width * sizeof(double));
	double	   *f;
	int			k;
	int64_t		u;

	poly[0] = 1.0;				/* [K choose 0] = 1 for every K */
	for (k = 1; k <= a + b; k++)
	{
		int			jmax = k < a ? k : a;
		/* Rows below jmin can no longer reach [a+b choose a]. */
		int			jmin = a - (a + b - k) > 1 ? a - (a + b - k) : 1;
		int			j;

		for (j = jmax; j >= jmin; j--)
		{
			double	   *row = poly + (size_t) j * width;
			const double *prev = row - width;
			int64_t		deg = (int64_t) j * (k - j);

			if (deg > half)
				deg = half;
			/* Downwards, so row[u - j] is still [K-1 choose j]. */
			for (u = deg; u >= j; u--)
				row[u] = prev[u] + row[u - j];
			for (; u >= 0; u--)
				row[u] = prev[u];
		}
	}
	f = poly + (size_t) a * width;
	ed->mn = (int64_t) a * b;
	ed->half = half;
	ed->cum = cv_alloc(width * sizeof(double));
	ed->cum[0] = f[0];
	for (u = 1; u <= half; u++)
		ed->cum[u] = ed->cum[u - 1] + f[u];
	/* Mirror the lower half; the middle coefficient (mn even) once. */
	ed->total = 2.0 * ed->cum[half] - (ed->mn % 2 == 0 ? f[half] : 0.0);
	cv_free(poly);
}

/* P(U <= q) under the null. */
static double
exact_dist_cdf(const ExactDist *ed, int64_t q)
{
	if (q < 0)
		return 0.0;
	if (q >= ed->mn)
		return 1.0;
	if (q <= ed->half)
		return ed->cum[q] / ed->total;
	/* P(U <= q) = 1 - P(U >= q + 1) = 1 - P(U <= mn - q - 1) by symmetry. */
	return 1.0 - ed->cum[ed->mn - q - 1] / ed->total;
}

/* ------------------------------------------------------------------------
 * The k-th pairwise difference
 * ------------------------------------------------------------------------ */

/* Candidates sampled per round to choose the next two pivots. */
#define DIFF_SAMPLE		4096

/*
 * Selection among D[i][j] = y[j] - x[i], x (old, m) and y (new, n) sorted
 * ascending.  Each row i is ascending in j, each column descending in i, so
 * for any value v the first j with D[i][j] > v never moves left as i grows:
 * the count of differences <= v takes one two-pointer pass, O(m + n).
 * Floating-point subtraction is monotone in each operand, so this holds
 * for the rounded differences too, and the answer is one of them exactly.
 *
 * Row i's remaining candidates are the columns [lo[i], hi[i]).  Each round
 * draws DIFF_SAMPLE candidates at random, takes two of them around the
 * target's expected rank as pivots a <= b, counts D < a, D <= a, D < b and
 * D <= b in one pass, and keeps only the candidates on the target's side
 * (or returns a pivot when the target is equal to it).  About 1/20 of the
 * candidates survive a round; once they are few they are listed and
 * quickselect finishes.  The randomness only affects speed, never the
 * answer, and the generator has a fixed seed so timings repeat.
 *
 * The Mann-Whitney interval needs three close ranks (its ends and the
 * median), so diff_narrow() first runs rounds that keep all of them, and
 * each selection starts from there (start_lo, start_hi).
 */
typedef struct DiffSelect
{
	const double *x;
	const double *y;
	int32_t		m;
	int32_t		n;
	int32_t    *lo;
	int32_t    *hi;
	int32_t    *start_lo;		/* where each selection starts */
	int32_t    *start_hi;
	int32_t    *pos[4];			/* first j with D >= a, > a, >= b, > b */
	int64_t    *cum;			/* m + 1 prefix sums of hi - lo */
	double	   *sample;
	double	   *buf;			/* listed candidates */
	int64_t		list_limit;		/* list once this few remain */
	uint64_t	rng;
} DiffSelect;

/* Set up a selection over sorted x (old) and y (new), starting from all. */
static void
diff_select_init(DiffSelect *ds, const double *x, int32_t m,
				 const double *y, int32_t n)
{
	int32_t		i;
	int			p;

	ds->x = x;
	ds->y = y;
	ds->m = m;
	ds->n = n;
	ds->lo = cv_alloc((size_t) m * sizeof(int32_t));
	ds->hi = cv_alloc((size_t) m * sizeof(int32_t));
	ds->start_lo = cv_alloc((size_t) m * sizeof(int32_t));
	ds->start_hi = cv_alloc((size_t) m * sizeof(int32_t));
	for (i = 0; i < m; i++)
	{
		ds->start_lo[i] = 0;
		ds->start_hi[i] = n;
	}
	for (p = 0; p < 4; p++)
		ds->pos[p] = cv_alloc((size_t) m * sizeof(int32_t));
	ds->cum = cv_alloc(((size_t) m + 1) * sizeof(int64_t));
	ds->sample = cv_alloc(DIFF_SAMPLE * sizeof(double));
	/*
	 * Listing 2(m + n) candidates costs about as much as a counting round;
	 * the cap keeps the buffer (32 MB) far under palloc's 1 GB limit.
	 */
	ds->list_limit = 2 * ((int64_t) m + n);
	if (ds->list_limit > (INT64_C(1) << 22))
		ds->list_limit = INT64_C(1) << 22;
	if (ds->list_limit < 8 * DIFF_SAMPLE)
		ds->list_limit = 8 * DIFF_SAMPLE;
	ds->buf = NULL;
	ds->rng = UINT64_C(0x9e3779b97f4a7c15);
}

/* Release a selection's memory. */
static void
diff_select_free(DiffSelect *ds)
{
	int			p;

	cv_free(ds->lo);
	cv_free(ds->hi);
	cv_free(ds->start_lo);
	cv_free(ds->start_hi);
	for (p = 0; p < 4; p++)
		cv_free(ds->pos[p]);
	cv_free(ds->cum);
	cv_free(ds->sample);
	if (ds->buf != NULL)
		cv_free(ds->buf);
}

/* splitmix64: a small, fast, well-mixed generator for pivot sampling. */
static inline uint64_t
next_random(uint64_t *state)
{
	uint64_t	z = (*state += UINT64_C(0x9e3779b97f4a7c15));

	z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
	z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
	return z ^ (z >> 31);
}

/* The row holding candidate number r (0-based): cum[i] <= r < cum[i+1]. */
static int32_t
row_of(const int64_t *cum, int32_t m, int64_t r)
{
	int32_t		a = 0;
	int32_t		b = m;

	while (b - a > 1)
	{
		int32_t		mid = a + (b - a) / 2;

		if (cum[mid] <= r)
			a = mid;
		else
			b = mid;
	}
	return a;
}

/* Prefix sums of the rows' candidates; returns their number, *below the rest. */
static int64_t
diff_prefix(DiffSelect *ds, int64_t *below)
{
	int64_t		b = 0;
	int32_t		i;

	ds->cum[0] = 0;
	for (i = 0; i < ds->m; i++)
	{
		ds->cum[i + 1] = ds->cum[i] + (ds->hi[i] - ds->lo[i]);
		b += ds->lo[i];
	}
	*below = b;
	return ds->cum[ds->m];
}

/*
 * Two pivots a <= b from a random sample of the ncand candidates, placed so
 * that candidate ranks t_lo .. t_hi (1-based) most likely lie between them:
 * rank t sits near sample rank t/ncand * DIFF_SAMPLE, give or take a
 * binomial standard deviation, and three of them either side (plus two for
 * the extremes) rarely miss.  A miss still discards a side.
 */
static void
diff_pivots(DiffSelect *ds, int64_t ncand, int64_t t_lo, int64_t t_hi,
			double *a, double *b)
{
	double		f_lo = ((double) t_lo - 0.5) / (double) ncand;
	double		f_hi = ((double) t_hi - 0.5) / (double) ncand;
	long		ia;
	long		ib;
	int			q;

	for (q = 0; q < DIFF_SAMPLE; q++)
	{
		int64_t		r = (int64_t) (next_random(&ds->rng) % (uint64_t) ncand);
		int32_t		row = row_of(ds->cum, ds->m, r);

		ds->sample[q] = ds->y[ds->lo[row] + (r - ds->cum[row])] - ds->x[row];
	}
	ia = (long) floor(f_lo * DIFF_SAMPLE - 3.0 * sqrt(DIFF_SAMPLE * f_lo * (1.0 - f_lo)) - 2.0);
	ib = (long) ceil(f_hi * DIFF_SAMPLE + 3.0 * sqrt(DIFF_SAMPLE * f_hi * (1.0 - f_hi)) + 2.0);
	if (ia < 0)
		ia = 0;
	if (ia > DIFF_SAMPLE - 1)
		ia = DIFF_SAMPLE - 1;
	if (ib > DIFF_SAMPLE - 1)
		ib = DIFF_SAMPLE - 1;
	if (ib < ia)
		ib = ia;
	select_inplace(ds->sample, DIFF_SAMPLE, (size_t) ia);
	*a = ds->sample[ia];
	if (ib > ia)
		select_inplace(ds->sample + ia + 1, (size_t) (DIFF_SAMPLE - ia - 1),
					   (size_t) (ib - ia - 1));
	*b = ds->sample[ib];
}

/*
 * Move p right past the columns of row xi whose difference is below v (or
 * at most v), within [p, h).  Rows of a square matrix advance 0, 1 or 2
 * columns at random, which a loop's exit branch mispredicts; two
 * branch-free steps (a conditional add, reading column 0 when p is already
 * at h so nothing is out of bounds) take most rows, and the loop, rarely
 * entered, the rest.
 */
#define ADVANCE(p, h, y, xi, v, OP) \
	do { \
		(p) += ((p) < (h)) & ((y)[(p) < (h) ? (p) : 0] - (xi) OP (v)); \
		(p) += ((p) < (h)) & ((y)[(p) < (h) ? (p) : 0] - (xi) OP (v)); \
		while ((p) < (h) && (y)[p] - (xi) OP (v)) \
			(p)++; \
	} while (0)

/*
 * One pass: for pivots a <= b, the first column of each row with D >= a,
 * D > a, D >= b and D > b (within the row's candidates), and how many
 * differences in all are < a, <= a, < b and <= b.
 */
static void
diff_count(DiffSelect *ds, double a, double b, int64_t count[4])
{
	const double *x = ds->x;
	const double *y = ds->y;
	int32_t		p0 = 0;
	int32_t		p1 = 0;
	int32_t		p2 = 0;
	int32_t		p3 = 0;
	int64_t		c0 = 0;
	int64_t		c1 = 0;
	int64_t		c2 = 0;
	int64_t		c3 = 0;
	int32_t		i;

	for (i = 0; i < ds->m; i++)
	{
		double		xi = x[i];
		int32_t		l = ds->lo[i];
		int32_t		h = ds->hi[i];

		/*
		 * Every column before lo is below both pivots and every column from
		 * hi on is above them, so the answers lie in [lo, hi]; and they never
		 * move left from one row to the next.  Without ties p1 == p0 and
		 * p3 == p2, so those loops exit at once, predictably.  p2 starts
		 * from its own last position (or lo), not from p0 or p1: the two
		 * pivots' pointers then form independent dependency chains the
		 * processor runs side by side, and the pivots may be equal anyway.
		 */
		p0 = p0 < l ? l : p0;
		ADVANCE(p0, h, y, xi, a, <);
		p1 = p1 < p0 ? p0 : p1;
		while (p1 < h && y[p1] - xi <= a)
			p1++;
		p2 = p2 < l ? l : p2;
		ADVANCE(p2, h, y, xi, b, <);
		p3 = p3 < p2 ? p2 : p3;
		while (p3 < h && y[p3] - xi <= b)
			p3++;
		ds->pos[0][i] = p0;
		ds->pos[1][i] = p1;
		ds->pos[2][i] = p2;
		ds->pos[3][i] = p3;
		c0 += p0;
		c1 += p1;
		c2 += p2;
		c3 += p3;
	}
	count[0] = c0;
	count[1] = c1;
	count[2] = c2;
	count[3] = c3;
}

/*
 * Narrow the starting candidates to those that can still be any of the
 * ranks k_lo .. k_hi, while a round removes much: stops when the targets
 * span a quarter of the candidates, or they are few enough to list.
 */
static void
diff_narrow(DiffSelect *ds, int64_t k_lo, int64_t k_hi)
{
	size_t		bytes = (size_t) ds->m * sizeof(int32_t);

	memcpy(ds->lo, ds->start_lo, bytes);
	memcpy(ds->hi, ds->start_hi, bytes);
	for (;;)
	{
		int64_t		below;
		int64_t		ncand = diff_prefix(ds, &below);
		int64_t		count[4];
		bool		moved = false;
		double		a;
		double		b;

		if (ncand <= ds->list_limit || 4 * (k_hi - k_lo + 1) > ncand)
			break;
		diff_pivots(ds, ncand, k_lo - below, k_hi - below, &a, &b);
		diff_count(ds, a, b, count);
		if (k_lo > count[1])	/* every target is above a */
		{
			memcpy(ds->lo, ds->pos[1], bytes);
			moved = true;
		}
		if (k_hi <= count[2])	/* every target is below b */
		{
			memcpy(ds->hi, ds->pos[2], bytes);
			moved = true;
		}
		if (!moved)
			break;
	}
	memcpy(ds->start_lo, ds->lo, bytes);
	memcpy(ds->start_hi, ds->hi, bytes);
}

/* The k-th smallest difference (1-based); k must be among the start candidates. */
static double
diff_select(DiffSelect *ds, int64_t k)
{
	int32_t		m = ds->m;
	size_t		bytes = (size_t) m * sizeof(int32_t);

	memcpy(ds->lo, ds->start_lo, bytes);
	memcpy(ds->hi, ds->start_hi, bytes);
	for (;;)
	{
		int64_t		below;
		int64_t		ncand = diff_prefix(ds, &below);
		int64_t		t = k - below;	/* the target's rank among the candidates */
		int64_t		count[4];
		double		a;
		double		b;

		if (t < 1 || t > ncand)
			cv_fail("pairwise difference selection lost its target");

		if (ncand <= ds->list_limit)
		{
			int64_t		c = 0;
			int32_t		i;

			if (ds->buf == NULL)
				ds->buf = cv_alloc((size_t) ds->list_limit * sizeof(double));
			for (i = 0; i < m; i++)
			{
				double		xi = ds->x[i];
				int32_t		j;

				for (j = ds->lo[i]; j < ds->hi[i]; j++)
					ds->buf[c++] = ds->y[j] - xi;
			}
			select_inplace(ds->buf, (size_t) c, (size_t) (t - 1));
			return ds->buf[t - 1];
		}

		diff_pivots(ds, ncand, t, t, &a, &b);
		diff_count(ds, a, b, count);
		if (k <= count[0])		/* below a */
			memcpy(ds->hi, ds->pos[0], bytes);
		else if (k <= count[1])
			return a;
		else if (k <= count[2])	/* strictly between a and b */
		{
			memcpy(ds->lo, ds->pos[1], bytes);
			memcpy(ds->hi, ds->pos[2], bytes);
		}
		else if (k <= count[3])
			return b;
		else					/* above b */
			memcpy(ds->lo, ds->pos[3], bytes);
	}
}

/*
 * The (k+1)-th smallest difference given v, the k-th: v itself when more
 * than k differences are <= v, else the smallest difference above v, which
 * is the minimum over rows of each row's first difference above v.
 */
static double
diff_next(const DiffSelect *ds, double v, int64_t k)
{
	int64_t		le = 0;
	double		best = INFINITY;
	int32_t		p = 0;
	int32_t		i;

	for (i = 0; i < ds->m; i++)
	{
		double		xi = ds->x[i];

		while (p < ds->n && ds->y[p] - xi <= v)
			p++;
		le += p;
		if (p < ds->n && ds->y[p] - xi < best)
			best = ds->y[p] - xi;
	}
	return le > k ? v : best;
}

/* The k-th smallest pairwise difference of sorted samples (exposed). */
double
cv_pairwise_diff_select(const double *old_sorted, size_t m,
						const double *new_sorted, size_t n, int64_t k)
{
	DiffSelect	ds;
	double		v;

	if (m == 0 || n == 0 || m > CV_MW_MAX_SAMPLES || n > CV_MW_MAX_SAMPLES ||
		k < 1 || k > (int64_t) m * (int64_t) n)
		return NAN;
	diff_select_init(&ds, old_sorted, (int32_t) m, new_sorted, (int32_t) n);
	v = diff_select(&ds, k);
	diff_select_free(&ds);
	return v;
}

/* ------------------------------------------------------------------------
 * Mann-Whitney U test and Hodges-Lehmann interval
 * ------------------------------------------------------------------------ */

/* Copy and sort a sample; false with *bad set when a value is not finite. */
static bool
sorted_copy(const double *v, size_t n, double **out, size_t *bad)
{
	double	   *c;
	size_t		i;

	for (i = 0; i < n; i++)
		if (!isfinite(v[i]))
		{
			*bad = i;
			return false;
		}
	c = cv_alloc(n * sizeof(double));
	memcpy(c, v, n * sizeof(double));
	sort_doubles(c, n);
	*out = c;
	return true;
}

/*
 * U of the new sample and the tie term, merging the sorted samples group
 * by group of equal values.  A group with cx old and cy new values adds
 * cy * (old values below it) + cy * cx / 2 to U, computed as 2U in integers
 * so it is exact; it adds t^3 - t (t = cx + cy) to the tie term.  Returns
 * the number of groups (1 means every value is equal).
 */
static int64_t
rank_pass(const double *x, int64_t m, const double *y, int64_t n,
		  double *u, double *tie_term)
{
	int64_t		i = 0;
	int64_t		j = 0;
	int64_t		twice_u = 0;
	int64_t		groups = 0;
	double		tt = 0.0;

	while (i < m || j < n)
	{
		double		v = (j >= n || (i < m && x[i] <= y[j])) ? x[i] : y[j];
		int64_t		below = i;
		int64_t		cx = 0;
		int64_t		cy = 0;
		double		t;

		while (i < m && x[i] == v)
		{
			i++;
			cx++;
		}
		while (j < n && y[j] == v)
		{
			j++;
			cy++;
		}
		twice_u += cy * (2 * below + cx);
		t = (double) (cx + cy);
		tt += (t - 1.0) * t * (t + 1.0);
		groups++;
	}
	*u = (double) twice_u / 2.0;
	*tie_term = tt;
	return groups;
}

/* Fill the p-values from the normal approximation. */
static void
asymptotic_p(CvMwResult *r)
{
	double		d = r->u - r->u_mean;
	double		p2 = 2.0 * normal_sf((fabs(d) - 0.5) / r->u_sigma);

	r->p_greater = normal_sf((d - 0.5) / r->u_sigma);
	r->p_less = normal_sf((-d - 0.5) / r->u_sigma);
	r->p_two_sided = p2 < 1.0 ? p2 : 1.0;
}

/* Fill the p-values from the exact distribution (U is an integer here). */
static void
exact_p(CvMwResult *r, const ExactDist *ed)
{
	int64_t		u = (int64_t) r->u;
	double		p2;

	r->p_less = exact_dist_cdf(ed, u);
	r->p_greater = exact_dist_cdf(ed, ed->mn - u);	/* P(U >= u), mirrored */
	p2 = 2.0 * (r->p_less < r->p_greater ? r->p_less : r->p_greater);
	r->p_two_sided = p2 < 1.0 ? p2 : 1.0;
}

/*
 * The order statistic k of the interval [D(k), D(mn+1-k)]; see the header
 * for the rule.  Sets ci_k, ci_reached and ci_achieved.
 */
static void
choose_ci_k(CvMwResult *r, const ExactDist *ed, int64_t mn)
{
	double		alpha = 1.0 - r->confidence;
	int64_t		k;
	int64_t		kmax = (mn + 1) / 2;

	if (ed != NULL)
	{
		/* R's qwilcox(alpha/2): smallest q with P(U <= q) >= alpha/2, fuzzed. */
		double		target = alpha / 2.0 - 10.0 * DBL_EPSILON;

		k = 0;
		while (k < ed->half && exact_dist_cdf(ed, k) < target)
			k++;
	}
	else
	{
		double		zq = -cv_normal_quantile(alpha / 2.0);

		k = (int64_t) ceil(r->u_mean - 0.5 - zq * r->u_sigma);
	}
	r->ci_reached = k >= 1;
	if (k < 1)
		k = 1;
	if (k > kmax)
		k = kmax;
	r->ci_k = k;
	if (ed != NULL)
		r->ci_achieved = 1.0 - 2.0 * exact_dist_cdf(ed, k - 1);
	else
		r->ci_achieved = 1.0 - 2.0 * normal_sf((r->u_mean - (double) k + 0.5) / r->u_sigma);
}

/* The Mann-Whitney U test with the Hodges-Lehmann shift and interval. */
void
cv_mann_whitney(const double *old_values, size_t n_old,
				const double *new_values, size_t n_new,
				double confidence, CvMwMethod method, CvMwResult *out)
{
	double	   *x = NULL;
	double	   *y = NULL;
	double		tie_term;
	double		nn;
	int64_t		groups;
	int64_t		mn;
	size_t		bad;
	ExactDist	ed;
	bool		use_exact;
	DiffSelect	ds;

	memset(out, 0, sizeof(*out));
	out->n_old = n_old;
	out->n_new = n_new;
	out->confidence = confidence;
	out->p_two_sided = out->p_greater = out->p_less = 1.0;

	if (!(confidence > 0.0 && confidence < 1.0))
	{
		out->status = CV_HEALTH_INVALID;
		out->reason = "confidence must be between 0 and 1";
		return;
	}
	if (method != CV_MW_AUTO && method != CV_MW_ASYMPTOTIC)
	{
		out->status = CV_HEALTH_INVALID;
		out->reason = "unknown method";
		return;
	}
	if (n_old > CV_MW_MAX_SAMPLES || n_new > CV_MW_MAX_SAMPLES)
	{
		out->status = CV_HEALTH_INVALID;
		out->reason = "sample larger than CV_MW_MAX_SAMPLES";
		return;
	}
	if (n_old > 0 && !sorted_copy(old_values, n_old, &x, &bad))
	{
		out->status = CV_HEALTH_INVALID;
		out->reason = "value is not finite";
		out->at = bad;
		return;
	}
	if (n_new > 0 && !sorted_copy(new_values, n_new, &y, &bad))
	{
		if (x != NULL)
			cv_free(x);
		out->status = CV_HEALTH_INVALID;
		out->reason = "value is not finite";
		out->at = bad;
		out->at_new = true;
		return;
	}
	if (n_old == 0 || n_new == 0)
	{
		if (x != NULL)
			cv_free(x);
		if (y != NULL)
			cv_free(y);
		out->status = CV_HEALTH_NODATA;
		out->reason = n_old == 0 ? "no samples on the old version"
			: "no samples on the new version";
		return;
	}

	mn = (int64_t) n_old * (int64_t) n_new;
	nn = (double) n_old + (double) n_new;
	groups = rank_pass(x, (int64_t) n_old, y, (int64_t) n_new, &out->u, &tie_term);
	out->ties = groups < (int64_t) (n_old + n_new);
	out->u_mean = (double) mn / 2.0;

	if (groups == 1)
	{
		/* Every value equal: no test possible, and nothing moved. */
		out->u_sigma = 0.0;
		out->ci_k = 1;
		out->ci_achieved = 1.0;
		out->ci_reached = true;
		cv_free(x);
		cv_free(y);
		return;
	}

	out->u_sigma = sqrt((double) mn / 12.0 *
						((nn + 1.0) - tie_term / (nn * (nn - 1.0))));
	if (out->u != out->u_mean)
		out->z = (out->u - out->u_mean - (out->u > out->u_mean ? 0.5 : -0.5)) /
			out->u_sigma;

	use_exact = method == CV_MW_AUTO && !out->ties &&
		n_old < CV_MW_EXACT_LIMIT && n_new < CV_MW_EXACT_LIMIT;
	if (use_exact)
	{
		exact_dist_build(&ed, (int) n_old, (int) n_new);
		out->exact = true;
		exact_p(out, &ed);
		choose_ci_k(out, &ed, mn);
		cv_free(ed.cum);
	}
	else
	{
		asymptotic_p(out);
		choose_ci_k(out, NULL, mn);
	}

	diff_select_init(&ds, x, (int32_t) n_old, y, (int32_t) n_new);
	/* The interval's ends enclose the median: narrow once for all three. */
	diff_narrow(&ds, out->ci_k, mn + 1 - out->ci_k);
	if (mn % 2 == 1)
		out->hl = diff_select(&ds, (mn + 1) / 2);
	else
	{
		double		a = diff_select(&ds, mn / 2);
		double		b = diff_next(&ds, a, mn / 2);

		out->hl = 0.5 * a + 0.5 * b;
	}
	out->ci_low = diff_select(&ds, out->ci_k);
	out->ci_high = diff_select(&ds, mn + 1 - out->ci_k);
	diff_select_free(&ds);
	out->hl = no_negative_zero(out->hl);
	out->ci_low = no_negative_zero(out->ci_low);
	out->ci_high = no_negative_zero(out->ci_high);
	cv_free(x);
	cv_free(y);
}

/* ------------------------------------------------------------------------
 * Statistical check
 * ------------------------------------------------------------------------ */

/* Kayenta's defaults. */
CvMwCheckSpec
cv_mw_check_spec_default(CvDirection direction)
{
	CvMwCheckSpec spec;

	spec.confidence = CV_MW_DEFAULT_CONFIDENCE;
	spec.tolerance = CV_MW_DEFAULT_TOLERANCE;
	spec.direction = direction;
	spec.method = CV_MW_AUTO;
	return spec;
}

/* The test, then Kayenta's classification against +-tolerance * |hl|. */
void
cv_check_mann_whitney(const double *old_values, size_t n_old,
					  const double *new_values, size_t n_new,
					  const CvMwCheckSpec *spec, CvMwCheckResult *out)
{
	const CvMwResult *t = &out->test;
	double		pct;
	bool		high;
	bool		low;
	bool		want_high;
	bool		want_low;

	memset(out, 0, sizeof(*out));
	if (spec == NULL || !(spec->tolerance >= 0.0 && isfinite(spec->tolerance)) ||
		(spec->direction != CV_DIRECTION_INCREASE &&
		 spec->direction != CV_DIRECTION_DECREASE &&
		 spec->direction != CV_DIRECTION_EITHER))
	{
		out->verdict = CV_VERDICT_INVALID;
		set_reason(out->reason, "invalid: %s",
				   spec == NULL ? "no check spec" :
				   !(spec->tolerance >= 0.0 && isfinite(spec->tolerance)) ?
				   "tolerance must be a finite number >= 0" : "unknown direction");
		return;
	}
	cv_mann_whitney(old_values, n_old, new_values, n_new, spec->confidence,
					spec->method, &out->test);
	pct = 100.0 * spec->confidence;
	if (t->status == CV_HEALTH_INVALID)
	{
		out->verdict = CV_VERDICT_INVALID;
		if (t->reason != NULL && strcmp(t->reason, "value is not finite") == 0)
			set_reason(out->reason, "invalid: %s value #%zu is not finite",
					   t->at_new ? "new" : "old", t->at + 1);
		else
			set_reason(out->reason, "invalid: %s", t->reason);
		return;
	}
	if (t->status == CV_HEALTH_NODATA)
	{
		out->verdict = CV_VERDICT_NODATA;
		set_reason(out->reason, "no data: %s", t->reason);
		return;
	}
	if (t->u_sigma == 0.0)
	{
		out->verdict = CV_VERDICT_PASS;
		set_reason(out->reason, "pass: all %zu values are equal", n_old + n_new);
		return;
	}
	if (!t->ci_reached)
	{
		out->verdict = CV_VERDICT_NODATA;
		set_reason(out->reason,
				   "no data: %zu old and %zu new samples cannot reach %.4g%% confidence (at most %.4g%%)",
				   n_old, n_new, pct, 100.0 * t->ci_achieved);
		return;
	}

	out->band = spec->tolerance * fabs(t->hl);
	high = t->ci_low > out->band;
	low = t->ci_high < -out->band;
	out->shift = high ? CV_MW_CLASS_HIGH : low ? CV_MW_CLASS_LOW : CV_MW_CLASS_NONE;
	want_high = spec->direction != CV_DIRECTION_DECREASE;
	want_low = spec->direction != CV_DIRECTION_INCREASE;

	if ((high && want_high) || (low && want_low))
	{
		out->verdict = CV_VERDICT_FAIL;
		set_reason(out->reason,
				   "fail: %s: the %.4g%% interval [%.6g, %.6g] of the shift new - old (hl %.6g) lies %s the band +-%.6g (p %.3g)",
				   high ? "high" : "low", pct, t->ci_low, t->ci_high, t->hl,
				   high ? "above" : "below", out->band, t->p_two_sided);
	}
	else if (high || low)
	{
		out->verdict = CV_VERDICT_PASS;
		set_reason(out->reason,
				   "pass: a significant %s (interval [%.6g, %.6g], hl %.6g), but the check fails on %s only",
				   high ? "increase" : "decrease", t->ci_low, t->ci_high, t->hl,
				   high ? "decreases" : "increases");
	}
	else
	{
		out->verdict = CV_VERDICT_PASS;
		set_reason(out->reason,
				   "pass: the %.4g%% interval [%.6g, %.6g] of the shift new - old (hl %.6g) reaches into the band +-%.6g (p %.3g)",
				   pct, t->ci_low, t->ci_high, t->hl, out->band, t->p_two_sided);
	}
}
