/*
 * http_client.c
 *	  Concurrent HTTP requests over libcurl's multi interface (see
 *	  http_client.h), driven with curl's socket callbacks so the wait is one
 *	  WaitEventSet holding the process latch and every socket curl watches.
 *	  On Linux the sockets stay registered in an epoll set of their own,
 *	  changed only when curl's interest changes, and the WaitEventSet holds
 *	  that one descriptor: building a set of every socket at every wait cost
 *	  an epoll_ctl per socket per wait (a tenth of a busy worker's CPU with
 *	  a hundred calls in flight).
 *
 * The retry rules are docs/push-type-protocol.md's: connection errors,
 * timeouts, 5xx, 429, other 2xx and over-long bodies are retried (callers may
 * also ask to retry a 200 whose body has the wrong shape); other 4xx and 3xx
 * are final. Between attempts a request waits a random time in
 * [0, min(4 s, 250 ms * 2^attempt)), or what a 429/503 Retry-After asks (at
 * most 4 s).
 */
#include "conveyor.h"

#include <math.h>
#include <time.h>
#include <curl/curl.h>
#ifdef HAVE_SYS_EPOLL_H
#include <sys/epoll.h>
#endif

#include "common/pg_prng.h"
#include "miscadmin.h"
#include "storage/latch.h"
#include "utils/memutils.h"
#include "utils/wait_event.h"

#include "http_client.h"

#define RETRY_BASE_MS 250.0
#define RETRY_CAP_MS 4000.0

enum
{
	REQ_QUEUED,					/* waiting for a slot or for its retry time */
	REQ_RUNNING,				/* handed to curl */
	REQ_DONE					/* finished, waiting for cvh_take_done */
};

typedef struct CvhSocket
{
	curl_socket_t fd;
	int			what;			/* CURL_POLL_IN, _OUT or _INOUT */
	int			fired;			/* CURL_CSELECT_* seen by the last wait */
} CvhSocket;

struct CvhMulti
{
	CURLM	   *multi;
	CvhRequest *queued;			/* FIFO */
	CvhRequest *running;
	CvhRequest *done;			/* FIFO */
	CvhSocket  *socks;
	int			nsocks;
	int			socks_cap;
	long		timer_ms;		/* curl's requested timeout, -1 for none */
	double		timer_set_at;
	int			epfd;			/* the sockets, kept registered; -1: none */
	bool		epoll_failed;	/* a registration failed: waits list the sockets instead */
	WaitEventSet *set;			/* latch, postmaster death and epfd, from the first wait */
};

static bool curl_ready = false;

static double
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000.0 + ts.tv_nsec / 1e6;
}

/* Append r to the end of a list. */
static void
list_append(CvhRequest **head, CvhRequest *r)
{
	r->next = NULL;
	while (*head)
		head = &(*head)->next;
	*head = r;
}

/* Unlink r from a list it is on. */
static void
list_remove(CvhRequest **head, CvhRequest *r)
{
	for (; *head; head = &(*head)->next)
	{
		if (*head == r)
		{
			*head = r->next;
			r->next = NULL;
			return;
		}
	}
}

/*
 * Keep fd's registration in the epoll set in line with curl's interest (what:
 * CURL_POLL_*). Called from curl's callback: no ereport; a failure sends the
 * waits back to listing every socket.
 */
static void
sock_register(CvhMulti *m, curl_socket_t fd, int what)
{
#ifdef HAVE_SYS_EPOLL_H
	struct epoll_event ev;

	if (m->epfd < 0 || m->epoll_failed)
		return;
	memset(&ev, 0, sizeof(ev));
	ev.events = ((what & CURL_POLL_IN) ? EPOLLIN : 0) | ((what & CURL_POLL_OUT) ? EPOLLOUT : 0);
	ev.data.fd = fd;
	if (what == CURL_POLL_REMOVE || ev.events == 0)
	{
		/* fails harmlessly when curl closed it already: the kernel dropped it then */
		(void) epoll_ctl(m->epfd, EPOLL_CTL_DEL, fd, NULL);
		return;
	}
	if (epoll_ctl(m->epfd, EPOLL_CTL_MOD, fd, &ev) != 0 &&
		epoll_ctl(m->epfd, EPOLL_CTL_ADD, fd, &ev) != 0)
		m->epoll_failed = true;
#endif
}

