/*
 * txn.h
 *	  The one shape of a background process's transaction.
 */
#ifndef CONVEYOR_TXN_H
#define CONVEYOR_TXN_H

#include "executor/spi.h"

extern void cv_txn_begin(const char *activity);
extern void cv_txn_commit(void);
extern SPIPlanPtr cv_kept_plan(SPIPlanPtr *slot, const char *sql, int nargs, Oid *types);

#endif							/* CONVEYOR_TXN_H */
