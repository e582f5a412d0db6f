/*
 * engine.c
 *	  The worker side of the push engine: claim a due push with
 *	  FOR UPDATE SKIP LOCKED, advance it one step, a few steps per short
 *	  transaction, and report when the next push is due so the worker can
 *	  sleep until then.
 *
 * The step itself is conveyor._push_step() (src/sql/0.3/300_engine.sql). It
 * runs in a subtransaction: if it fails, the failure is rolled back, then
 * recorded and classified in the same transaction, and the worker carries on
 * with the next push.
 */
#include "conveyor.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "utils/builtins.h"
#include "utils/memutils.h"
#include "utils/resowner.h"
#include "utils/timestamp.h"

#include "engine.h"
#include "http_call.h"
#include "txn.h"

PG_FUNCTION_INFO_V1(cv_queue_place);

/* Steps one call of cv_engine_work takes before returning to the worker loop. */
#define ENGINE_BURST 64

/*
 * Steps that share one transaction, each in its own subtransaction: at most
 * this many, and none begun after the transaction is this old. Sharing
 * saves a commit per step, and PL/pgSQL builds the state of each of the
 * step's expressions once per transaction instead of once per step (together
 * about a fifth of a worker's CPU per step). The bounds keep what a step
 * wrote from waiting long for its commit, and the pushes it locked from
 * staying locked long; a push that is due alone is committed at once.
 */
#define ENGINE_TXN_STEPS 16
#define ENGINE_TXN_MS 10

/*
 * The bound instead while this worker has calls in flight or to send: their
 * answers and requests wait for the transaction's end, and a push waiting on
 * a fast endpoint should not wait long behind many others' steps.
 */
#define ENGINE_TXN_MS_CALLS 1

/*
 * When every due push is held by another worker, wait this long before
 * looking again rather than spinning: the holder commits within a step.
 */
#define ENGINE_HELD_WAIT_MS 10

/*
 * Claim the due push first in the queue that nobody else is working on; 0 if
 * none is due. The queue orders by next_step_at, except that a push stands
 * behind by the time its push-type calls take (conveyor.push.call_ms, at most
 * 1 s; conveyor._queue_place): the index is scanned only that far past now.
 * Now is a parameter, not clock_timestamp(): a volatile bound cannot bound an
 * index scan, and with nothing due the scan read every running push's entry
 * (5,000 baking pushes added about 0.7 ms to every look for work).
 */
static int64
engine_claim(bool *fast)
{
	bool		isnull;
	Datum		d;
	Oid			types[1] = {TIMESTAMPTZOID};
	Datum		values[1];

	static SPIPlanPtr plan = NULL;

	*fast = false;
	values[0] = TimestampTzGetDatum(GetCurrentTimestamp());
	/* fast: its push-type calls take at most CV_FAST_CALL_MS */
	if (SPI_execute_plan(cv_kept_plan(&plan, "SELECT id, call_ms <= " CppAsString2(CV_FAST_CALL_MS)
									  " FROM conveyor.push"
									  " WHERE state = 'running' AND next_step_at <= $1"
									  " AND conveyor._queue_place(next_step_at, call_ms) <= $1 + interval '1 second'"
									  " ORDER BY conveyor._queue_place(next_step_at, call_ms) LIMIT 1 FOR UPDATE SKIP LOCKED",
									  1, types),
						 values, NULL, false, 1) != SPI_OK_SELECT)
		elog(ERROR, "conveyor: claiming a push failed");
	if (SPI_processed == 0)
		return 0;
	d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull);
	*fast = !isnull && DatumGetBool(d);
	d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	return isnull ? 0 : DatumGetInt64(d);
}

/*
 * Milliseconds until the next running push is due (max_sleep when none is).
 * Called when nothing could be claimed, so a push due now is held by another
 * worker: wait briefly for it instead of returning 0.
 */
