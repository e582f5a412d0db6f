/*
 * txn.c
 *	  The fixed shape of a worker transaction (after worker_spi): start,
 *	  connect SPI, push a snapshot, report activity; then pop, finish, commit
 *	  and report idle. Every short transaction a worker runs goes through here.
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
