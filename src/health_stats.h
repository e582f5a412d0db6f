/*
 * health_stats.h - conveyor's healthcheck math: reducers over a window of
 * samples, the simple and comparison checks, and the Mann-Whitney U test
 * with a Hodges-Lehmann interval for statistical checks
 *
 * Pure C with no PostgreSQL dependency, so it can be unit-tested and
 * benchmarked alone (test/unit/test_health_stats.c, test/bench/bench_health.c).
 * The SQL layer reads samples, calls these functions and stores every
 * number of the result next to the verdict, so an evaluation can be
 * explained from its row.
 *
 * Nothing here ever invents a value.  Every result carries a status:
 *   CV_HEALTH_OK       a value was computed
 *   CV_HEALTH_NODATA   there is not enough data for this computation (the
 *                      caller applies the check's no-data policy: fail, pass
 *                      or pause as inconclusive)
 *   CV_HEALTH_INVALID  the input is unusable (a NaN or infinite value,
 *                      timestamps out of order, a bad parameter, a result
 *                      out of the range of double precision); the reason
 *                      says which
 *
 * ---------------------------------------------------------------------------
 * Reducers
 * ---------------------------------------------------------------------------
 *
 * A window is an array of samples {ts, value}, ts in seconds (any epoch).
 * Every reducer refuses a non-finite value (NaN, +-Infinity) with
 * CV_HEALTH_INVALID and the index of the sample in `at`: a NaN would turn
 * avg into NaN and sort last in a percentile, so the caller filters such
 * samples out explicitly (e.g. WHERE value <> 'NaN') or lets the check fail.
 * Only rate reads timestamps.  Each reducer is defined as the PostgreSQL
 * aggregate a user would write by hand over the same rows, so results agree
 * with that SQL to rounding:
 *
 *   reducer  SQL equivalent                         0 samples  1 sample
 *   avg      avg(value)                             no data    the value
 *   min      min(value)                             no data    the value
 *   max      max(value)                             no data    the value
 *   sum      sum(value)                             no data    the value
 *   count    count(value)                           0          1
 *   stddev   stddev_samp(value)                     no data    no data
 *   p50..p99 percentile_cont(0.5 .. 0.99)           no data    the value
 *              WITHIN GROUP (ORDER BY value)
 *   rate     see below                              no data    no data
 *
 * (sum over no rows is NULL in SQL, hence no data; count over no rows is a
 * real 0.)  sum and avg use compensated (Neumaier) summation and stddev the
 * corrected two-pass formula, so they are at least as accurate as
 * PostgreSQL's float8 aggregates; stddev of equal values is exactly 0.
 *
 * Percentiles follow percentile_cont exactly: with the values sorted
 * ascending as v[0..n-1], pos = f * (n - 1), lo = floor(pos):
 *   result = v[lo] + (v[lo + 1] - v[lo]) * (pos - lo)   (just v[lo] when
 *   pos == lo).  They are found by selection, not by sorting the window.
 *
 * rate is the per-second increase of a counter, with resets handled as in
 * Prometheus but without its extrapolation to the window's edges:
 *   increase = sum over consecutive samples i >= 1 of
 *                v[i] - v[i-1]   when v[i] >= v[i-1]
 *                v[i]            when v[i] <  v[i-1]  (a reset: the counter
 *                                restarted from 0, so all of v[i] is new)
 *   rate     = increase / (ts[n-1] - ts[0])
 * Samples must be in non-decreasing ts order (ORDER BY ts) with finite
 * timestamps, else CV_HEALTH_INVALID.  Samples with equal timestamps are
 * taken in the order given, so the caller breaks such ties the same way
 * every time (ORDER BY ts, id).  Fewer than 2 samples, or samples that
 * span no time (ts[n-1] == ts[0]), give no data.
 *
 * ---------------------------------------------------------------------------
 * Simple and comparison checks
 * ---------------------------------------------------------------------------
 *
 * A check has a threshold and a bound.  CV_BOUND_UPPER fails when the
 * observed number is above the threshold, CV_BOUND_LOWER when it is below;
 * equal passes.  A simple check observes the reduced value itself.
 *
 * A comparison check observes the relative change between subunits on the
 * old and the new version, reduced over the same window:
 *   change = (new - old) / |old|
 * |old| rather than old keeps a rise positive for negative baselines; for
 * the usual non-negative metrics it is (new - old) / old.  A zero baseline
 * is never a silent pass:
 *   old == 0, new == 0   change 0 (nothing changed)
 *   old == 0, new >  0   change +Infinity: fails any upper bound, so a
 *                        baseline of 0 errors against errors on the new
 *                        version fails
 *   old == 0, new <  0   change -Infinity: fails any lower bound
 * Either side without data gives CV_VERDICT_NODATA; invalid on either side
 * (or a non-finite threshold) gives CV_VERDICT_INVALID.
 *
 * ---------------------------------------------------------------------------
 * Mann-Whitney U test and Hodges-Lehmann interval
 * ---------------------------------------------------------------------------
 *
 * old = x[0..m-1], new = y[0..n-1], N = m + n.  Values must be finite.
 *   U      = #{(i,j): y[j] > x[i]} + 0.5 * #{(i,j): y[j] == x[i]}, the
 *            statistic of the new sample (scipy's U1 for mannwhitneyu(new,
 *            old)); it equals R_new - n(n+1)/2 with R_new the sum of the
 *            new sample's mid-ranks in the pooled sample
 *   mean   = mn/2
 *   sigma  = sqrt(mn/12 * ((N + 1) - T / (N(N - 1)))), T = sum over groups
 *            of tied values of t^3 - t (the tie correction)
 *   z      = (U - mean - 0.5 * sign(U - mean)) / sigma   (continuity
 *            correction towards the mean; as R's wilcox.test)
 *   p_greater  = P(the new sample is this much larger or more)
 *              = Q((U - mean - 0.5) / sigma)           Q = 1 - Phi
 *   p_less     = Q((mean - U - 0.5) / sigma)
 *   p_two_sided = min(1, 2 * Q((|U - mean| - 0.5) / sigma))
 * which is scipy.stats.mannwhitneyu(new, old, method='asymptotic',
 * use_continuity=True) for the three alternatives.
 *
 * Exact distribution: with CV_MW_AUTO, when m < 50, n < 50 and no two
 * pooled values are equal (R's rule), the p-values and the interval come
 * from the exact null distribution of U instead (as R's wilcox.test and
 * scipy's method='exact'), with U' the statistic under the null
 * hypothesis: p_less = P(U' <= U), p_greater = P(U' >= U),
 * p_two_sided = min(1, 2 min(p_less, p_greater)).  CV_MW_ASYMPTOTIC always
 * uses the normal approximation.  z is reported either way.
 *
 * Shift: D = the mn pairwise differences y[j] - x[i] (new - old, each
 * rounded as a double subtraction), D(1) <= ... <= D(mn) in order.
 *   hl     = median of D: D((mn+1)/2) when mn is odd, else
 *            0.5 * D(mn/2) + 0.5 * D(mn/2 + 1)
 *   ci     = [D(k), D(mn + 1 - k)], the classical distribution-free
 *            interval (Hollander & Wolfe; R's wilcox.test conf.int), where
 *            with alpha = 1 - confidence:
 *     exact:      k = the smallest q with P(U' <= q) >= alpha/2 - 10 eps
 *                 (R's qwilcox, with its fuzz)
 *     asymptotic: k = ceil(mean - 0.5 - z_{1-alpha/2} * sigma), the same
 *                 rule with P(U' <= q) replaced by its continuity-corrected
 *                 normal approximation Phi((q + 0.5 - mean) / sigma)
 *            k is then clamped to [1, (mn+1)/2].  When k had to be raised
 *            to 1 the samples are too small to reach the confidence at all
 *            (ci_reached is false; R warns in that case); ci_achieved is the
 *            coverage 1 - 2 P(U' <= k - 1) of the chosen order statistics.
 * The k-th difference is selected without forming the mn differences: both
 * samples are sorted, then sampled pivots with a two-pointer count over the
 * sorted samples narrow the candidates until they can be listed, in
 * O((m + n) log(mn)) expected time: 2 x 100,000 samples take tens of
 * milliseconds (test/bench/bench_health.c), and the result is the exact
 * order statistic.
 *
 * When all N values are equal, sigma is 0: U = mean, z = 0, every p-value
 * is 1, hl and the interval are [0, 0].  Values beyond about +-8e307 can
 * make a difference overflow to +-Infinity; metrics never come near.
 * Without a value (NODATA, INVALID) the p-values are 1 and the rest 0.
 *
 * ---------------------------------------------------------------------------
 * Statistical check (Kayenta's Mann-Whitney classifier)
 * ---------------------------------------------------------------------------
 *
 * As Netflix/Spinnaker Kayenta's MannWhitneyClassifier (used by its
 * NetflixACAJudge with confidence 0.98 and tolerance 0.25), the interval is
 * compared with a band of +-tolerance * |hl| around 0:
 *   HIGH  when ci_low  >  tolerance * |hl|   (a significant increase)
 *   LOW   when ci_high < -tolerance * |hl|   (a significant decrease)
 *   else  PASS
 * HIGH is only reported when the direction is INCREASE or EITHER, LOW only
 * for DECREASE or EITHER (a shift the other way passes, and the reason says
 * so).  The interval already excludes 0 with the requested confidence in
 * both cases; the tolerance further asks that its near end be at least that
 * fraction of the estimated shift, so a barely significant shift passes.
 * A tolerance of 1 or more can never flag.
 *
 * The rule judges the shift of the median difference, so it does not see
 * a change confined to less than half of the samples: with an old version
 * at 0 errors in every interval and a new one with errors in 30% of them,
 * hl is 0 and the check passes although p is tiny.  Rare events such as
 * errors belong in a comparison check on avg, sum or rate, which fails that
 * case by the zero-baseline rule.  Differences from Kayenta:
 *   - no data on either side gives CV_VERDICT_NODATA, as Kayenta's Nodata;
 *   - samples too small to reach the confidence (ci_reached false) also
 *     give NODATA instead of judging on an interval of lower coverage;
 *   - Kayenta adds Gaussian noise when each sample is constant; here ties
 *     are handled by the tie correction and the order statistics, so e.g.
 *     old all 0, new all 5 gives the interval [5, 5] and HIGH;
 *   - Kayenta's interval comes from root-finding on the normal
 *     approximation (R's asymptotic branch); here it is the order-statistic
 *     interval above, whose ends are real differences.
 *
 * Memory comes from cv_alloc (palloc in the backend) and is released before
 * each function returns.  No function keeps state between calls.
 */
