/*
 * history.c
 *	  Statement-level triggers on the engine's history and runtime tables,
 *	  in C because they run on every step of every push:
 *
 *	  cv_push_event_notify   sends each inserted push event on channel
 *	                         conveyor_events (docs/operations.md)
 *	  cv_push_ref_check      every push_id of the inserted rows names an
 *	                         existing push, which is locked FOR KEY SHARE:
 *	                         what a foreign key checks, once per statement
 *	                         instead of once per row
 *
 * Both read the statement's rows from its transition table. A step's rows
 * all belong to one push, so the reference check is usually one query. They replaced
 * PL/pgSQL triggers and per-row foreign-key checks that were a tenth of a
 * worker's CPU (the engine writes a step's events, and a phase's targets,
 * with one INSERT each).
 */
#include "conveyor.h"

#include "access/htup_details.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "commands/async.h"
#include "commands/trigger.h"
#include "executor/executor.h"
#include "executor/spi.h"
#include "executor/tuptable.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/fmgrprotos.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/syscache.h"
#include "utils/tuplestore.h"
#include "tcop/utility.h"
#include "utils/typcache.h"

PG_FUNCTION_INFO_V1(cv_push_event_notify);
PG_FUNCTION_INFO_V1(cv_push_ref_check);

/* Payloads must stay under PostgreSQL's 8000-byte limit (NOTIFY's). */
#define NOTIFY_PAYLOAD_LIMIT 8000
#define NOTIFY_CHANNEL "conveyor_events"

/* The trigger's call context, with errors for a misuse of the function. */
static TriggerData *
history_trigger_data(FunctionCallInfo fcinfo, const char *fn, bool statement_insert)
{
	TriggerData *td;

	if (!CALLED_AS_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("%s was not called by a trigger", fn)));
	td = (TriggerData *) fcinfo->context;
	if (statement_insert &&
		(!TRIGGER_FIRED_AFTER(td->tg_event) || !TRIGGER_FIRED_FOR_STATEMENT(td->tg_event) ||
		 !TRIGGER_FIRED_BY_INSERT(td->tg_event) || td->tg_newtable == NULL))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("%s must be an AFTER INSERT FOR EACH STATEMENT trigger with a NEW TABLE", fn)));
	return td;
}

/* Start reading a transition table from its first row, with a read pointer of our own. */
static void
history_rescan(Tuplestorestate *ts)
{
	int			ptr = tuplestore_alloc_read_pointer(ts, EXEC_FLAG_REWIND);

	tuplestore_select_read_pointer(ts, ptr);
	tuplestore_rescan(ts);
}

/* The column's number in the relation, or an error naming it. */
static AttrNumber
history_attnum(Relation rel, const char *col)
{
	AttrNumber	attnum = get_attnum(RelationGetRelid(rel), col);

	if (attnum == InvalidAttrNumber)
		elog(ERROR, "conveyor: column \"%s\" of \"%s\" is missing", col, RelationGetRelationName(rel));
	return attnum;
}

/* ---------------------------------------------------------------- notify */

typedef struct EventNote
{
	int64		id;
	char	   *payload;
} EventNote;

static int
event_note_cmp(const void *a, const void *b)
{
	int64		x = ((const EventNote *) a)->id;
	int64		y = ((const EventNote *) b)->id;

	return (x > y) - (x < y);
}

/* The OID of composite type conveyor.<name>. */
static Oid
history_type(const char *name)
{
	Oid			nsp = get_namespace_oid("conveyor", false);
	Oid			typid = GetSysCacheOid2(TYPENAMENSP, Anum_pg_type_oid,
										CStringGetDatum(name), ObjectIdGetDatum(nsp));

	if (!OidIsValid(typid))
		elog(ERROR, "conveyor: type conveyor.%s is missing", name);
	return typid;
}

/* row_to_json of a row of composite type typid: compact JSON, keys in column order. */
static char *
history_row_json(TupleDesc desc, Datum *values, bool *nulls)
{
	HeapTuple	tuple = heap_form_tuple(desc, values, nulls);
	Datum		json = DirectFunctionCall1(row_to_json, HeapTupleGetDatum(tuple));

	return text_to_cstring(DatumGetTextPP(json));
}

/*
 * SQL: conveyor._push_event_notify() RETURNS trigger, for
 *   AFTER INSERT ON conveyor.push_event REFERENCING NEW TABLE FOR EACH STATEMENT
 *
 * Sends every inserted event, in id order, as
 *   {"id":1,"push":2,"kind":"...","phase":0,"at":"...","actor":null,"reason":null,"detail":{...}}
 * (row_to_json of conveyor._event_note), or when that would not fit the
 * payload limit, as row_to_json of conveyor._event_note_short:
 *   {"id":1,"push":2,"kind":"...","phase":0,"at":"...","truncated":true}
 * Notifications go out at commit, and only then.
 */