/* curl: a socket's interest changed. Only bookkeeping here, never ereport. */
static int
socket_cb(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp)
{
	CvhMulti   *m = userp;
	int			i;

	sock_register(m, fd, what);
	for (i = 0; i < m->nsocks && m->socks[i].fd != fd; i++)
		;
	if (what == CURL_POLL_REMOVE)
	{
		if (i < m->nsocks)
			m->socks[i] = m->socks[--m->nsocks];
		return 0;
	}
	if (i == m->nsocks)
	{
		if (m->nsocks == m->socks_cap)
		{
			int			cap = m->socks_cap ? m->socks_cap * 2 : 16;
			CvhSocket  *grown = realloc(m->socks, cap * sizeof(CvhSocket));

			if (grown == NULL)
				return -1;		/* curl fails this transfer: out of memory */
			m->socks = grown;
			m->socks_cap = cap;
		}
		m->nsocks++;
		m->socks[i].fd = fd;
		m->socks[i].fired = 0;
	}
	m->socks[i].what = what;
	return 0;
}

/* curl: when it next wants to be called for timeouts (-1: never). */
static int
timer_cb(CURLM *multi, long timeout_ms, void *userp)
{
	CvhMulti   *m = userp;

	m->timer_ms = timeout_ms;
	m->timer_set_at = now_ms();
	return 0;
}

/* curl: a piece of the response body. Returning less than given aborts. */
static size_t
write_cb(char *data, size_t size, size_t nmemb, void *userp)
{
	CvhRequest *r = userp;
	size_t		n = size * nmemb;
	char	   *grown;

	if (r->response_len + n > r->settings->max_response_bytes)
	{
		r->too_big = true;
		return 0;
	}
	if (r->response_len + n + 1 > r->response_cap)
	{
		/* grow geometrically: bodies arrive in many small pieces */
		size_t		cap = Max(r->response_cap * 2, r->response_len + n + 1);

		cap = Max(cap, 4096);
		grown = realloc(r->response, cap);
		if (grown == NULL)
			return 0;
		r->response = grown;
		r->response_cap = cap;
	}
	memcpy(r->response + r->response_len, data, n);
	r->response_len += n;
	r->response[r->response_len] = '\0';
	return n;
}

CvhMulti *
cvh_create(void)
{
	CvhMulti   *m;

	if (!curl_ready)
	{
		if (curl_global_init(CURL_GLOBAL_ALL) != CURLE_OK)
			ereport(ERROR, (errmsg("conveyor: could not initialize libcurl")));
		curl_ready = true;
	}
	m = calloc(1, sizeof(CvhMulti));
	if (m == NULL)
		ereport(ERROR, (errcode(ERRCODE_OUT_OF_MEMORY), errmsg("out of memory")));
	m->multi = curl_multi_init();
	if (m->multi == NULL)
	{
		free(m);
		ereport(ERROR, (errmsg("conveyor: could not create a libcurl multi handle")));
	}
	m->timer_ms = -1;
	m->epfd = -1;
#ifdef HAVE_SYS_EPOLL_H
	m->epfd = epoll_create1(EPOLL_CLOEXEC);	/* -1: waits list the sockets */
#endif
	curl_multi_setopt(m->multi, CURLMOPT_SOCKETFUNCTION, socket_cb);
	curl_multi_setopt(m->multi, CURLMOPT_SOCKETDATA, m);
	curl_multi_setopt(m->multi, CURLMOPT_TIMERFUNCTION, timer_cb);
	curl_multi_setopt(m->multi, CURLMOPT_TIMERDATA, m);
	return m;
}

/* Take a running request away from curl. */
static void
request_detach(CvhMulti *m, CvhRequest *r)
{
	if (r->easy)
	{
		curl_multi_remove_handle(m->multi, r->easy);
		curl_easy_cleanup(r->easy);
		r->easy = NULL;
	}
	if (r->headers)
	{
		curl_slist_free_all(r->headers);
		r->headers = NULL;
	}
}

void
cvh_destroy(CvhMulti *m)
{
	CvhRequest *lists[3] = {m->queued, m->running, m->done};

	for (int i = 0; i < 3; i++)
	{
		while (lists[i])
		{
			CvhRequest *r = lists[i];

			lists[i] = r->next;
			request_detach(m, r);
			cvh_request_free(r);
		}
	}
	curl_multi_cleanup(m->multi);
	if (m->set)
		FreeWaitEventSet(m->set);
	if (m->epfd >= 0)
		close(m->epfd);
	free(m->socks);
	free(m);
}

