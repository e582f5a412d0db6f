/*
 * engine.h
 *	  The push engine as the worker loop sees it.
 */
#ifndef CONVEYOR_ENGINE_H
#define CONVEYOR_ENGINE_H

#include "postgres.h"

/*
 * Advance due pushes, a few steps per short transaction; return the
 * milliseconds until the next push is due (0 to go again at once).
 */
extern long cv_engine_work(MemoryContext loop_context);

#endif							/* CONVEYOR_ENGINE_H */