#ifndef CV_HEALTH_STATS_H
#define CV_HEALTH_STATS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Room for a reason, terminating NUL included; longer text is cut. */
#define CV_HEALTH_REASON_LEN	256

/* Kayenta's defaults for statistical checks. */
#define CV_MW_DEFAULT_CONFIDENCE	0.98
#define CV_MW_DEFAULT_TOLERANCE		0.25

/* With CV_MW_AUTO, exact when both samples are smaller than this, no ties. */
#define CV_MW_EXACT_LIMIT		50

/*
 * Largest sample the Mann-Whitney test takes on either side, so that
 * indexes fit an int32 and mn, hence 2U, is exact in a double.
 */
#define CV_MW_MAX_SAMPLES		50000000

/* Whether a result holds a value, see the top of this file. */
typedef enum CvHealthStatus
{
	CV_HEALTH_OK = 0,
	CV_HEALTH_NODATA,
	CV_HEALTH_INVALID
} CvHealthStatus;

/* One metric sample: time in seconds and value. */
typedef struct CvSample
{
	double		ts;
	double		value;
} CvSample;

/* The transforms a check can apply to its window. */
typedef enum CvReducer
{
	CV_REDUCE_AVG = 0,
	CV_REDUCE_MIN,
	CV_REDUCE_MAX,
	CV_REDUCE_SUM,
	CV_REDUCE_COUNT,
	CV_REDUCE_RATE,
	CV_REDUCE_STDDEV,
	CV_REDUCE_P50,
	CV_REDUCE_P90,
	CV_REDUCE_P95,
	CV_REDUCE_P99
} CvReducer;

