/*
 * launcher.c
 *	  The conveyor launcher: one static background worker that keeps
 *	  conveyor.workers push workers running in conveyor.database.
 *
 * Like PostgreSQL's logical replication launcher it attaches to the shared
 * catalogs only, never to a database. It can therefore notice that
 * conveyor.database does not exist (yet, or any more) by reading pg_database
 * and wait quietly, where connecting to a missing database would end the
 * process with FATAL and loop on restarts. It also never holds up
 * DROP DATABASE: the utility hook tells it a drop is coming and it stops the
 * workers first.
 */
#include "conveyor.h"

#include "access/heapam.h"
#include "access/htup_details.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/pg_database.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/proc.h"
#include "tcop/tcopprot.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

/* What the launcher knows about each worker it started. */
typedef struct LauncherWorker
{
	BackgroundWorkerHandle *handle; /* NULL when not started */
	Oid			dboid;			/* database it was started for */
	TimestampTz started_at;
	TimestampTz restart_after;	/* do not start again before this */
} LauncherWorker;

static LauncherWorker launcher_workers[CV_MAX_WORKERS];

/* Register the launcher with the postmaster (called from _PG_init). */
void
cv_register_launcher(void)
{
	BackgroundWorker worker;

	memset(&worker, 0, sizeof(worker));
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	/* a hot standby cannot advance pushes; start once it is writable */
	worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
	worker.bgw_restart_time = 10;
	snprintf(worker.bgw_library_name, BGW_MAXLEN, "conveyor");
	snprintf(worker.bgw_function_name, BGW_MAXLEN, "cv_launcher_main");
	snprintf(worker.bgw_name, BGW_MAXLEN, "conveyor launcher");
	snprintf(worker.bgw_type, BGW_MAXLEN, "conveyor launcher");
	RegisterBackgroundWorker(&worker);
}

/* Forget our latch in shared memory when the launcher exits. */
static void
launcher_on_exit(int code, Datum arg)
{
	SpinLockAcquire(&cv_shared->mutex);
	if (cv_shared->launcher_pid == MyProcPid)
	{
		cv_shared->launcher_pid = 0;
		cv_shared->launcher_latch = NULL;
	}
	SpinLockRelease(&cv_shared->mutex);
}

/*
 * Find conveyor.database in pg_database: its OID if it exists and accepts
 * connections, else InvalidOid. A plain heap scan, as the autovacuum launcher
 * does: without a database only the nailed shared catalogs can be read.
 */
static Oid
launcher_lookup_database(void)
{
	Oid			dboid = InvalidOid;
	Relation	rel;
	TableScanDesc scan;
	HeapTuple	tup;

	StartTransactionCommand();
	(void) GetTransactionSnapshot();
	rel = table_open(DatabaseRelationId, AccessShareLock);
	scan = table_beginscan_catalog(rel, 0, NULL);
	while (HeapTupleIsValid(tup = heap_getnext(scan, ForwardScanDirection)))
	{
		Form_pg_database db = (Form_pg_database) GETSTRUCT(tup);

		if (strcmp(NameStr(db->datname), cv_database) != 0)
			continue;
		/* connlimit -2 marks a database left invalid by an interrupted DROP */
		if (db->datallowconn && db->datconnlimit != -2)
			dboid = db->oid;
		break;
	}
	table_endscan(scan);
	table_close(rel, AccessShareLock);
	CommitTransactionCommand();
	return dboid;
}

/* Start push worker number i for database dboid. */
static void
launcher_start_worker(int i, Oid dboid)
{
	BackgroundWorker worker;
	LauncherWorker *lw = &launcher_workers[i];

	memset(&worker, 0, sizeof(worker));
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
	/* the launcher restarts workers itself, with a delay */
	worker.bgw_restart_time = BGW_NEVER_RESTART;
	snprintf(worker.bgw_library_name, BGW_MAXLEN, "conveyor");
	snprintf(worker.bgw_function_name, BGW_MAXLEN, "cv_worker_main");
	snprintf(worker.bgw_name, BGW_MAXLEN, "conveyor worker %d", i + 1);
	snprintf(worker.bgw_type, BGW_MAXLEN, "conveyor worker");
	worker.bgw_main_arg = ObjectIdGetDatum(dboid);
	memcpy(worker.bgw_extra, &MyProcPid, sizeof(pid_t));
	/* the postmaster sets our latch when the worker starts or stops */
	worker.bgw_notify_pid = MyProcPid;

	lw->started_at = GetCurrentTimestamp();
	lw->dboid = dboid;
	if (!RegisterDynamicBackgroundWorker(&worker, &lw->handle))
	{
		lw->handle = NULL;
		lw->restart_after = TimestampTzPlusMilliseconds(lw->started_at,
														cv_worker_restart_delay_ms);
		ereport(WARNING,
				(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
				 errmsg("conveyor launcher could not start push worker %d", i + 1),
				 errhint("Raise max_worker_processes or lower conveyor.workers.")));
	}
}

