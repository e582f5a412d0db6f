/*
 * bench_endpoint.c: a fast push-type endpoint for benchmarks. It speaks
 * protocol version 1 (docs/push-type-protocol.md) for in-memory fleets of
 * N units x M subunits, so the http transport can be measured against an
 * endpoint that costs almost nothing, and against wrk on the same endpoint.
 * It is a test program: built by test/bench/http.sh (or `make
 * test/http/bench_endpoint`), never installed.
 *
 *   bench_endpoint --token T [--host 127.0.0.1] [--port 0] [--port-file F]
 *                  [--units 1000] [--subunits 10] [--version v1]
 *                  [--mode done|accepted] [--delay-ms 0] [--threads 4]
 *                  [--no-needs-push] [--max-body 8388608] [--max-fleets 1024]
 *
 * Fleets. `/v1/...` is the default fleet; `/NAME/v1/...` (NAME: 1 to 64 of
 * [A-Za-z0-9._-]) is fleet NAME, made on its first request, so one process
 * plays many services (their push-type configs name
 * "http://HOST:PORT/NAME"). Each fleet has units "u0".."u<N-1>" with labels
 * {"region": "eu"|"us"|"ap" (round robin), "tier": "web"} and subunits
 * "0".."<M-1>", all on --version and "ok" at the start.
 *
 * Protocol (token, then Conveyor-Protocol: 1, then the body, as the doc says):
 *   GET  /v1/units        the fleet
 *   POST /v1/needs-push   a unit needs a push unless every subunit runs the
 *                         version; 404 with --no-needs-push
 *   POST /v1/update       --mode done: "done"; --mode accepted: "accepted",
 *                         and the subunit runs the version at once, so the next
 *                         GET /v1/units confirms it. An update to the version a
 *                         subunit already runs is "done". Unknown units or
 *                         subunits, and versions outside the reference agent's
 *                         alphabet (letters, digits, ._+~:-), are "refused".
 *                         A re-sent update key (the last
 *                         4 per subunit) gets its first answer and changes
 *                         nothing; a re-sent idempotency_key (the last 64 per
 *                         fleet) gets the stored answer, or 422 with another body
 *   POST /v1/health       every known unit healthy, unknown ones not
 *   POST /v1/tasks        404 (no task control)
 * --delay-ms D holds every /v1 request D ms before answering without holding
 * a thread (the connection is suspended and a timer thread resumes it), so
 * hundreds of slow requests wait concurrently.
 *
 * Control (no token):
 *   GET  /_stats   {"requests_total", "in_flight", "max_in_flight", "delayed",
 *                   "status": {"200": n, ...},
 *                   "fleets": {"": {"requests": {"units": n, "needs_push": n,
 *                   "update": n, "health": n, "tasks": n}, "updates_received",
 *                   "updates_applied", "updates_refused", "updates_resent",
 *                   "requests_replayed", "max_applied_per_subunit"}, ...}}
 *   POST /_reset   every fleet back to its first state; statistics cleared
 *
 * Prints "bench_endpoint listening on HOST:PORT" (and writes PORT to
 * --port-file); SIGTERM or SIGINT stops it with status 0.
 */
#define _GNU_SOURCE
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "endpoint.h"          /* agent/endpoint.h: the protocol's answers, shared with conveyor-agent */

#define FLEET_NAME_MAX 64
#define KEY_HISTORY    4            /* update keys remembered per subunit */
#define REQUEST_CACHE  64           /* request keys remembered per fleet */
#define NSTATUS        600

/* ---------------------------------------------------------------- options */

static struct
{
	const char *host;
	int         port;
	const char *port_file;
	const char *token;
	int         units;
	int         subunits;
	const char *version;
	bool        accepted;           /* --mode accepted */
	int         delay_ms;
	int         threads;
	bool        needs_push;
	size_t      max_body;
	int         max_fleets;
} opt = {
	.host = "127.0.0.1", .units = 1000, .subunits = 10, .version = "v1", .threads = 4,
	.needs_push = true, .max_body = 8 << 20, .max_fleets = 1024,
};

/* ---------------------------------------------------------------- fleets */

typedef struct
{
	char *key;
	char  status;                   /* 'a' accepted, 'd' done */
} key_entry;

typedef struct
{
	char      *version;             /* NULL: still on opt.version */
	uint64_t   seen_seq;            /* the update request that last named it */
	uint32_t   applied;             /* times its version changed */
	int        keys_next;
	key_entry  keys[KEY_HISTORY];
} subunit;

typedef struct
{
	char     *key;
	uint64_t  hash;
	size_t    len;
	char     *answer;
} cached_answer;

enum verb { V_UNITS, V_NEEDS_PUSH, V_UPDATE, V_HEALTH, V_TASKS, NVERBS };
static const char *const verb_path[NVERBS] = {"units", "needs-push", "update", "health", "tasks"};
static const char *const verb_stat[NVERBS] = {"units", "needs_push", "update", "health", "tasks"};
static const char *const verb_method[NVERBS] = {"GET", "POST", "POST", "POST", "POST"};

