/*
 * shared.c
 *	  The shared-memory state of conveyor's processes and the wakeups that let
 *	  SQL sessions rouse the launcher and workers instead of them polling.
 */
#include "conveyor.h"

#include "access/xact.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "storage/ipc.h"
#include "storage/proc.h"
#include "storage/shmem.h"

CvShared   *cv_shared = NULL;

/* Set in a transaction that changed pushes; acted on at commit. */
static bool wake_pending = false;
/* Set in a transaction that created, altered or dropped a database. */
static bool wake_launcher_pending = false;
/* Set by the DROP DATABASE hook; cleared however the transaction ends. */
static bool clear_dropping_pending = false;
static bool xact_callback_registered = false;

/* Ask the postmaster for the space our shared state needs. */
void
cv_shmem_request(void)
{
	RequestAddinShmemSpace(MAXALIGN(sizeof(CvShared)));
}

/* Create (postmaster) or attach to (EXEC_BACKEND children) the shared state. */
void
cv_shmem_startup(void)
{
	bool		found;

	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	cv_shared = ShmemInitStruct("conveyor", sizeof(CvShared), &found);
	if (!found)
	{
		memset(cv_shared, 0, sizeof(CvShared));
		SpinLockInit(&cv_shared->mutex);
		cv_shared->dropping_db = InvalidOid;
	}
	LWLockRelease(AddinShmemInitLock);
}

/* Set the launcher's latch, if a launcher is running. */
void
cv_wake_launcher(void)
{
	Latch	   *latch;

	if (cv_shared == NULL)
		return;
	SpinLockAcquire(&cv_shared->mutex);
	latch = cv_shared->launcher_latch;
	SpinLockRelease(&cv_shared->mutex);
	if (latch)
		SetLatch(latch);
}

/* Set every running worker's latch, and the launcher's. */
void
cv_wake_workers(void)
{
	Latch	   *latches[CV_MAX_WORKERS];
	int			n = 0;

	if (cv_shared == NULL)
		return;
	SpinLockAcquire(&cv_shared->mutex);
	for (int i = 0; i < CV_MAX_WORKERS; i++)
		if (cv_shared->workers[i].pid != 0 && cv_shared->workers[i].latch)
			latches[n++] = cv_shared->workers[i].latch;
	SpinLockRelease(&cv_shared->mutex);

	/* SetLatch outside the spinlock: it may signal another process */
	for (int i = 0; i < n; i++)
		SetLatch(latches[i]);
	cv_wake_launcher();
}

/* Transaction callback: wake at commit, forget on abort. */
static void
cv_xact_callback(XactEvent event, void *arg)
{
	bool		committed;

	switch (event)
	{
		case XACT_EVENT_COMMIT:
		case XACT_EVENT_PARALLEL_COMMIT:
			committed = true;
			break;
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PARALLEL_ABORT:
			committed = false;
			break;
		default:
			return;
	}
	if (clear_dropping_pending)
	{
		/* the drop is over either way; the launcher re-reads pg_database */
		clear_dropping_pending = false;
		cv_set_dropping_db(InvalidOid);
		wake_launcher_pending = true;
	}
	if (committed && wake_pending)
		cv_wake_workers();
	else if (wake_launcher_pending)
		cv_wake_launcher();
	wake_pending = false;
	wake_launcher_pending = false;
}

/* Register our transaction callback once per process. */
static void
cv_register_xact_callback(void)
{
	if (!xact_callback_registered)
	{
		RegisterXactCallback(cv_xact_callback, NULL);
		xact_callback_registered = true;
	}
}

/*
 * Arrange for the workers to be woken when the current transaction commits,
 * so they see the rows it wrote and nothing is woken for a rolled-back change.
 */
void
cv_wake_workers_at_commit(void)
{
	cv_register_xact_callback();
	wake_pending = true;
}

/* Wake the launcher when the current transaction ends (database changes). */
void
cv_wake_launcher_at_commit(void)
{
	cv_register_xact_callback();
	wake_launcher_pending = true;
}

/* Clear the DROP DATABASE flag when the current transaction ends. */
void
cv_clear_dropping_at_xact_end(void)
{
	cv_register_xact_callback();
	clear_dropping_pending = true;
}

/* Number of push workers holding a slot. */
static int
cv_running_workers(void)
{
	int			n = 0;

	SpinLockAcquire(&cv_shared->mutex);
	for (int i = 0; i < CV_MAX_WORKERS; i++)
		if (cv_shared->workers[i].pid != 0)
			n++;
	SpinLockRelease(&cv_shared->mutex);
	return n;
}

/* Wait up to timeout_ms for every push worker to exit (for DROP DATABASE). */
void
cv_wait_workers_gone(int timeout_ms)
{
	for (int waited = 0; waited < timeout_ms && cv_running_workers() > 0; waited += 10)
	{
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 10, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
	}
}

/* Claim a free worker slot for this process; -1 if none is free. */
int
cv_worker_slot_claim(void)
{
	int			slot = -1;

	SpinLockAcquire(&cv_shared->mutex);
	for (int i = 0; i < CV_MAX_WORKERS; i++)
	{
		if (cv_shared->workers[i].pid == 0)
		{
			cv_shared->workers[i].pid = MyProcPid;
			cv_shared->workers[i].latch = &MyProc->procLatch;
			slot = i;
			break;
		}
	}
	SpinLockRelease(&cv_shared->mutex);
	return slot;
}

/* Give a worker slot back (on worker exit). */
void
cv_worker_slot_release(int slot)
{
	if (slot < 0 || slot >= CV_MAX_WORKERS)
		return;
	SpinLockAcquire(&cv_shared->mutex);
	if (cv_shared->workers[slot].pid == MyProcPid)
	{
		cv_shared->workers[slot].pid = 0;
		cv_shared->workers[slot].latch = NULL;
	}
	SpinLockRelease(&cv_shared->mutex);
}

/* The database a DROP DATABASE is removing right now, or InvalidOid. */
Oid
cv_dropping_db(void)
{
	Oid			dboid;

	SpinLockAcquire(&cv_shared->mutex);
	dboid = cv_shared->dropping_db;
	SpinLockRelease(&cv_shared->mutex);
	return dboid;
}

/* Announce (or, with InvalidOid, end) a DROP DATABASE in progress. */
void
cv_set_dropping_db(Oid dboid)
{
	SpinLockAcquire(&cv_shared->mutex);
	cv_shared->dropping_db = dboid;
	SpinLockRelease(&cv_shared->mutex);
}
