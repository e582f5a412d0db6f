/*
 * http_call.c
 *	  The verbs of an HTTP push type (docs/push-type-protocol.md): which
 *	  requests one call makes, to which endpoints, and how their answers are
 *	  checked and folded into one normalized result for the decider.
 *
 * The decider (conveyor._push_step) asks for a call by writing a row in
 * conveyor.push_call and committing. A worker claims pending calls in a
 * short transaction, commits, then sends every request of every call
 * concurrently through one libcurl multi handle that lives as long as the
 * worker (http_client.c); when all requests of a call are answered it
 * records the result in another short transaction, which makes the push due
 * again. No transaction is open while a request is in flight, and a call
 * that a crash interrupted is claimed again and re-sent with the same
 * idempotency keys.
 *
 * Answers are parsed with cJSON, outside transactions, and checked
 * completely before anything of them is kept: a body of the wrong shape is
 * retried like a 5xx. (Not jansson: its json_object() has the name of a
 * function the postgres executable exports, and the dynamic linker would
 * bind jansson's own calls to PostgreSQL's.) Results are JSON of a fixed
 * shape that conveyor's SQL turns back into the rows an sql verb returns.
 */
#include "conveyor.h"

#include <cjson/cJSON.h>

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/numeric.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"
#include "utils/wait_event.h"

#include "http_call.h"
#include "http_client.h"
#include "txn.h"

PG_FUNCTION_INFO_V1(cv_http_get_units_now);
PG_FUNCTION_INFO_V1(cv_http_url_check);
PG_FUNCTION_INFO_V1(cv_http_calls_recorded);

/* Most calls one worker keeps in flight at once. */
#define WORKER_MAX_CALLS 256

/* Longest name, version or key the protocol allows. */
#define NAME_MAX_BYTES 200

#define J_GET(o, k) cJSON_GetObjectItemCaseSensitive((o), (k))
#define J_STR(x) cJSON_GetStringValue(x)

typedef enum CallVerb
{
	CALL_GET_UNITS,
	CALL_NEEDS_PUSH,
	CALL_SEND_UPDATE,
	CALL_CHECK_HEALTH,
	CALL_PROMETHEUS				/* range queries of Prometheus healthchecks */
} CallVerb;

#define CALL_VERBS 5

static const char *const verb_names[] = {"get_units", "needs_push", "send_update", "check_health", "prometheus"};

/* Stages of a chunk of send_update: ask task control, then update. */
enum
{
	STAGE_ONE,					/* the only request (other verbs) or /v1/tasks */
	STAGE_UPDATE				/* /v1/update with the allowed updates */
};

/* The requests of one call to one endpoint (send_update: up to max_batch updates). */
typedef struct Chunk
{
	int			endpoint;
	cJSON	   *items;			/* units (names) or updates (objects) */
	int			nitems;
	cJSON	   *sent;			/* send_update: the updates of the /v1/update request */
	bool	   *done;			/* send_update: which of sent were answered done */
	int			stage;
} Chunk;

/* A unit and the endpoint that reported it, sorted by unit for bsearch. */
typedef struct UnitRoute
{
	const char *unit;
	int			endpoint;
} UnitRoute;

typedef struct CvCall
{
	int64		push_id;		/* 0 for a call made directly by an SQL function */
	CallVerb	verb;
	char	   *request_hash;
	char	   *token;
	CvhSettings settings;
	int			max_batch;
	char	  **endpoints;
	int			nendpoints;
	cJSON	   *request;
	cJSON	   *unitmap;		/* unit -> endpoint, from the last get units */
	UnitRoute  *routes;			/* unitmap, sorted */
	int			nroutes;
	char	  **seen;			/* get units: unit names answered so far, sorted */
	int			nseen;
	Chunk	   *chunks;
	int			nchunks;
	int			outstanding;	/* requests not yet answered */
	int			nupdates;		/* send_update: updates asked for */
	int			ndone;			/* send_update: answered done */
	int			nrequests;		/* requests made, retries included */
	bool		failed;
	CvhOutcome	fail_kind;
	char		error[256];
	cJSON	   *result;
	TimestampTz claimed_at;		/* when this worker claimed it */
	double		expect_ms;		/* its endpoints' usual answer time (the slowest); -1: unknown */
	TimestampTz answered_at;	/* when its last answer was taken */
	struct CvCall *next;
} CvCall;

static CvhMulti *worker_multi = NULL;
static CvCall *worker_calls = NULL;

/*
 * Calls answered and not yet recorded, the quickest first. A burst of
 * answers from slow endpoints is recorded a few milliseconds at a time, so
 * the engine steps in between and an answer from a fast endpoint that came
 * with the burst is recorded (and its push stepped) first.
 */
static CvCall *worker_answered = NULL;
#define RECORD_TXN_MS 1

static bool worker_reset_needed = false;

/*
 * Claiming costs a transaction, so a worker claims when its own steps
 * recorded calls (conveyor._http_calls_recorded sets this), and otherwise
 * only now and then: for calls another worker recorded and left, or that a
 * crash orphaned.
 */
#define CLAIM_ANYWAY_SECONDS 2
static bool calls_recorded = true;		/* a new worker looks at once */
static time_t last_claim = 0;

/*
 * A claim takes pending calls only; every few seconds it also sweeps: takes
 * calls lost in flight (their worker died) and drops those of ended pushes.
 */
#define SWEEP_SECONDS 2
static time_t last_sweep = 0;

/*
 * Interned endpoints: requests to one endpoint share the push type's
 * concurrency cap, so a slow endpoint never holds back a fast one; and how
 * long the endpoint's answers have been taking, so the worker waits a moment
 * for an answer due in a millisecond or two (cv_http_worker_soon_ms).
 */
typedef struct EndpointGroup
{
	char	   *name;
	double		answer_ms;		/* its usual answer time (group_answered); < 0: none yet */
} EndpointGroup;

static EndpointGroup *
group_for(const char *endpoint)
{
	static EndpointGroup **groups = NULL;
	static int	n = 0;
	static EndpointGroup unknown = {"", -1};	/* out of memory: one shared group */
	EndpointGroup **grown;
	EndpointGroup *g;

	for (int i = 0; i < n; i++)
		if (strcmp(groups[i]->name, endpoint) == 0)
			return groups[i];
	grown = realloc(groups, (n + 1) * sizeof(EndpointGroup *));
	if (grown == NULL)
		return &unknown;
	groups = grown;
	g = malloc(sizeof(EndpointGroup));
	if (g == NULL || (g->name = strdup(endpoint)) == NULL)
	{
		free(g);
		return &unknown;
	}
	g->answer_ms = -1;
	groups[n++] = g;
	return g;
}

/*
 * An answer from group g took elapsed_ms, as the worker saw it. Its usual
 * time follows a quicker answer at once and a slower one by a tenth of the
 * difference: an answer the worker was too busy to read at once looks slower
 * than it was, and an endpoint seen slow in a worker's busy moment would
 * otherwise lose what keeps fast endpoints fast (CV_FAST_CALL_MS); one that
 * really slowed down passes 5 ms after one answer of 50 ms or more.
 */
static void
group_answered(EndpointGroup *g, double elapsed_ms)
{
	if (g->answer_ms < 0 || elapsed_ms < g->answer_ms)
		g->answer_ms = elapsed_ms;
	else
		g->answer_ms += 0.1 * (elapsed_ms - g->answer_ms);
}

/* The usual answer time of the call's endpoints (the slowest), -1 if one is unknown. */
static double
call_usual_ms(const CvCall *c)
{
	double		usual = c->nendpoints > 0 ? 0 : -1;

	for (int e = 0; e < c->nendpoints; e++)
	{
		const EndpointGroup *g = group_for(c->endpoints[e]);

		if (g->answer_ms < 0)
			return -1;
		usual = Max(usual, g->answer_ms);
	}
	return usual;
}

/* What the call may expect of a request to group g: the slowest so far, -1 once one is unknown. */
static void
call_expect(CvCall *c, const EndpointGroup *g)
{
	if (g->answer_ms < 0 || c->expect_ms < 0)
		c->expect_ms = -1;
	else
		c->expect_ms = Max(c->expect_ms, g->answer_ms);
}

static void
call_free(CvCall *c)
{
	if (c == NULL)
		return;
	if (c->token)
	{
		explicit_bzero(c->token, strlen(c->token));
		free(c->token);
	}
	free(c->request_hash);
	for (int i = 0; i < c->nendpoints; i++)
		free(c->endpoints[i]);
	free(c->endpoints);
	for (int i = 0; i < c->nchunks; i++)
	{
		cJSON_Delete(c->chunks[i].items);
		cJSON_Delete(c->chunks[i].sent);
		free(c->chunks[i].done);
	}
	free(c->chunks);
	free(c->routes);
	for (int i = 0; i < c->nseen; i++)
		free(c->seen[i]);
	free(c->seen);
	cJSON_Delete(c->request);
	cJSON_Delete(c->unitmap);
	cJSON_Delete(c->result);
	free(c);
}

