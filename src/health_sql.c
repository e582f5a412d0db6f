/*
 * health_sql.c
 *	  SQL wrappers around the pure C health math (health_stats.c): read a
 *	  window of samples, split it into the new and the old version, reduce and
 *	  judge each check, and hand back every number behind the verdict.
 *
 * Two entry points share one judge:
 *   cv_health_store_judge  every metric-store check of an evaluation in one
 *                          scan of conveyor.metric_sample.  Rows stream from
 *                          the executor into per-check buffers through a
 *                          DestReceiver, so no row is materialized twice and
 *                          the scan costs what the equivalent aggregate query
 *                          costs (test/bench/health_sql.sh measures both).
 *   cv_health_judge        one check over samples given as arrays (Prometheus
 *                          series parsed by SQL).
 * The checks arrive already validated (conveyor._healthcheck_parse); a bad
 * argument here is still an error, never a crash.
 */
#include "conveyor.h"

#include <math.h>

#include "catalog/pg_type.h"
#include "common/hashfn.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "nodes/params.h"
#include "tcop/dest.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "health_stats.h"

PG_FUNCTION_INFO_V1(cv_health_store_judge);
PG_FUNCTION_INFO_V1(cv_health_judge);

/* Most samples one side of one check takes: beyond, the check is invalid. */
#define SIDE_MAX_SAMPLES	((size_t) CV_MW_MAX_SAMPLES)

typedef enum CheckKind
{
	KIND_SIMPLE,
	KIND_COMPARISON,
	KIND_STATISTICAL
} CheckKind;

/* One check, as the judge needs it. */
typedef struct CheckSpec
{
	CheckKind	kind;
	CvReducer	reducer;
	CvBound		bound;
	double		threshold;
	CvMwCheckSpec mw;
	double		lookback_s;		/* window length, seconds */
} CheckSpec;

/* The samples of one version of one check: times, values, series ids. */
typedef struct Side
{
	CvSample   *s;
	uint64	   *sid;			/* (unit, subunit) hash; only for rate */
	size_t		n;
	size_t		cap;
	bool		overflow;		/* more than SIDE_MAX_SAMPLES were offered */
} Side;

/* What the judge found. */
typedef struct JudgeOut
{
	CvVerdict	verdict;
	size_t		n_new;
	size_t		n_old;
	bool		has_new;
	double		value_new;
	bool		has_old;
	double		value_old;
	bool		has_observed;
	double		observed;
	bool		has_mw;
	double		u;
	double		p;
	double		hl;
	double		ci_low;
	double		ci_high;
	char		reason[CV_HEALTH_REASON_LEN];
} JudgeOut;

/* ------------------------------------------------------------ parsing */

/* A check kind by name, or 22023. */
static CheckKind
kind_parse(const char *name)
{
	if (strcmp(name, "simple") == 0)
		return KIND_SIMPLE;
	if (strcmp(name, "comparison") == 0)
		return KIND_COMPARISON;
	if (strcmp(name, "statistical") == 0)
		return KIND_STATISTICAL;
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("unknown healthcheck kind \"%s\"", name),
			 errhint("A kind is simple, comparison or statistical.")));
	return KIND_SIMPLE;			/* not reached */
}

/* A reducer by name, or 22023. */
static CvReducer
reducer_parse(const char *name)
{
	CvReducer	r;

	if (!cv_reducer_parse(name, &r))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("unknown healthcheck reducer \"%s\"", name),
				 errhint("A reducer is avg, min, max, sum, count, rate, stddev, p50, p90, p95 or p99.")));
	return r;
}

/* A bound by name (NULL: upper, for statistical checks), or 22023. */
static CvBound
bound_parse(const char *name)
{
	if (name == NULL || strcmp(name, "upper") == 0)
		return CV_BOUND_UPPER;
	if (strcmp(name, "lower") == 0)
		return CV_BOUND_LOWER;
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("unknown healthcheck bound \"%s\"", name),
			 errhint("A bound is upper or lower.")));
	return CV_BOUND_UPPER;		/* not reached */
}

