/*
 * The endpoint side of the push-type protocol on libmicrohttpd: see
 * endpoint.h. Thread-safe: no state but the ep_on_status hook, set once
 * before serving.
 */
#include "endpoint.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void		(*ep_on_status) (unsigned code) = NULL;

/*
 * Append N bytes to the body; false only when out of memory. Past MAX bytes
 * the body is marked too_big and the rest is read and dropped, so the client
 * gets a 413 rather than a reset connection.
 */
bool
ep_body_add(ep_body *b, const char *data, size_t n, size_t max)
{
	if (b->too_big || b->len + n > max)
	{
		ep_body_free(b);
		b->too_big = true;
		return true;
	}
	if (b->len + n > b->cap)
	{
		size_t		cap = b->cap ? b->cap : 16384;
		char	   *p;

		while (cap < b->len + n)
			cap *= 2;
		if (!(p = realloc(b->buf, cap)))
			return false;
		b->buf = p;
		b->cap = cap;
	}
	memcpy(b->buf + b->len, data, n);
	b->len += n;
	return true;
}

/* Free the bytes (too_big stays as it is). */
void
ep_body_free(ep_body *b)
{
	free(b->buf);
	b->buf = NULL;
	b->len = b->cap = 0;
}

/* FNV-1a: tells a re-sent request from a different body under the same key. */
uint64_t
ep_hash(const char *p, size_t n)
{
	uint64_t	h = 14695981039346656037ULL;

	for (size_t i = 0; i < n; i++)
	{
		h ^= (unsigned char) p[i];
		h *= 1099511628211ULL;
	}
	return h;
}

/* Queue TEXT (malloc'd, taken over) as the answer, with the protocol's headers. */
enum MHD_Result
ep_send_text(struct MHD_Connection *c, unsigned code, char *text, const char *ctype, const char *hname,
			 const char *hvalue)
{
	struct MHD_Response *r;
	enum MHD_Result ret;

	if (!text)
		return MHD_NO;			/* out of memory: libmicrohttpd drops the connection */
	r = MHD_create_response_from_buffer(strlen(text), text, MHD_RESPMEM_MUST_FREE);
	if (!r)
	{
		free(text);
		return MHD_NO;
	}
	if (MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, ctype) != MHD_YES ||
		MHD_add_response_header(r, "Conveyor-Protocol", "1") != MHD_YES ||
		(hname && MHD_add_response_header(r, hname, hvalue) != MHD_YES))
	{
		MHD_destroy_response(r);
		return MHD_NO;
	}
	if (ep_on_status)
		ep_on_status(code);
	ret = MHD_queue_response(c, code, r);
	MHD_destroy_response(r);
	return ret;
}

/* Queue BODY (reference taken over) as a JSON answer. */
enum MHD_Result
ep_send_json(struct MHD_Connection *c, unsigned code, json_t *body)
{
	char	   *text = body ? json_dumps(body, JSON_COMPACT) : NULL;

	json_decref(body);
	return ep_send_text(c, code, text, "application/json", NULL, NULL);
}

/* Queue {"error": "..."} with CODE, and a header when HNAME is set. */
enum MHD_Result
ep_send_error(struct MHD_Connection *c, unsigned code, const char *hname, const char *hvalue,
			  const char *fmt,...)
{
	char		msg[300];
	va_list		ap;
	json_t	   *body;
	char	   *text;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	body = json_pack("{s:s}", "error", msg);
	text = body ? json_dumps(body, JSON_COMPACT) : NULL;
	json_decref(body);
	return ep_send_text(c, code, text, "application/json", hname, hvalue);
}

/* A JSON string of 1 to EP_NAME_MAX bytes, or NULL. */
const char *
ep_name_of(json_t *v)
{
	if (!json_is_string(v) || json_string_length(v) == 0 || json_string_length(v) > EP_NAME_MAX)
		return NULL;
	return json_string_value(v);
}

/* An array of names (units), or false. */
bool
ep_is_name_array(json_t *a)
{
	size_t		i;
	json_t	   *v;

	if (!json_is_array(a))
		return false;
	json_array_foreach(a, i, v)
	{
		if (!ep_name_of(v))
			return false;
	}
	return true;
}