/* Mark a call failed (the first failure wins). */
static void
call_fail(CvCall *c, CvhOutcome kind, const char *fmt,...) pg_attribute_printf(3, 4);

static void
call_fail(CvCall *c, CvhOutcome kind, const char *fmt,...)
{
	va_list		ap;

	if (c->failed)
		return;
	c->failed = true;
	c->fail_kind = kind;
	va_start(ap, fmt);
	vsnprintf(c->error, sizeof(c->error), fmt, ap);
	va_end(ap);
}

static int
route_cmp(const void *a, const void *b)
{
	return strcmp(((const UnitRoute *) a)->unit, ((const UnitRoute *) b)->unit);
}

static int
str_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *) a, *(char *const *) b);
}

/* Sort the unit -> endpoint map of a call for unit_endpoint. */
static void
routes_build(CvCall *c)
{
	cJSON	   *e;
	int			n = cJSON_GetArraySize(c->unitmap);

	c->routes = malloc(Max(1, n) * sizeof(UnitRoute));
	if (c->routes == NULL)
		return;
	cJSON_ArrayForEach(e, c->unitmap)
	{
		const char *url = J_STR(e);

		if (e->string == NULL || url == NULL)
			continue;
		c->routes[c->nroutes].unit = e->string;
		c->routes[c->nroutes].endpoint = -1;
		for (int i = 0; i < c->nendpoints; i++)
			if (strcmp(c->endpoints[i], url) == 0)
				c->routes[c->nroutes].endpoint = i;
		c->nroutes++;
	}
	qsort(c->routes, c->nroutes, sizeof(UnitRoute), route_cmp);
}

/* Index of the endpoint a unit was last reported by, or -1. */
static int
unit_endpoint(CvCall *c, const char *unit)
{
	UnitRoute	key = {unit, 0};
	UnitRoute  *hit;

	if (c->routes == NULL || unit == NULL)
		return -1;
	hit = bsearch(&key, c->routes, c->nroutes, sizeof(UnitRoute), route_cmp);
	return hit ? hit->endpoint : -1;
}

/* The chunk of this endpoint that still has room, made if needed. */
static Chunk *
chunk_for(CvCall *c, int endpoint, int room)
{
	Chunk	   *grown;

	for (int i = c->nchunks - 1; i >= 0; i--)
		if (c->chunks[i].endpoint == endpoint && c->chunks[i].nitems < room)
			return &c->chunks[i];
	grown = realloc(c->chunks, (c->nchunks + 1) * sizeof(Chunk));
	if (grown == NULL)
		return NULL;
	c->chunks = grown;
	memset(&c->chunks[c->nchunks], 0, sizeof(Chunk));
	c->chunks[c->nchunks].endpoint = endpoint;
	c->chunks[c->nchunks].items = cJSON_CreateArray();
	c->chunks[c->nchunks].stage = STAGE_ONE;
	return &c->chunks[c->nchunks++];
}

/* A string member that is a valid protocol name (non-empty, at most 200 bytes). */
static const char *
name_member(cJSON *obj, const char *key)
{
	const char *s = J_STR(J_GET(obj, key));

	if (s == NULL || s[0] == '\0' || strlen(s) > NAME_MAX_BYTES)
		return NULL;
	return s;
}

/* A malloc'd formatted string (NULL when out of memory); never ereports. */
static char *
psprintf_malloc(const char *fmt,...) pg_attribute_printf(1, 2);

static char *
psprintf_malloc(const char *fmt,...)
{
	va_list		ap;
	int			n;
	char	   *out;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0 || (out = malloc(n + 1)) == NULL)
		return NULL;
	va_start(ap, fmt);
	vsnprintf(out, n + 1, fmt, ap);
	va_end(ap);
	return out;
}

/* 64-bit FNV-1a of a string, for request idempotency keys. */
static uint64
fnv1a(const char *s)
{
	uint64		h = UINT64CONST(14695981039346656037);

	for (; *s; s++)
	{
		h ^= (unsigned char) *s;
		h *= UINT64CONST(1099511628211);
	}
	return h;
}

/* An object {k1: v1, k2: v2} of the given items (NULL items make it fail). */
static cJSON *
obj2(const char *k1, cJSON *v1, const char *k2, cJSON *v2)
{
	cJSON	   *o = cJSON_CreateObject();

	if (o == NULL || v1 == NULL || (k2 && v2 == NULL))
	{
		cJSON_Delete(o);
		cJSON_Delete(v1);
		cJSON_Delete(v2);
		return NULL;
	}
	cJSON_AddItemToObject(o, k1, v1);
	if (k2)
		cJSON_AddItemToObject(o, k2, v2);
	return o;
}

/* A copy of x (a JSON null for NULL). */
static cJSON *
jdup(const cJSON *x)
{
	return x ? cJSON_Duplicate(x, true) : cJSON_CreateNull();
}

/* Append a copy of x to the array member key of the call's result. */
static void
result_add(CvCall *c, const char *key, cJSON *item)
{
	cJSON_AddItemToArray(J_GET(c->result, key), item ? item : cJSON_CreateNull());
}

/*
 * Send one request of call c for chunk k (or endpoint k for get units) to
 * an endpoint's path: a GET when text is NULL, else a POST of text (malloc'd
 * JSON, taken over).
 */
static void
call_send_text(CvhMulti *m, CvCall *c, int tag, int endpoint, const char *path, char *text)
{
	char		url[2048];
	CvhRequest *r;
	EndpointGroup *g;
	const char *base = c->endpoints[endpoint];
	size_t		blen = strlen(base);

	while (blen > 0 && base[blen - 1] == '/')
		blen--;
	snprintf(url, sizeof(url), "%.*s%s", (int) blen, base, path);
	g = group_for(base);
	call_expect(c, g);
	r = cvh_request_new(url, text, &c->settings, g);
	free(text);
	if (r == NULL)
	{
		call_fail(c, CVH_RETRYABLE, "%s: out of memory", verb_names[c->verb]);
		return;
	}
	r->owner = c;
	r->tag = tag;
	/* optional verbs: a 404 means "not implemented" */
	r->accept_404 = (c->verb == CALL_NEEDS_PUSH ||
					 (c->verb == CALL_SEND_UPDATE && strcmp(path, "/v1/tasks") == 0));
	c->outstanding++;
	cvh_submit(m, r);
}

/* The same with a JSON body to print (NULL: building it ran out of memory), or a GET of /v1/units. */
static void
call_send(CvhMulti *m, CvCall *c, int tag, int endpoint, const char *path, cJSON *body)
{
	char	   *text = NULL;

	if (strcmp(path, "/v1/units") != 0)
	{
		text = body ? cJSON_PrintUnformatted(body) : NULL;
		cJSON_Delete(body);
		if (text == NULL)
		{
			call_fail(c, CVH_RETRYABLE, "%s: out of memory", verb_names[c->verb]);
			return;
		}
	}
	call_send_text(m, c, tag, endpoint, path, text);
}

/*
 * Endpoints that answered /v1/tasks with 404 (no task control), remembered
 * for a while so each batch of updates is not preceded by a useless request.
 */
#define NO_TASKS_SECONDS 600

typedef struct NoTasks
{
	char	   *endpoint;
	time_t		until;
} NoTasks;

static NoTasks *no_tasks = NULL;
static int	n_no_tasks = 0;

static NoTasks *
no_tasks_find(const char *endpoint)
{
	for (int i = 0; i < n_no_tasks; i++)
		if (strcmp(no_tasks[i].endpoint, endpoint) == 0)
			return &no_tasks[i];
	return NULL;
}

/* Whether the endpoint said recently that it has no task control. */
static bool
no_tasks_known(const char *endpoint)
{
	NoTasks    *t = no_tasks_find(endpoint);

	return t != NULL && t->until > time(NULL);
}

static void
no_tasks_remember(const char *endpoint)
{
	NoTasks    *t = no_tasks_find(endpoint);
	NoTasks    *grown;

	if (t == NULL)
	{
		grown = realloc(no_tasks, (n_no_tasks + 1) * sizeof(NoTasks));
		if (grown == NULL)
			return;
		no_tasks = grown;
		t = &no_tasks[n_no_tasks];
		t->endpoint = strdup(endpoint);
		if (t->endpoint == NULL)
			return;
		n_no_tasks++;
	}
	t->until = time(NULL) + NO_TASKS_SECONDS;
}