/* A direction by name (NULL: increase), or 22023. */
static CvDirection
direction_parse(const char *name)
{
	if (name == NULL || strcmp(name, "increase") == 0)
		return CV_DIRECTION_INCREASE;
	if (strcmp(name, "decrease") == 0)
		return CV_DIRECTION_DECREASE;
	if (strcmp(name, "either") == 0)
		return CV_DIRECTION_EITHER;
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("unknown healthcheck direction \"%s\"", name),
			 errhint("A direction is increase, decrease or either.")));
	return CV_DIRECTION_INCREASE;	/* not reached */
}

/* A one-dimensional array argument's elements, or 22023 if it has NULLs where none may be. */
static int
array_elems(ArrayType *a, Oid elemtype, Datum **values, bool **nulls, const char *what)
{
	int16		typlen;
	bool		typbyval;
	char		typalign;
	int			n;

	if (ARR_NDIM(a) > 1)
		ereport(ERROR,
				(errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
				 errmsg("%s must be a one-dimensional array", what)));
	get_typlenbyvalalign(elemtype, &typlen, &typbyval, &typalign);
	deconstruct_array(a, elemtype, typlen, typbyval, typalign, values, nulls, &n);
	return n;
}

/* The text of an array element, NULL for a NULL element. */
static char *
elem_text(Datum *values, bool *nulls, int i)
{
	return nulls[i] ? NULL : TextDatumGetCString(values[i]);
}

/* The float8 of an array element, dflt for a NULL element. */
static double
elem_float(Datum *values, bool *nulls, int i, double dflt)
{
	return nulls[i] ? dflt : DatumGetFloat8(values[i]);
}

/* Build a check from its settings (NULL bound/direction/threshold where they do not apply). */
static CheckSpec
spec_make(const char *kind, const char *reducer, const char *bound, double threshold,
		  double confidence, double tolerance, const char *direction, double lookback_s)
{
	CheckSpec	c;

	if (kind == NULL || reducer == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("a healthcheck needs a kind and a reducer")));
	memset(&c, 0, sizeof(c));
	c.kind = kind_parse(kind);
	c.reducer = reducer_parse(reducer);
	c.bound = bound_parse(bound);
	c.threshold = threshold;
	c.mw = cv_mw_check_spec_default(direction_parse(direction));
	if (!isnan(confidence))
		c.mw.confidence = confidence;
	if (!isnan(tolerance))
		c.mw.tolerance = tolerance;
	c.lookback_s = lookback_s;
	return c;
}

/* ------------------------------------------------------------ sides */

/* Append a sample to a side, growing it (beyond 1 GB if need be). */
static inline void
side_add(Side *side, double ts, double v, uint64 sid, bool with_sid)
{
	if (side->n >= side->cap)
	{
		size_t		cap;

		if (side->n >= SIDE_MAX_SAMPLES)
		{
			side->overflow = true;
			return;
		}
		cap = side->cap == 0 ? 1024 : side->cap * 2;
		if (side->s == NULL)
			side->s = MemoryContextAllocHuge(CurrentMemoryContext, cap * sizeof(CvSample));
		else
			side->s = repalloc_huge(side->s, cap * sizeof(CvSample));
		if (with_sid)
		{
			if (side->sid == NULL)
				side->sid = MemoryContextAllocHuge(CurrentMemoryContext, cap * sizeof(uint64));
			else
				side->sid = repalloc_huge(side->sid, cap * sizeof(uint64));
		}
		side->cap = cap;
	}
	side->s[side->n].ts = ts;
	side->s[side->n].value = v;
	if (with_sid)
		side->sid[side->n] = sid;
	side->n++;
}

/* Sort order of rate's samples: by series, then time, then value (a fixed tie order). */
typedef struct RateKey
{
	uint64		sid;
	CvSample	s;
} RateKey;

