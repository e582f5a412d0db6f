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

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "lib/stringinfo.h"
#include "nodes/parsenodes.h"
#include "utils/builtins.h"
#include "utils/hsearch.h"
#include "utils/lsyscache.h"

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

/* The query wrapping each verb: its rows folded into one row of arrays. */
static const char *const verb_sql[] = {
	[VERB_GET_UNITS] =
	"SELECT array_agg(unit::text), array_agg(labels::jsonb), array_agg(subunit::text),"
	" array_agg(coalesce(version::text, '')), array_agg(coalesce(status::text, 'ok'))"
	" FROM %s($1::text, $2::jsonb)",
	[VERB_SEND_UPDATE] =
	"SELECT array_agg(unit::text), array_agg(subunit::text), array_agg(error::text)"
	" FROM %s($1::text, $2::jsonb, $3::jsonb)",
	[VERB_CHECK_HEALTH] =
	"SELECT count(*), jsonb_agg(jsonb_build_object('unit', unit, 'reason', reason) ORDER BY unit)"
	" FILTER (WHERE healthy IS NOT TRUE)"
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

/* Call verb fn with the function's arguments 1..n; return its one row of arrays. */
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
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "conveyor: SPI_connect failed");
	if (SPI_execute_plan(verb_plan(fn, verb), values, nulls, false, 1) != SPI_OK_SELECT ||
		SPI_processed != 1 || SPI_tuptable->tupdesc->natts != desc->natts)
		elog(ERROR, "conveyor: calling a push-type verb returned no row");

	/* form the result in the caller's memory, under the declared column names */
	MemoryContextSwitchTo(callercxt);
	cols = palloc(sizeof(Datum) * desc->natts);
	colnulls = palloc(sizeof(bool) * desc->natts);
	for (int i = 0; i < desc->natts; i++)
		cols[i] = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, i + 1, &colnulls[i]);
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