/* A GET of a full URL (Prometheus), answered into slot tag of the call's answers. */
static void
call_get_url(CvhMulti *m, CvCall *c, int tag, const char *url)
{
	char		server[256];
	const char *host = strstr(url, "://");
	size_t		len = host ? strcspn(host + 3, "/?#") + (host + 3 - url) : strlen(url);
	CvhRequest *r;
	EndpointGroup *g;

	/* one Prometheus server is one endpoint for the concurrency cap */
	snprintf(server, sizeof(server), "%.*s", (int) Min(len, sizeof(server) - 1), url);
	g = group_for(server);
	call_expect(c, g);
	r = cvh_request_new(url, NULL, &c->settings, g);

	if (r == NULL)
	{
		call_fail(c, CVH_RETRYABLE, "%s: out of memory", verb_names[c->verb]);
		return;
	}
	r->owner = c;
	r->tag = tag;
	c->outstanding++;
	cvh_submit(m, r);
}

/*
 * The /v1/update request of chunk k, for the updates in allowed (taken
 * over). The updates are printed once: the request key is a hash of that
 * text (the same updates, the same key) and the body is built around it.
 */
static void
call_send_update(CvhMulti *m, CvCall *c, int k, cJSON *allowed)
{
	char	   *updates = cJSON_PrintUnformatted(allowed);
	char	   *body;
	char		key[80];

	c->chunks[k].stage = STAGE_UPDATE;
	cJSON_Delete(c->chunks[k].sent);
	c->chunks[k].sent = allowed;
	free(c->chunks[k].done);
	c->chunks[k].done = NULL;
	if (updates == NULL)
	{
		call_fail(c, CVH_RETRYABLE, "%s: out of memory", verb_names[c->verb]);
		return;
	}
	snprintf(key, sizeof(key), "conveyor-" INT64_FORMAT "-%016llx", c->push_id,
			 (unsigned long long) fnv1a(updates));
	body = psprintf_malloc("{\"idempotency_key\":\"%s\",\"updates\":%s}", key, updates);
	cJSON_free(updates);
	if (body == NULL)
	{
		call_fail(c, CVH_RETRYABLE, "%s: out of memory", verb_names[c->verb]);
		return;
	}
	call_send_text(m, c, k, c->chunks[k].endpoint, "/v1/update", body);
}

/*
 * Plan and submit every first request of a call. Units no endpoint reported
 * are answered here: refused updates, unhealthy units, units needing a push.
 */
static void
call_start(CvhMulti *m, CvCall *c)
{
	cJSON	   *items;
	cJSON	   *item;

	switch (c->verb)
	{
		case CALL_GET_UNITS:
			c->result = cJSON_CreateObject();
			cJSON_AddArrayToObject(c->result, "units");
			cJSON_AddArrayToObject(c->result, "labels");
			cJSON_AddArrayToObject(c->result, "subunits");
			cJSON_AddArrayToObject(c->result, "versions");
			cJSON_AddArrayToObject(c->result, "statuses");
			cJSON_AddObjectToObject(c->result, "endpoints");
			for (int e = 0; e < c->nendpoints; e++)
				call_send(m, c, e, e, "/v1/units", NULL);
			return;
		case CALL_NEEDS_PUSH:
			c->result = cJSON_CreateObject();
			cJSON_AddArrayToObject(c->result, "no");
			items = J_GET(c->request, "units");
			break;
		case CALL_SEND_UPDATE:
			c->result = cJSON_CreateObject();
			cJSON_AddArrayToObject(c->result, "units");
			cJSON_AddArrayToObject(c->result, "subunits");
			cJSON_AddArrayToObject(c->result, "errors");
			cJSON_AddArrayToObject(c->result, "deferred");
			items = J_GET(c->request, "updates");
			c->nupdates = cJSON_GetArraySize(items);
			break;
		case CALL_CHECK_HEALTH:
			c->result = cJSON_CreateObject();
			cJSON_AddNumberToObject(c->result, "checked", 0);
			cJSON_AddArrayToObject(c->result, "unhealthy");
			items = J_GET(c->request, "units");
			break;
		case CALL_PROMETHEUS:
			{
				cJSON	   *answers;
				int			i = 0;

				c->result = cJSON_CreateObject();
				answers = cJSON_AddArrayToObject(c->result, "answers");
				cJSON_ArrayForEach(item, J_GET(c->request, "requests"))
				{
					const char *url = J_STR(J_GET(item, "url"));

					cJSON_AddItemToArray(answers, obj2("check", jdup(J_GET(item, "check")), "status",
													   cJSON_CreateString(url ? "pending" : "error")));
					if (url)
						call_get_url(m, c, i, url);
					i++;
				}
				return;
			}
		default:
			return;
	}
	routes_build(c);
	/* each item moves from the request to its chunk (a copy each was 10% of a big send) */
	for (cJSON *next, *item = items ? items->child : NULL; item; item = next)
	{
		const char *unit = c->verb == CALL_SEND_UPDATE ? J_STR(J_GET(item, "unit")) : J_STR(item);
		int			e = unit_endpoint(c, unit);
		Chunk	   *ch;

		next = item->next;

		if (e < 0)
		{
			/* a unit no endpoint reports any more */
			if (c->verb == CALL_SEND_UPDATE)
			{
				result_add(c, "units", jdup(J_GET(item, "unit")));
				result_add(c, "subunits", jdup(J_GET(item, "subunit")));
				result_add(c, "errors", cJSON_CreateString("unit not reported by any endpoint"));
			}
			else if (c->verb == CALL_CHECK_HEALTH)
			{
				cJSON_SetNumberValue(J_GET(c->result, "checked"), J_GET(c->result, "checked")->valuedouble + 1);
				result_add(c, "unhealthy", obj2("unit", jdup(item), "reason",
												cJSON_CreateString("unit not reported by any endpoint")));
			}
			continue;
		}
		ch = chunk_for(c, e, c->verb == CALL_SEND_UPDATE ? Max(1, c->max_batch) : INT_MAX);
		if (ch == NULL)
		{
			call_fail(c, CVH_RETRYABLE, "%s: out of memory", verb_names[c->verb]);
			return;
		}
		cJSON_AddItemToArray(ch->items, cJSON_DetachItemViaPointer(items, item));
		ch->nitems++;
	}
	for (int k = 0; k < c->nchunks; k++)
	{
		Chunk	   *ch = &c->chunks[k];

		if (c->verb == CALL_NEEDS_PUSH)
			call_send(m, c, k, ch->endpoint, "/v1/needs-push",
					  obj2("version", jdup(J_GET(c->request, "version")), "units", jdup(ch->items)));
		else if (c->verb == CALL_CHECK_HEALTH)
			call_send(m, c, k, ch->endpoint, "/v1/health", obj2("units", jdup(ch->items), NULL, NULL));
		else if (no_tasks_known(c->endpoints[ch->endpoint]))
		{
			/* all of them are sent: the updates become the request's (no copy) */
			call_send_update(m, c, k, ch->items);
			ch->items = NULL;
		}
		else
		{
			cJSON	   *cands = cJSON_CreateArray();

			cJSON_ArrayForEach(item, ch->items)
				cJSON_AddItemToArray(cands, obj2("unit", jdup(J_GET(item, "unit")),
												 "subunit", jdup(J_GET(item, "subunit"))));
			call_send(m, c, k, ch->endpoint, "/v1/tasks", obj2("candidates", cands, NULL, NULL));
		}
		/* out at once: the endpoint works on this chunk while the next is built */
		cvh_drive(m);
	}
}

/* --------------------------------------------------------------- answers */

/* Whether a status string is one the protocol knows. */
static bool
status_known(const char *st)
{
	return strcmp(st, "ok") == 0 || strcmp(st, "updating") == 0 ||
		strcmp(st, "failed") == 0 || strcmp(st, "unreachable") == 0;
}

/* Check one unit of a GET /v1/units answer; NULL, or what is wrong. */
static const char *
check_unit(cJSON *unit)
{
	cJSON	   *labels = J_GET(unit, "labels");
	cJSON	   *subs = J_GET(unit, "subunits");
	cJSON	   *sub;
	cJSON	   *v;
	int			j = 0;

	if (name_member(unit, "name") == NULL)
		return "a unit without a valid \"name\"";
	if (labels && !cJSON_IsNull(labels))
	{
		if (!cJSON_IsObject(labels))
			return "\"labels\" is not an object";
		cJSON_ArrayForEach(v, labels)
			if (!cJSON_IsString(v))
			return "a label value is not a string";
	}
	if (!cJSON_IsArray(subs))
		return "\"subunits\" is not an array";
	cJSON_ArrayForEach(sub, subs)
	{
		cJSON	   *sn = J_GET(sub, "name");
		cJSON	   *ver = J_GET(sub, "version");
		cJSON	   *st = J_GET(sub, "status");
		cJSON	   *other;
		int			q = 0;

		if (!cJSON_IsObject(sub))
			return "a subunit is not an object";
		if (!(cJSON_IsNull(sn) || name_member(sub, "name")))
			return "a subunit \"name\" is neither a valid string nor null";
		if (ver && !cJSON_IsNull(ver) && !name_member(sub, "version"))
			return "a \"version\" is neither a valid string nor null";
		if (st && !cJSON_IsNull(st) && !(cJSON_IsString(st) && status_known(st->valuestring)))
			return "a \"status\" is not ok, updating, failed or unreachable";
		cJSON_ArrayForEach(other, subs)
		{
			if (q++ >= j)
				break;
			if (cJSON_Compare(J_GET(other, "name"), sn, true))
				return "a unit lists a subunit twice";
		}
		j++;
	}
	return NULL;
}

