/*
 * api.c: the HTTP side of the agent, served by libmicrohttpd: the push-type
 * protocol (docs/push-type-protocol.md) under /v1/, and /metrics in
 * Prometheus text format. JSON is read and written with jansson only.
 */
#define _GNU_SOURCE
#include "agent.h"
#include "endpoint.h"

#include <microhttpd.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#define REQUEST_CACHE      256          /* update requests remembered by idempotency_key */
#define REQUEST_CACHE_MAX  (1 << 20)    /* larger answers are not cached (per-update keys still hold) */

/* A remembered answer to an update request. */
typedef struct
{
	char     *key;
	uint64_t  body_hash;
	size_t    body_len;
	char     *response;
} cached_answer;

static struct MHD_Daemon *daemon_handle;
static cached_answer cache[REQUEST_CACHE];   /* guarded by agent.lock */
static int    cache_next;
static uint64_t update_seq;                  /* guarded by agent.lock */

/* Does the request carry "Authorization: Bearer <our token>"? Compared in constant time. */
static bool
authorized(struct MHD_Connection *c)
{
	const char   *h = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
	const char   *given;
	size_t        n, m;
	unsigned char diff;

	if (!h || strncasecmp(h, "Bearer ", 7) != 0)
		return false;
	given = h + 7;
	n = strlen(given);
	m = strlen(agent.token);
	diff = n != m;
	for (size_t i = 0; i < m; i++)
		diff |= (unsigned char) agent.token[i] ^ (unsigned char) (i < n ? given[i] : 0);
	return diff == 0;
}

/* GET /v1/units */
static enum MHD_Result
handle_units(struct MHD_Connection *c)
{
	json_t *root = json_pack("{s:i, s:[]}", "protocol", AGENT_PROTOCOL, "units");
	json_t *units = json_object_get(root, "units");
	bool    ok = root != NULL;

	pthread_mutex_lock(&agent.lock);
	for (int i = 0; ok && i < agent.nunits; i++)
	{
		unit   *u = &agent.units[i];
		json_t *subs = json_array();

		ok = subs && json_array_append_new(units, json_pack("{s:s, s:O, s:o}", "name", u->name,
															 "labels", u->labels, "subunits", subs)) == 0;
		for (int k = 0; ok && k < u->ninstances; k++)
		{
			instance *in = &u->instances[k];
			json_t   *s = json_pack("{s:s, s:s, s:s}", "name", in->name, "version", in->desired,
									"status", inst_status_name(in->status));

			/* "reason" is an extension: conveyor ignores it, people read it */
			ok = s && (!in->reason[0] || json_object_set_new(s, "reason", json_string(in->reason)) == 0) &&
				json_array_append_new(subs, s) == 0;
		}
	}
	pthread_mutex_unlock(&agent.lock);
	if (!ok)
	{
		json_decref(root);
		return ep_send_error(c, 500, NULL, NULL, "out of memory");
	}
	return ep_send_json(c, 200, root);
}

/* POST /v1/needs-push: a unit needs no push when every instance runs VERSION and is ok. */
static enum MHD_Result
handle_needs_push(struct MHD_Connection *c, json_t *req)
{
	const char *version = ep_name_of(json_object_get(req, "version"));
	json_t     *names = json_object_get(req, "units"), *v;
	json_t     *out = json_array();
	size_t      i;

	if (!version || !ep_is_name_array(names))
	{
		json_decref(out);
		return ep_send_error(c, 400, NULL, NULL, "expected {\"version\": string, \"units\": [string, ...]}");
	}
	if (!out)
		return ep_send_error(c, 500, NULL, NULL, "out of memory");
	pthread_mutex_lock(&agent.lock);
	json_array_foreach(names, i, v)
	{
		unit *u = unit_find(json_string_value(v));
		bool  needs = true;

		if (u)
		{
			needs = false;
			for (int k = 0; k < u->ninstances; k++)
				if (strcmp(u->instances[k].desired, version) != 0 || u->instances[k].status != INST_OK)
					needs = true;
		}
		if (json_array_append_new(out, json_pack("{s:O, s:b}", "name", v, "needs_push", needs)) != 0)
		{
			pthread_mutex_unlock(&agent.lock);
			json_decref(out);
			return ep_send_error(c, 500, NULL, NULL, "out of memory");
		}
	}
	pthread_mutex_unlock(&agent.lock);
	return ep_send_json(c, 200, json_pack("{s:o}", "units", out));
}