static int
rate_key_cmp(const void *a, const void *b)
{
	const RateKey *x = a;
	const RateKey *y = b;

	if (x->sid != y->sid)
		return x->sid < y->sid ? -1 : 1;
	if (x->s.ts != y->s.ts)
		return x->s.ts < y->s.ts ? -1 : 1;
	if (x->s.value != y->s.value)
		return x->s.value < y->s.value ? -1 : 1;
	return 0;
}

/*
 * rate over a side: the mean of the per-series rates.  A counter belongs to
 * one subunit, so a rate across subunits' interleaved samples would read
 * every switch between them as a reset; each series is rated alone, and the
 * mean keeps sides with different numbers of subunits comparable.  Series
 * without a rate (fewer than 2 samples, no time span) are left out; none
 * left is no data.
 */
static CvReduced
side_rate(const Side *side)
{
	RateKey    *keys;
	CvSample   *run;
	size_t		i;
	size_t		start;
	double		sum = 0.0;
	size_t		nrates = 0;
	CvReduced	r;

	if (side->n == 0)
		return cv_reduced_nodata();
	keys = MemoryContextAllocHuge(CurrentMemoryContext, side->n * sizeof(RateKey));
	for (i = 0; i < side->n; i++)
	{
		keys[i].sid = side->sid ? side->sid[i] : 0;
		keys[i].s = side->s[i];
	}
	qsort(keys, side->n, sizeof(RateKey), rate_key_cmp);
	run = MemoryContextAllocHuge(CurrentMemoryContext, side->n * sizeof(CvSample));
	for (start = 0; start < side->n;)
	{
		size_t		end = start;
		CvReduced	one;

		while (end < side->n && keys[end].sid == keys[start].sid)
		{
			run[end - start] = keys[end].s;
			end++;
		}
		one = cv_reduce(CV_REDUCE_RATE, run, end - start);
		if (one.status == CV_HEALTH_INVALID)
		{
			pfree(keys);
			pfree(run);
			return one;
		}
		if (one.status == CV_HEALTH_OK)
		{
			sum += one.value;
			nrates++;
		}
		start = end;
	}
	pfree(keys);
	pfree(run);
	if (nrates == 0)
	{
		r = cv_reduced_nodata();
		r.reason = "no series with 2 samples over a time span";
		r.nsamples = side->n;
		return r;
	}
	r = cv_reduced_value(sum / nrates);
	r.nsamples = side->n;
	return r;
}

/* Reduce a side with the check's reducer. */
static CvReduced
side_reduce(CvReducer reducer, const Side *side)
{
	if (side->overflow)
	{
		CvReduced	r = cv_reduced_nodata();

		r.status = CV_HEALTH_INVALID;
		r.reason = "the window holds more samples than a check takes (50 million)";
		r.nsamples = side->n;
		return r;
	}
	if (reducer == CV_REDUCE_RATE)
		return side_rate(side);
	return cv_reduce(reducer, side->s, side->n);
}

/* A side's values alone, for the Mann-Whitney test. */
static double *
side_values(const Side *side)
{
	double	   *v = MemoryContextAllocHuge(CurrentMemoryContext, Max(side->n, 1) * sizeof(double));
	size_t		i;

	for (i = 0; i < side->n; i++)
		v[i] = side->s[i].value;
	return v;
}

/* ------------------------------------------------------------ the judge */