/* Check and keep a GET /v1/units answer from endpoint e; NULL, or what is wrong with it. */
static const char *
take_units(CvCall *c, int e, cJSON *body)
{
	cJSON	   *units = J_GET(body, "units");
	cJSON	   *proto = J_GET(body, "protocol");
	cJSON	   *unit;
	cJSON	   *sub;
	int			n = cJSON_GetArraySize(units);
	char	  **names;
	char	  **grown;
	int			k = 0;
	static char why[160];

	if (!cJSON_IsNumber(proto) || proto->valuedouble != 1)
		return "\"protocol\" is not 1";
	if (!cJSON_IsArray(units))
		return "\"units\" is not an array";
	/* check everything first: nothing of a wrong answer is kept */
	cJSON_ArrayForEach(unit, units)
	{
		const char *wrong = check_unit(unit);

		if (wrong)
			return wrong;
	}
	/* a unit name once in the answer, and once across endpoints */
	names = malloc(Max(1, n) * sizeof(char *));
	if (names == NULL)
		return "out of memory";
	cJSON_ArrayForEach(unit, units)
		names[k++] = J_STR(J_GET(unit, "name"));
	qsort(names, n, sizeof(char *), str_cmp);
	for (int i = 0; i < n; i++)
	{
		if ((i > 0 && strcmp(names[i - 1], names[i]) == 0) ||
			(c->nseen > 0 && bsearch(&names[i], c->seen, c->nseen, sizeof(char *), str_cmp)))
		{
			snprintf(why, sizeof(why), "unit \"%.60s\" reported twice (or by two endpoints)", names[i]);
			free(names);
			return why;
		}
	}
	grown = realloc(c->seen, (c->nseen + n + 1) * sizeof(char *));
	if (grown == NULL)
	{
		free(names);
		return "out of memory";
	}
	c->seen = grown;
	for (int i = 0; i < n; i++)
		c->seen[c->nseen++] = strdup(names[i]);
	qsort(c->seen, c->nseen, sizeof(char *), str_cmp);
	free(names);

	/* keep it: one row per subunit, and which endpoint has the unit */
	cJSON_ArrayForEach(unit, units)
	{
		cJSON	   *labels = J_GET(unit, "labels");
		cJSON	   *name = J_GET(unit, "name");

		cJSON_AddItemToObject(J_GET(c->result, "endpoints"), name->valuestring,
							  cJSON_CreateString(c->endpoints[e]));
		cJSON_ArrayForEach(sub, J_GET(unit, "subunits"))
		{
			cJSON	   *st = J_GET(sub, "status");

			result_add(c, "units", jdup(name));
			result_add(c, "labels", cJSON_IsObject(labels) ? jdup(labels) : cJSON_CreateObject());
			result_add(c, "subunits", jdup(J_GET(sub, "name")));
			result_add(c, "versions", jdup(J_GET(sub, "version")));
			result_add(c, "statuses", st && !cJSON_IsNull(st) ? jdup(st) : cJSON_CreateString("ok"));
		}
	}
	return NULL;
}

/*
 * A sorted index of an array's entries by one or two string keys: unit
 * names (strings), or updates and candidates by (unit, subunit). Answers
 * are matched to requests through it, so a 500-update answer costs
 * n log n, not n^2.
 */
typedef struct KeyEntry
{
	const char *a;
	const char *b;				/* "" for one key */
	cJSON	   *item;
	int			pos;			/* the item's position in its array */
	bool		seen;
} KeyEntry;

typedef struct KeyIndex
{
	KeyEntry   *e;
	int			n;
} KeyIndex;

static int
key_cmp(const void *x, const void *y)
{
	const KeyEntry *p = x;
	const KeyEntry *q = y;
	int			r = strcmp(p->a, q->a);

	return r != 0 ? r : strcmp(p->b, q->b);
}

/*
 * Index the entries of arr by member ka (and kb), or, with ka NULL, strings
 * by themselves. Entries without the keys are left out. ix->e is NULL when
 * out of memory.
 */
static void
index_build(KeyIndex *ix, cJSON *arr, const char *ka, const char *kb)
{
	cJSON	   *v;
	int			pos = 0;

	ix->n = 0;
	ix->e = malloc(Max(1, cJSON_GetArraySize(arr)) * sizeof(KeyEntry));
	if (ix->e == NULL)
		return;
	cJSON_ArrayForEach(v, arr)
	{
		const char *a = ka ? J_STR(J_GET(v, ka)) : J_STR(v);
		const char *b = kb ? J_STR(J_GET(v, kb)) : "";

		pos++;
		if (a == NULL || b == NULL)
			continue;
		ix->e[ix->n].a = a;
		ix->e[ix->n].b = b;
		ix->e[ix->n].item = v;
		ix->e[ix->n].pos = pos - 1;
		ix->e[ix->n].seen = false;
		ix->n++;
	}
	qsort(ix->e, ix->n, sizeof(KeyEntry), key_cmp);
}

/* The entry of (a, b) (b "" for one key), or NULL. */
static KeyEntry *
index_find(KeyIndex *ix, const char *a, const char *b)
{
	KeyEntry	key = {a, b ? b : "", NULL, 0, false};

	if (ix->e == NULL || a == NULL)
		return NULL;
	return bsearch(&key, ix->e, ix->n, sizeof(KeyEntry), key_cmp);
}

/* Check and keep a POST /v1/needs-push answer. */
static const char *
take_needs_push(CvCall *c, Chunk *ch, cJSON *body)
{
	cJSON	   *units = J_GET(body, "units");
	cJSON	   *u;
	KeyIndex	asked;

	if (!cJSON_IsArray(units))
		return "\"units\" is not an array";
	cJSON_ArrayForEach(u, units)
	{
		if (name_member(u, "name") == NULL || !cJSON_IsBool(J_GET(u, "needs_push")))
			return "an entry without a valid \"name\" and a boolean \"needs_push\"";
	}
	index_build(&asked, ch->items, NULL, NULL);
	if (asked.e == NULL)
		return "out of memory";
	cJSON_ArrayForEach(u, units)
	{
		const char *name = name_member(u, "name");

		/* only units asked about; a missing one needs a push */
		if (cJSON_IsFalse(J_GET(u, "needs_push")) && index_find(&asked, name, NULL))
			result_add(c, "no", cJSON_CreateString(name));
	}
	free(asked.e);
	return NULL;
}

/* Check and keep a POST /v1/health answer. */
static const char *
take_health(CvCall *c, Chunk *ch, cJSON *body)
{
	cJSON	   *units = J_GET(body, "units");
	cJSON	   *u;
	cJSON	   *want;
	cJSON	   *checked = J_GET(c->result, "checked");
	KeyIndex	answered;

	if (!cJSON_IsArray(units))
		return "\"units\" is not an array";
	cJSON_ArrayForEach(u, units)
	{
		cJSON	   *reason = J_GET(u, "reason");

		if (name_member(u, "name") == NULL || !cJSON_IsBool(J_GET(u, "healthy")))
			return "an entry without a valid \"name\" and a boolean \"healthy\"";
		if (reason && !cJSON_IsNull(reason) && !cJSON_IsString(reason))
			return "a \"reason\" is neither a string nor null";
	}
	index_build(&answered, units, "name", NULL);
	if (answered.e == NULL)
		return "out of memory";
	cJSON_ArrayForEach(want, ch->items)
	{
		if (index_find(&answered, want->valuestring, NULL) == NULL)
		{
			free(answered.e);
			return "a requested unit is missing from the answer";
		}
	}
	cJSON_ArrayForEach(want, ch->items)
	{
		cJSON	   *e = index_find(&answered, want->valuestring, NULL)->item;

		if (cJSON_IsFalse(J_GET(e, "healthy")))
		{
			const char *reason = J_STR(J_GET(e, "reason"));
			char		r[201];

			snprintf(r, sizeof(r), "%s", reason ? reason : "no reason given");
			result_add(c, "unhealthy", obj2("unit", jdup(want), "reason", cJSON_CreateString(r)));
		}
	}
	free(answered.e);
	cJSON_SetNumberValue(checked, checked->valuedouble + ch->nitems);
	return NULL;
}