/* What an instance was before an update request touched it, to undo the request. */
typedef struct
{
	instance   *in;
	char       *desired;
	uint64_t    want_gen;
	inst_status status;
	char        reason[AGENT_REASON_MAX];
	key_entry   keys[AGENT_KEY_HISTORY];
	int         keys_next;
} undo_t;

static bool
undo_take(undo_t *u, instance *in)
{
	memset(u, 0, sizeof(*u));
	u->in = in;
	u->desired = strdup(in->desired);
	if (!u->desired)
		return false;
	u->want_gen = in->want_gen;
	u->status = in->status;
	memcpy(u->reason, in->reason, sizeof(u->reason));
	u->keys_next = in->keys_next;
	for (int j = 0; j < AGENT_KEY_HISTORY; j++)
	{
		u->keys[j].status = in->keys[j].status;
		if (in->keys[j].key && !(u->keys[j].key = strdup(in->keys[j].key)))
			return false;
	}
	return true;
}

static void
undo_free(undo_t *u)
{
	free(u->desired);
	for (int j = 0; j < AGENT_KEY_HISTORY; j++)
		free(u->keys[j].key);
}

/* Put the instance back as it was (caller holds the lock); frees U's copies into it. */
static void
undo_apply(undo_t *u)
{
	instance *in = u->in;

	free(in->desired);
	in->desired = u->desired;
	u->desired = NULL;
	in->want_gen = u->want_gen;
	in->status = u->status;
	memcpy(in->reason, u->reason, sizeof(in->reason));
	in->keys_next = u->keys_next;
	for (int j = 0; j < AGENT_KEY_HISTORY; j++)
	{
		free(in->keys[j].key);
		in->keys[j] = u->keys[j];
		u->keys[j].key = NULL;
	}
}

/* Remember ANSWER for request KEY (caller holds the lock). */
static void
cache_put(const char *key, uint64_t hash, size_t len, const char *answer)
{
	cached_answer *e = &cache[cache_next];
	char          *k, *a;

	if (strlen(answer) > REQUEST_CACHE_MAX)
		return;
	k = strdup(key);
	a = strdup(answer);
	if (!k || !a)
	{
		free(k);
		free(a);
		return;
	}
	free(e->key);
	free(e->response);
	e->key = k;
	e->response = a;
	e->body_hash = hash;
	e->body_len = len;
	cache_next = (cache_next + 1) % REQUEST_CACHE;
}

static cached_answer *
cache_get(const char *key)
{
	for (int i = 0; i < REQUEST_CACHE; i++)
		if (cache[i].key && strcmp(cache[i].key, key) == 0)
			return &cache[i];
	return NULL;
}

/* One update's result object. */
static json_t *
result(const char *unit_name, const char *sub, const char *status, const char *error)
{
	return json_pack("{s:s, s:s, s:s, s:s?}", "unit", unit_name, "subunit", sub, "status", status,
					 "error", error);
}

/*
 * POST /v1/update. Under the lock: decide each update, change the instances,
 * and write the state file; only then may the instance threads act on it
 * (they need the lock), so a failed write is undone before anyone restarts.
 */
