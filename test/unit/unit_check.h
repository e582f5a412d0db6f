/*
 * unit_check.h
 *	  The checks the unit tests count (test/unit/test_*.c): CHECK counts a
 *	  pass or says where and why it failed and carries on; CHECK_REPORT
 *	  prints the tally run.sh reads and gives main's exit status.
 */
#ifndef UNIT_CHECK_H
#define UNIT_CHECK_H

#include <stdio.h>

static int	npassed;
static int	nfailed;

/* Count a check; on failure say where and why, then carry on. */
#define CHECK(cond, ...) \
	do { \
		if (cond) \
			npassed++; \
		else \
		{ \
			nfailed++; \
			fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond); \
			fprintf(stderr, __VA_ARGS__); \
			fputc('\n', stderr); \
		} \
	} while (0)

/* The tally, and main's exit status: 0 only if every check passed. */
#define CHECK_REPORT() \
	(printf("%d passed, %d failed\n", npassed, nfailed), nfailed == 0 ? 0 : 1)

#endif							/* UNIT_CHECK_H */