/* A new request (not yet submitted); NULL when out of memory. */
CvhRequest *
cvh_request_new(const char *url, const char *body, const CvhSettings *settings, const void *group)
{
	CvhRequest *r = calloc(1, sizeof(CvhRequest));

	if (r == NULL)
		return NULL;
	r->url = strdup(url);
	r->body = body ? strdup(body) : NULL;
	if (r->url == NULL || (body && r->body == NULL))
	{
		cvh_request_free(r);
		return NULL;
	}
	r->settings = settings;
	r->group = group;
	return r;
}

void
cvh_request_free(CvhRequest *r)
{
	if (r == NULL)
		return;
	free(r->url);
	free(r->body);
	free(r->response);
	free(r);
}

/*
 * Replace every occurrence of the token in s (a buffer of size bytes) by
 * "[redacted]", and a piece of it left at the end by a cut (a prefix of at
 * least 3 bytes) too, so no part of a token survives truncation.
 */
static void
redact_token(char *s, size_t size, const char *token)
{
	char	   *hit;
	size_t		tlen;
	size_t		slen;

	if (token == NULL || (tlen = strlen(token)) < 4)
		return;
	while ((hit = strstr(s, token)) != NULL)
	{
		char	   *rest = strdup(hit + tlen);

		if (rest == NULL)
		{
			*hit = '\0';		/* out of memory: drop the rest rather than keep the token */
			return;
		}
		snprintf(hit, size - (hit - s), "[redacted]%s", rest);
		free(rest);
	}
	slen = strlen(s);
	for (size_t k = Min(tlen - 1, slen); k >= 3; k--)
	{
		if (memcmp(s + slen - k, token, k) == 0)
		{
			snprintf(s + slen - k, size - (slen - k), "[redacted]");
			break;
		}
	}
}

/* Say why r failed: its method and URL, then the cause. */
static void
request_error(CvhRequest *r, const char *fmt,...) pg_attribute_printf(2, 3);

static void
request_error(CvhRequest *r, const char *fmt,...)
{
	char		cause[200];
	va_list		ap;

	va_start(ap, fmt);
	vsnprintf(cause, sizeof(cause), fmt, ap);
	va_end(ap);
	/* the URL without its query string (a Prometheus query would crowd out the cause) */
	snprintf(r->error, sizeof(r->error), "%s %.*s: %s", r->body ? "POST" : "GET",
			 (int) strcspn(r->url, "?"), r->url, cause);
	/* printable ASCII only: bodies quoted here come from anywhere */
	for (char *c = r->error; *c; c++)
		if ((unsigned char) *c < 0x20 || (unsigned char) *c > 0x7e)
			*c = ' ';
	redact_token(r->error, sizeof(r->error), r->settings->token);
}

/* Hand a queued request to curl; false (and r failed) if curl refused it. */
static bool
request_start(CvhMulti *m, CvhRequest *r)
{
	CURL	   *e = curl_easy_init();
	struct curl_slist *h = NULL;
	char		auth[1100];
	const char *refused = cvh_host_refused(r->url);

	if (refused)
	{
		r->outcome = CVH_FINAL;
		request_error(r, "%s", refused);
		if (e)
			curl_easy_cleanup(e);
		return false;
	}
	if (e == NULL)
	{
		r->outcome = CVH_RETRYABLE;
		request_error(r, "out of memory");
		return false;
	}
	free(r->response);
	r->response = NULL;
	r->response_len = 0;
	r->response_cap = 0;
	r->too_big = false;
	r->status = 0;
	r->curl_error[0] = '\0';

	if (r->settings->token && r->settings->token[0])
	{
		snprintf(auth, sizeof(auth), "Authorization: Bearer %s", r->settings->token);
		h = curl_slist_append(h, auth);
		explicit_bzero(auth, sizeof(auth));
	}
	h = curl_slist_append(h, "Conveyor-Protocol: 1");
	h = curl_slist_append(h, "Accept: application/json");
	if (r->body)
	{
		h = curl_slist_append(h, "Content-Type: application/json");
		h = curl_slist_append(h, "Expect:");	/* no 100-continue round trip */
	}
	r->headers = h;
	r->easy = e;

	curl_easy_setopt(e, CURLOPT_URL, r->url);
	curl_easy_setopt(e, CURLOPT_PRIVATE, r);
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, r->settings->connect_timeout_ms);
	curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, r->settings->timeout_ms);
	curl_easy_setopt(e, CURLOPT_HTTPHEADER, h);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, write_cb);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, r);
	curl_easy_setopt(e, CURLOPT_ERRORBUFFER, r->curl_error);
	curl_easy_setopt(e, CURLOPT_USERAGENT, "conveyor/" "1");
	if (r->body)
	{
		curl_easy_setopt(e, CURLOPT_POSTFIELDS, r->body);
		curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE, (long) strlen(r->body));
	}
	if (h == NULL || curl_multi_add_handle(m->multi, e) != CURLM_OK)
	{
		request_detach(m, r);
		r->outcome = CVH_RETRYABLE;
		request_error(r, "could not start the request");
		return false;
	}
	r->attempts++;
	if (r->attempts == 1)
		r->start_ms = now_ms();
	r->state = REQ_RUNNING;
	return true;
}