static enum MHD_Result
handle_update(struct MHD_Connection *c, json_t *req, const ep_body *body)
{
	json_t        *updates = json_object_get(req, "updates"), *jk = json_object_get(req, "idempotency_key");
	const char    *rkey = NULL;
	uint64_t       h = ep_hash(body->buf, body->len);
	json_t        *results, *u, *resp;
	undo_t        *undo;
	size_t         nundo = 0, i;
	char           err[256];
	char          *answer;
	cached_answer *hit;

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

	undo = calloc(json_array_size(updates) + 1, sizeof(undo_t));
	results = json_array();
	if (!undo || !results)
	{
		free(undo);
		json_decref(results);
		return ep_send_error(c, 500, NULL, NULL, "out of memory");
	}

	pthread_mutex_lock(&agent.lock);
	if (rkey && (hit = cache_get(rkey)))
	{
		bool same = hit->body_hash == h && hit->body_len == body->len;

		answer = same ? strdup(hit->response) : NULL;
		pthread_mutex_unlock(&agent.lock);
		free(undo);
		json_decref(results);
		if (!same)
			return ep_send_error(c, 422, NULL, NULL, "idempotency_key \"%s\" was used for a different request", rkey);
		return ep_send_text(c, 200, answer, "application/json", NULL, NULL);
	}
	update_seq++;
	json_array_foreach(updates, i, u)
	{
		const char *un = json_string_value(json_object_get(u, "unit"));
		const char *sn = json_string_value(json_object_get(u, "subunit"));
		const char *ver = json_string_value(json_object_get(u, "version"));
		const char *key = json_string_value(json_object_get(u, "key"));
		unit       *unit_ = unit_find(un);
		instance   *in = unit_ ? instance_find(unit_, sn) : NULL;
		const char *status = "accepted", *error = NULL;
		char        seen;

		if (!unit_)
			status = "refused", error = "unknown unit";
		else if (!in)
			status = "refused", error = "unknown subunit";
		else if (in->seen_seq == update_seq)
			status = "refused", error = "subunit named twice in one request";
		else if ((seen = keys_lookup(in, key)))
			status = seen == 'd' ? "done" : "accepted";     /* a re-sent update: same answer, no action */
		else if (!version_is_valid(ver))
			status = "refused", error = "invalid version (letters, digits and ._+~:- only, at most 128 bytes)";
		else if (!undo_take(&undo[nundo], in))
		{
			undo_free(&undo[nundo]);
			goto oom;
		}
		else
		{
			if (strcmp(in->desired, ver) == 0 && in->status != INST_FAILED)
				/* already running it (done) or already on its way (accepted): no second restart */
				status = in->status == INST_OK && in->want_gen == in->done_gen ? "done" : "accepted";
			else if (!instance_set_desired(in, ver))
				goto oom;
			keys_remember(in, key, status[0]);
			nundo++;
		}
		if (in)
			in->seen_seq = update_seq;
		if (json_array_append_new(results, result(un, sn, status, error)) != 0)
			goto oom;
	}
	if (nundo > 0 && !state_save(err, sizeof(err)))
	{
		for (i = 0; i < nundo; i++)
			undo_apply(&undo[i]);
		pthread_mutex_unlock(&agent.lock);
		agent_log("update refused: %s", err);
		for (i = 0; i < nundo; i++)
			undo_free(&undo[i]);
		free(undo);
		json_decref(results);
		return ep_send_error(c, 500, NULL, NULL, "cannot record the update: %s", err);
	}
	resp = json_pack("{s:o}", "results", results);     /* "o" takes results over, also on failure */
	answer = resp ? json_dumps(resp, JSON_COMPACT) : NULL;
	json_decref(resp);
	if (answer && rkey)
		cache_put(rkey, h, body->len, answer);
	pthread_mutex_unlock(&agent.lock);
	for (i = 0; i < nundo; i++)
		undo_free(&undo[i]);
	free(undo);
	return ep_send_text(c, 200, answer, "application/json", NULL, NULL);

oom:
	for (i = 0; i < nundo; i++)
		undo_apply(&undo[i]);
	pthread_mutex_unlock(&agent.lock);
	for (i = 0; i < nundo; i++)
		undo_free(&undo[i]);
	free(undo);
	json_decref(results);
	return ep_send_error(c, 500, NULL, NULL, "out of memory");
}

