/*
 * engine.c
 *	  The push engine's entry from the worker loop. (The foundation has no
 *	  pushes yet: there is nothing due, so the worker sleeps until woken.)
 */
#include "conveyor.h"

#include "engine.h"

/* Advance due pushes; return the milliseconds until the next is due. */
long
cv_engine_work(MemoryContext loop_context)
{
	return cv_max_sleep_ms;
}