/* Move r to the done list. */
static void
request_finish(CvhMulti *m, CvhRequest *r)
{
	r->state = REQ_DONE;
	r->elapsed_ms = now_ms() - r->start_ms;
	list_append(&m->done, r);
}

/* A retryable failure: queue another attempt if any is left, else finish. */
static void
request_retry_or_finish(CvhMulti *m, CvhRequest *r)
{
	if (r->attempts <= r->settings->retries)
	{
		double		cap = Min(RETRY_CAP_MS, RETRY_BASE_MS * (double) (1 << Min(r->attempts, 10)));
		double		wait = r->retry_after_ms > 0 ? Min((double) r->retry_after_ms, RETRY_CAP_MS)
			: pg_prng_double(&pg_global_prng_state) * cap;

		r->retry_at_ms = now_ms() + wait;
		r->retry_after_ms = 0;
		r->state = REQ_QUEUED;
		r->outcome = CVH_RUNNING;
		list_append(&m->queued, r);
		return;
	}
	r->outcome = CVH_RETRYABLE;
	request_finish(m, r);
}

/* Count running requests of a group. */
static int
group_running(CvhMulti *m, const void *group)
{
	int			n = 0;

	for (CvhRequest *r = m->running; r; r = r->next)
		if (r->group == group)
			n++;
	return n;
}

/* Start queued requests whose time has come, within their groups' caps. */
static void
pump(CvhMulti *m)
{
	double		now = now_ms();
	CvhRequest **link = &m->queued;

	while (*link)
	{
		CvhRequest *r = *link;

		if (r->retry_at_ms > now || group_running(m, r->group) >= Max(1, r->settings->concurrency))
		{
			link = &r->next;
			continue;
		}
		*link = r->next;
		r->next = NULL;
		if (request_start(m, r))
			list_append(&m->running, r);
		else
			request_finish(m, r);
	}
}

/* Classify a request curl has finished with. */
static void
request_completed(CvhMulti *m, CvhRequest *r, CURLcode res)
{
	curl_off_t	retry_after = 0;

	list_remove(&m->running, r);
	curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &r->status);
	curl_easy_getinfo(r->easy, CURLINFO_RETRY_AFTER, &retry_after);
	request_detach(m, r);

	if (res != CURLE_OK)
	{
		if (r->too_big)
			request_error(r, "response larger than %zu bytes", r->settings->max_response_bytes);
		else
			request_error(r, "%s%s%s", curl_easy_strerror(res),
						  r->curl_error[0] ? ": " : "", r->curl_error);
		r->status = 0;
		request_retry_or_finish(m, r);
		return;
	}
	if (r->status == 200 || (r->status == 404 && r->accept_404))
	{
		r->outcome = CVH_OK;
		r->error[0] = '\0';
		request_finish(m, r);
		return;
	}
	{
		/* a snippet of the body, the token taken out before it is cut */
		char		snip[1200] = "";

		if (r->response)
		{
			snprintf(snip, sizeof(snip), "%s", r->response);
			redact_token(snip, sizeof(snip), r->settings->token);
			if (strlen(snip) > 120)
			{
				snip[120] = '\0';
				redact_token(snip, sizeof(snip), r->settings->token);
			}
		}
		request_error(r, "HTTP %ld%s%s", r->status, snip[0] ? ": " : "", snip);
	}
	if (r->status == 429 || r->status >= 500 || (r->status >= 200 && r->status < 300))
	{
		if ((r->status == 429 || r->status == 503) && retry_after > 0)
			r->retry_after_ms = (long) Min(retry_after * 1000, (curl_off_t) RETRY_CAP_MS);
		request_retry_or_finish(m, r);
		return;
	}
	r->outcome = CVH_FINAL;
	request_finish(m, r);
}

