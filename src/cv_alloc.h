/*
 * cv_alloc.h - allocation shim for conveyor's pure C cores
 *
 * The planner and the health math are plain C so they can be unit-tested,
 * fuzzed and benchmarked outside the server.  They allocate only through the
 * macros below.  Inside the extension (CONVEYOR_BACKEND defined) they map to
 * palloc and friends, so memory belongs to the caller's memory context and an
 * out-of-memory condition raises an ordinary PostgreSQL error.  Outside the
 * server they map to the C library and abort() with a message on failure,
 * so callers never have to test for NULL in either build.
 *
 * This header must be the first include of a core .c file: in the backend
 * build it pulls in postgres.h, which PostgreSQL requires to come first.
 */
#ifndef CV_ALLOC_H
#define CV_ALLOC_H

#ifdef CONVEYOR_BACKEND

#include "postgres.h"

#define cv_alloc(sz)		palloc(sz)
#define cv_alloc0(sz)		palloc0(sz)
#define cv_free(p)			pfree(p)
#define cv_realloc(p, sz)	repalloc((p), (sz))
/* An impossible state in a core: report it as an internal error. */
#define cv_fail(msg)		elog(ERROR, "conveyor: %s", (msg))

#else							/* !CONVEYOR_BACKEND */

#include <stdio.h>
#include <stdlib.h>

/* Report a fatal condition in a core outside the server and stop. */
static inline void
cv_fail(const char *msg)
{
	fprintf(stderr, "conveyor: %s\n", msg);
	abort();
}

/* malloc that never returns NULL; a zero size still yields a unique block. */
static inline void *
cv_alloc(size_t sz)
{
	void	   *p = malloc(sz ? sz : 1);

	if (p == NULL)
		cv_fail("out of memory");
	return p;
}

/* calloc that never returns NULL, zero-filled like palloc0. */
static inline void *
cv_alloc0(size_t sz)
{
	void	   *p = calloc(1, sz ? sz : 1);

	if (p == NULL)
		cv_fail("out of memory");
	return p;
}

/* realloc that never returns NULL; like repalloc, p must not be NULL. */
static inline void *
cv_realloc(void *p, size_t sz)
{
	void	   *q = realloc(p, sz ? sz : 1);

	if (q == NULL)
		cv_fail("out of memory");
	return q;
}

/* free, kept as a function so both builds read the same at call sites. */
static inline void
cv_free(void *p)
{
	free(p);
}

#endif							/* CONVEYOR_BACKEND */

#endif							/* CV_ALLOC_H */