/* POST /v1/health: process state plus a fresh probe of every instance, all at once. */
static enum MHD_Result
handle_health(struct MHD_Connection *c, json_t *req)
{
	json_t     *names = json_object_get(req, "units"), *v, *out;
	size_t      i;
	int         n = 0, j = 0;
	probe_t    *probes;
	instance  **owner;
	inst_status *st;
	pid_t      *pids;
	char      (*reasons)[AGENT_REASON_MAX] = NULL;

	if (!ep_is_name_array(names))
		return ep_send_error(c, 400, NULL, NULL, "expected {\"units\": [string, ...]}");
	json_array_foreach(names, i, v)
	{
		unit *u = unit_find(json_string_value(v));

		if (u)
			n += u->ninstances;
	}
	probes = calloc((size_t) n + 1, sizeof(probe_t));
	owner = calloc((size_t) n + 1, sizeof(instance *));
	st = calloc((size_t) n + 1, sizeof(inst_status));
	pids = calloc((size_t) n + 1, sizeof(pid_t));
	reasons = calloc((size_t) n + 1, AGENT_REASON_MAX);
	out = json_array();
	if (!probes || !owner || !st || !pids || !reasons || !out)
		goto oom;

	pthread_mutex_lock(&agent.lock);
	json_array_foreach(names, i, v)
	{
		unit *u = unit_find(json_string_value(v));

		for (int k = 0; u && k < u->ninstances; k++, j++)
		{
			owner[j] = &u->instances[k];
			st[j] = owner[j]->status;
			pids[j] = owner[j]->pid;
			memcpy(reasons[j], owner[j]->reason, AGENT_REASON_MAX);
			probes[j].port = owner[j]->port;
			probes[j].path = u->health_path;
		}
	}
	pthread_mutex_unlock(&agent.lock);

	probe_many(probes, n);

	pthread_mutex_lock(&agent.lock);
	for (j = 0; j < n; j++)
	{
		owner[j]->probe_passed = probes[j].passed;
		owner[j]->probe_seconds = probes[j].seconds;
		if (probes[j].passed)
			owner[j]->probes_ok++;
		else
			owner[j]->probes_failed++;
	}
	pthread_mutex_unlock(&agent.lock);

	j = 0;
	json_array_foreach(names, i, v)
	{
		unit *u = unit_find(json_string_value(v));
		char  reason[2 * AGENT_REASON_MAX + 64] = "";
		int   bad = 0;

		if (!u)
			snprintf(reason, sizeof(reason), "unknown unit");
		for (int k = 0; u && k < u->ninstances; k++, j++)
		{
			char why[2 * AGENT_REASON_MAX] = "";

			if (st[j] != INST_OK)
				snprintf(why, sizeof(why), "instance %d: %s%s%s", k, inst_status_name(st[j]),
						 reasons[j][0] ? ": " : "", reasons[j]);
			else if (!pids[j])
				snprintf(why, sizeof(why), "instance %d: not running", k);
			else if (!probes[j].passed)
				snprintf(why, sizeof(why), "instance %d: %s", k, probes[j].error);
			if (why[0] && bad++ == 0)
				snprintf(reason, sizeof(reason), "%s", why);
		}
		if (u && bad > 1)
		{
			size_t l = strlen(reason);

			snprintf(reason + l, sizeof(reason) - l, " (%d of %d instances unhealthy)", bad, u->ninstances);
		}
		else if (u && bad == 0)
			snprintf(reason, sizeof(reason), "%d/%d instances pass %s", u->ninstances, u->ninstances,
					 u->health_path);
		if (json_array_append_new(out, json_pack("{s:O, s:b, s:s}", "name", v, "healthy", u && bad == 0,
												 "reason", reason)) != 0)
			goto oom;
	}
	free(probes);
	free(owner);
	free(st);
	free(pids);
	free(reasons);
	return ep_send_json(c, 200, json_pack("{s:o}", "units", out));
oom:
	free(probes);
	free(owner);
	free(st);
	free(pids);
	free(reasons);
	json_decref(out);
	return ep_send_error(c, 500, NULL, NULL, "out of memory");
}

/*
 * POST /v1/tasks: with max_updating set on a unit, at most that many of its
 * instances may be updating at once; the rest wait. Candidates the agent
 * does not know are allowed, so their update is refused with a reason
 * rather than held back forever.
 */
