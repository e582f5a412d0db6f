/*
 * verbs.c
 *	  Calling a push type's SQL verbs with prepared plans.
 *
 * The engine calls get_units, send_update and check_health on every phase of
 * every push. Built with EXECUTE in PL/pgSQL each call would be parsed and
 * planned again; here each (verb, function) pair gets one plan, prepared on
 * first use and kept for the life of the worker. A function dropped and made
 * again has a new OID and so gets a new plan; a replaced body is picked up by
 * the plan cache as usual.
 */
#include "conveyor.h"

#include "catalog/pg_collation.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "lib/stringinfo.h"
#include "nodes/parsenodes.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/hsearch.h"
#include "utils/lsyscache.h"
#include "utils/varlena.h"

PG_FUNCTION_INFO_V1(cv_call_get_units);
PG_FUNCTION_INFO_V1(cv_call_send_update);
PG_FUNCTION_INFO_V1(cv_call_check_health);

typedef enum CvVerb
{
	VERB_GET_UNITS,
	VERB_SEND_UPDATE,
	VERB_CHECK_HEALTH
} CvVerb;

typedef struct VerbPlanKey
{
	Oid			fn;
	CvVerb		verb;
} VerbPlanKey;

typedef struct VerbPlanEntry
{
	VerbPlanKey key;
	SPIPlanPtr	plan;
} VerbPlanEntry;

static HTAB *verb_plans = NULL;

/*
 * The query around each verb: its rows with the columns cast to what the
 * engine takes. The rows are folded into arrays here, in C: an aggregating
 * query (array_agg and a sorted jsonb_agg) set up an Agg node and a sort on
 * every call, a tenth of a worker's CPU per push on a small fleet.
 */
static const char *const verb_sql[] = {
	[VERB_GET_UNITS] =
	"SELECT unit::text, labels::jsonb, subunit::text,"
	" coalesce(version::text, ''), coalesce(status::text, 'ok')"
	" FROM %s($1::text, $2::jsonb)",
	[VERB_SEND_UPDATE] =
	"SELECT unit::text, subunit::text, error::text"
	" FROM %s($1::text, $2::jsonb, $3::jsonb)",
	[VERB_CHECK_HEALTH] =
	"SELECT unit::text, reason::text, healthy IS NOT TRUE"
	" FROM %s($1::text, $2::jsonb, $3::text[])",
};

static const Oid verb_argtypes[][3] = {
	[VERB_GET_UNITS] = {TEXTOID, JSONBOID, InvalidOid},
	[VERB_SEND_UPDATE] = {TEXTOID, JSONBOID, JSONBOID},
	[VERB_CHECK_HEALTH] = {TEXTOID, JSONBOID, TEXTARRAYOID},
};

static const int verb_nargs[] = {2, 3, 3};

/* The prepared plan for calling function fn as verb, made on first use. */
static SPIPlanPtr
verb_plan(Oid fn, CvVerb verb)
{
	VerbPlanKey key;
	VerbPlanEntry *entry;
	bool		found;

	if (verb_plans == NULL)
	{
		HASHCTL		ctl;

		ctl.keysize = sizeof(VerbPlanKey);
		ctl.entrysize = sizeof(VerbPlanEntry);
		verb_plans = hash_create("conveyor verb plans", 32, &ctl, HASH_ELEM | HASH_BLOBS);
	}
	memset(&key, 0, sizeof(key));
	key.fn = fn;
	key.verb = verb;
	entry = hash_search(verb_plans, &key, HASH_ENTER, &found);
	if (!found || entry->plan == NULL)
	{
		char	   *nsp = get_namespace_name(get_func_namespace(fn));
		char	   *name = get_func_name(fn);
		StringInfoData sql;
		SPIPlanPtr	plan;

		entry->plan = NULL;
		if (nsp == NULL || name == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_FUNCTION),
					 errmsg("push-type verb function %u does not exist", fn),
					 errhint("The push type names a function that was dropped; register the push type again.")));
		initStringInfo(&sql);
		appendStringInfo(&sql, verb_sql[verb], quote_qualified_identifier(nsp, name));
		/*
		 * Always the generic plan: a verb written in plain SQL is inlined
		 * into this query, and the plan cache's cost heuristic would then
		 * keep choosing custom plans, planning again on every call.
		 */
		plan = SPI_prepare_cursor(sql.data, verb_nargs[verb], (Oid *) verb_argtypes[verb],
								  CURSOR_OPT_GENERIC_PLAN);
		if (plan == NULL)
			elog(ERROR, "conveyor: preparing \"%s\" failed: %s", sql.data,
				 SPI_result_code_string(SPI_result));
		if (SPI_keepplan(plan) != 0)
			elog(ERROR, "conveyor: keeping a verb plan failed");
		entry->plan = plan;
	}
	return entry->plan;
}