typedef struct
{
	char            name[FLEET_NAME_MAX + 1];
	pthread_mutex_t lock;
	subunit        *subs;           /* units x subunits, unit-major */
	uint64_t        seq;
	cached_answer   cache[REQUEST_CACHE];
	int             cache_next;
	uint64_t        requests[NVERBS];
	uint64_t        updates_received, updates_applied, updates_refused, updates_resent, requests_replayed;
} fleet;

static pthread_mutex_t fleets_lock = PTHREAD_MUTEX_INITIALIZER;
static fleet **fleets;
static int     nfleets;

static const char *const regions[] = {"eu", "us", "ap"};

/* Counters outside any fleet (updated with atomics). */
static uint64_t requests_total, status_count[NSTATUS];
static int64_t  in_flight, max_in_flight, delayed_now;

static void
fleet_clear(fleet *f)
{
	size_t n = (size_t) opt.units * opt.subunits;

	for (size_t i = 0; i < n; i++)
	{
		subunit *s = &f->subs[i];

		free(s->version);
		for (int k = 0; k < KEY_HISTORY; k++)
			free(s->keys[k].key);
		memset(s, 0, sizeof(*s));
	}
	for (int i = 0; i < REQUEST_CACHE; i++)
	{
		free(f->cache[i].key);
		free(f->cache[i].answer);
		memset(&f->cache[i], 0, sizeof(f->cache[i]));
	}
	f->cache_next = 0;
	memset(f->requests, 0, sizeof(f->requests));
	f->updates_received = f->updates_applied = f->updates_refused = f->updates_resent = f->requests_replayed = 0;
}

/* The fleet NAME, made on first use; NULL when --max-fleets are in use or memory ran out. */
static fleet *
fleet_get(const char *name)
{
	fleet *f = NULL;

	pthread_mutex_lock(&fleets_lock);
	for (int i = 0; i < nfleets; i++)
		if (strcmp(fleets[i]->name, name) == 0)
		{
			f = fleets[i];
			break;
		}
	if (!f && nfleets < opt.max_fleets && (f = calloc(1, sizeof(fleet))))
	{
		f->subs = calloc((size_t) opt.units * opt.subunits + 1, sizeof(subunit));
		if (!f->subs)
		{
			free(f);
			f = NULL;
		}
		else
		{
			snprintf(f->name, sizeof(f->name), "%s", name);
			pthread_mutex_init(&f->lock, NULL);
			fleets[nfleets++] = f;
		}
	}
	pthread_mutex_unlock(&fleets_lock);
	return f;
}

/* "u<i>" (no leading zeros) with i < N, else -1. */
static int
parse_index(const char *s, char prefix, int n)
{
	long v = 0;

	if (prefix && *s++ != prefix)
		return -1;
	if (!isdigit((unsigned char) *s) || (s[0] == '0' && s[1]))
		return -1;
	for (; *s; s++)
	{
		if (!isdigit((unsigned char) *s) || v > n)
			return -1;
		v = v * 10 + (*s - '0');
	}
	return v < n ? (int) v : -1;
}

static const char *
version_of(const subunit *s)
{
	return s->version ? s->version : opt.version;
}

/* ---------------------------------------------------------------- responses */

/* Every answer's status, for /_stats (endpoint.h's hook). */
static void
count_status(unsigned code)
{
	if (code < NSTATUS)
		__atomic_add_fetch(&status_count[code], 1, __ATOMIC_RELAXED);
}

#define OOM(c) ep_send_error((c), 500, NULL, NULL, "out of memory")

/* ---------------------------------------------------------------- verbs */

/* Versions this endpoint runs: the reference agent's alphabet, so they print without escaping. */
static bool
version_ok(const char *v)
{
	size_t n = strlen(v);

	if (n == 0 || n > 128)
		return false;
	for (; *v; v++)
		if (!isalnum((unsigned char) *v) && !strchr("._+~:-", *v))
			return false;
	return true;
}

/* Print the JSON string S: as it is when it is a plain name, else escaped by jansson. */
static void
put_name(FILE *f, const char *s)
{
	json_t *v;
	char   *q;
	bool    plain = true;

	for (const char *p = s; *p && plain; p++)
		plain = isalnum((unsigned char) *p) || strchr("._+~:-", *p);
	if (plain)
	{
		fprintf(f, "\"%s\"", s);
		return;
	}
	v = json_string(s);
	q = v ? json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT) : NULL;
	fputs(q ? q : "\"?\"", f);
	free(q);
	json_decref(v);
}

/* Finish an open_memstream text and send it, or answer 500. */
static enum MHD_Result
send_stream(struct MHD_Connection *c, FILE *f, char **text)
{
	bool ok = !ferror(f);

	if (fclose(f) != 0)         /* sets *text: open_memstream's buffer is valid only now */
		ok = false;
	if (!ok)
	{
		free(*text);
		return OOM(c);
	}
	return ep_send_text(c, 200, *text, "application/json", NULL, NULL);
}