/* Queue a request; it starts at the next cvh_drive. */
void
cvh_submit(CvhMulti *m, CvhRequest *r)
{
	r->state = REQ_QUEUED;
	r->outcome = CVH_RUNNING;
	r->retry_at_ms = 0;
	list_append(&m->queued, r);
}

/*
 * A finished request whose answer the caller found wrong (a 200 with a body
 * of the wrong shape): retry it if attempts are left (true), else it stays
 * finished as a retryable failure with this reason (false). r must have come
 * from cvh_take_done.
 */
bool
cvh_retry(CvhMulti *m, CvhRequest *r, const char *why)
{
	request_error(r, "%s", why);
	if (r->attempts <= r->settings->retries)
	{
		request_retry_or_finish(m, r);
		return true;
	}
	r->outcome = CVH_RETRYABLE;
	return false;
}

/* Drop every request of an owner, wherever it is, and free it. */
void
cvh_cancel_owner(CvhMulti *m, const void *owner)
{
	CvhRequest **lists[3] = {&m->queued, &m->running, &m->done};

	for (int i = 0; i < 3; i++)
	{
		CvhRequest **link = lists[i];

		while (*link)
		{
			CvhRequest *r = *link;

			if (r->owner != owner)
			{
				link = &r->next;
				continue;
			}
			*link = r->next;
			request_detach(m, r);
			cvh_request_free(r);
		}
	}
}

/* Requests queued or running. */
int
cvh_active(CvhMulti *m)
{
	int			n = 0;

	for (CvhRequest *r = m->queued; r; r = r->next)
		n++;
	for (CvhRequest *r = m->running; r; r = r->next)
		n++;
	return n;
}

/* Milliseconds until cvh_drive has work: 0 now, -1 if nothing is pending. */
long
cvh_timeout_ms(CvhMulti *m)
{
	double		now = now_ms();
	double		best = -1;

	if (m->done)
		return 0;
	if (m->timer_ms >= 0)
		best = Max(0, m->timer_set_at + m->timer_ms - now);
	for (CvhRequest *r = m->queued; r; r = r->next)
	{
		double		wait = Max(0, r->retry_at_ms - now);

		/* a request held back by its group's cap waits for a running one */
		if (wait == 0 && group_running(m, r->group) >= Max(1, r->settings->concurrency))
			continue;
		if (best < 0 || wait < best)
			best = wait;
	}
	return best < 0 ? -1 : (long) ceil(best);
}

/* Mark the socket fd ready for reading and writing as seen, as far as curl asked for each. */
static void
sock_fired(CvhMulti *m, pgsocket fd, bool readable, bool writeable)
{
	for (int i = 0; i < m->nsocks; i++)
	{
		if (m->socks[i].fd != fd)
			continue;
		if (readable && (m->socks[i].what & CURL_POLL_IN))
			m->socks[i].fired |= CURL_CSELECT_IN;
		if (writeable && (m->socks[i].what & CURL_POLL_OUT))
			m->socks[i].fired |= CURL_CSELECT_OUT;
	}
}

/* cvh_wait with a WaitEventSet of every socket, built for this wait. */
static bool
wait_listing(CvhMulti *m, long timeout_ms, unsigned int wait_event_info)
{
	WaitEventSet *set;
	WaitEvent  *occurred;
	int			n;
	bool		latch = false;

	set = CreateWaitEventSet(CurrentMemoryContext, m->nsocks + 2);
	AddWaitEventToSet(set, WL_LATCH_SET, PGINVALID_SOCKET, MyLatch, NULL);
	AddWaitEventToSet(set, WL_EXIT_ON_PM_DEATH, PGINVALID_SOCKET, NULL, NULL);
	for (int i = 0; i < m->nsocks; i++)
	{
		uint32		ev = 0;

		if (m->socks[i].what & CURL_POLL_IN)
			ev |= WL_SOCKET_READABLE;
		if (m->socks[i].what & CURL_POLL_OUT)
			ev |= WL_SOCKET_WRITEABLE;
		if (ev)
			AddWaitEventToSet(set, ev, m->socks[i].fd, NULL, NULL);
	}
	occurred = palloc(sizeof(WaitEvent) * (m->nsocks + 2));
	n = WaitEventSetWait(set, timeout_ms, occurred, m->nsocks + 2, wait_event_info);
	for (int k = 0; k < n; k++)
	{
		if (occurred[k].events & WL_LATCH_SET)
		{
			ResetLatch(MyLatch);
			latch = true;
		}
		if (occurred[k].events & (WL_SOCKET_READABLE | WL_SOCKET_WRITEABLE))
			sock_fired(m, occurred[k].fd, (occurred[k].events & WL_SOCKET_READABLE) != 0,
					   (occurred[k].events & WL_SOCKET_WRITEABLE) != 0);
	}
	pfree(occurred);
	FreeWaitEventSet(set);
	return latch;
}