Datum
cv_push_event_notify(PG_FUNCTION_ARGS)
{
	TriggerData *td = history_trigger_data(fcinfo, "conveyor._push_event_notify", true);
	Relation	rel = td->tg_relation;
	TupleDesc	reldesc = RelationGetDescr(rel);
	Tuplestorestate *ts = td->tg_newtable;
	AttrNumber	cols[8];
	static const char *const names[8] = {"id", "push_id", "kind", "phase", "at", "actor", "reason", "detail"};
	TupleDesc	note_desc;
	TupleDesc	short_desc;
	TupleTableSlot *slot;
	EventNote  *notes;
	int			n = 0;
	int			cap = 16;

	for (int i = 0; i < 8; i++)
		cols[i] = history_attnum(rel, names[i]);
	note_desc = lookup_rowtype_tupdesc_copy(history_type("_event_note"), -1);
	short_desc = lookup_rowtype_tupdesc_copy(history_type("_event_note_short"), -1);
	if (note_desc->natts != 8 || short_desc->natts != 6)
		elog(ERROR, "conveyor: types conveyor._event_note and _event_note_short do not have the expected columns");
	note_desc = BlessTupleDesc(note_desc);
	short_desc = BlessTupleDesc(short_desc);

	notes = palloc(sizeof(EventNote) * cap);
	slot = MakeSingleTupleTableSlot(reldesc, &TTSOpsMinimalTuple);
	history_rescan(ts);
	while (tuplestore_gettupleslot(ts, true, false, slot))
	{
		Datum		values[8];
		bool		nulls[8];
		char	   *payload;

		for (int i = 0; i < 8; i++)
			values[i] = slot_getattr(slot, cols[i], &nulls[i]);
		payload = history_row_json(note_desc, values, nulls);
		if (strlen(payload) >= NOTIFY_PAYLOAD_LIMIT)
		{
			Datum		svalues[6];
			bool		snulls[6];

			memcpy(svalues, values, sizeof(Datum) * 5);
			memcpy(snulls, nulls, sizeof(bool) * 5);
			svalues[5] = BoolGetDatum(true);
			snulls[5] = false;
			pfree(payload);
			payload = history_row_json(short_desc, svalues, snulls);
		}
		if (n == cap)
		{
			cap *= 2;
			notes = repalloc(notes, sizeof(EventNote) * cap);
		}
		notes[n].id = nulls[0] ? 0 : DatumGetInt64(values[0]);
		notes[n].payload = payload;
		n++;
	}
	ExecDropSingleTupleTableSlot(slot);

	if (n > 1)
		qsort(notes, n, sizeof(EventNote), event_note_cmp);
	if (n > 0)
		PreventCommandDuringRecovery("NOTIFY");
	for (int i = 0; i < n; i++)
		Async_Notify(NOTIFY_CHANNEL, notes[i].payload);
	return PointerGetDatum(NULL);
}

/* ---------------------------------------------------------------- push references */

/* The kept plan that locks one push FOR KEY SHARE: a foreign key's own check. */
static SPIPlanPtr ref_plan = NULL;

static SPIPlanPtr
history_ref_plan(void)
{
	if (ref_plan == NULL)
	{
		Oid			argtypes[1] = {INT8OID};
		SPIPlanPtr	plan;

		/* as a foreign key's: schema-qualified, ONLY, no operator lookup by search_path */
		plan = SPI_prepare("SELECT 1 FROM ONLY conveyor.push x WHERE x.id OPERATOR(pg_catalog.=) $1"
						   " FOR KEY SHARE OF x", 1, argtypes);
		if (plan == NULL)
			elog(ERROR, "conveyor: preparing the push reference check failed: %s",
				 SPI_result_code_string(SPI_result));
		if (SPI_keepplan(plan) != 0)
			elog(ERROR, "conveyor: keeping the push reference check failed");
		ref_plan = plan;
	}
	return ref_plan;
}

/* Whether push id exists, locking it FOR KEY SHARE. */
static bool
history_ref_exists(Datum id)
{
	Datum		values[1] = {id};

	if (SPI_execute_plan(history_ref_plan(), values, NULL, false, 1) != SPI_OK_SELECT)
		elog(ERROR, "conveyor: the push reference check failed");
	return SPI_processed == 1;
}