static enum MHD_Result
handle_tasks(struct MHD_Connection *c, json_t *req)
{
	json_t *cands = json_object_get(req, "candidates"), *cand, *out;
	int    *busy;
	size_t  i;

	if (!json_is_array(cands))
		return ep_send_error(c, 400, NULL, NULL, "expected {\"candidates\": [{\"unit\", \"subunit\"}, ...]}");
	json_array_foreach(cands, i, cand)
		if (!json_is_object(cand) || !ep_name_of(json_object_get(cand, "unit")) ||
			!ep_name_of(json_object_get(cand, "subunit")))
			return ep_send_error(c, 400, NULL, NULL, "candidates[%zu]: expected {\"unit\": string, \"subunit\": string}", i);
	busy = calloc((size_t) agent.nunits + 1, sizeof(int));
	out = json_array();
	if (!busy || !out)
	{
		free(busy);
		json_decref(out);
		return ep_send_error(c, 500, NULL, NULL, "out of memory");
	}
	pthread_mutex_lock(&agent.lock);
	for (int k = 0; k < agent.nunits; k++)
		for (int m = 0; m < agent.units[k].ninstances; m++)
			busy[k] += agent.units[k].instances[m].status == INST_UPDATING;
	json_array_foreach(cands, i, cand)
	{
		unit     *u = unit_find(json_string_value(json_object_get(cand, "unit")));
		instance *in = u ? instance_find(u, json_string_value(json_object_get(cand, "subunit"))) : NULL;
		bool      allow = true;

		if (in && u->max_updating > 0 && in->status != INST_UPDATING)
		{
			allow = busy[u - agent.units] < u->max_updating;
			busy[u - agent.units] += allow;
		}
		if (allow && json_array_append_new(out, json_pack("{s:O, s:O}", "unit", json_object_get(cand, "unit"),
														   "subunit", json_object_get(cand, "subunit"))) != 0)
		{
			pthread_mutex_unlock(&agent.lock);
			free(busy);
			json_decref(out);
			return ep_send_error(c, 500, NULL, NULL, "out of memory");
		}
	}
	pthread_mutex_unlock(&agent.lock);
	free(busy);
	return ep_send_json(c, 200, json_pack("{s:o}", "allowed", out));
}

/*
 * GET /metrics, Prometheus text format 0.0.4. Label values are unit names,
 * instance numbers and versions, whose alphabets (config.c) need no escaping.
 */
static enum MHD_Result
handle_metrics(struct MHD_Connection *c)
{
	char  *text = NULL;
	size_t len = 0;
	FILE  *f = open_memstream(&text, &len);

	if (!f)
		return ep_send_error(c, 500, NULL, NULL, "out of memory");
	pthread_mutex_lock(&agent.lock);
	fputs("# HELP conveyor_agent_up 1 if the instance's process is running and its last health probe passed.\n"
		  "# TYPE conveyor_agent_up gauge\n", f);
	for (int i = 0; i < agent.nunits; i++)
		for (int k = 0; k < agent.units[i].ninstances; k++)
		{
			instance *in = &agent.units[i].instances[k];

			fprintf(f, "conveyor_agent_up{unit=\"%s\",instance=\"%d\"} %d\n", in->unit->name, k,
					in->pid != 0 && in->probe_passed);
		}
	fputs("# HELP conveyor_agent_restarts_total Restarts of an instance's process: for an update, or after it died.\n"
		  "# TYPE conveyor_agent_restarts_total counter\n", f);
	for (int i = 0; i < agent.nunits; i++)
		for (int k = 0; k < agent.units[i].ninstances; k++)
		{
			instance *in = &agent.units[i].instances[k];

			fprintf(f, "conveyor_agent_restarts_total{unit=\"%s\",instance=\"%d\",reason=\"update\"} %llu\n",
					in->unit->name, k, (unsigned long long) in->restarts_update);
			fprintf(f, "conveyor_agent_restarts_total{unit=\"%s\",instance=\"%d\",reason=\"crash\"} %llu\n",
					in->unit->name, k, (unsigned long long) in->restarts_crash);
		}
	fputs("# HELP conveyor_agent_version_info The version an instance must run, and its status.\n"
		  "# TYPE conveyor_agent_version_info gauge\n", f);
	for (int i = 0; i < agent.nunits; i++)
		for (int k = 0; k < agent.units[i].ninstances; k++)
		{
			instance *in = &agent.units[i].instances[k];

			fprintf(f, "conveyor_agent_version_info{unit=\"%s\",instance=\"%d\",version=\"%s\",status=\"%s\"} 1\n",
					in->unit->name, k, in->desired, inst_status_name(in->status));
		}
	fputs("# HELP conveyor_agent_probe_duration_seconds Duration of an instance's last health probe.\n"
		  "# TYPE conveyor_agent_probe_duration_seconds gauge\n", f);
	for (int i = 0; i < agent.nunits; i++)
		for (int k = 0; k < agent.units[i].ninstances; k++)
		{
			instance *in = &agent.units[i].instances[k];

			fprintf(f, "conveyor_agent_probe_duration_seconds{unit=\"%s\",instance=\"%d\"} %.6f\n",
					in->unit->name, k, in->probe_seconds);
		}
	fputs("# HELP conveyor_agent_probes_total Health probes of an instance, by result.\n"
		  "# TYPE conveyor_agent_probes_total counter\n", f);
	for (int i = 0; i < agent.nunits; i++)
		for (int k = 0; k < agent.units[i].ninstances; k++)
		{
			instance *in = &agent.units[i].instances[k];

			fprintf(f, "conveyor_agent_probes_total{unit=\"%s\",instance=\"%d\",result=\"ok\"} %llu\n",
					in->unit->name, k, (unsigned long long) in->probes_ok);
			fprintf(f, "conveyor_agent_probes_total{unit=\"%s\",instance=\"%d\",result=\"failed\"} %llu\n",
					in->unit->name, k, (unsigned long long) in->probes_failed);
		}
	pthread_mutex_unlock(&agent.lock);
	if (ferror(f))
	{
		fclose(f);
		free(text);
		return ep_send_error(c, 500, NULL, NULL, "out of memory");
	}
	if (fclose(f) != 0)
	{
		free(text);
		return ep_send_error(c, 500, NULL, NULL, "out of memory");
	}
	return ep_send_text(c, 200, text, "text/plain; version=0.0.4; charset=utf-8", NULL, NULL);
}

