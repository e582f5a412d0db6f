/*
 * security.c
 *	  Who is acting, for conveyor's authorization checks.
 *
 * conveyor's API functions are SECURITY DEFINER, so inside them current_user
 * is the extension's owner. The role a caller acts as is the "outer" user:
 * current_user as it was outside every function (the login role, or the role
 * chosen with SET ROLE). Checking that one honours SET ROLE both ways: a DBA
 * can narrow herself to a team's role, and nobody gains a role they could
 * not SET. SQL has no way to read it from inside a definer function.
 */
#include "conveyor.h"

#include "fmgr.h"
#include "miscadmin.h"

PG_FUNCTION_INFO_V1(cv_acting_role);

/* SQL: conveyor._acting_role() RETURNS regrole */
Datum
cv_acting_role(PG_FUNCTION_ARGS)
{
	PG_RETURN_OID(GetOuterUserId());
}