static long
engine_next_due_ms(void)
{
	bool		isnull;
	Datum		d;
	double		ms;

	/*
	 * Through push_queue: a push stands in the queue at most a second after
	 * its due time, so the earliest due time is among the first second of it.
	 */
	static SPIPlanPtr plan = NULL;

	if (SPI_execute_plan(cv_kept_plan(&plan, "SELECT (extract(epoch FROM min(next_step_at) - clock_timestamp()) * 1000)::float8"
									 " FROM conveyor.push WHERE state = 'running'"
									 " AND conveyor._queue_place(next_step_at, call_ms)"
									 " <= (SELECT min(conveyor._queue_place(next_step_at, call_ms))"
									 " FROM conveyor.push WHERE state = 'running') + interval '1 second'", 0, NULL),
						 NULL, NULL, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "conveyor: reading the next due time failed");
	d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	if (isnull)
		return cv_max_sleep_ms;
	ms = DatumGetFloat8(d);
	if (ms <= 0)
		return ENGINE_HELD_WAIT_MS;
	return (long) Min(ms + 1, (double) cv_max_sleep_ms);
}

/*
 * SQL: conveyor._queue_place(next_step_at timestamptz, call_ms float8): a due
 * push's place in the queue, next_step_at plus call_ms (NULL or less than 0:
 * 0; at most a second). Immutable, unlike timestamptz + interval, as adding
 * microseconds does not depend on the time zone: push_queue indexes it.
 */
Datum
cv_queue_place(PG_FUNCTION_ARGS)
{
	TimestampTz at;
	double		ms;
	TimestampTz place;

	if (PG_ARGISNULL(0))
		PG_RETURN_NULL();
	at = PG_GETARG_TIMESTAMPTZ(0);
	ms = PG_ARGISNULL(1) ? 0 : PG_GETARG_FLOAT8(1);
	if (TIMESTAMP_NOT_FINITE(at) || !(ms > 0))	/* NaN too */
		PG_RETURN_TIMESTAMPTZ(at);
	place = at + (int64) (Min(ms, 1000.0) * 1000.0);
	PG_RETURN_TIMESTAMPTZ(IS_VALID_TIMESTAMP(place) ? place : at);
}

/* Run SQL with one bigint and two text parameters (NULL texts allowed). */
static void
engine_exec(const char *sql, int64 id, const char *a, const char *b, int nargs)
{
	Oid			types[3] = {INT8OID, TEXTOID, TEXTOID};
	Datum		values[3];
	char		nulls[3] = {' ', ' ', ' '};

	values[0] = Int64GetDatum(id);
	values[1] = a ? CStringGetTextDatum(a) : (Datum) 0;
	values[2] = b ? CStringGetTextDatum(b) : (Datum) 0;
	if (!a)
		nulls[1] = 'n';
	if (!b)
		nulls[2] = 'n';
	if (SPI_execute_with_args(sql, nargs, types, values, nulls, false, 0) < 0)
		elog(ERROR, "conveyor: \"%s\" failed", sql);
}

/* SELECT conveyor._push_step(id). */
static void
engine_step(int64 id)
{
	static SPIPlanPtr plan = NULL;
	Oid			types[1] = {INT8OID};
	Datum		values[1] = {Int64GetDatum(id)};

	if (SPI_execute_plan(cv_kept_plan(&plan, "SELECT conveyor._push_step($1)", 1, types),
						 values, NULL, false, 0) < 0)
		elog(ERROR, "conveyor: \"SELECT conveyor._push_step($1)\" failed");
}

/*
 * Claim a due push and advance it one step, both inside one subtransaction;
 * return the push's id, or 0 if none was due, and in *fast whether its
 * push-type calls take at most CV_FAST_CALL_MS. On error the step is rolled back
 * (which also drops the claim), logged, and recorded on the push: retried, or
 * a bad failure.
 *
 * Claiming inside the subtransaction matters: a row locked by the parent and
 * updated by a subtransaction (a different xid) needs a MultiXact to remember
 * both, and resolving those was a large share of the engine's CPU.
 */
static int64
engine_claim_and_step(bool *fast)
{
	MemoryContext oldcxt = CurrentMemoryContext;
	ResourceOwner oldowner = CurrentResourceOwner;
	/* set inside PG_TRY and read in PG_CATCH: must not live in a register */
	volatile int64 id = 0;

	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(oldcxt);
	PG_TRY();
	{
		id = engine_claim(fast);
		if (id != 0)
		{
			char		activity[64];

			snprintf(activity, sizeof(activity), "conveyor: advancing push " INT64_FORMAT, id);
			pgstat_report_activity(STATE_RUNNING, activity);
			engine_step(id);
		}
		ReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(oldcxt);
		CurrentResourceOwner = oldowner;
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(oldcxt);
		edata = CopyErrorData();
		FlushErrorState();
		RollbackAndReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(oldcxt);
		CurrentResourceOwner = oldowner;

		/* an error before a push was claimed is the worker's, not a push's */
		if (id == 0)
			ReThrowError(edata);
		ereport(WARNING,
				(errmsg("conveyor: step of push " INT64_FORMAT " failed: %s", id, edata->message),
				 edata->detail ? errdetail_internal("%s", edata->detail) : 0));
		engine_exec("SELECT conveyor._push_step_error($1, $2, $3)", id,
					unpack_sql_state(edata->sqlerrcode), edata->message, 3);
		FreeErrorData(edata);
	}
	PG_END_TRY();
	return id;
}

/*
 * Advance due pushes, a few steps per short transaction (see
 * ENGINE_TXN_STEPS); return the milliseconds until the next push is due (0
 * to be called again at once).
 */
long
cv_engine_work(MemoryContext loop_context)
{
	int			n = 0;

	while (n < ENGINE_BURST)
	{
		TimestampTz started;
		int			k = 0;
		int			txn_ms = cv_http_worker_busy() ? ENGINE_TXN_MS_CALLS : ENGINE_TXN_MS;

		CHECK_FOR_INTERRUPTS();
		cv_txn_begin("conveyor: looking for a due push");
		started = GetCurrentTimestamp();
		do
		{
			bool		fast;

			if (engine_claim_and_step(&fast) == 0)
			{
				long		ms = engine_next_due_ms();

				cv_txn_commit();
				return ms;
			}
			n++;
			k++;
			CHECK_FOR_INTERRUPTS();
			/* a push whose endpoints answer fast: its next call goes out now, not after more steps */
			if (fast && cv_http_worker_calls_to_claim())
				break;
		} while (k < ENGINE_TXN_STEPS && n < ENGINE_BURST &&
				 !TimestampDifferenceExceeds(started, GetCurrentTimestamp(), txn_ms));
		cv_txn_commit();
		MemoryContextReset(loop_context);
		/* calls of other pushes wait for the worker loop: no more steps first */
		if (cv_http_worker_busy())
			break;
	}
	return 0;
}
