/*
 * The endpoint side of conveyor's push-type protocol on libmicrohttpd
 * (docs/push-type-protocol.md): request bodies, answers with the protocol's
 * headers, the checks of names. Shared by conveyor-agent and the benchmark
 * endpoint (test/http/bench_endpoint.c), so both answer alike.
 */
#ifndef CONVEYOR_ENDPOINT_H
#define CONVEYOR_ENDPOINT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <jansson.h>
#include <microhttpd.h>

#define EP_NAME_MAX 200             /* names and keys: at most this many bytes (the protocol's limit) */

/* A request's body, collected across libmicrohttpd's upload calls. */
typedef struct
{
	char	   *buf;
	size_t		len;
	size_t		cap;
	bool		too_big;			/* over the limit: dropped, answered 413 */
} ep_body;

/* Called for every answer queued, with its status (NULL: nobody counts). */
extern void (*ep_on_status) (unsigned code);

extern bool ep_body_add(ep_body *b, const char *data, size_t n, size_t max);
extern void ep_body_free(ep_body *b);
extern uint64_t ep_hash(const char *p, size_t n);
extern enum MHD_Result ep_send_text(struct MHD_Connection *c, unsigned code, char *text, const char *ctype,
									const char *hname, const char *hvalue);
extern enum MHD_Result ep_send_json(struct MHD_Connection *c, unsigned code, json_t *body);
extern enum MHD_Result ep_send_error(struct MHD_Connection *c, unsigned code, const char *hname,
									 const char *hvalue, const char *fmt,...) __attribute__((format(printf, 5, 6)));
extern const char *ep_name_of(json_t *v);
extern bool ep_is_name_array(json_t *a);

#endif