/* Number of CvReducer values, for loops and tables. */
#define CV_REDUCER_COUNT	(CV_REDUCE_P99 + 1)

/* A reducer's answer. */
typedef struct CvReduced
{
	CvHealthStatus status;
	double		value;			/* set only when status is CV_HEALTH_OK */
	size_t		nsamples;		/* samples in the window */
	size_t		at;				/* INVALID because of a sample: its index */
	const char *reason;			/* static text; NULL when OK */
} CvReduced;

/* Upper bounds fail above the threshold, lower bounds below it. */
typedef enum CvBound
{
	CV_BOUND_UPPER = 0,
	CV_BOUND_LOWER
} CvBound;

/* What a check concluded. */
typedef enum CvVerdict
{
	CV_VERDICT_PASS = 0,
	CV_VERDICT_FAIL,
	CV_VERDICT_NODATA,			/* the caller applies the no-data policy */
	CV_VERDICT_INVALID			/* bad input: a bad failure, never a pass */
} CvVerdict;

/* A simple or comparison check's verdict and the numbers behind it. */
typedef struct CvCheckResult
{
	CvVerdict	verdict;
	double		observed;		/* simple: the value; comparison: the change
								 * (+-Infinity for a zero baseline); 0 when
								 * there is no number */
	bool		has_observed;
	double		threshold;
	CvBound		bound;
	char		reason[CV_HEALTH_REASON_LEN];
} CvCheckResult;

