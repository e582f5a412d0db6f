/*
 * http_call.h
 *	  Push-type verbs over HTTP (docs/push-type-protocol.md), made by the push
 *	  workers outside any transaction: the decider records a call in
 *	  conveyor.push_call and commits; a worker claims it, sends its requests
 *	  concurrently, and records the normalized answer in a new transaction.
 */
#ifndef HTTP_CALL_H
#define HTTP_CALL_H

/* Endpoints that usually answer within this (ms, as a worker sees them) count as fast. */
#define CV_FAST_CALL_MS 5

extern void cv_http_worker_claim(void);
extern bool cv_http_worker_busy(void);
extern bool cv_http_worker_calls_to_claim(void);
extern long cv_http_worker_timeout(void);
extern long cv_http_worker_soon_ms(void);
extern bool cv_http_worker_wait(long timeout_ms);
extern bool cv_http_worker_progress(void);
extern void cv_http_worker_reset(void);
extern void cv_http_worker_shutdown(void);

#endif							/* HTTP_CALL_H */