#ifdef HAVE_SYS_EPOLL_H
/* cvh_wait on the epoll set the sockets stay registered in (sock_register). */
static bool
wait_epoll(CvhMulti *m, long timeout_ms, unsigned int wait_event_info)
{
	WaitEvent	occurred[3];
	int			n;
	bool		latch = false;
	bool		ready = false;

	if (m->set == NULL)
	{
		WaitEventSet *set = CreateWaitEventSet(TopMemoryContext, 3);

		AddWaitEventToSet(set, WL_LATCH_SET, PGINVALID_SOCKET, MyLatch, NULL);
		AddWaitEventToSet(set, WL_EXIT_ON_PM_DEATH, PGINVALID_SOCKET, NULL, NULL);
		/* an epoll descriptor is readable while any socket in it is ready */
		AddWaitEventToSet(set, WL_SOCKET_READABLE, m->epfd, NULL, NULL);
		m->set = set;
	}
	n = WaitEventSetWait(m->set, timeout_ms, occurred, lengthof(occurred), wait_event_info);
	for (int k = 0; k < n; k++)
	{
		if (occurred[k].events & WL_LATCH_SET)
		{
			ResetLatch(MyLatch);
			latch = true;
		}
		if (occurred[k].events & WL_SOCKET_READABLE)
			ready = true;
	}
	if (ready && m->nsocks > 0)
	{
		struct epoll_event *evs = palloc(sizeof(struct epoll_event) * m->nsocks);
		int			got = epoll_wait(m->epfd, evs, m->nsocks, 0);

		for (int k = 0; k < got; k++)
			sock_fired(m, evs[k].data.fd, (evs[k].events & (EPOLLIN | EPOLLERR | EPOLLHUP)) != 0,
					   (evs[k].events & (EPOLLOUT | EPOLLERR | EPOLLHUP)) != 0);
		pfree(evs);
	}
	return latch;
}
#endif

/*
 * Sleep until one of curl's sockets is ready, the latch is set, or timeout_ms
 * passes (-1: no timeout); whether the latch was set. The caller checks for
 * interrupts afterwards.
 */
bool
cvh_wait(CvhMulti *m, long timeout_ms, unsigned int wait_event_info)
{
	for (int i = 0; i < m->nsocks; i++)
		m->socks[i].fired = 0;
#ifdef HAVE_SYS_EPOLL_H
	if (m->epfd >= 0 && !m->epoll_failed)
		return wait_epoll(m, timeout_ms, wait_event_info);
#endif
	return wait_listing(m, timeout_ms, wait_event_info);
}

/* Let curl work on ready sockets and expired timers; collect finished requests. */
void
cvh_drive(CvhMulti *m)
{
	int			running;
	CURLMsg    *msg;
	int			left;

	pump(m);
	/* sockets that fired; curl's callback may reshuffle the array meanwhile */
	for (int i = 0; i < m->nsocks; i++)
	{
		if (m->socks[i].fired)
		{
			int			fired = m->socks[i].fired;

			m->socks[i].fired = 0;
			curl_multi_socket_action(m->multi, m->socks[i].fd, fired, &running);
			i = -1;				/* start over: the array may have changed */
		}
	}
	if (m->timer_ms >= 0 && now_ms() >= m->timer_set_at + m->timer_ms)
	{
		m->timer_ms = -1;
		curl_multi_socket_action(m->multi, CURL_SOCKET_TIMEOUT, 0, &running);
	}
	while ((msg = curl_multi_info_read(m->multi, &left)) != NULL)
	{
		CvhRequest *r = NULL;

		if (msg->msg != CURLMSG_DONE)
			continue;
		curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **) &r);
		if (r)
			request_completed(m, r, msg->data.result);
	}
	pump(m);
}