/* How the Mann-Whitney p-values and interval are computed. */
typedef enum CvMwMethod
{
	CV_MW_AUTO = 0,				/* exact when small and without ties */
	CV_MW_ASYMPTOTIC			/* always the normal approximation */
} CvMwMethod;

/* Everything the Mann-Whitney test and the Hodges-Lehmann interval found. */
typedef struct CvMwResult
{
	CvHealthStatus status;
	const char *reason;			/* static text; NULL when OK */
	size_t		at;				/* INVALID because of a value: its index */
	bool		at_new;			/* ... in the new sample (else the old) */
	size_t		n_old;
	size_t		n_new;
	double		u;				/* U of the new sample */
	double		u_mean;			/* mn/2 */
	double		u_sigma;		/* tie-corrected standard deviation of U */
	double		z;
	double		p_two_sided;
	double		p_greater;		/* alternative: new is larger */
	double		p_less;			/* alternative: new is smaller */
	bool		exact;			/* p-values and k from the exact distribution */
	bool		ties;			/* some pooled values are equal */
	double		hl;				/* Hodges-Lehmann shift, new - old */
	double		ci_low;
	double		ci_high;
	double		confidence;		/* requested */
	double		ci_achieved;	/* coverage of [D(k), D(mn+1-k)] */
	bool		ci_reached;		/* false: k was raised to 1 */
	int64_t		ci_k;
} CvMwResult;

/* Which shift a statistical check fails on. */
typedef enum CvDirection
{
	CV_DIRECTION_INCREASE = 0,
	CV_DIRECTION_DECREASE,
	CV_DIRECTION_EITHER
} CvDirection;

/* A statistical check's parameters. */
typedef struct CvMwCheckSpec
{
	double		confidence;		/* in (0, 1); default 0.98 */
	double		tolerance;		/* >= 0; default 0.25 */
	CvDirection direction;
	CvMwMethod	method;
} CvMwCheckSpec;