static int
int64_cmp(const void *a, const void *b)
{
	int64		x = DatumGetInt64(*(const Datum *) a);
	int64		y = DatumGetInt64(*(const Datum *) b);

	return (x > y) - (x < y);
}

/*
 * SQL: conveyor._push_ref_check() RETURNS trigger, for
 *   AFTER INSERT ON <table with push_id> REFERENCING NEW TABLE FOR EACH STATEMENT
 *   EXECUTE FUNCTION conveyor._push_ref_check('<constraint name for messages>')
 *
 * The referencing half of a foreign key (push_id) REFERENCES conveyor.push,
 * checked once per statement: every non-null push_id of the inserted rows
 * must name a push, and those pushes are locked FOR KEY SHARE until the end
 * of the transaction, so a concurrent delete waits (and then cascades) or,
 * having committed first, makes this fail. As a foreign key's check, it runs
 * as the owner of conveyor.push, which row-level security does not restrict.
 * Fails with 23503 and a foreign key's message, naming the first missing push.
 */
Datum
cv_push_ref_check(PG_FUNCTION_ARGS)
{
	TriggerData *td = history_trigger_data(fcinfo, "conveyor._push_ref_check", true);
	Relation	rel = td->tg_relation;
	const char *conname = td->tg_trigger->tgnargs > 0 ? td->tg_trigger->tgargs[0] : td->tg_trigger->tgname;
	AttrNumber	col = history_attnum(rel, "push_id");
	TupleTableSlot *slot;
	Datum	   *ids;
	int			n = 0;
	int			cap = 16;
	int			distinct = 0;
	Oid			save_userid;
	int			save_sec_context;
	Oid			owner;
	int64		missing = 0;
	bool		found_missing = false;

	ids = palloc(sizeof(Datum) * cap);
	slot = MakeSingleTupleTableSlot(RelationGetDescr(rel), &TTSOpsMinimalTuple);
	history_rescan(td->tg_newtable);
	while (tuplestore_gettupleslot(td->tg_newtable, true, false, slot))
	{
		bool		isnull;
		Datum		d = slot_getattr(slot, col, &isnull);

		if (isnull)
			continue;			/* MATCH SIMPLE: a null reference is not checked */
		if (n == cap)
		{
			cap *= 2;
			ids = repalloc(ids, sizeof(Datum) * cap);
		}
		ids[n++] = Int64GetDatum(DatumGetInt64(d));
	}
	ExecDropSingleTupleTableSlot(slot);
	if (n == 0)
		return PointerGetDatum(NULL);

	/* distinct ids, in order: the pushes get locked in a stable order too */
	qsort(ids, n, sizeof(Datum), int64_cmp);
	for (int i = 0; i < n; i++)
		if (distinct == 0 || DatumGetInt64(ids[i]) != DatumGetInt64(ids[distinct - 1]))
			ids[distinct++] = ids[i];

	{
		Oid			nsp = get_namespace_oid("conveyor", false);
		Oid			pushrel = get_relname_relid("push", nsp);
		HeapTuple	tup;

		if (!OidIsValid(pushrel))
			elog(ERROR, "conveyor: table conveyor.push is missing");
		tup = SearchSysCache1(RELOID, ObjectIdGetDatum(pushrel));
		if (!HeapTupleIsValid(tup))
			elog(ERROR, "cache lookup failed for relation %u", pushrel);
		owner = ((Form_pg_class) GETSTRUCT(tup))->relowner;
		ReleaseSysCache(tup);
	}

	GetUserIdAndSecContext(&save_userid, &save_sec_context);
	SetUserIdAndSecContext(owner, save_sec_context | SECURITY_LOCAL_USERID_CHANGE | SECURITY_NOFORCE_RLS);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "conveyor: SPI_connect failed");
	for (int i = 0; i < distinct && !found_missing; i++)
		if (!history_ref_exists(ids[i]))
		{
			missing = DatumGetInt64(ids[i]);
			found_missing = true;
		}
	SPI_finish();
	SetUserIdAndSecContext(save_userid, save_sec_context);

	if (found_missing)
		ereport(ERROR,
				(errcode(ERRCODE_FOREIGN_KEY_VIOLATION),
				 errmsg("insert or update on table \"%s\" violates foreign key constraint \"%s\"",
						RelationGetRelationName(rel), conname),
				 errdetail("Key (push_id)=(" INT64_FORMAT ") is not present in table \"push\".", missing),
				 errtableconstraint(rel, conname)));
	return PointerGetDatum(NULL);
}
