/*
 * http_client.h
 *	  Concurrent HTTP requests over libcurl's multi interface, for the push
 *	  workers and for the few SQL functions that ask an endpoint directly.
 *
 * A CvhMulti runs many CvhRequests at once under a concurrency cap, retries
 * the retryable failures of docs/push-type-protocol.md with backoff and full
 * jitter, and waits on the process latch together with curl's sockets, so
 * SIGTERM, a query cancel or a wake-up is seen at once even during a slow
 * call. Nothing here calls ereport or palloc from inside a curl callback:
 * requests, bodies and curl's own memory are malloc'd and freed explicitly.
 */
#ifndef HTTP_CLIENT_H
#define HTTP_CLIENT_H

#include <stdbool.h>
#include <stddef.h>

/* How a request ended. */
typedef enum CvhOutcome
{
	CVH_RUNNING = 0,			/* not finished */
	CVH_OK,						/* an answer: 200, or a 404 the caller accepts */
	CVH_RETRYABLE,				/* failed after its retries: timeouts, 5xx, 429, bad bodies */
	CVH_FINAL					/* not worth retrying: other 4xx, 3xx, refused host */
} CvhOutcome;

/* Per push type: how to talk to its endpoints. */
typedef struct CvhSettings
{
	const char *token;			/* bearer token, or NULL; never copied into errors */
	long		connect_timeout_ms;
	long		timeout_ms;
	size_t		max_response_bytes;
	int			retries;		/* retries after the first attempt */
	int			concurrency;	/* most requests of this group in flight at once */
} CvhSettings;

typedef struct CvhRequest CvhRequest;

struct CvhRequest
{
	/* set by the caller; url and body are malloc'd and owned by the request */
	char	   *url;
	char	   *body;			/* NULL: GET; otherwise POST this JSON */
	const CvhSettings *settings;
	const void *group;			/* requests of one group share settings->concurrency */
	bool		accept_404;		/* a 404 is an answer (an optional verb) */
	void	   *owner;			/* the caller's, untouched */
	int			tag;

	/* the answer */
	CvhOutcome	outcome;
	long		status;			/* HTTP status of the last attempt, 0 if none */
	char	   *response;		/* NUL-terminated body (malloc'd), or NULL */
	size_t		response_len;
	int			attempts;
	double		elapsed_ms;		/* from first start to the end, retries included */
	char		error[256];		/* why it failed; names the URL, never the token */

	/* private to http_client.c */
	void	   *easy;
	void	   *headers;
	char		curl_error[256];
	size_t		response_cap;	/* allocated size of response */
	bool		too_big;
	int			state;
	double		start_ms;
	double		retry_at_ms;
	long		retry_after_ms;
	CvhRequest *next;
};

typedef struct CvhMulti CvhMulti;

extern CvhMulti *cvh_create(void);
extern void cvh_destroy(CvhMulti *m);
extern CvhRequest *cvh_request_new(const char *url, const char *body, const CvhSettings *settings,
								   const void *group);
extern void cvh_request_free(CvhRequest *r);
extern void cvh_submit(CvhMulti *m, CvhRequest *r);
extern bool cvh_retry(CvhMulti *m, CvhRequest *r, const char *why);
extern void cvh_cancel_owner(CvhMulti *m, const void *owner);
extern int	cvh_active(CvhMulti *m);
extern long cvh_timeout_ms(CvhMulti *m);
extern bool cvh_wait(CvhMulti *m, long timeout_ms, unsigned int wait_event_info);
extern void cvh_drive(CvhMulti *m);
extern CvhRequest *cvh_take_done(CvhMulti *m);
extern const char *cvh_host_refused(const char *url);

#endif							/* HTTP_CLIENT_H */