/* Kayenta's classes: the significant shift found, whatever the direction. */
typedef enum CvMwClass
{
	CV_MW_CLASS_NONE = 0,		/* no shift beyond the band (or no test) */
	CV_MW_CLASS_HIGH,
	CV_MW_CLASS_LOW
} CvMwClass;

/* A statistical check's verdict and the numbers behind it. */
typedef struct CvMwCheckResult
{
	CvVerdict	verdict;
	CvMwClass	shift;
	double		band;			/* tolerance * |hl| */
	CvMwResult	test;
	char		reason[CV_HEALTH_REASON_LEN];
} CvMwCheckResult;

/* Reducers ------------------------------------------------------------- */

/* Look a reducer up by name ("avg", "p99", ...); false when unknown. */
bool		cv_reducer_parse(const char *name, CvReducer *out);

/* The name of a reducer, as cv_reducer_parse() reads it. */
const char *cv_reducer_name(CvReducer reducer);

/* Apply a reducer to a window; see the table at the top. */
CvReduced	cv_reduce(CvReducer reducer, const CvSample *samples, size_t n);

/*
 * percentile_cont(fraction) of the values of a window, fraction in [0, 1]
 * (else CV_HEALTH_INVALID).
 */
CvReduced	cv_reduce_percentile(const CvSample *samples, size_t n,
								 double fraction);

/*
 * percentile_cont(fraction) of plain values, reordering them in place (no
 * allocation): for callers that already hold the values in an array.
 */
CvReduced	cv_percentile_inplace(double *values, size_t n, double fraction);

/* A CvReduced holding a value computed elsewhere (e.g. by SQL). */
CvReduced	cv_reduced_value(double value);

/* A CvReduced saying there was no data. */
CvReduced	cv_reduced_nodata(void);

/* Checks --------------------------------------------------------------- */

/* The verdict's name: "pass", "fail", "no data", "invalid". */
const char *cv_verdict_name(CvVerdict verdict);

/* A simple check: the reduced value against an absolute threshold. */
void		cv_check_simple(const CvReduced *value, double threshold,
							CvBound bound, CvCheckResult *out);

/*
 * A comparison check: the relative change from old to new against a
 * threshold, with the zero-baseline rules at the top of this file.
 */
void		cv_check_comparison(const CvReduced *old_value,
								const CvReduced *new_value,
								double threshold, CvBound bound,
								CvCheckResult *out);

/* Mann-Whitney ---------------------------------------------------------- */

/*
 * The Mann-Whitney U test of new against old, with the Hodges-Lehmann
 * shift and its interval at `confidence` (in (0, 1)).  Either sample empty
 * gives CV_HEALTH_NODATA; a non-finite value, a sample over
 * CV_MW_MAX_SAMPLES or a bad confidence give CV_HEALTH_INVALID.  The
 * inputs are not modified.
 */
void		cv_mann_whitney(const double *old_values, size_t n_old,
							const double *new_values, size_t n_new,
							double confidence, CvMwMethod method,
							CvMwResult *out);

/* A spec with Kayenta's defaults and the given direction. */
CvMwCheckSpec cv_mw_check_spec_default(CvDirection direction);

/* A statistical check: the test above, then Kayenta's classification. */
void		cv_check_mann_whitney(const double *old_values, size_t n_old,
								  const double *new_values, size_t n_new,
								  const CvMwCheckSpec *spec,
								  CvMwCheckResult *out);

/*
 * The k-th smallest (1-based, 1 <= k <= m*n) of the differences
 * new_sorted[j] - old_sorted[i], both samples sorted ascending, without
 * forming them all.  Exposed for tests and benchmarks.
 */
double		cv_pairwise_diff_select(const double *old_sorted, size_t m,
									const double *new_sorted, size_t n,
									int64_t k);

/* The standard normal quantile: x with Phi(x) = p, p in (0, 1). */
double		cv_normal_quantile(double p);

#endif							/* CV_HEALTH_STATS_H */