/* Judge one check over its two sides (old is ignored by simple checks). */
static void
judge(const CheckSpec *c, const Side *newer, const Side *older, JudgeOut *out)
{
	CvReduced	rn;
	CvReduced	ro;

	memset(out, 0, sizeof(*out));
	out->n_new = newer->n;
	out->n_old = c->kind == KIND_SIMPLE ? 0 : older->n;
	rn = side_reduce(c->reducer, newer);
	if (rn.status == CV_HEALTH_OK)
	{
		out->has_new = true;
		out->value_new = rn.value;
	}
	if (c->kind != KIND_SIMPLE)
	{
		ro = side_reduce(c->reducer, older);
		if (ro.status == CV_HEALTH_OK)
		{
			out->has_old = true;
			out->value_old = ro.value;
		}
	}

	if (c->kind == KIND_SIMPLE || c->kind == KIND_COMPARISON)
	{
		CvCheckResult r;

		if (c->kind == KIND_SIMPLE)
			cv_check_simple(&rn, c->threshold, c->bound, &r);
		else
			cv_check_comparison(&ro, &rn, c->threshold, c->bound, &r);
		out->verdict = r.verdict;
		out->has_observed = r.has_observed;
		out->observed = r.observed;
		strlcpy(out->reason, r.reason, sizeof(out->reason));
	}
	else
	{
		CvMwCheckResult r;
		double	   *vo;
		double	   *vn;

		if (newer->overflow || older->overflow)
		{
			out->verdict = CV_VERDICT_INVALID;
			strlcpy(out->reason, "invalid: the window holds more samples than a check takes (50 million)",
					sizeof(out->reason));
			return;
		}
		vo = side_values(older);
		vn = side_values(newer);
		cv_check_mann_whitney(vo, older->n, vn, newer->n, &c->mw, &r);
		pfree(vo);
		pfree(vn);
		out->verdict = r.verdict;
		strlcpy(out->reason, r.reason, sizeof(out->reason));
		if (r.test.status == CV_HEALTH_OK)
		{
			out->has_mw = true;
			out->u = r.test.u;
			/* the p-value of the alternative the check fails on */
			out->p = c->mw.direction == CV_DIRECTION_INCREASE ? r.test.p_greater :
				c->mw.direction == CV_DIRECTION_DECREASE ? r.test.p_less : r.test.p_two_sided;
			out->hl = r.test.hl;
			out->ci_low = r.test.ci_low;
			out->ci_high = r.test.ci_high;
		}
	}
}

/* The result word stored with an evaluation. */
static const char *
result_word(CvVerdict v)
{
	switch (v)
	{
		case CV_VERDICT_PASS:
			return "pass";
		case CV_VERDICT_FAIL:
			return "fail";
		case CV_VERDICT_NODATA:
			return "nodata";
		case CV_VERDICT_INVALID:
			return "invalid";
	}
	return "invalid";
}

/* Fill a result row's columns from a judgement (after i, when has_index). */
static void
out_row(const JudgeOut *o, Datum *values, bool *nulls)
{
	int			k = 0;

	values[k] = CStringGetTextDatum(result_word(o->verdict));
	nulls[k++] = false;
	values[k] = Int64GetDatum((int64) o->n_new);
	nulls[k++] = false;
	values[k] = Int64GetDatum((int64) o->n_old);
	nulls[k++] = false;
	values[k] = Float8GetDatum(o->value_new);
	nulls[k++] = !o->has_new;
	values[k] = Float8GetDatum(o->value_old);
	nulls[k++] = !o->has_old;
	values[k] = Float8GetDatum(o->observed);
	nulls[k++] = !o->has_observed;
	values[k] = Float8GetDatum(o->u);
	nulls[k++] = !o->has_mw;
	values[k] = Float8GetDatum(o->p);
	nulls[k++] = !o->has_mw;
	values[k] = Float8GetDatum(o->hl);
	nulls[k++] = !o->has_mw;
	values[k] = Float8GetDatum(o->ci_low);
	nulls[k++] = !o->has_mw;
	values[k] = Float8GetDatum(o->ci_high);
	nulls[k++] = !o->has_mw;
	values[k] = CStringGetTextDatum(o->reason);
	nulls[k++] = false;
}

#define OUT_COLS 12

/* ------------------------------------------------------------ metric store */