/*
 * Check a /v1/tasks answer; on success *allowed holds the updates to send
 * now, and each candidate of the chunk says whether it was ("allowed").
 */
static const char *
take_tasks(Chunk *ch, cJSON *body, long status, cJSON **allowed)
{
	cJSON	   *list = J_GET(body, "allowed");
	cJSON	   *v;
	KeyIndex	cands;

	*allowed = cJSON_CreateArray();
	if (status == 404)
	{
		/* no task control: every candidate may go */
		cJSON_ArrayForEach(v, ch->items)
			cJSON_AddItemToArray(*allowed, jdup(v));
		return NULL;
	}
	if (!cJSON_IsArray(list))
		return "\"allowed\" is not an array";
	index_build(&cands, ch->items, "unit", "subunit");
	if (cands.e == NULL)
		return "out of memory";
	cJSON_ArrayForEach(v, list)
	{
		const char *u = name_member(v, "unit");
		const char *s = name_member(v, "subunit");
		KeyEntry   *cand = (u && s) ? index_find(&cands, u, s) : NULL;

		if (cand == NULL)
		{
			free(cands.e);
			return "an allowed entry was not a candidate";
		}
		if (!cand->seen)
			cJSON_AddItemToArray(*allowed, jdup(cand->item));
		cand->seen = true;
	}
	for (int i = 0; i < cands.n; i++)
	{
		cJSON_DeleteItemFromObjectCaseSensitive(cands.e[i].item, "allowed");
		cJSON_AddBoolToObject(cands.e[i].item, "allowed", cands.e[i].seen);
	}
	free(cands.e);
	return NULL;
}

/* Check and keep a POST /v1/update answer for the updates sent. */
static const char *
take_update(CvCall *c, Chunk *ch, cJSON *body)
{
	cJSON	   *sent = ch->sent;
	int			nsent = cJSON_GetArraySize(sent);
	cJSON	   *results = J_GET(body, "results");
	cJSON	   *v;
	KeyIndex	ix;
	const char *wrong = NULL;

	if (!cJSON_IsArray(results))
		return "\"results\" is not an array";
	if (cJSON_GetArraySize(results) != nsent)
		return "not one result per update";
	if (ch->done == NULL)
		ch->done = calloc(Max(1, nsent), sizeof(bool));
	index_build(&ix, sent, "unit", "subunit");
	if (ix.e == NULL || ch->done == NULL)
	{
		free(ix.e);
		return "out of memory";
	}
	cJSON_ArrayForEach(v, results)
	{
		const char *u = name_member(v, "unit");
		const char *s = name_member(v, "subunit");
		const char *st = J_STR(J_GET(v, "status"));
		KeyEntry   *e = (u && s) ? index_find(&ix, u, s) : NULL;

		if (e == NULL || e->seen)
		{
			wrong = "a result for an update not sent, or twice";
			break;
		}
		e->seen = true;
		if (st == NULL || (strcmp(st, "accepted") != 0 && strcmp(st, "done") != 0 && strcmp(st, "refused") != 0))
		{
			wrong = "a \"status\" is not accepted, done or refused";
			break;
		}
		/* only marked: listed at the record unless every update is done (result_add_done) */
		ch->done[e->pos] = strcmp(st, "done") == 0;
	}
	free(ix.e);
	if (wrong)
	{
		memset(ch->done, 0, Max(1, nsent) * sizeof(bool));	/* the retried answer marks again */
		return wrong;
	}
	cJSON_ArrayForEach(v, results)
	{
		const char *st = J_STR(J_GET(v, "status"));
		const char *err = J_STR(J_GET(v, "error"));
		char		e[201];

		if (strcmp(st, "done") == 0)
			c->ndone++;
		if (strcmp(st, "refused") != 0)
			continue;			/* done: marked; accepted: in flight, confirmed through get units */
		/* moved out of the answer, which is freed next, rather than copied */
		result_add(c, "units", cJSON_DetachItemFromObjectCaseSensitive(v, "unit"));
		result_add(c, "subunits", cJSON_DetachItemFromObjectCaseSensitive(v, "subunit"));
		snprintf(e, sizeof(e), "%s", err ? err : "refused");
		result_add(c, "errors", cJSON_CreateString(e));
	}
	return NULL;
}

/*
 * A Prometheus answer: its body, or why there is none, in its slot. Never a
 * failure of the call: a check without data is judged by its no-data policy.
 */
static void
prometheus_answer(CvCall *c, CvhRequest *r)
{
	cJSON	   *slot = cJSON_GetArrayItem(J_GET(c->result, "answers"), r->tag);
	cJSON	   *body = r->outcome == CVH_OK ? cJSON_ParseWithLength(r->response ? r->response : "", r->response_len) : NULL;

	if (slot == NULL)
		return;
	cJSON_DeleteItemFromObjectCaseSensitive(slot, "status");
	if (body)
	{
		cJSON_AddStringToObject(slot, "status", "ok");
		cJSON_AddItemToObject(slot, "body", body);
		return;
	}
	cJSON_AddStringToObject(slot, "status", "error");
	cJSON_AddStringToObject(slot, "error", r->outcome == CVH_OK ? "the answer is not JSON" : r->error);
}

/* An answered request of call c: check it, keep it, send what follows. */
static void
call_answer(CvhMulti *m, CvCall *c, CvhRequest *r)
{
	cJSON	   *body = NULL;
	const char *wrong = NULL;
	Chunk	   *ch = (c->verb == CALL_GET_UNITS || c->verb == CALL_PROMETHEUS) ? NULL : &c->chunks[r->tag];
	cJSON	   *allowed = NULL;

	if (c->verb == CALL_PROMETHEUS)
	{
		prometheus_answer(c, r);
		return;
	}
	if (r->outcome != CVH_OK)
	{
		call_fail(c, r->outcome, "%s: %s", verb_names[c->verb], r->error);
		return;
	}
	if (r->status == 404 && c->verb == CALL_NEEDS_PUSH)
		return;					/* not implemented: every unit needs a push */
	if (r->status != 404)
	{
		body = cJSON_ParseWithLength(r->response ? r->response : "", r->response_len);
		if (body == NULL)
			wrong = "the body is not JSON";
		else if (!cJSON_IsObject(body))
			wrong = "the body is not a JSON object";
	}
	if (wrong == NULL)
	{
		switch (c->verb)
		{
			case CALL_GET_UNITS:
				wrong = take_units(c, r->tag, body);
				break;
			case CALL_NEEDS_PUSH:
				wrong = take_needs_push(c, ch, body);
				break;
			case CALL_CHECK_HEALTH:
				wrong = take_health(c, ch, body);
				break;
			case CALL_SEND_UPDATE:
				if (ch->stage == STAGE_ONE)
				{
					if (r->status == 404)
						no_tasks_remember(c->endpoints[ch->endpoint]);
					wrong = take_tasks(ch, body, r->status, &allowed);
				}
				else
					wrong = take_update(c, ch, body);
				break;
			case CALL_PROMETHEUS:
				break;			/* answered by prometheus_answer */
		}
	}
	cJSON_Delete(body);
	if (wrong)
	{
		char		why[200];

		cJSON_Delete(allowed);
		snprintf(why, sizeof(why), "answer of the wrong shape: %s", wrong);
		if (cvh_retry(m, r, why))
		{
			c->outstanding++;	/* the same request again */
			return;
		}
		call_fail(c, CVH_RETRYABLE, "%s: %s", verb_names[c->verb], r->error);
		return;
	}
	if (allowed)
	{
		cJSON	   *item;

		/* candidates not allowed now stay pending for a later step */
		cJSON_ArrayForEach(item, ch->items)
		{
			if (cJSON_IsFalse(J_GET(item, "allowed")))
				result_add(c, "deferred", obj2("unit", jdup(J_GET(item, "unit")),
											   "subunit", jdup(J_GET(item, "subunit"))));
		}
		if (cJSON_GetArraySize(allowed) > 0)
			call_send_update(m, c, r->tag, allowed);
		else
			cJSON_Delete(allowed);
	}
}

/*
 * Process finished requests: returns the calls now complete (answered or
 * failed), unlinked from *calls.
 */