/* GET /v1/units, printed directly: unit and subunit names are generated, versions are plain. */
static enum MHD_Result
handle_units(struct MHD_Connection *c, fleet *fl)
{
	char  *text = NULL;
	size_t len = 0;
	FILE  *f = open_memstream(&text, &len);

	if (!f)
		return OOM(c);
	fputs("{\"protocol\":1,\"units\":[", f);
	pthread_mutex_lock(&fl->lock);
	for (int u = 0; u < opt.units; u++)
	{
		fprintf(f, "%s{\"name\":\"u%d\",\"labels\":{\"region\":\"%s\",\"tier\":\"web\"},\"subunits\":[",
				u ? "," : "", u, regions[u % 3]);
		for (int k = 0; k < opt.subunits; k++)
			fprintf(f, "%s{\"name\":\"%d\",\"version\":\"%s\",\"status\":\"ok\"}", k ? "," : "", k,
					version_of(&fl->subs[(size_t) u * opt.subunits + k]));
		fputs("]}", f);
	}
	pthread_mutex_unlock(&fl->lock);
	fputs("]}", f);
	return send_stream(c, f, &text);
}

/* POST /v1/needs-push: a unit needs a push unless every subunit runs the version. */
static enum MHD_Result
handle_needs_push(struct MHD_Connection *c, fleet *fl, json_t *req)
{
	const char *version = ep_name_of(json_object_get(req, "version"));
	json_t     *names = json_object_get(req, "units"), *v;
	char       *text = NULL;
	size_t      len = 0, i;
	FILE       *f;

	if (!version || !ep_is_name_array(names))
		return ep_send_error(c, 400, NULL, NULL, "expected {\"version\": string, \"units\": [string, ...]}");
	if (!(f = open_memstream(&text, &len)))
		return OOM(c);
	fputs("{\"units\":[", f);
	pthread_mutex_lock(&fl->lock);
	json_array_foreach(names, i, v)
	{
		int  u = parse_index(json_string_value(v), 'u', opt.units);
		bool needs = u < 0;

		for (int k = 0; !needs && k < opt.subunits; k++)
			needs = strcmp(version_of(&fl->subs[(size_t) u * opt.subunits + k]), version) != 0;
		fputs(i ? ",{\"name\":" : "{\"name\":", f);
		put_name(f, json_string_value(v));
		fprintf(f, ",\"needs_push\":%s}", needs ? "true" : "false");
	}
	pthread_mutex_unlock(&fl->lock);
	fputs("]}", f);
	return send_stream(c, f, &text);
}

/* POST /v1/health: every known unit is healthy. */
static enum MHD_Result
handle_health(struct MHD_Connection *c, json_t *req)
{
	json_t *names = json_object_get(req, "units"), *v;
	char   *text = NULL;
	size_t  len = 0, i;
	FILE   *f;

	if (!ep_is_name_array(names))
		return ep_send_error(c, 400, NULL, NULL, "expected {\"units\": [string, ...]}");
	if (!(f = open_memstream(&text, &len)))
		return OOM(c);
	fputs("{\"units\":[", f);
	json_array_foreach(names, i, v)
	{
		bool known = parse_index(json_string_value(v), 'u', opt.units) >= 0;

		fputs(i ? ",{\"name\":" : "{\"name\":", f);
		put_name(f, json_string_value(v));
		fprintf(f, ",\"healthy\":%s,\"reason\":\"%s\"}", known ? "true" : "false",
				known ? "bench endpoint: healthy" : "unknown unit");
	}
	fputs("]}", f);
	return send_stream(c, f, &text);
}

/* The status a subunit answered KEY with, or 0 if it has not seen it. */
static char
key_seen(const subunit *s, const char *key)
{
	for (int k = 0; k < KEY_HISTORY; k++)
		if (s->keys[k].key && strcmp(s->keys[k].key, key) == 0)
			return s->keys[k].status;
	return 0;
}

static bool
key_remember(subunit *s, const char *key, char status)
{
	char *k = strdup(key);

	if (!k)
		return false;
	free(s->keys[s->keys_next].key);
	s->keys[s->keys_next].key = k;
	s->keys[s->keys_next].status = status;
	s->keys_next = (s->keys_next + 1) % KEY_HISTORY;
	return true;
}

/*
 * POST /v1/update. Validated first (a 400 changes nothing); then, under the
 * fleet's lock, each update is decided and applied and the answer written.
 */