/* One distinct metric of an evaluation and the checks reading it. */
typedef struct MetricSlot
{
	const char *name;
	int			len;
	int		   *checks;
	int			nchecks;
	bool		rate;			/* some check rates it: track series */
} MetricSlot;

/* The scan's state, reached from the DestReceiver. */
typedef struct StoreScan
{
	DestReceiver pub;
	MetricSlot *metrics;
	int			nmetrics;
	CheckSpec  *checks;
	Side	   *newer;			/* per check */
	Side	   *older;			/* per check */
	double		end_s;			/* window end, seconds since 2000 */
	MemoryContext cxt;
} StoreScan;

/* Route one row (metric, is_new, unit, subunit, at, value) to its checks' sides. */
static bool
store_receive(TupleTableSlot *slot, DestReceiver *self)
{
	StoreScan  *st = (StoreScan *) self;
	text	   *metric;
	const char *mdata;
	int			mlen;
	bool		is_new;
	double		ts;
	double		v;
	int			m;
	uint64		sid = 0;
	MemoryContext old;

	slot_getallattrs(slot);
	if (slot->tts_isnull[0] || slot->tts_isnull[1] || slot->tts_isnull[4] || slot->tts_isnull[5])
		return true;
	metric = (text *) DatumGetPointer(slot->tts_values[0]);
	if (VARATT_IS_EXTENDED(metric))
		metric = pg_detoast_datum_packed(metric);
	mdata = VARDATA_ANY(metric);
	mlen = VARSIZE_ANY_EXHDR(metric);
	for (m = 0; m < st->nmetrics; m++)
		if (st->metrics[m].len == mlen && memcmp(st->metrics[m].name, mdata, mlen) == 0)
			break;
	if (m == st->nmetrics)
		return true;
	is_new = DatumGetBool(slot->tts_values[1]);
	ts = (double) DatumGetTimestampTz(slot->tts_values[4]) / USECS_PER_SEC;
	v = DatumGetFloat8(slot->tts_values[5]);
	if (st->metrics[m].rate)
	{
		/* a series is a (unit, subunit); hashed, as only equality matters */
		int			k;

		for (k = 2; k <= 3; k++)
		{
			uint64		h = 0x9e3779b97f4a7c15ULL;

			if (!slot->tts_isnull[k])
			{
				text	   *t = (text *) DatumGetPointer(slot->tts_values[k]);

				if (VARATT_IS_EXTENDED(t))
					t = pg_detoast_datum_packed(t);
				h = hash_bytes_extended((const unsigned char *) VARDATA_ANY(t), VARSIZE_ANY_EXHDR(t), k);
			}
			sid = hash_combine64(sid, h);
		}
	}
	old = MemoryContextSwitchTo(st->cxt);
	for (int j = 0; j < st->metrics[m].nchecks; j++)
	{
		int			c = st->metrics[m].checks[j];
		const CheckSpec *spec = &st->checks[c];

		/* each check has its own window: (end - lookback, end] */
		if (ts <= st->end_s - spec->lookback_s)
			continue;
		if (is_new)
			side_add(&st->newer[c], ts, v, sid, st->metrics[m].rate);
		else if (spec->kind != KIND_SIMPLE)
			side_add(&st->older[c], ts, v, sid, st->metrics[m].rate);
	}
	MemoryContextSwitchTo(old);
	return true;
}

static void
store_startup(DestReceiver *self, int operation, TupleDesc typeinfo)
{
}

static void
store_shutdown(DestReceiver *self)
{
}

static void
store_destroy(DestReceiver *self)
{
}

/*
 * SQL: conveyor._health_store_judge(service text, new_version text,
 *        old_versions text[], window_end timestamptz, metrics text[],
 *        kinds text[], reducers text[], lookbacks float8[] (seconds),
 *        bounds text[], thresholds float8[], confidences float8[],
 *        tolerances float8[], directions text[])
 *   RETURNS TABLE(i int, result text, n_new bigint, n_old bigint,
 *        value_new float8, value_old float8, observed float8, u float8,
 *        p float8, hl float8, ci_low float8, ci_high float8, reason text)
 * One row per check (i from 1, in the order given), from one scan of the
 * store: the service's rows of the checks' metrics, on the new or an old
 * version, in the longest window.
 */
