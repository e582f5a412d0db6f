/*
 * worker.c
 *	  A conveyor push worker: connected to conveyor.database, it waits quietly
 *	  while the extension is not installed, and otherwise advances due pushes.
 *	  Errors are caught the way the autovacuum launcher does it, so one bad
 *	  step never takes the worker (or the cluster) down.
 */
#include "conveyor.h"

#include "access/xact.h"
#include "commands/dbcommands.h"
#include "commands/extension.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "tcop/tcopprot.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/timeout.h"
#include "utils/timestamp.h"

#include "engine.h"
#include "http_call.h"
#include "txn.h"

static int	my_slot = -1;
static char *my_dbname = NULL;	/* for log lines, read once at start */

/* Give our slot back when the worker exits. */
static void
worker_on_exit(int code, Datum arg)
{
	cv_http_worker_shutdown();
	cv_worker_slot_release(my_slot);
}

/* Whether the conveyor extension is installed in this database. */
static bool
worker_extension_installed(void)
{
	bool		installed;

	StartTransactionCommand();
	installed = OidIsValid(get_extension_oid("conveyor", true));
	if (my_dbname == NULL)
		my_dbname = MemoryContextStrdup(TopMemoryContext, get_database_name(MyDatabaseId));
	CommitTransactionCommand();
	return installed;
}

/* Log the waiting state once per change, from the first worker only. */
static void
worker_report_installed(bool installed)
{
	static int	last = -1;

	if (last == (int) installed)
		return;
	last = (int) installed;
	if (my_slot != 0)
		return;
	if (installed)
		ereport(LOG,
				(errmsg("conveyor worker: extension found in database \"%s\"; advancing pushes",
						my_dbname)));
	else
		ereport(LOG,
				(errmsg("conveyor worker: extension \"conveyor\" is not installed in database \"%s\"; waiting",
						my_dbname),
				 errhint("Run CREATE EXTENSION conveyor CASCADE in that database.")));
}

/* Whether this worker should end: its launcher is gone or its database is being dropped. */
static bool
worker_should_exit(pid_t launcher_pid)
{
	pid_t		current;

	SpinLockAcquire(&cv_shared->mutex);
	current = cv_shared->launcher_pid;
	SpinLockRelease(&cv_shared->mutex);
	return current != launcher_pid || cv_dropping_db() == MyDatabaseId;
}

/*
 * With calls in flight: sleep on their sockets and take their answers as
 * they come, for up to sleep_ms. Going round the main loop for every answer
 * cost two transactions each (the extension check, a look for due pushes),
 * CPU the endpoints on the same machine could use. Back to the main loop
 * when calls were recorded (their pushes are due), the latch was set (a push
 * changed), a reload is pending, no call is left, or sleep_ms is over.
 */
static void
worker_take_answers(long sleep_ms)
{
	TimestampTz until;
	long		soon_ms;

	/* an answer due any moment is worth a short wait even when pushes are due */
	soon_ms = cv_http_worker_soon_ms();
	sleep_ms = Max(sleep_ms, soon_ms);
	until = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), sleep_ms);

	for (;;)
	{
		long		http_ms = cv_http_worker_timeout();
		/* rounded up, or the last fraction of a millisecond is a look without a wait */
		long		left = (long) ((until - GetCurrentTimestamp() + 999) / 1000);
		bool		woken;

		if (http_ms < 0)
			return;				/* no call in flight */
		/* at least a look at the sockets, without waiting, when time is up */
		woken = cv_http_worker_wait(left <= 0 ? 0 : Min(left, http_ms));
		CHECK_FOR_INTERRUPTS();
		if (cv_http_worker_progress() || woken || ConfigReloadPending || left <= 0)
			return;
	}
}

/* Push worker main loop. */
void
cv_worker_main(Datum arg)
{
	Oid			dboid = DatumGetObjectId(arg);
	pid_t		launcher_pid;
	sigjmp_buf	local_sigjmp_buf;
	MemoryContext loop_context;

	memcpy(&launcher_pid, MyBgworkerEntry->bgw_extra, sizeof(pid_t));

	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();

	my_slot = cv_worker_slot_claim();
	if (my_slot < 0)
	{
		ereport(LOG, (errmsg("conveyor worker: no free worker slot; exiting")));
		proc_exit(0);
	}
	before_shmem_exit(worker_on_exit, (Datum) 0);

	BackgroundWorkerInitializeConnectionByOid(dboid, InvalidOid, 0);
	pgstat_report_appname("conveyor worker");

	loop_context = AllocSetContextCreate(TopMemoryContext, "conveyor worker loop",
										 ALLOCSET_DEFAULT_SIZES);

	/* error recovery, as in the autovacuum launcher */
	if (sigsetjmp(local_sigjmp_buf, 1) != 0)
	{
		/* the stack the callbacks pointed into is gone: report nothing through them */
		error_context_stack = NULL;
		HOLD_INTERRUPTS();
		QueryCancelPending = false;
		disable_all_timeouts(false);
		EmitErrorReport();
		AbortCurrentTransaction();
		/* calls in flight may have lost their bookkeeping: drop and release them */
		cv_http_worker_reset();
		MemoryContextSwitchTo(loop_context);
		FlushErrorState();
		MemoryContextResetAndDeleteChildren(loop_context);
		RESUME_INTERRUPTS();
		pgstat_report_activity(STATE_IDLE, NULL);
		/* pause briefly so a persistent error cannot spin the CPU */
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 1000, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
	}
	PG_exception_stack = &local_sigjmp_buf;

	for (;;)
	{
		long		sleep_ms = cv_max_sleep_ms;
		long		http_ms = -1;	/* when the calls in flight need us; -1: none */
		bool		installed;

		MemoryContextSwitchTo(loop_context);
		MemoryContextResetAndDeleteChildren(loop_context);
		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}
		if (worker_should_exit(launcher_pid))
			proc_exit(0);

		installed = worker_extension_installed();
		worker_report_installed(installed);
		if (installed)
		{
			/* not inside Min(): a macro, it would run the engine twice */
			long		engine_ms = cv_engine_work(loop_context);

			sleep_ms = Min(sleep_ms, engine_ms);
			/* calls the steps asked for go out now, outside any transaction */
			cv_http_worker_claim();
			/* worker_take_answers keeps to the calls' own timeouts */
			http_ms = cv_http_worker_timeout();
		}

		pgstat_report_activity(STATE_IDLE, NULL);
		if (http_ms >= 0)
			worker_take_answers(sleep_ms);
		else if (sleep_ms > 0)
		{
			(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
							 sleep_ms, PG_WAIT_EXTENSION);
			ResetLatch(MyLatch);
		}
		CHECK_FOR_INTERRUPTS();
	}
}
