/*
 * utility.c
 *	  A ProcessUtility hook so DROP DATABASE never waits on conveyor's
 *	  workers, and so the launcher hears about new databases at once.
 */
#include "conveyor.h"

#include "commands/dbcommands.h"
#include "nodes/parsenodes.h"
#include "tcop/utility.h"

#include "install.h"

static ProcessUtility_hook_type prev_utility_hook = NULL;

/* Whether this statement drops conveyor.database. */
static bool
drops_conveyor_database(Node *stmt)
{
	return IsA(stmt, DropdbStmt) && cv_database != NULL &&
		strcmp(((DropdbStmt *) stmt)->dbname, cv_database) == 0;
}

/* Whether this statement installs the conveyor extension. */
static bool
creates_conveyor_extension(Node *stmt)
{
	return IsA(stmt, CreateExtensionStmt) &&
		strcmp(((CreateExtensionStmt *) stmt)->extname, "conveyor") == 0;
}

/* Whether this statement drops or alters an extension (perhaps conveyor). */
static bool
changes_extensions(Node *stmt)
{
	return (IsA(stmt, DropStmt) && ((DropStmt *) stmt)->removeType == OBJECT_EXTENSION) ||
		IsA(stmt, AlterExtensionStmt);
}

/* Whether this statement can change which databases the launcher may use. */
static bool
changes_databases(Node *stmt)
{
	return IsA(stmt, CreatedbStmt) || IsA(stmt, AlterDatabaseStmt) ||
		IsA(stmt, DropdbStmt) ||
		(IsA(stmt, RenameStmt) && ((RenameStmt *) stmt)->renameType == OBJECT_DATABASE);
}

/*
 * Before DROP DATABASE of conveyor.database runs, tell the launcher to stop
 * the workers connected there, so the drop does not fail with "being
 * accessed by other users"; the flag is cleared when the transaction ends.
 */
static void
cv_utility_hook(PlannedStmt *pstmt, const char *queryString, bool readOnlyTree,
				ProcessUtilityContext context, ParamListInfo params,
				QueryEnvironment *queryEnv, DestReceiver *dest, QueryCompletion *qc)
{
	Node	   *stmt = pstmt->utilityStmt;

	/* before CASCADE can create pg_cron or anything else */
	if (creates_conveyor_extension(stmt))
		cv_check_install_database();

	if (drops_conveyor_database(stmt))
	{
		Oid			dboid = get_database_oid(cv_database, true);

		if (OidIsValid(dboid))
		{
			cv_set_dropping_db(dboid);
			cv_clear_dropping_at_xact_end();
			cv_wake_launcher();
			cv_wait_workers_gone(5000);
		}
	}

	if (prev_utility_hook)
		prev_utility_hook(pstmt, queryString, readOnlyTree, context, params,
						  queryEnv, dest, qc);
	else
		standard_ProcessUtility(pstmt, queryString, readOnlyTree, context, params,
								queryEnv, dest, qc);

	if (changes_databases(stmt))
		cv_wake_launcher_at_commit();
	/* workers re-check that the extension is still there */
	if (changes_extensions(stmt))
		cv_wake_workers_at_commit();
}

/* Install the hook (from _PG_init). */
void
cv_install_utility_hook(void)
{
	prev_utility_hook = ProcessUtility_hook;
	ProcessUtility_hook = cv_utility_hook;
}