static enum MHD_Result
handle_update(struct MHD_Connection *c, fleet *fl, json_t *req, const char *body, size_t blen)
{
	json_t     *updates = json_object_get(req, "updates"), *jk = json_object_get(req, "idempotency_key"), *u;
	const char *rkey = NULL;
	uint64_t    h = ep_hash(body, blen);
	char       *text = NULL, *copy;
	size_t      len = 0, i;
	FILE       *f;
	bool        oom = false;

	if (jk && !(rkey = ep_name_of(jk)))
		return ep_send_error(c, 400, NULL, NULL, "idempotency_key: must be a string of 1 to %d bytes", EP_NAME_MAX);
	if (!json_is_array(updates))
		return ep_send_error(c, 400, NULL, NULL, "expected {\"idempotency_key\": string, \"updates\": [...]}");
	json_array_foreach(updates, i, u)
		if (!json_is_object(u) || !ep_name_of(json_object_get(u, "unit")) || !ep_name_of(json_object_get(u, "subunit")) ||
			!ep_name_of(json_object_get(u, "version")) || !ep_name_of(json_object_get(u, "key")))
			return ep_send_error(c, 400, NULL, NULL,
							  "updates[%zu]: expected {\"unit\", \"subunit\", \"version\", \"key\"}, each a string of 1 to %d bytes",
							  i, EP_NAME_MAX);
	if (!(f = open_memstream(&text, &len)))
		return OOM(c);

	pthread_mutex_lock(&fl->lock);
	if (rkey)
		for (int k = 0; k < REQUEST_CACHE; k++)
		{
			cached_answer *e = &fl->cache[k];

			if (!e->key || strcmp(e->key, rkey) != 0)
				continue;
			if (e->hash != h || e->len != blen)
			{
				pthread_mutex_unlock(&fl->lock);
				fclose(f);
				free(text);
				return ep_send_error(c, 422, NULL, NULL, "idempotency_key \"%.200s\" was used for another request", rkey);
			}
			fl->requests_replayed++;
			copy = strdup(e->answer);
			pthread_mutex_unlock(&fl->lock);
			fclose(f);
			free(text);
			return copy ? ep_send_text(c, 200, copy, "application/json", NULL, NULL) : OOM(c);
		}
	fl->seq++;
	fputs("{\"results\":[", f);
	json_array_foreach(updates, i, u)
	{
		const char *un = json_string_value(json_object_get(u, "unit"));
		const char *sn = json_string_value(json_object_get(u, "subunit"));
		const char *ver = json_string_value(json_object_get(u, "version"));
		const char *key = json_string_value(json_object_get(u, "key"));
		int         ui = parse_index(un, 'u', opt.units);
		int         si = ui < 0 ? -1 : parse_index(sn, 0, opt.subunits);
		subunit    *s = si < 0 ? NULL : &fl->subs[(size_t) ui * opt.subunits + si];
		const char *error = NULL;
		char        st = 0;

		fl->updates_received++;
		if (ui < 0)
			error = "unknown unit";
		else if (!s)
			error = "unknown subunit";
		else if (s->seen_seq == fl->seq)
			error = "subunit named twice in one request";
		else if ((st = key_seen(s, key)))
			fl->updates_resent++;       /* a re-sent update: its first answer, no action */
		else if (!version_ok(ver))
			error = "invalid version (letters, digits and ._+~:- only, at most 128 bytes)";
		else if (strcmp(version_of(s), ver) == 0)
			st = 'd';
		else
		{
			char *v = strdup(ver);

			if (!v || !key_remember(s, key, opt.accepted ? 'a' : 'd'))
			{
				free(v);
				oom = true;
				break;
			}
			free(s->version);
			s->version = v;
			s->applied++;
			fl->updates_applied++;
			st = opt.accepted ? 'a' : 'd';
		}
		if (st == 'd' && !key_seen(s, key) && !key_remember(s, key, 'd'))
		{
			oom = true;
			break;
		}
		if (s)
			s->seen_seq = fl->seq;
		if (error)
			fl->updates_refused++;
		fputs(i ? ",{\"unit\":" : "{\"unit\":", f);
		put_name(f, un);
		fputs(",\"subunit\":", f);
		put_name(f, sn);
		if (error)
			fprintf(f, ",\"status\":\"refused\",\"error\":\"%s\"}", error);
		else
			fprintf(f, ",\"status\":\"%s\",\"error\":null}", st == 'a' ? "accepted" : "done");
	}
	fputs("]}", f);
	if (fclose(f) != 0 || oom)
	{
		/* out of memory part way: what was applied stays applied, as after a crash; a re-send is harmless */
		pthread_mutex_unlock(&fl->lock);
		free(text);
		return OOM(c);
	}
	if (rkey)
	{
		cached_answer *e = &fl->cache[fl->cache_next];
		char          *k = strdup(rkey), *a = strdup(text);

		if (k && a)
		{
			free(e->key);
			free(e->answer);
			e->key = k;
			e->answer = a;
			e->hash = h;
			e->len = blen;
			fl->cache_next = (fl->cache_next + 1) % REQUEST_CACHE;
		}
		else
		{
			free(k);
			free(a);
		}
	}
	pthread_mutex_unlock(&fl->lock);
	return ep_send_text(c, 200, text, "application/json", NULL, NULL);
}

/* ---------------------------------------------------------------- control */