/* Each column of the rows as an array (NULL when there are none, as array_agg), in cxt. */
static void
rows_to_arrays(SPITupleTable *tt, uint64 nrows, Datum *cols, bool *colnulls, MemoryContext cxt)
{
	TupleDesc	td = tt->tupdesc;

	for (int c = 0; c < td->natts; c++)
	{
		Oid			elemtype = TupleDescAttr(td, c)->atttypid;
		ArrayBuildState *acc;

		colnulls[c] = nrows == 0;
		if (nrows == 0)
			continue;
		acc = initArrayResult(elemtype, cxt, false);
		for (uint64 r = 0; r < nrows; r++)
		{
			bool		isnull;
			Datum		d = SPI_getbinval(tt->vals[r], td, c + 1, &isnull);

			accumArrayResult(acc, d, isnull, elemtype, cxt);
		}
		cols[c] = makeArrayResult(acc, cxt);
	}
}

/* An unhealthy unit of a check_health answer. */
typedef struct Unhealthy
{
	text	   *unit;
	text	   *reason;
} Unhealthy;

/* ORDER BY unit (the default collation), NULLs last. */
static int
unhealthy_cmp(const void *a, const void *b)
{
	const Unhealthy *x = a;
	const Unhealthy *y = b;

	if (x->unit == NULL || y->unit == NULL)
		return (x->unit == NULL) - (y->unit == NULL);
	return varstr_cmp(VARDATA_ANY(x->unit), VARSIZE_ANY_EXHDR(x->unit),
					  VARDATA_ANY(y->unit), VARSIZE_ANY_EXHDR(y->unit), DEFAULT_COLLATION_OID);
}

static void
push_text(JsonbParseState **st, const char *key, text *value)
{
	JsonbValue	v;

	v.type = jbvString;
	v.val.string.val = (char *) key;
	v.val.string.len = strlen(key);
	pushJsonbValue(st, WJB_KEY, &v);
	if (value == NULL)
		v.type = jbvNull;
	else
	{
		v.val.string.val = VARDATA_ANY(value);
		v.val.string.len = VARSIZE_ANY_EXHDR(value);
	}
	pushJsonbValue(st, WJB_VALUE, &v);
}

/*
 * check_health's rows as (units checked, the unhealthy ones as
 * [{"unit": ..., "reason": ...}] by unit, NULL when none), in cxt.
 */