static CvCall *
calls_progress(CvhMulti *m, CvCall **calls)
{
	CvhRequest *r;
	CvCall	   *complete = NULL;
	CvCall	  **link;

	cvh_drive(m);
	while ((r = cvh_take_done(m)) != NULL)
	{
		CvCall	   *c = r->owner;

		c->outstanding--;
		if (!c->failed)
			call_answer(m, c, r);
		/* cvh_retry re-queued it: the request lives on */
		if (r->outcome == CVH_RUNNING)
			continue;
		if (r->group)
			group_answered((EndpointGroup *) r->group, r->elapsed_ms);
		c->nrequests += r->attempts;	/* every attempt, retries included */
		cvh_request_free(r);
		if (c->failed)
			cvh_cancel_owner(m, c);		/* the call fails as a whole: drop the rest */
	}
	cvh_drive(m);				/* start what the answers queued */
	for (link = calls; *link;)
	{
		CvCall	   *c = *link;

		if (c->failed || c->outstanding == 0)
		{
			*link = c->next;
			c->answered_at = GetCurrentTimestamp();
			c->next = complete;
			complete = c;
			continue;
		}
		link = &c->next;
	}
	return complete;
}

/*
 * The list with the calls to endpoints that usually answer within
 * CV_FAST_CALL_MS moved to its head, in order. Starting a call takes a
 * moment, and a claim may take a hundred calls to slow endpoints at once: a
 * fast one among them goes out first instead of a few milliseconds late.
 */
static CvCall *
calls_fast_first(CvCall *list)
{
	CvCall	   *fast = NULL;
	CvCall	  **fast_tail = &fast;
	CvCall	  **link = &list;

	while (*link)
	{
		CvCall	   *c = *link;
		double		usual = call_usual_ms(c);

		if (usual < 0 || usual > CV_FAST_CALL_MS)
		{
			link = &c->next;
			continue;
		}
		*link = c->next;
		c->next = NULL;
		*fast_tail = c;
		fast_tail = &c->next;
	}
	*fast_tail = list;
	return fast;
}

/* Put answered calls into *list, kept in order of how long each took. */
static void
calls_by_duration(CvCall **list, CvCall *add)
{
	while (add)
	{
		CvCall	   *c = add;
		CvCall	  **link = list;

		add = c->next;
		while (*link && (*link)->answered_at - (*link)->claimed_at <= c->answered_at - c->claimed_at)
			link = &(*link)->next;
		c->next = *link;
		*link = c;
	}
}

/* --------------------------------------------------------------- setup */

/* Text of column col of the current SPI row, malloc'd, or NULL. */
static char *
spi_text(HeapTuple tup, TupleDesc desc, int col)
{
	char	   *v = SPI_getvalue(tup, desc, col);
	char	   *copy = v ? strdup(v) : NULL;

	if (v)
		pfree(v);
	return copy;
}

static long
spi_long(HeapTuple tup, TupleDesc desc, int col, long dflt)
{
	char	   *v = SPI_getvalue(tup, desc, col);
	long		n = v ? strtol(v, NULL, 10) : dflt;

	if (v)
		pfree(v);
	return n;
}

/* stack[depth] = node, the stack grown as needed. */
static cJSON **
stack_push(cJSON **stack, int *cap, int depth, cJSON *node)
{
	if (depth >= *cap)
	{
		*cap = Max(8, *cap * 2);
		stack = stack ? repalloc(stack, *cap * sizeof(cJSON *)) : palloc(*cap * sizeof(cJSON *));
	}
	stack[depth] = node;
	return stack;
}

/* Buffers for jb_cstring: an object's key, and a string value. */
enum
{
	JB_KEY,
	JB_VALUE
};

/*
 * A jsonb string NUL-terminated, in buffer slot's memory, reused from call to
 * call (valid until the next call for the slot; cJSON copies what it keeps).
 * NULL: out of memory.
 */
static const char *
jb_cstring(int slot, const char *val, int len)
{
	static char *buf[2] = {NULL, NULL};
	static size_t cap[2] = {0, 0};

	if ((size_t) len + 1 > cap[slot])
	{
		size_t		want = Max(Max((size_t) len + 1, cap[slot] * 2), 256);
		char	   *grown = realloc(buf[slot], want);

		if (grown == NULL)
			return NULL;
		buf[slot] = grown;
		cap[slot] = want;
	}
	memcpy(buf[slot], val, len);
	buf[slot][len] = '\0';
	return buf[slot];
}

/* A jsonb scalar as cJSON (NULL: out of memory). */
static cJSON *
cjson_scalar(JsonbValue *v)
{
	const char *str;
	char	   *s;
	cJSON	   *j;

	switch (v->type)
	{
		case jbvNull:
			return cJSON_CreateNull();
		case jbvBool:
			return cJSON_CreateBool(v->val.boolean);
		case jbvNumeric:
			s = DatumGetCString(DirectFunctionCall1(numeric_out, NumericGetDatum(v->val.numeric)));
			j = cJSON_CreateNumber(strtod(s, NULL));
			break;
		case jbvString:
			str = jb_cstring(JB_VALUE, v->val.string.val, v->val.string.len);
			return str ? cJSON_CreateString(str) : NULL;
		default:
			return NULL;
	}
	pfree(s);
	return j;
}

/*
 * The member names every update of a big send repeats, as constants: a node
 * keyed by one of them refers to it (cJSON_StringIsConst) instead of holding
 * a copy, 40,000 allocations fewer for 10,000 updates. NULL for other names.
 */
static const char *
known_key(const char *name, int len)
{
	static const char *const keys[] = {"unit", "subunit", "version", "key"};

	for (int i = 0; i < (int) lengthof(keys); i++)
		if ((int) strlen(keys[i]) == len && memcmp(keys[i], name, len) == 0)
			return keys[i];
	return NULL;
}

/*
 * A jsonb value as cJSON, read from its binary form (NULL: out of memory).
 * Printing a large request as text and parsing the text again was a fifth of
 * a big send's time.
 */
static cJSON *
cjson_from_jsonb(Jsonb *jb)
{
	JsonbIterator *it = JsonbIteratorInit(&jb->root);
	JsonbValue	v;
	JsonbIteratorToken tok;
	cJSON	   *root = NULL;
	cJSON	  **stack = NULL;
	int			depth = 0;
	int			cap = 0;
	const char *key = NULL;
	const char *key_const = NULL;
	bool		ok = true;

	while (ok && (tok = JsonbIteratorNext(&it, &v, false)) != WJB_DONE)
	{
		cJSON	   *node;
		cJSON	   *parent = depth > 0 ? stack[depth - 1] : NULL;

		if (tok == WJB_KEY)
		{
			key_const = known_key(v.val.string.val, v.val.string.len);
			key = key_const ? key_const : jb_cstring(JB_KEY, v.val.string.val, v.val.string.len);
			ok = key != NULL;
			continue;
		}
		if (tok == WJB_END_ARRAY || tok == WJB_END_OBJECT)
		{
			depth--;
			continue;
		}
		if (tok == WJB_BEGIN_ARRAY && v.val.array.rawScalar)
		{
			/* a bare scalar: its one element is the value */
			stack = stack_push(stack, &cap, depth, NULL);
			depth++;
			continue;
		}
		if (tok == WJB_BEGIN_ARRAY)
			node = cJSON_CreateArray();
		else if (tok == WJB_BEGIN_OBJECT)
			node = cJSON_CreateObject();
		else
			node = cjson_scalar(&v);
		ok = node != NULL;
		if (!ok)
			break;
		if (parent == NULL)
		{
			if (root == NULL)
				root = node;
			else
				cJSON_Delete(node);
		}
		else if (cJSON_IsObject(parent) && key_const)
			cJSON_AddItemToObjectCS(parent, key_const, node);
		else if (cJSON_IsObject(parent))
			cJSON_AddItemToObject(parent, key ? key : "", node);
		else
			cJSON_AddItemToArray(parent, node);
		key = NULL;
		key_const = NULL;
		if (tok == WJB_BEGIN_ARRAY || tok == WJB_BEGIN_OBJECT)
		{
			stack = stack_push(stack, &cap, depth, node);
			depth++;
		}
	}
	if (!ok)
	{
		cJSON_Delete(root);
		root = NULL;
	}
	if (stack)
		pfree(stack);
	return root;
}

/* A JSON column of the current SPI row, parsed (NULL if it does not parse). */
static cJSON *
spi_json(HeapTuple tup, TupleDesc desc, int col, const char *dflt)
{
	bool		isnull;
	Datum		d;
	char	   *v;
	cJSON	   *j;

	if (SPI_gettypeid(desc, col) == JSONBOID)
	{
		d = SPI_getbinval(tup, desc, col, &isnull);
		return isnull ? cJSON_Parse(dflt) : cjson_from_jsonb(DatumGetJsonbP(d));
	}
	v = SPI_getvalue(tup, desc, col);
	j = cJSON_Parse(v ? v : dflt);
	if (v)
		pfree(v);
	return j;
}

/*
 * A call from a row of conveyor._http_claim or _http_settings: push_id, verb,
 * request, request_hash, push_type, endpoints, token, connect_ms, timeout_ms,
 * retries, concurrency, max_batch, max_bytes, unitmap. On a column that does
 * not parse, error says why (the caller fails the call).
 */