Datum
cv_health_store_judge(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	Datum	   *mv, *kv, *rv, *lv, *bv, *tv, *cv, *ov, *dv;
	bool	   *mn, *kn, *rn, *ln, *bn, *tn, *cn, *on, *dn;
	int			n;
	StoreScan	st;
	double		max_lookback = 0;
	TimestampTz end;
	ParamListInfo params;
	SPIExecuteOptions opts;
	int			rc;
	MemoryContext cxt;
	MemoryContext oldcxt;

	/* no metric-store check: nothing to read */
	if (PG_ARGISNULL(4))
	{
		InitMaterializedSRF(fcinfo, 0);
		return (Datum) 0;
	}
	for (int a = 0; a < 13; a++)
		if (a != 1 && a != 2 && PG_ARGISNULL(a))
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("argument %d of conveyor._health_store_judge must not be NULL", a + 1)));

	InitMaterializedSRF(fcinfo, 0);

	n = array_elems(PG_GETARG_ARRAYTYPE_P(4), TEXTOID, &mv, &mn, "metrics");
	if (array_elems(PG_GETARG_ARRAYTYPE_P(5), TEXTOID, &kv, &kn, "kinds") != n ||
		array_elems(PG_GETARG_ARRAYTYPE_P(6), TEXTOID, &rv, &rn, "reducers") != n ||
		array_elems(PG_GETARG_ARRAYTYPE_P(7), FLOAT8OID, &lv, &ln, "lookbacks") != n ||
		array_elems(PG_GETARG_ARRAYTYPE_P(8), TEXTOID, &bv, &bn, "bounds") != n ||
		array_elems(PG_GETARG_ARRAYTYPE_P(9), FLOAT8OID, &tv, &tn, "thresholds") != n ||
		array_elems(PG_GETARG_ARRAYTYPE_P(10), FLOAT8OID, &cv, &cn, "confidences") != n ||
		array_elems(PG_GETARG_ARRAYTYPE_P(11), FLOAT8OID, &ov, &on, "tolerances") != n ||
		array_elems(PG_GETARG_ARRAYTYPE_P(12), TEXTOID, &dv, &dn, "directions") != n)
		ereport(ERROR,
				(errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
				 errmsg("the check arrays of conveyor._health_store_judge differ in length")));
	if (n == 0)
		return (Datum) 0;

	cxt = AllocSetContextCreate(CurrentMemoryContext, "conveyor health window", ALLOCSET_DEFAULT_SIZES);
	oldcxt = MemoryContextSwitchTo(cxt);

	memset(&st, 0, sizeof(st));
	st.cxt = cxt;
	st.checks = palloc0(n * sizeof(CheckSpec));
	st.newer = palloc0(n * sizeof(Side));
	st.older = palloc0(n * sizeof(Side));
	st.metrics = palloc0(n * sizeof(MetricSlot));
	for (int i = 0; i < n; i++)
	{
		char	   *metric = elem_text(mv, mn, i);
		double		lb = elem_float(lv, ln, i, NAN);
		int			m;

		if (metric == NULL || !(lb > 0 && isfinite(lb)))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("check %d of conveyor._health_store_judge needs a metric and a positive lookback", i + 1)));
		st.checks[i] = spec_make(elem_text(kv, kn, i), elem_text(rv, rn, i), elem_text(bv, bn, i),
								 elem_float(tv, tn, i, NAN), elem_float(cv, cn, i, NAN),
								 elem_float(ov, on, i, NAN), elem_text(dv, dn, i), lb);
		max_lookback = Max(max_lookback, lb);
		for (m = 0; m < st.nmetrics; m++)
			if (strcmp(st.metrics[m].name, metric) == 0)
				break;
		if (m == st.nmetrics)
		{
			st.metrics[m].name = metric;
			st.metrics[m].len = strlen(metric);
			st.metrics[m].checks = palloc(n * sizeof(int));
			st.nmetrics++;
		}
		st.metrics[m].checks[st.metrics[m].nchecks++] = i;
		if (st.checks[i].reducer == CV_REDUCE_RATE)
			st.metrics[m].rate = true;
	}
	end = PG_GETARG_TIMESTAMPTZ(3);
	st.end_s = (double) end / USECS_PER_SEC;

	st.pub.receiveSlot = store_receive;
	st.pub.rStartup = store_startup;
	st.pub.rShutdown = store_shutdown;
	st.pub.rDestroy = store_destroy;
	st.pub.mydest = DestNone;

	/* $1 service, $2 metrics, $3 new version, $4 old versions, $5 start, $6 end */
	params = makeParamList(6);
	params->numParams = 6;
	{
		ArrayType  *metrics_arr;
		Datum	   *md = palloc(st.nmetrics * sizeof(Datum));
		Oid			types[6] = {TEXTOID, TEXTARRAYOID, TEXTOID, TEXTARRAYOID, TIMESTAMPTZOID, TIMESTAMPTZOID};
		Datum		vals[6];
		bool		isnull[6] = {false, false, PG_ARGISNULL(1), false, false, false};

		for (int m = 0; m < st.nmetrics; m++)
			md[m] = CStringGetTextDatum(st.metrics[m].name);
		metrics_arr = construct_array(md, st.nmetrics, TEXTOID, -1, false, TYPALIGN_INT);
		vals[0] = PG_GETARG_DATUM(0);
		vals[1] = PointerGetDatum(metrics_arr);
		vals[2] = PG_ARGISNULL(1) ? (Datum) 0 : PG_GETARG_DATUM(1);
		vals[3] = PG_ARGISNULL(2) ? PointerGetDatum(construct_empty_array(TEXTOID)) : PG_GETARG_DATUM(2);
		vals[4] = TimestampTzGetDatum(end - (TimestampTz) (max_lookback * USECS_PER_SEC));
		vals[5] = TimestampTzGetDatum(end);
		for (int k = 0; k < 6; k++)
		{
			params->params[k].value = vals[k];
			params->params[k].isnull = isnull[k];
			params->params[k].pflags = PARAM_FLAG_CONST;
			params->params[k].ptype = types[k];
		}
	}

	if ((rc = SPI_connect()) != SPI_OK_CONNECT)
		elog(ERROR, "conveyor: SPI_connect failed: %s", SPI_result_code_string(rc));
	memset(&opts, 0, sizeof(opts));
	opts.params = params;
	opts.read_only = true;
	opts.dest = &st.pub;
	/*
	 * The window is (start, end]: the index on (service, metric, at) and the
	 * daily partitions bound the scan; old versions are those the push's
	 * subunits ran before it (NULL new version: nothing is new).
	 */
	rc = SPI_execute_extended(
		"SELECT m.metric, m.version = $3, m.unit, m.subunit, m.at, m.value "
		"  FROM conveyor.metric_sample m "
		" WHERE m.service = $1 AND m.metric = ANY ($2) "
		"   AND (m.version = $3 OR m.version = ANY ($4)) "
		"   AND m.at > $5 AND m.at <= $6",
		&opts);
	/* SPI says UTILITY for a SELECT whose rows went to a DestNone receiver */
	if (rc != SPI_OK_SELECT && rc != SPI_OK_UTILITY)
		elog(ERROR, "conveyor: reading the metric store failed: %s", SPI_result_code_string(rc));
	SPI_finish();

	for (int i = 0; i < n; i++)
	{
		JudgeOut	o;
		Datum		values[OUT_COLS + 1];
		bool		nulls[OUT_COLS + 1];

		MemoryContextSwitchTo(cxt);
		judge(&st.checks[i], &st.newer[i], &st.older[i], &o);
		MemoryContextSwitchTo(oldcxt);
		values[0] = Int32GetDatum(i + 1);
		nulls[0] = false;
		out_row(&o, values + 1, nulls + 1);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	MemoryContextSwitchTo(oldcxt);
	MemoryContextDelete(cxt);
	return (Datum) 0;
}