static void
rows_to_health(SPITupleTable *tt, uint64 nrows, Datum *cols, bool *colnulls, MemoryContext cxt)
{
	TupleDesc	td = tt->tupdesc;
	Unhealthy  *bad = palloc(sizeof(Unhealthy) * Max(nrows, 1));
	int			nbad = 0;
	JsonbParseState *st = NULL;
	JsonbValue *res;
	MemoryContext old;

	for (uint64 r = 0; r < nrows; r++)
	{
		bool		isnull;
		Datum		d;

		if (!DatumGetBool(SPI_getbinval(tt->vals[r], td, 3, &isnull)))
			continue;
		d = SPI_getbinval(tt->vals[r], td, 1, &isnull);
		bad[nbad].unit = isnull ? NULL : DatumGetTextPP(d);
		d = SPI_getbinval(tt->vals[r], td, 2, &isnull);
		bad[nbad].reason = isnull ? NULL : DatumGetTextPP(d);
		nbad++;
	}
	cols[0] = Int64GetDatum((int64) nrows);
	colnulls[0] = false;
	colnulls[1] = nbad == 0;
	if (nbad == 0)
		return;
	qsort(bad, nbad, sizeof(Unhealthy), unhealthy_cmp);
	old = MemoryContextSwitchTo(cxt);
	pushJsonbValue(&st, WJB_BEGIN_ARRAY, NULL);
	for (int i = 0; i < nbad; i++)
	{
		pushJsonbValue(&st, WJB_BEGIN_OBJECT, NULL);
		push_text(&st, "unit", bad[i].unit);
		push_text(&st, "reason", bad[i].reason);
		pushJsonbValue(&st, WJB_END_OBJECT, NULL);
	}
	res = pushJsonbValue(&st, WJB_END_ARRAY, NULL);
	cols[1] = JsonbPGetDatum(JsonbValueToJsonb(res));
	MemoryContextSwitchTo(old);
}

/* Call verb fn with the function's arguments 1..n; return its rows folded into one row. */
static Datum
verb_call(FunctionCallInfo fcinfo, CvVerb verb)
{
	Oid			fn = PG_GETARG_OID(0);
	int			nargs = verb_nargs[verb];
	Datum		values[3];
	char		nulls[3];
	TupleDesc	desc;
	Datum	   *cols;
	bool	   *colnulls;
	MemoryContext callercxt = CurrentMemoryContext;
	HeapTuple	tuple;

	if (get_call_result_type(fcinfo, NULL, &desc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "conveyor: verb wrapper must return a record");
	desc = BlessTupleDesc(desc);
	for (int i = 0; i < nargs; i++)
	{
		values[i] = PG_ARGISNULL(i + 1) ? (Datum) 0 : PG_GETARG_DATUM(i + 1);
		nulls[i] = PG_ARGISNULL(i + 1) ? 'n' : ' ';
	}
	cols = palloc(sizeof(Datum) * desc->natts);
	colnulls = palloc(sizeof(bool) * desc->natts);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "conveyor: SPI_connect failed");
	if (SPI_execute_plan(verb_plan(fn, verb), values, nulls, false, 0) != SPI_OK_SELECT)
		elog(ERROR, "conveyor: calling a push-type verb failed");

	/* the result goes to the caller's memory, under the declared column names */
	if (verb == VERB_CHECK_HEALTH)
		rows_to_health(SPI_tuptable, SPI_processed, cols, colnulls, callercxt);
	else
	{
		if (SPI_tuptable->tupdesc->natts != desc->natts)
			elog(ERROR, "conveyor: a push-type verb's rows do not match its wrapper");
		rows_to_arrays(SPI_tuptable, SPI_processed, cols, colnulls, callercxt);
	}
	MemoryContextSwitchTo(callercxt);
	tuple = heap_form_tuple(desc, cols, colnulls);
	SPI_finish();
	return HeapTupleGetDatum(tuple);
}

/* SQL: conveyor._call_get_units(fn, service, config) -> units, labels, subunits, versions, statuses */
Datum
cv_call_get_units(PG_FUNCTION_ARGS)
{
	return verb_call(fcinfo, VERB_GET_UNITS);
}

/* SQL: conveyor._call_send_update(fn, service, config, updates) -> refused units, subunits, errors */
Datum
cv_call_send_update(PG_FUNCTION_ARGS)
{
	return verb_call(fcinfo, VERB_SEND_UPDATE);
}

/* SQL: conveyor._call_check_health(fn, service, config, units) -> units checked, unhealthy */
Datum
cv_call_check_health(PG_FUNCTION_ARGS)
{
	return verb_call(fcinfo, VERB_CHECK_HEALTH);
}