/* The next finished request (the caller frees it), or NULL. */
CvhRequest *
cvh_take_done(CvhMulti *m)
{
	CvhRequest *r = m->done;

	if (r)
	{
		m->done = r->next;
		r->next = NULL;
	}
	return r;
}

/* Lower-case copy of at most n bytes of s into buf, without IPv6 brackets. */
static void
host_norm(char *buf, size_t size, const char *s, size_t n)
{
	size_t		k = 0;

	if (n >= 2 && s[0] == '[' && s[n - 1] == ']')
	{
		s++;
		n -= 2;
	}
	for (size_t i = 0; i < n && k + 1 < size; i++)
		buf[k++] = pg_tolower((unsigned char) s[i]);
	buf[k] = '\0';
}

/* Whether an allow-list entry (host, host:port, *.domain) admits host and port. */
static bool
entry_admits(const char *entry, size_t len, const char *host, long port)
{
	char		ehost[256];
	const char *colon = NULL;
	long		eport = -1;

	/* [v6]:port, host:port (one colon), or a bare host or IPv6 address */
	if (entry[0] == '[')
	{
		const char *close = memchr(entry, ']', len);

		if (close && close + 1 < entry + len && close[1] == ':')
			colon = close + 1;
	}
	else
	{
		const char *first = memchr(entry, ':', len);

		if (first && memchr(first + 1, ':', entry + len - first - 1) == NULL)
			colon = first;
	}
	if (colon)
	{
		char		num[8];
		char	   *end;
		size_t		nl = entry + len - colon - 1;

		if (nl == 0 || nl >= sizeof(num))
			return false;
		memcpy(num, colon + 1, nl);
		num[nl] = '\0';
		eport = strtol(num, &end, 10);
		if (*end != '\0' || eport <= 0 || eport > 65535)
			return false;
		len = colon - entry;
	}
	host_norm(ehost, sizeof(ehost), entry, len);
	if (eport >= 0 && eport != port)
		return false;
	if (ehost[0] == '*' && ehost[1] == '.')
	{
		size_t		hl = strlen(host),
					sl = strlen(ehost + 1);

		return hl > sl && strcmp(host + hl - sl, ehost + 1) == 0;
	}
	return strcmp(ehost, host) == 0;
}

/*
 * NULL if the administrator allows calls to this URL (conveyor.allowed_hosts),
 * else why not. Only http and https, no user name or password in the URL.
 */
const char *
cvh_host_refused(const char *url)
{
	CURLU	   *u = curl_url();
	char	   *scheme = NULL,
			   *host = NULL,
			   *user = NULL,
			   *portstr = NULL;
	const char *refused = NULL;
	char		h[256];
	long		port;
	const char *p;

	if (u == NULL)
		return "out of memory";
	if (curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK ||
		curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
		curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK ||
		curl_url_get(u, CURLUPART_PORT, &portstr, CURLU_DEFAULT_PORT) != CURLUE_OK)
		refused = "not a valid URL";
	else if (strcmp(scheme, "http") != 0 && strcmp(scheme, "https") != 0)
		refused = "only http and https URLs are allowed";
	else if (curl_url_get(u, CURLUPART_USER, &user, 0) == CURLUE_OK)
		refused = "a URL must not carry a user name or password (use the push type's token)";
	else
	{
		host_norm(h, sizeof(h), host, strlen(host));
		port = strtol(portstr, NULL, 10);
		refused = "host not in conveyor.allowed_hosts";
		for (p = cv_allowed_hosts ? cv_allowed_hosts : ""; *p;)
		{
			const char *end = strchr(p, ',');
			size_t		len = end ? (size_t) (end - p) : strlen(p);
			const char *s = p;
			size_t		n = len;

			while (n > 0 && isspace((unsigned char) *s))
				s++, n--;
			while (n > 0 && isspace((unsigned char) s[n - 1]))
				n--;
			if (n > 0 && entry_admits(s, n, h, port))
			{
				refused = NULL;
				break;
			}
			p += len;
			if (*p == ',')
				p++;
		}
	}
	curl_free(scheme);
	curl_free(host);
	curl_free(user);
	curl_free(portstr);
	curl_url_cleanup(u);
	return refused;
}