/* Ask worker i to stop; its exit is noticed on a later pass. */
static void
launcher_stop_worker(int i)
{
	if (launcher_workers[i].handle)
		TerminateBackgroundWorker(launcher_workers[i].handle);
}

/* Forget workers that have exited, scheduling their restart after a delay. */
static void
launcher_reap_workers(void)
{
	for (int i = 0; i < CV_MAX_WORKERS; i++)
	{
		LauncherWorker *lw = &launcher_workers[i];
		pid_t		pid;

		if (lw->handle == NULL)
			continue;
		if (GetBackgroundWorkerPid(lw->handle, &pid) == BGWH_STOPPED)
		{
			pfree(lw->handle);
			lw->handle = NULL;
			lw->restart_after = TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
															cv_worker_restart_delay_ms);
		}
	}
}

/*
 * Bring the set of running workers in line with what is wanted now; return
 * the milliseconds until a pending restart is due (or max_sleep).
 */
static long
launcher_reconcile(Oid dboid)
{
	int			wanted = OidIsValid(dboid) ? cv_workers : 0;
	TimestampTz now = GetCurrentTimestamp();
	long		sleep_ms = cv_max_sleep_ms;

	launcher_reap_workers();
	for (int i = 0; i < CV_MAX_WORKERS; i++)
	{
		LauncherWorker *lw = &launcher_workers[i];

		if (lw->handle)
		{
			/* stop surplus workers and workers of a dropped or replaced database */
			if (i >= wanted || lw->dboid != dboid)
				launcher_stop_worker(i);
			continue;
		}
		if (i >= wanted)
			continue;
		if (lw->restart_after > now)
		{
			long		ms = (long) ((lw->restart_after - now) / 1000) + 1;

			sleep_ms = Min(sleep_ms, ms);
			continue;
		}
		launcher_start_worker(i, dboid);
	}
	return sleep_ms;
}

/* Say once, not on every pass, why no workers run. */
static void
launcher_report_state(Oid dboid, Oid dropping)
{
	static int	last_state = -1;
	int			state;

	if (OidIsValid(dropping) && dropping == dboid)
		state = 1;
	else if (!OidIsValid(dboid))
		state = 2;
	else
		state = 0;
	if (state == last_state)
		return;
	last_state = state;
	if (state == 1)
		ereport(LOG,
				(errmsg("conveyor launcher: database \"%s\" is being dropped; stopping push workers",
						cv_database)));
	else if (state == 2)
		ereport(LOG,
				(errmsg("conveyor launcher: database \"%s\" does not exist or does not allow connections; waiting",
						cv_database),
				 errhint("Create the database, or set conveyor.database and restart the server.")));
	else
		ereport(LOG,
				(errmsg("conveyor launcher: running %d push workers in database \"%s\"",
						cv_workers, cv_database)));
}

/* Launcher main loop. */
void
cv_launcher_main(Datum arg)
{
	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();

	SpinLockAcquire(&cv_shared->mutex);
	cv_shared->launcher_pid = MyProcPid;
	cv_shared->launcher_latch = &MyProc->procLatch;
	SpinLockRelease(&cv_shared->mutex);
	before_shmem_exit(launcher_on_exit, (Datum) 0);

	/* shared catalogs only: see the file header for why */
	BackgroundWorkerInitializeConnection(NULL, NULL, 0);
	pgstat_report_appname("conveyor launcher");

	memset(launcher_workers, 0, sizeof(launcher_workers));

	for (;;)
	{
		Oid			dboid;
		Oid			dropping;
		long		sleep_ms;

		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}

		dboid = launcher_lookup_database();
		dropping = cv_dropping_db();
		launcher_report_state(dboid, dropping);
		if (OidIsValid(dropping) && dropping == dboid)
			dboid = InvalidOid;
		sleep_ms = launcher_reconcile(dboid);

		pgstat_report_activity(STATE_IDLE, NULL);
		(void) WaitLatch(MyLatch,
						 WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 sleep_ms,
						 PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
	}
}