static enum MHD_Result
handle_stats(struct MHD_Connection *c)
{
	json_t *root = json_pack("{s:I, s:I, s:I, s:I, s:{}, s:{}}",
							 "requests_total", (json_int_t) __atomic_load_n(&requests_total, __ATOMIC_RELAXED),
							 "in_flight", (json_int_t) __atomic_load_n(&in_flight, __ATOMIC_RELAXED),
							 "max_in_flight", (json_int_t) __atomic_load_n(&max_in_flight, __ATOMIC_RELAXED),
							 "delayed", (json_int_t) __atomic_load_n(&delayed_now, __ATOMIC_RELAXED),
							 "status", "fleets");
	json_t *status, *fl_out;
	char    code[8];

	if (!root)
		return OOM(c);
	status = json_object_get(root, "status");
	fl_out = json_object_get(root, "fleets");
	for (int i = 0; i < NSTATUS; i++)
	{
		uint64_t n = __atomic_load_n(&status_count[i], __ATOMIC_RELAXED);

		snprintf(code, sizeof(code), "%d", i);
		if (n && json_object_set_new(status, code, json_integer((json_int_t) n)) != 0)
			goto oom;
	}
	pthread_mutex_lock(&fleets_lock);
	for (int i = 0; i < nfleets; i++)
	{
		fleet   *fl = fleets[i];
		json_t  *req = json_object(), *o;
		uint32_t maxap = 0;

		pthread_mutex_lock(&fl->lock);
		for (size_t k = 0; k < (size_t) opt.units * opt.subunits; k++)
			if (fl->subs[k].applied > maxap)
				maxap = fl->subs[k].applied;
		for (int v = 0; req && v < NVERBS; v++)
			json_object_set_new(req, verb_stat[v], json_integer((json_int_t) fl->requests[v]));
		o = json_pack("{s:o?, s:I, s:I, s:I, s:I, s:I, s:I}", "requests", req,
					  "updates_received", (json_int_t) fl->updates_received,
					  "updates_applied", (json_int_t) fl->updates_applied,
					  "updates_refused", (json_int_t) fl->updates_refused,
					  "updates_resent", (json_int_t) fl->updates_resent,
					  "requests_replayed", (json_int_t) fl->requests_replayed,
					  "max_applied_per_subunit", (json_int_t) maxap);
		pthread_mutex_unlock(&fl->lock);
		if (!o || json_object_set_new(fl_out, fl->name, o) != 0)
		{
			pthread_mutex_unlock(&fleets_lock);
			goto oom;
		}
	}
	pthread_mutex_unlock(&fleets_lock);
	return ep_send_json(c, 200, root);
oom:
	json_decref(root);
	return OOM(c);
}

static enum MHD_Result
handle_reset(struct MHD_Connection *c)
{
	pthread_mutex_lock(&fleets_lock);
	for (int i = 0; i < nfleets; i++)
	{
		pthread_mutex_lock(&fleets[i]->lock);
		fleet_clear(fleets[i]);
		pthread_mutex_unlock(&fleets[i]->lock);
	}
	pthread_mutex_unlock(&fleets_lock);
	__atomic_store_n(&requests_total, 0, __ATOMIC_RELAXED);
	for (int i = 0; i < NSTATUS; i++)
		__atomic_store_n(&status_count[i], 0, __ATOMIC_RELAXED);
	__atomic_store_n(&max_in_flight, __atomic_load_n(&in_flight, __ATOMIC_RELAXED), __ATOMIC_RELAXED);
	return ep_send_json(c, 200, json_pack("{s:b}", "reset", 1));
}

/* ---------------------------------------------------------------- delays */

/* Suspended connections, due in the order they came (every delay is the same). */
typedef struct waiter
{
	struct MHD_Connection *c;
	struct timespec        due;
	struct waiter         *next;
} waiter;

static pthread_mutex_t wq_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t  wq_cond;
static waiter         *wq_head, *wq_tail;
static bool            wq_stop;
static pthread_t       wq_thread;

static bool
ts_before(const struct timespec *a, const struct timespec *b)
{
	return a->tv_sec < b->tv_sec || (a->tv_sec == b->tv_sec && a->tv_nsec < b->tv_nsec);
}

/* Hold C for --delay-ms; false (answer at once) when stopping or out of memory. */
static bool
delay_connection(struct MHD_Connection *c)
{
	waiter *w = malloc(sizeof(waiter));

	if (!w)
		return false;
	w->c = c;
	w->next = NULL;
	clock_gettime(CLOCK_MONOTONIC, &w->due);
	w->due.tv_sec += opt.delay_ms / 1000;
	w->due.tv_nsec += (long) (opt.delay_ms % 1000) * 1000000L;
	if (w->due.tv_nsec >= 1000000000L)
	{
		w->due.tv_sec++;
		w->due.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&wq_lock);
	if (wq_stop)
	{
		pthread_mutex_unlock(&wq_lock);
		free(w);
		return false;
	}
	MHD_suspend_connection(c);
	__atomic_add_fetch(&delayed_now, 1, __ATOMIC_RELAXED);
	if (wq_tail)
		wq_tail->next = w;
	else
		wq_head = w;
	wq_tail = w;
	pthread_cond_signal(&wq_cond);
	pthread_mutex_unlock(&wq_lock);
	return true;
}

