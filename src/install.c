/*
 * install.c
 *	  Where conveyor may be installed: only in conveyor.database, where the
 *	  launcher runs its workers. Checked by the utility hook before
 *	  CREATE EXTENSION does anything (so pg_cron is not even cascaded into a
 *	  wrong database) and again by the install script itself.
 */
#include "conveyor.h"

#include "commands/dbcommands.h"
#include "fmgr.h"
#include "miscadmin.h"

#include "install.h"

PG_FUNCTION_INFO_V1(cv_install_check);
PG_FUNCTION_INFO_V1(cv_wake);

/* Refuse to install conveyor anywhere but conveyor.database. */
void
cv_check_install_database(void)
{
	char	   *here = get_database_name(MyDatabaseId);

	if (cv_database == NULL || here == NULL || strcmp(here, cv_database) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("conveyor can only be installed in database \"%s\"",
						cv_database ? cv_database : ""),
				 errdetail("This is database \"%s\"; the setting conveyor.database names \"%s\", "
						   "the only database where conveyor's workers run.",
						   here ? here : "", cv_database ? cv_database : ""),
				 errhint("Connect to database \"%s\", or change conveyor.database (and cron.database_name) "
						 "and restart the server.", cv_database ? cv_database : "")));
}

/* SQL: conveyor._install_check(), run first by the install script. */
Datum
cv_install_check(PG_FUNCTION_ARGS)
{
	cv_check_install_database();
	PG_RETURN_VOID();
}

/* SQL: conveyor._wake(), wake the workers when the calling transaction commits. */
Datum
cv_wake(PG_FUNCTION_ARGS)
{
	cv_wake_workers_at_commit();
	PG_RETURN_VOID();
}