/* The protocol's routes: path, method, and whether it takes a JSON body. */
static const struct
{
	const char *path;
	const char *method;
} routes[] = {
	{"/v1/units", "GET"},
	{"/v1/needs-push", "POST"},
	{"/v1/update", "POST"},
	{"/v1/health", "POST"},
	{"/v1/tasks", "POST"},
};

/* Checks common to every /v1/ request, then the route's handler. */
static enum MHD_Result
dispatch_v1(struct MHD_Connection *c, const char *url, const char *method, ep_body *body)
{
	const char  *proto = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Conveyor-Protocol");
	json_t      *req;
	json_error_t jerr;
	enum MHD_Result ret;
	size_t       r;

	if (!authorized(c))
		return ep_send_error(c, 401, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer", "missing or wrong bearer token");
	if (!proto || strcmp(proto, "1") != 0)
		return ep_send_error(c, 400, NULL, NULL, "unsupported protocol \"%s\" (this agent speaks Conveyor-Protocol: 1)",
						  proto ? proto : "");
	for (r = 0; r < sizeof(routes) / sizeof(routes[0]); r++)
		if (strcmp(url, routes[r].path) == 0)
			break;
	if (r == sizeof(routes) / sizeof(routes[0]))
		return ep_send_error(c, 404, NULL, NULL, "no such endpoint: %s", url);
	if (strcmp(method, routes[r].method) != 0)
		return ep_send_error(c, 405, MHD_HTTP_HEADER_ALLOW, routes[r].method, "use %s", routes[r].method);
	if (r == 0)
		return handle_units(c);
	if (body->too_big)
		return ep_send_error(c, 413, NULL, NULL, "request body over %zu bytes", agent.max_body_bytes);
	req = json_loadb(body->buf ? body->buf : "", body->len, JSON_REJECT_DUPLICATES, &jerr);
	if (!req)
		return ep_send_error(c, 400, NULL, NULL, "invalid JSON: %s", jerr.text);
	if (!json_is_object(req))
		ret = ep_send_error(c, 400, NULL, NULL, "the body must be a JSON object");
	else if (r == 1)
		ret = handle_needs_push(c, req);
	else if (r == 2)
		ret = handle_update(c, req, body);
	else if (r == 3)
		ret = handle_health(c, req);
	else
		ret = handle_tasks(c, req);
	json_decref(req);
	return ret;
}

/* libmicrohttpd's request callback: collect the body, then answer once. */
static enum MHD_Result
on_request(void *cls, struct MHD_Connection *c, const char *url, const char *method, const char *version,
		   const char *upload_data, size_t *upload_data_size, void **con_cls)
{
	ep_body *body = *con_cls;

	(void) cls;
	(void) version;
	if (!body)
	{
		body = calloc(1, sizeof(ep_body));
		if (!body)
			return MHD_NO;
		*con_cls = body;
		return MHD_YES;
	}
	if (*upload_data_size > 0)
	{
		size_t n = *upload_data_size;

		*upload_data_size = 0;
		return ep_body_add(body, upload_data, n, agent.max_body_bytes) ? MHD_YES : MHD_NO;
	}
	if (strcmp(url, "/metrics") == 0)
	{
		if (strcmp(method, "GET") != 0)
			return ep_send_error(c, 405, MHD_HTTP_HEADER_ALLOW, "GET", "use GET");
		return handle_metrics(c);
	}
	if (strncmp(url, "/v1/", 4) == 0)
		return dispatch_v1(c, url, method, body);
	return ep_send_error(c, 404, NULL, NULL, "no such endpoint: %s", url);
}

/* Free a request's body when libmicrohttpd is done with the request. */
static void
on_completed(void *cls, struct MHD_Connection *c, void **con_cls, enum MHD_RequestTerminationCode toe)
{
	ep_body *body = *con_cls;

	(void) cls;
	(void) c;
	(void) toe;
	if (body)
	{
		ep_body_free(body);
		free(body);
		*con_cls = NULL;
	}
}

/* Listen on the configured address; false with a reason if that fails. */
bool
api_start(char *err, size_t errlen)
{
	struct addrinfo hints, *res = NULL;
	struct sockaddr_storage ss;
	unsigned int flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_POLL_INTERNAL_THREAD | MHD_USE_ERROR_LOG;
	const union MHD_DaemonInfo *info;
	int rc;

	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE;
	rc = getaddrinfo(agent.listen_host, NULL, &hints, &res);
	if (rc != 0)
	{
		snprintf(err, errlen, "listen: cannot resolve \"%s\": %s", agent.listen_host, gai_strerror(rc));
		return false;
	}
	memset(&ss, 0, sizeof(ss));
	memcpy(&ss, res->ai_addr, res->ai_addrlen);
	freeaddrinfo(res);
	if (ss.ss_family == AF_INET6)
	{
		((struct sockaddr_in6 *) &ss)->sin6_port = htons((uint16_t) agent.listen_port);
		flags |= MHD_USE_IPv6;
	}
	else
		((struct sockaddr_in *) &ss)->sin_port = htons((uint16_t) agent.listen_port);

	daemon_handle = MHD_start_daemon(flags, (uint16_t) agent.listen_port, NULL, NULL, on_request, NULL,
									 MHD_OPTION_SOCK_ADDR, (struct sockaddr *) &ss,
									 MHD_OPTION_NOTIFY_COMPLETED, on_completed, NULL,
									 MHD_OPTION_CONNECTION_LIMIT, (unsigned int) 256,
									 MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int) 60,
									 MHD_OPTION_END);
	if (!daemon_handle)
	{
		snprintf(err, errlen, "cannot listen on %s:%d (in use, or not an address of this host?)",
				 agent.listen_host, agent.listen_port);
		return false;
	}
	info = MHD_get_daemon_info(daemon_handle, MHD_DAEMON_INFO_BIND_PORT);
	if (info && info->port)
		agent.listen_port = info->port;
	return true;
}

/* Stop serving (waits for requests in progress) and forget remembered answers. */
void
api_stop(void)
{
	if (daemon_handle)
		MHD_stop_daemon(daemon_handle);
	daemon_handle = NULL;
	for (int i = 0; i < REQUEST_CACHE; i++)
	{
		free(cache[i].key);
		free(cache[i].response);
		cache[i].key = cache[i].response = NULL;
	}
}