/* The timer thread: resume each held connection when it is due (all of them when stopping). */
static void *
delay_main(void *arg)
{
	(void) arg;
	pthread_mutex_lock(&wq_lock);
	for (;;)
	{
		struct timespec now;

		clock_gettime(CLOCK_MONOTONIC, &now);
		if (wq_head && (wq_stop || !ts_before(&now, &wq_head->due)))
		{
			waiter *w = wq_head;

			wq_head = w->next;
			if (!wq_head)
				wq_tail = NULL;
			__atomic_sub_fetch(&delayed_now, 1, __ATOMIC_RELAXED);
			MHD_resume_connection(w->c);
			free(w);
			continue;
		}
		if (wq_stop)
			break;
		if (wq_head)
			pthread_cond_timedwait(&wq_cond, &wq_lock, &wq_head->due);
		else
			pthread_cond_wait(&wq_cond, &wq_lock);
	}
	pthread_mutex_unlock(&wq_lock);
	return NULL;
}

/* ---------------------------------------------------------------- requests */

typedef struct
{
	ep_body body;
	bool   counted;                 /* counted in in_flight */
	bool   delayed;                 /* held for --delay-ms already */
} conn_state;

/* Split "/v1/VERB" or "/NAME/v1/VERB": the fleet's name into NAME, the verb, or -1 (not a protocol path). */
static int
route(const char *url, char *name, const char **rest)
{
	const char *p = url + 1, *slash;
	size_t      n;

	*name = '\0';
	if (url[0] != '/')
		return -1;
	if (strncmp(p, "v1/", 3) != 0)
	{
		slash = strchr(p, '/');
		n = slash ? (size_t) (slash - p) : 0;
		if (n == 0 || n > FLEET_NAME_MAX || strncmp(slash, "/v1/", 4) != 0)
			return -1;
		for (size_t i = 0; i < n; i++)
			if (!isalnum((unsigned char) p[i]) && !strchr("._-", p[i]))
				return -1;
		memcpy(name, p, n);
		name[n] = '\0';
		p = slash + 1;
	}
	*rest = p + 3;
	for (int v = 0; v < NVERBS; v++)
		if (strcmp(*rest, verb_path[v]) == 0)
			return v;
	return NVERBS;              /* under /v1/, but no such verb */
}

static bool
authorized(struct MHD_Connection *c)
{
	const char   *h = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
	size_t        n, m = strlen(opt.token);
	unsigned char diff;

	if (!h || strncasecmp(h, "Bearer ", 7) != 0)
		return false;
	h += 7;
	n = strlen(h);
	diff = n != m;
	for (size_t i = 0; i < m; i++)
		diff |= (unsigned char) opt.token[i] ^ (unsigned char) (i < n ? h[i] : 0);
	return diff == 0;
}