/* ------------------------------------------------------------ samples as arrays */

/* Fill a side from parallel arrays (series ids may be NULL: one series). */
static void
side_from_arrays(Side *side, ArrayType *sids, ArrayType *ts, ArrayType *vals, const char *which)
{
	Datum	   *sd = NULL, *td, *vd;
	bool	   *sn = NULL, *tn, *vn;
	int			n;
	bool		with_sid = sids != NULL;

	n = array_elems(vals, FLOAT8OID, &vd, &vn, which);
	if (array_elems(ts, FLOAT8OID, &td, &tn, which) != n ||
		(with_sid && array_elems(sids, INT8OID, &sd, &sn, which) != n))
		ereport(ERROR,
				(errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
				 errmsg("the %s sample arrays differ in length", which)));
	for (int i = 0; i < n; i++)
	{
		if (vn[i] || tn[i] || (with_sid && sn[i]))
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("%s sample %d is NULL", which, i + 1)));
		side_add(side, DatumGetFloat8(td[i]), DatumGetFloat8(vd[i]),
				 with_sid ? (uint64) DatumGetInt64(sd[i]) : 0, with_sid);
	}
}

/*
 * SQL: conveyor._health_judge(kind text, reducer text, bound text,
 *        threshold float8, confidence float8, tolerance float8,
 *        direction text, new_series bigint[], new_ts float8[],
 *        new_values float8[], old_series bigint[], old_ts float8[],
 *        old_values float8[])
 *   RETURNS TABLE(result text, n_new bigint, ... reason text)  (one row)
 * One check over samples given as arrays: times in seconds, series ids
 * telling the series apart for rate.
 */
