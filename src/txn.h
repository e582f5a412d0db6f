/*
 * txn.h
 *	  The one shape of a background process's transaction.
 */
#ifndef CONVEYOR_TXN_H
#define CONVEYOR_TXN_H

extern void cv_txn_begin(const char *activity);
extern void cv_txn_commit(void);

#endif							/* CONVEYOR_TXN_H */