static enum MHD_Result
dispatch_v1(struct MHD_Connection *c, const char *method, int verb, const char *fname, const char *rest,
			conn_state *st)
{
	const char  *proto = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Conveyor-Protocol");
	fleet       *fl;
	json_t      *req;
	json_error_t jerr;
	enum MHD_Result ret;

	if (!authorized(c))
		return ep_send_error(c, 401, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer", "missing or wrong bearer token");
	if (!proto || strcmp(proto, "1") != 0)
		return ep_send_error(c, 400, NULL, NULL, "unsupported protocol \"%.20s\" (this endpoint speaks Conveyor-Protocol: 1)",
						  proto ? proto : "");
	if (verb == NVERBS || verb == V_TASKS || (verb == V_NEEDS_PUSH && !opt.needs_push))
		return ep_send_error(c, 404, NULL, NULL, "not implemented: /v1/%.40s", rest);
	if (strcmp(method, verb_method[verb]) != 0)
		return ep_send_error(c, 405, MHD_HTTP_HEADER_ALLOW, verb_method[verb], "use %s", verb_method[verb]);
	if (!(fl = fleet_get(fname)))
		return ep_send_error(c, 503, NULL, NULL, "no room for another fleet (--max-fleets %d)", opt.max_fleets);
	pthread_mutex_lock(&fl->lock);
	fl->requests[verb]++;
	pthread_mutex_unlock(&fl->lock);
	if (verb == V_UNITS)
		return handle_units(c, fl);
	if (st->body.too_big)
		return ep_send_error(c, 413, NULL, NULL, "request body over %zu bytes", opt.max_body);
	req = json_loadb(st->body.buf ? st->body.buf : "", st->body.len, JSON_REJECT_DUPLICATES, &jerr);
	if (!req)
		return ep_send_error(c, 400, NULL, NULL, "invalid JSON: %s", jerr.text);
	if (!json_is_object(req))
		ret = ep_send_error(c, 400, NULL, NULL, "the body must be a JSON object");
	else if (verb == V_NEEDS_PUSH)
		ret = handle_needs_push(c, fl, req);
	else if (verb == V_UPDATE)
		ret = handle_update(c, fl, req, st->body.buf ? st->body.buf : "", st->body.len);
	else
		ret = handle_health(c, req);
	json_decref(req);
	return ret;
}

static enum MHD_Result
on_request(void *cls, struct MHD_Connection *c, const char *url, const char *method, const char *version,
		   const char *upload_data, size_t *upload_data_size, void **con_cls)
{
	conn_state *st = *con_cls;
	char        fname[FLEET_NAME_MAX + 1];
	const char *rest = "";
	int         verb;

	(void) cls;
	(void) version;
	if (!st)
	{
		if (!(st = calloc(1, sizeof(conn_state))))
			return MHD_NO;
		*con_cls = st;
		__atomic_add_fetch(&requests_total, 1, __ATOMIC_RELAXED);
		if (strncmp(url, "/_", 2) != 0)
		{
			int64_t now = __atomic_add_fetch(&in_flight, 1, __ATOMIC_RELAXED);
			int64_t max = __atomic_load_n(&max_in_flight, __ATOMIC_RELAXED);

			st->counted = true;
			while (now > max && !__atomic_compare_exchange_n(&max_in_flight, &max, now, false,
															 __ATOMIC_RELAXED, __ATOMIC_RELAXED))
				;
		}
		return MHD_YES;
	}
	if (*upload_data_size > 0)
	{
		size_t n = *upload_data_size;

		*upload_data_size = 0;
		return ep_body_add(&st->body, upload_data, n, opt.max_body) ? MHD_YES : MHD_NO;
	}
	if (strcmp(url, "/_stats") == 0)
		return strcmp(method, "GET") == 0 ? handle_stats(c) : ep_send_error(c, 405, MHD_HTTP_HEADER_ALLOW, "GET", "use GET");
	if (strcmp(url, "/_reset") == 0)
		return strcmp(method, "POST") == 0 ? handle_reset(c) : ep_send_error(c, 405, MHD_HTTP_HEADER_ALLOW, "POST", "use POST");
	if ((verb = route(url, fname, &rest)) < 0)
		return ep_send_error(c, 404, NULL, NULL, "no such endpoint");
	if (opt.delay_ms > 0 && !st->delayed)
	{
		st->delayed = true;
		if (delay_connection(c))
			return MHD_YES;         /* called again once the timer thread resumes it */
	}
	return dispatch_v1(c, method, verb, fname, rest, st);
}

static void
on_completed(void *cls, struct MHD_Connection *c, void **con_cls, enum MHD_RequestTerminationCode toe)
{
	conn_state *st = *con_cls;

	(void) cls;
	(void) c;
	(void) toe;
	if (!st)
		return;
	if (st->counted)
		__atomic_sub_fetch(&in_flight, 1, __ATOMIC_RELAXED);
	ep_body_free(&st->body);
	free(st);
	*con_cls = NULL;
}

/* ---------------------------------------------------------------- main */

static void __attribute__((noreturn))
usage(const char *why)
{
	if (why)
		fprintf(stderr, "bench_endpoint: %s\n", why);
	fprintf(stderr,
			"usage: bench_endpoint --token T [--host 127.0.0.1] [--port 0] [--port-file F]\n"
			"         [--units 1000] [--subunits 10] [--version v1] [--mode done|accepted]\n"
			"         [--delay-ms 0] [--threads 4] [--no-needs-push] [--max-body 8388608]\n"
			"         [--max-fleets 1024]\n");
	exit(2);
}

static long
int_arg(const char *name, const char *s, long lo, long hi)
{
	char *end;
	long  v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || end == s || *end || v < lo || v > hi)
	{
		char msg[200];

		snprintf(msg, sizeof(msg), "--%s: expected an integer from %ld to %ld, got \"%s\"", name, lo, hi, s);
		usage(msg);
	}
	return v;
}

