/*
 * txn.c
 *	  The fixed shape of a worker transaction (after worker_spi): start,
 *	  connect SPI, push a snapshot, report activity; then pop, finish, commit
 *	  and report idle. Every short transaction a worker runs goes through here,
 *	  and the statements it runs again and again keep their plans.
 */
#include "postgres.h"

#include "access/xact.h"
#include "executor/spi.h"
#include "pgstat.h"
#include "utils/snapmgr.h"

#include "txn.h"

/* Open a transaction with SPI and a snapshot, showing activity in pg_stat_activity. */
void
cv_txn_begin(const char *activity)
{
	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	PushActiveSnapshot(GetTransactionSnapshot());
	pgstat_report_activity(STATE_RUNNING, activity);
}

/* Close what cv_txn_begin opened and commit. */
void
cv_txn_commit(void)
{
	SPI_finish();
	PopActiveSnapshot();
	CommitTransactionCommand();
	pgstat_report_stat(false);
	pgstat_report_activity(STATE_IDLE, NULL);
}

/*
 * The plan of a statement a worker runs again and again, prepared on first
 * use and kept for the life of the process in *slot (parsing and planning it
 * each time was a few percent of a step).
 */
SPIPlanPtr
cv_kept_plan(SPIPlanPtr *slot, const char *sql, int nargs, Oid *types)
{
	if (*slot == NULL)
	{
		SPIPlanPtr	p = SPI_prepare(sql, nargs, types);

		if (p == NULL || SPI_keepplan(p) != 0)
			elog(ERROR, "conveyor: preparing \"%s\" failed", sql);
		*slot = p;
	}
	return *slot;
}