static CvCall *
call_from_row(HeapTuple tup, TupleDesc desc, char *error, size_t errsize)
{
	CvCall	   *c = calloc(1, sizeof(CvCall));
	char	   *verb = SPI_getvalue(tup, desc, 2);
	cJSON	   *eps;
	cJSON	   *v;

	if (c == NULL)
		return NULL;
	c->push_id = spi_long(tup, desc, 1, 0);
	for (int k = 0; k < CALL_VERBS; k++)
		if (verb && strcmp(verb, verb_names[k]) == 0)
			c->verb = (CallVerb) k;
	c->request = spi_json(tup, desc, 3, "{}");
	c->request_hash = spi_text(tup, desc, 4);
	/* column 5, the push type, is for people reading the claim: requests are grouped by endpoint */
	eps = spi_json(tup, desc, 6, "[]");
	c->token = spi_text(tup, desc, 7);
	c->settings.token = c->token;
	c->settings.connect_timeout_ms = spi_long(tup, desc, 8, 2000);
	c->settings.timeout_ms = spi_long(tup, desc, 9, 10000);
	c->settings.retries = (int) spi_long(tup, desc, 10, 2);
	c->settings.concurrency = (int) spi_long(tup, desc, 11, 16);
	c->max_batch = (int) spi_long(tup, desc, 12, 500);
	c->settings.max_response_bytes = (size_t) spi_long(tup, desc, 13, 8 << 20);
	c->unitmap = spi_json(tup, desc, 14, "{}");
	c->endpoints = calloc(Max(1, cJSON_GetArraySize(eps)), sizeof(char *));
	if (c->endpoints)
		cJSON_ArrayForEach(v, eps)
			c->endpoints[c->nendpoints++] = strdup(J_STR(v) ? J_STR(v) : "");
	cJSON_Delete(eps);
	if (c->request == NULL || c->unitmap == NULL || c->request_hash == NULL)
		snprintf(error, errsize, "%s: the call's request could not be read", verb ? verb : "call");
	else if (c->nendpoints == 0 && c->verb != CALL_PROMETHEUS)
		snprintf(error, errsize, "%s: the service has no endpoints", verb);
	if (verb)
		pfree(verb);
	return c;
}

/* --------------------------------------------------------------- worker */

/*
 * A send's updates answered done, into its result. When every update is done
 * (each has one answer, so none was refused, deferred or left unsent) the
 * step knows which it sent, so they are not listed: all_done says so, and a
 * big send's 10,000 keys are never copied. Otherwise the done ones are listed
 * beside the refused ones, with no error.
 */
static void
result_add_done(CvCall *c)
{
	if (c->ndone == c->nupdates)
	{
		cJSON_AddTrueToObject(c->result, "all_done");
		return;
	}
	for (int k = 0; k < c->nchunks; k++)
	{
		Chunk	   *ch = &c->chunks[k];
		cJSON	   *item;
		int			pos = 0;

		if (ch->done == NULL)
			continue;
		cJSON_ArrayForEach(item, ch->sent)
		{
			if (ch->done[pos++])
			{
				result_add(c, "units", jdup(J_GET(item, "unit")));
				result_add(c, "subunits", jdup(J_GET(item, "subunit")));
				result_add(c, "errors", cJSON_CreateNull());
			}
		}
	}
}

/* Record a finished call, in the caller's transaction. */
static void
call_record(CvCall *c)
{
	Oid			types[8] = {INT8OID, TEXTOID, TEXTOID, TEXTOID, TEXTOID, TEXTOID, INT4OID, FLOAT8OID};
	Datum		values[8];
	char		nulls[8] = {' ', ' ', ' ', ' ', ' ', ' ', ' ', ' '};
	char	   *result = NULL;
	double		usual = call_usual_ms(c);

	static SPIPlanPtr record_plan = NULL;

	if (!c->failed && c->verb == CALL_SEND_UPDATE)
		result_add_done(c);
	if (!c->failed)
	{
		result = cJSON_PrintUnformatted(c->result);
		if (result == NULL)
			call_fail(c, CVH_RETRYABLE, "%s: out of memory", verb_names[c->verb]);
	}
	values[0] = Int64GetDatum(c->push_id);
	values[1] = CStringGetTextDatum(verb_names[c->verb]);
	values[2] = CStringGetTextDatum(c->request_hash);
	if (result)
		values[3] = CStringGetTextDatum(result);
	else
		nulls[3] = 'n';
	if (c->failed)
	{
		values[4] = CStringGetTextDatum(c->error);
		values[5] = CStringGetTextDatum(c->fail_kind == CVH_FINAL ? "final" : "retryable");
	}
	else
		nulls[4] = nulls[5] = 'n';
	values[6] = Int32GetDatum(c->nrequests);
	values[7] = Float8GetDatum(usual);
	if (usual < 0)
		nulls[7] = 'n';
	cJSON_free(result);
	if (SPI_execute_plan(cv_kept_plan(&record_plan, "SELECT conveyor._http_record($1, $2, $3, $4::jsonb, $5, $6, $7, $8)",
									  8, types),
						 values, nulls, false, 0) != SPI_OK_SELECT)
		elog(ERROR, "conveyor: recording a push-type call failed");
}

/* Free a list of calls. */
static void
calls_free(CvCall *list)
{
	while (list)
	{
		CvCall	   *c = list;

		list = c->next;
		call_free(c);
	}
}

/*
 * Record the answered calls from the head of *list (the quickest first) in
 * one transaction that takes no more after RECORD_TXN_MS; the rest stay.
 * Those recorded are freed, even on error: the calls are then released to
 * be claimed and sent again.
 */
static void
calls_record_some(CvCall **list)
{
	CvCall	   *batch = NULL;
	CvCall	  **tail = &batch;

	PG_TRY();
	{
		TimestampTz started;

		cv_txn_begin("conveyor: recording push-type calls");
		started = GetCurrentTimestamp();
		do
		{
			CvCall	   *c = *list;

			*list = c->next;
			c->next = NULL;
			*tail = c;
			tail = &c->next;
			call_record(c);
		} while (*list && !TimestampDifferenceExceeds(started, GetCurrentTimestamp(), RECORD_TXN_MS));
		cv_txn_commit();
	}
	PG_CATCH();
	{
		worker_reset_needed = true;
		calls_free(batch);
		PG_RE_THROW();
	}
	PG_END_TRY();
	calls_free(batch);
}

/* Claim pending calls and start their requests (no transaction may be open). */
void
cv_http_worker_claim(void)
{
	int			active = 0;
	int			room;
	Oid			types[2] = {INT4OID, BOOLOID};
	Datum		values[2];
	bool		sweep;
	CvCall	   *claimed = NULL;
	CvCall	   *failed_now = NULL;

	static SPIPlanPtr claim_plan = NULL;

	if (worker_reset_needed)
	{
		/* an error interrupted the calls this worker had: let them be claimed again */
		cv_txn_begin("conveyor: releasing push-type calls");
		if (SPI_execute("UPDATE conveyor.push_call SET state = 'pending', claimed_by = NULL"
						" WHERE state = 'sending' AND claimed_by = pg_backend_pid()", false, 0) < 0)
			elog(ERROR, "conveyor: releasing push-type calls failed");
		cv_txn_commit();
		worker_reset_needed = false;
	}
	if (!calls_recorded && time(NULL) - last_claim < CLAIM_ANYWAY_SECONDS)
		return;
	for (CvCall *c = worker_calls; c; c = c->next)
		active++;
	room = WORKER_MAX_CALLS - active;
	if (room <= 0)
		return;
	calls_recorded = false;
	last_claim = time(NULL);
	if (worker_multi == NULL)
		worker_multi = cvh_create();

	sweep = time(NULL) - last_sweep >= SWEEP_SECONDS;
	if (sweep)
		last_sweep = time(NULL);

	cv_txn_begin("conveyor: claiming push-type calls");
	values[0] = Int32GetDatum(room);
	values[1] = BoolGetDatum(sweep);
	if (SPI_execute_plan(cv_kept_plan(&claim_plan, "SELECT * FROM conveyor._http_claim($1, $2)", 2, types),
						 values, NULL, false, 0) != SPI_OK_SELECT)
		elog(ERROR, "conveyor: claiming push-type calls failed");
	if (SPI_processed >= (uint64) room)
		calls_recorded = true;	/* there may be more: look again next time */
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		char		error[256] = "";
		CvCall	   *c = call_from_row(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, error, sizeof(error));

		if (c == NULL)
			continue;			/* out of memory: it is claimed again later */
		c->claimed_at = c->answered_at = GetCurrentTimestamp();
		if (error[0])
		{
			call_fail(c, CVH_FINAL, "%s", error);
			c->next = failed_now;
			failed_now = c;
			continue;
		}
		c->next = claimed;
		claimed = c;
	}
	cv_txn_commit();

	/* the transaction is over: now the network, to fast endpoints first */
	claimed = calls_fast_first(claimed);
	while (claimed)
	{
		CvCall	   *c = claimed;

		claimed = c->next;
		c->next = worker_calls;
		worker_calls = c;
		call_start(worker_multi, c);
	}
	/* recorded with the answers, first (they took no time) */
	calls_by_duration(&worker_answered, failed_now);
}