int
main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{"host", required_argument, NULL, 'h'}, {"port", required_argument, NULL, 'p'},
		{"port-file", required_argument, NULL, 'P'}, {"token", required_argument, NULL, 't'},
		{"units", required_argument, NULL, 'u'}, {"subunits", required_argument, NULL, 's'},
		{"version", required_argument, NULL, 'v'}, {"mode", required_argument, NULL, 'm'},
		{"delay-ms", required_argument, NULL, 'd'}, {"threads", required_argument, NULL, 'T'},
		{"no-needs-push", no_argument, NULL, 'N'}, {"max-body", required_argument, NULL, 'B'},
		{"max-fleets", required_argument, NULL, 'F'}, {"help", no_argument, NULL, '?'},
		{NULL, 0, NULL, 0}};
	struct sockaddr_in sa;
	struct MHD_Daemon *d;
	const union MHD_DaemonInfo *info;
	pthread_condattr_t ca;
	sigset_t           sigs;
	int                ch, sig;

	while ((ch = getopt_long(argc, argv, "", longopts, NULL)) != -1)
		switch (ch)
		{
			case 'h': opt.host = optarg; break;
			case 'p': opt.port = (int) int_arg("port", optarg, 0, 65535); break;
			case 'P': opt.port_file = optarg; break;
			case 't': opt.token = optarg; break;
			case 'u': opt.units = (int) int_arg("units", optarg, 1, 10000000); break;
			case 's': opt.subunits = (int) int_arg("subunits", optarg, 1, 100000); break;
			case 'v': opt.version = optarg; break;
			case 'm':
				if (strcmp(optarg, "done") != 0 && strcmp(optarg, "accepted") != 0)
					usage("--mode: done or accepted");
				opt.accepted = strcmp(optarg, "accepted") == 0;
				break;
			case 'd': opt.delay_ms = (int) int_arg("delay-ms", optarg, 0, 3600000); break;
			case 'T': opt.threads = (int) int_arg("threads", optarg, 1, 256); break;
			case 'N': opt.needs_push = false; break;
			case 'B': opt.max_body = (size_t) int_arg("max-body", optarg, 1024, 1L << 30); break;
			case 'F': opt.max_fleets = (int) int_arg("max-fleets", optarg, 1, 100000); break;
			default: usage(NULL);
		}
	if (optind < argc)
		usage("unexpected arguments");
	if (!opt.token || !*opt.token)
		usage("--token is required");
	if (!version_ok(opt.version))
		usage("--version: letters, digits and ._+~:- only, at most 128 bytes");
	if ((long) opt.units * opt.subunits > 100000000L)
		usage("--units x --subunits: at most 100000000");
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_port = htons((uint16_t) opt.port);
	if (inet_pton(AF_INET, opt.host, &sa.sin_addr) != 1)
		usage("--host: an IPv4 address");
	if (!(fleets = calloc((size_t) opt.max_fleets, sizeof(fleet *))))
		usage("out of memory");

	/* signals are taken by sigwait below; every thread started from here on blocks them */
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGINT);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);
	signal(SIGPIPE, SIG_IGN);

	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&wq_cond, &ca);
	if (pthread_create(&wq_thread, NULL, delay_main, NULL) != 0)
	{
		fprintf(stderr, "bench_endpoint: cannot start the timer thread\n");
		return 1;
	}
	ep_on_status = count_status;
	d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME |
						 MHD_USE_TURBO | MHD_USE_ERROR_LOG,
						 (uint16_t) opt.port, NULL, NULL, on_request, NULL,
						 MHD_OPTION_SOCK_ADDR, (struct sockaddr *) &sa,
						 MHD_OPTION_THREAD_POOL_SIZE, (unsigned int) opt.threads,
						 MHD_OPTION_NOTIFY_COMPLETED, on_completed, NULL,
						 MHD_OPTION_CONNECTION_LIMIT, (unsigned int) 8192,
						 MHD_OPTION_LISTEN_BACKLOG_SIZE, (unsigned int) 1024,
						 MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int) 120,
						 MHD_OPTION_END);
	if (!d)
	{
		fprintf(stderr, "bench_endpoint: cannot listen on %s:%d\n", opt.host, opt.port);
		return 1;
	}
	info = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
	if (info && info->port)
		opt.port = info->port;
	if (opt.port_file)
	{
		char  tmp[4096];
		FILE *f;

		/* written whole, then renamed, so a reader never sees half a number */
		snprintf(tmp, sizeof(tmp), "%s.tmp", opt.port_file);
		if (!(f = fopen(tmp, "w")) || fprintf(f, "%d\n", opt.port) < 0 || fclose(f) != 0 ||
			rename(tmp, opt.port_file) != 0)
		{
			fprintf(stderr, "bench_endpoint: cannot write %s: %s\n", opt.port_file, strerror(errno));
			MHD_stop_daemon(d);
			return 1;
		}
	}
	printf("bench_endpoint listening on %s:%d (%d units x %d subunits, mode %s, delay %d ms, %d threads)\n",
		   opt.host, opt.port, opt.units, opt.subunits, opt.accepted ? "accepted" : "done", opt.delay_ms,
		   opt.threads);
	fflush(stdout);

	while (sigwait(&sigs, &sig) != 0 || (sig != SIGTERM && sig != SIGINT))
		;
	/* stop taking connections, answer every held one, then stop */
	MHD_quiesce_daemon(d);
	pthread_mutex_lock(&wq_lock);
	wq_stop = true;
	pthread_cond_signal(&wq_cond);
	pthread_mutex_unlock(&wq_lock);
	pthread_join(wq_thread, NULL);
	/* resuming is asynchronous: let the answers go out (at most 5 s) before connections are closed */
	for (int i = 0; i < 500 && __atomic_load_n(&in_flight, __ATOMIC_RELAXED) > 0; i++)
		usleep(10000);
	MHD_stop_daemon(d);
	for (int i = 0; i < nfleets; i++)
	{
		fleet_clear(fleets[i]);
		free(fleets[i]->subs);
		free(fleets[i]);
	}
	free(fleets);
	return 0;
}
