/*
 * conveyor.h
 *	  Declarations shared by the extension's backend-side C files: settings,
 *	  the shared-memory state of the launcher and workers, and their entry
 *	  points.
 */
#ifndef CONVEYOR_H
#define CONVEYOR_H

#include "postgres.h"

#include "storage/latch.h"
#include "storage/spin.h"

/* Hard upper bound for conveyor.workers; sizes the shared worker table. */
#define CV_MAX_WORKERS 64

/* Settings (GUCs), defined in conveyor.c. */
extern char *cv_database;			/* conveyor.database */
extern int	cv_workers;				/* conveyor.workers */
extern int	cv_max_sleep_ms;		/* conveyor.max_sleep */
extern int	cv_worker_restart_delay_ms; /* conveyor.worker_restart_delay */
extern char *cv_allowed_hosts;		/* conveyor.allowed_hosts */

/* One slot per push worker, so SQL sessions can wake them at commit. */
typedef struct CvWorkerSlot
{
	pid_t		pid;			/* 0 when the slot is free */
	Latch	   *latch;			/* the worker's process latch */
} CvWorkerSlot;

/* State shared by the launcher, the workers and every backend. */
typedef struct CvShared
{
	slock_t		mutex;			/* protects every field below */
	pid_t		launcher_pid;
	Latch	   *launcher_latch;
	Oid			dropping_db;	/* database being dropped: keep workers out */
	CvWorkerSlot workers[CV_MAX_WORKERS];
} CvShared;

extern CvShared *cv_shared;

/* shared.c */
extern void cv_shmem_request(void);
extern void cv_shmem_startup(void);
extern void cv_wake_launcher(void);
extern void cv_wake_workers(void);
extern void cv_wake_workers_at_commit(void);
extern void cv_wake_launcher_at_commit(void);
extern void cv_clear_dropping_at_xact_end(void);
extern void cv_wait_workers_gone(int timeout_ms);
extern int	cv_worker_slot_claim(void);
extern void cv_worker_slot_release(int slot);
extern Oid	cv_dropping_db(void);
extern void cv_set_dropping_db(Oid dboid);

/* utility.c */
extern void cv_install_utility_hook(void);

/* launcher.c and worker.c: background worker entry points */
extern PGDLLEXPORT void cv_launcher_main(Datum arg);
extern PGDLLEXPORT void cv_worker_main(Datum arg);
extern void cv_register_launcher(void);

#endif							/* CONVEYOR_H */
