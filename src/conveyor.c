/*
 * conveyor.c
 *	  Library entry point: settings, shared memory and hooks, and the launcher
 *	  registration. conveyor only works from shared_preload_libraries because
 *	  its launcher and workers are background workers.
 */
#include "conveyor.h"

#include "fmgr.h"
#include "miscadmin.h"
#include "storage/ipc.h"
#include "utils/guc.h"

PG_MODULE_MAGIC;

void		_PG_init(void);

char	   *cv_database = NULL;
int			cv_workers = 2;
int			cv_max_sleep_ms = 60 * 1000;
int			cv_worker_restart_delay_ms = 5 * 1000;
char	   *cv_allowed_hosts = NULL;

static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;

/* Reserve our shared memory, chained after earlier libraries. */
static void
cv_shmem_request_hook(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	cv_shmem_request();
}

/* Create or attach our shared memory, chained after earlier libraries. */
static void
cv_shmem_startup_hook(void)
{
	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();
	cv_shmem_startup();
}

/* Define the conveyor.* settings. */
static void
cv_define_settings(void)
{
	DefineCustomStringVariable("conveyor.database",
							   "Database in which conveyor is installed and its workers run.",
							   "The launcher starts push workers only in this database; "
							   "CREATE EXTENSION conveyor is refused elsewhere.",
							   &cv_database,
							   "postgres",
							   PGC_POSTMASTER,
							   0,
							   NULL, NULL, NULL);

	DefineCustomIntVariable("conveyor.workers",
							"Number of push workers the launcher keeps running.",
							"Each worker advances one push step at a time; 0 stops all workers. "
							"Every worker uses one of max_worker_processes.",
							&cv_workers,
							2, 0, CV_MAX_WORKERS,
							PGC_SIGHUP,
							0,
							NULL, NULL, NULL);

	DefineCustomIntVariable("conveyor.max_sleep",
							"Longest time a conveyor process sleeps without being woken.",
							"Workers are woken by SQL actions at commit and sleep until the "
							"next due time; this bounds the sleep as a safety net.",
							&cv_max_sleep_ms,
							60 * 1000, 100, 3600 * 1000,
							PGC_SIGHUP,
							GUC_UNIT_MS,
							NULL, NULL, NULL);

	DefineCustomIntVariable("conveyor.worker_restart_delay",
							"Delay before the launcher restarts a push worker that exited.",
							"Prevents a tight restart loop when workers keep failing.",
							&cv_worker_restart_delay_ms,
							5 * 1000, 0, 3600 * 1000,
							PGC_SIGHUP,
							GUC_UNIT_MS,
							NULL, NULL, NULL);

	/*
	 * Superuser-only (PGC_SUSET): the host allow-list is what stands between
	 * a push type's config and arbitrary outbound requests from the server.
	 */
	DefineCustomStringVariable("conveyor.allowed_hosts",
							   "Hosts that HTTP push types may call (comma-separated).",
							   "Each entry is a host name or IP address, optionally with :port, "
							   "or *.domain for every host under that domain. Empty allows none. "
							   "Checked when a push type or service is configured and again at every call.",
							   &cv_allowed_hosts,
							   "",
							   PGC_SUSET,
							   GUC_LIST_INPUT,
							   NULL, NULL, NULL);

	MarkGUCPrefixReserved("conveyor");
}

/* Module load: refuse anything but shared_preload_libraries. */
void
_PG_init(void)
{
	if (!process_shared_preload_libraries_in_progress)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("conveyor must be loaded via shared_preload_libraries"),
				 errdetail("conveyor runs background workers, which can only be registered at server start."),
				 errhint("Add conveyor to shared_preload_libraries in postgresql.conf "
						 "(for example shared_preload_libraries = 'conveyor,pg_cron') and restart the server.")));

	cv_define_settings();

	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = cv_shmem_request_hook;
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = cv_shmem_startup_hook;

	cv_install_utility_hook();
	cv_register_launcher();
}