Datum
cv_health_judge(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	CheckSpec	c;
	Side		newer;
	Side		older;
	JudgeOut	o;
	Datum		values[OUT_COLS];
	bool		nulls[OUT_COLS];

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("conveyor._health_judge needs a kind and a reducer")));
	InitMaterializedSRF(fcinfo, 0);
	c = spec_make(text_to_cstring(PG_GETARG_TEXT_PP(0)), text_to_cstring(PG_GETARG_TEXT_PP(1)),
				  PG_ARGISNULL(2) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(2)),
				  PG_ARGISNULL(3) ? NAN : PG_GETARG_FLOAT8(3),
				  PG_ARGISNULL(4) ? NAN : PG_GETARG_FLOAT8(4),
				  PG_ARGISNULL(5) ? NAN : PG_GETARG_FLOAT8(5),
				  PG_ARGISNULL(6) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(6)), 1.0);
	memset(&newer, 0, sizeof(newer));
	memset(&older, 0, sizeof(older));
	if (!PG_ARGISNULL(8) && !PG_ARGISNULL(9))
		side_from_arrays(&newer, PG_ARGISNULL(7) ? NULL : PG_GETARG_ARRAYTYPE_P(7),
						 PG_GETARG_ARRAYTYPE_P(8), PG_GETARG_ARRAYTYPE_P(9), "new");
	if (!PG_ARGISNULL(11) && !PG_ARGISNULL(12))
		side_from_arrays(&older, PG_ARGISNULL(10) ? NULL : PG_GETARG_ARRAYTYPE_P(10),
						 PG_GETARG_ARRAYTYPE_P(11), PG_GETARG_ARRAYTYPE_P(12), "old");
	judge(&c, &newer, &older, &o);
	out_row(&o, values, nulls);
	tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	return (Datum) 0;
}