/*
 * Whether this worker has calls in flight, or its steps recorded calls to
 * claim: the engine then hands back to the worker loop after each
 * transaction, so answers are taken and calls sent while pushes keep it busy.
 */
bool
cv_http_worker_busy(void)
{
	return worker_calls != NULL || worker_answered != NULL || calls_recorded;
}

/* Whether this worker's steps recorded calls it has not claimed yet. */
bool
cv_http_worker_calls_to_claim(void)
{
	return calls_recorded;
}

/* Milliseconds until the worker's calls need attention (-1: none in flight). */
long
cv_http_worker_timeout(void)
{
	if (worker_answered != NULL)
		return 0;				/* answers to record */
	if (worker_multi == NULL || worker_calls == NULL)
		return -1;
	for (CvCall *c = worker_calls; c; c = c->next)
		if (c->failed || c->outstanding == 0)
			return 0;
	return cvh_timeout_ms(worker_multi);
}

/*
 * A call to endpoints that usually answer within CV_FAST_CALL_MS is
 * waited for, up to twice their usual time, even when pushes are due:
 * otherwise its answer sits on the socket while the worker steps others,
 * and a push to a fast endpoint goes at the pace of the worker's busiest
 * load. At most FAST_WAIT_MS at a time; a call later than expected is not
 * waited for again.
 */
#define FAST_WAIT_MS 3

/*
 * Milliseconds worth waiting for an answer expected any moment (0: none),
 * rounded up: an answer expected in 0.6 ms is worth a 1 ms wait, where
 * rounding down made it a look at the sockets that came too early.
 */
long
cv_http_worker_soon_ms(void)
{
	TimestampTz now = GetCurrentTimestamp();
	int64		best_us = -1;

	for (CvCall *c = worker_calls; c; c = c->next)
	{
		int64		left_us;

		if (c->failed || c->outstanding == 0 || c->expect_ms < 0 || c->expect_ms > CV_FAST_CALL_MS)
			continue;
		left_us = c->claimed_at + (int64) ((2 * c->expect_ms + 1) * 1000) - now;
		if (left_us > 0 && (best_us < 0 || left_us < best_us))
			best_us = left_us;
	}
	return best_us < 0 ? 0 : (long) Min((best_us + 999) / 1000, FAST_WAIT_MS);
}

/* Sleep on the latch and the calls' sockets; whether the latch was set. */
bool
cv_http_worker_wait(long timeout_ms)
{
	return cvh_wait(worker_multi, timeout_ms, PG_WAIT_EXTENSION);
}

/*
 * Move the calls on; record those that finished, the quickest first, in one
 * short transaction (the rest at the next call). Whether any was recorded:
 * their pushes are due now.
 */
bool
cv_http_worker_progress(void)
{
	if (worker_multi != NULL && worker_calls != NULL)
		calls_by_duration(&worker_answered, calls_progress(worker_multi, &worker_calls));
	if (worker_answered == NULL)
		return false;
	calls_record_some(&worker_answered);
	return true;
}

/* After an error in the worker: drop every call; they are released at the next claim. */
void
cv_http_worker_reset(void)
{
	while (worker_calls)
	{
		CvCall	   *c = worker_calls;

		worker_calls = c->next;
		if (worker_multi)
			cvh_cancel_owner(worker_multi, c);
		call_free(c);
		worker_reset_needed = true;
	}
	if (worker_answered)
	{
		/* answered but not recorded: still 'sending', released and sent again */
		calls_free(worker_answered);
		worker_answered = NULL;
		worker_reset_needed = true;
	}
}

/* At worker exit: free curl's memory. */
void
cv_http_worker_shutdown(void)
{
	cv_http_worker_reset();
	if (worker_multi)
		cvh_destroy(worker_multi);
	worker_multi = NULL;
}

/* --------------------------------------------------------------- SQL */

/*
 * SQL: conveyor._http_get_units_now(service text) -> jsonb. Asks the
 * service's endpoints for their units directly (push_start and plan_preview
 * need them before any push exists), waiting on the latch so a cancel is
 * honoured; the answer has the shape the workers record.
 */
Datum
cv_http_get_units_now(PG_FUNCTION_ARGS)
{
	text	   *service = PG_GETARG_TEXT_PP(0);
	Oid			types[1] = {TEXTOID};
	Datum		values[1];
	char		error[256] = "";
	CvCall	   *volatile c = NULL;
	CvhMulti   *volatile m = NULL;
	char	   *result = NULL;
	Datum		out;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "conveyor: SPI_connect failed");
	values[0] = PointerGetDatum(service);
	if (SPI_execute_with_args("SELECT * FROM conveyor._http_settings($1)", 1, types, values, NULL,
							  true, 1) != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "conveyor: reading the HTTP settings of service \"%s\" failed", text_to_cstring(service));
	c = call_from_row(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, error, sizeof(error));
	SPI_finish();
	if (c == NULL)
		ereport(ERROR, (errcode(ERRCODE_OUT_OF_MEMORY), errmsg("out of memory")));
	c->verb = CALL_GET_UNITS;
	if (error[0])
		call_fail(c, CVH_FINAL, "%s", error);

	PG_TRY();
	{
		m = cvh_create();
		if (!c->failed)
			call_start(m, c);
		while (!c->failed && c->outstanding > 0)
		{
			CvCall	   *list = c;

			c->next = NULL;
			if (calls_progress(m, &list) != NULL)
				break;
			cvh_wait(m, cvh_timeout_ms(m), PG_WAIT_EXTENSION);
			CHECK_FOR_INTERRUPTS();
		}
		if (!c->failed)
			result = cJSON_PrintUnformatted(c->result);
	}
	PG_FINALLY();
	{
		if (m)
			cvh_destroy(m);
	}
	PG_END_TRY();

	if (c->failed || result == NULL)
	{
		char		msg[256];
		bool		final = c->fail_kind == CVH_FINAL;

		strlcpy(msg, c->failed ? c->error : "out of memory", sizeof(msg));
		call_free(c);
		ereport(ERROR,
				(errcode(final ? ERRCODE_PROTOCOL_VIOLATION : ERRCODE_CONNECTION_EXCEPTION),
				 errmsg("push type of service \"%s\" could not list its units", text_to_cstring(service)),
				 errdetail_internal("%s", msg),
				 errhint(final ? "Check the push type's endpoints, token and conveyor.allowed_hosts."
						 : "The endpoint did not answer in time or answered with an error; try again.")));
	}
	call_free(c);
	out = DirectFunctionCall1(jsonb_in, CStringGetDatum(result));
	cJSON_free(result);
	PG_RETURN_DATUM(out);
}

/* SQL: conveyor._http_calls_recorded(): this backend's steps recorded calls. */
Datum
cv_http_calls_recorded(PG_FUNCTION_ARGS)
{
	calls_recorded = true;
	PG_RETURN_VOID();
}

/*
 * SQL: conveyor._http_url_check(url text, what text). Raises unless url is
 * an http(s) URL without credentials whose host conveyor.allowed_hosts admits.
 */
Datum
cv_http_url_check(PG_FUNCTION_ARGS)
{
	char	   *url = text_to_cstring(PG_GETARG_TEXT_PP(0));
	char	   *what = text_to_cstring(PG_GETARG_TEXT_PP(1));
	const char *refused;

	if (strlen(url) > 1000)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s is longer than 1000 bytes", what)));
	refused = cvh_host_refused(url);
	if (refused == NULL)
		PG_RETURN_VOID();
	if (strcmp(refused, "host not in conveyor.allowed_hosts") == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("%s \"%s\" is not an allowed host", what, url),
				 errdetail("conveyor.allowed_hosts is \"%s\".", cv_allowed_hosts ? cv_allowed_hosts : ""),
				 errhint("A superuser allows hosts with ALTER SYSTEM SET conveyor.allowed_hosts and a reload.")));
	/* a URL with a password is not repeated back: it would land in logs */
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("%s \"%s\" is not usable: %s", what,
					strchr(url, '@') ? "(not shown: it carries credentials)" : url, refused),
			 errhint("Give an http:// or https:// URL such as http://10.0.0.5:8700.")));
	PG_RETURN_VOID();
}
