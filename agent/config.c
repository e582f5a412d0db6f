/*
 * config.c: read and validate the agent's JSON config file (docs/agent.md).
 * Every problem is reported with the path of the offending member, and
 * nothing is started on a config that has one.
 */
#include "agent.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

agent_t agent;

#define CFG_FAIL(...) do { snprintf(err, errlen, __VA_ARGS__); return false; } while (0)

/* Versions reach argv of a command: allow only a plain, shell-free alphabet. */
bool
version_is_valid(const char *v)
{
	size_t n = strlen(v);

	if (n == 0 || n > AGENT_VERSION_MAX)
		return false;
	for (const char *p = v; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
			  *p == '.' || *p == '_' || *p == '-' || *p == '+' || *p == '~' || *p == ':'))
			return false;
	/* a leading '-' could be read as an option by the command */
	return v[0] != '-';
}

/* Unit names end up in file names and metric labels: keep them plain. */
static bool
name_is_valid(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > 100)
		return false;
	for (const char *p = s; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
			  *p == '.' || *p == '_' || *p == '-'))
			return false;
	return s[0] != '.';
}

/* Only the placeholders a command template may use. */
static bool
template_is_valid(const char *s, char *bad, size_t badlen)
{
	static const char *const known[] = {"{version}", "{port}", "{instance}", "{unit}"};

	for (const char *p = strchr(s, '{'); p; p = strchr(p + 1, '{'))
	{
		bool ok = false;

		for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++)
			if (strncmp(p, known[i], strlen(known[i])) == 0)
				ok = true;
		if (!ok)
		{
			snprintf(bad, badlen, "%.40s", p);
			return false;
		}
	}
	return true;
}

static char *
xstrdup(const char *s)
{
	char *d = strdup(s);

	if (!d)
	{
		fprintf(stderr, "conveyor-agent: out of memory\n");
		exit(1);
	}
	return d;
}

/* An optional integer member in [lo, hi]; absent leaves *out unchanged. */
static bool
get_int(json_t *obj, const char *key, const char *where, long lo, long hi, long *out,
		char *err, size_t errlen)
{
	json_t *v = json_object_get(obj, key);

	if (!v)
		return true;
	if (!json_is_integer(v) || json_integer_value(v) < lo || json_integer_value(v) > hi)
		CFG_FAIL("%s%s: must be an integer from %ld to %ld", where, key, lo, hi);
	*out = (long) json_integer_value(v);
	return true;
}

/* An optional string member; absent leaves *out unchanged (NULL or a default). */
static bool
get_str(json_t *obj, const char *key, const char *where, const char **out, char *err, size_t errlen)
{
	json_t *v = json_object_get(obj, key);

	if (!v)
		return true;
	if (!json_is_string(v) || json_string_length(v) == 0)
		CFG_FAIL("%s%s: must be a non-empty string", where, key);
	*out = json_string_value(v);
	return true;
}

/* Members not in the list are typos, not extensions: refuse them. */
static bool
check_keys(json_t *obj, const char *const *allowed, const char *where, char *err, size_t errlen)
{
	const char *key;
	json_t     *v;

	json_object_foreach(obj, key, v)
	{
		bool ok = false;

		for (const char *const *a = allowed; *a; a++)
			if (strcmp(*a, key) == 0)
				ok = true;
		if (!ok)
			CFG_FAIL("%s%s: unknown member", where, key);
	}
	return true;
}

/* "host:port" or "[v6]:port" into agent.listen_host and agent.listen_port. */
static bool
parse_listen(const char *s, char *err, size_t errlen)
{
	const char *colon = strrchr(s, ':');
	char       *end;
	long        port;
	size_t      hostlen;
	const char *host = s;

	if (!colon || colon == s)
		CFG_FAIL("listen: must be \"HOST:PORT\", e.g. \"127.0.0.1:8700\"");
	hostlen = (size_t) (colon - s);
	if (s[0] == '[')
	{
		if (hostlen < 3 || s[hostlen - 1] != ']')
			CFG_FAIL("listen: an IPv6 address is written \"[::1]:8700\"");
		host = s + 1;
		hostlen -= 2;
	}
	errno = 0;
	port = strtol(colon + 1, &end, 10);
	if (errno || *end || end == colon + 1 || port < 0 || port > 65535)
		CFG_FAIL("listen: port must be from 0 to 65535");
	agent.listen_host = xstrdup(host);
	agent.listen_host[hostlen] = '\0';
	agent.listen_port = (int) port;
	return true;
}

/* The token file's content, without a trailing newline. */
static bool
read_token_file(const char *path, char *err, size_t errlen)
{
	FILE  *f = fopen(path, "r");
	char   buf[4096];
	size_t n;

	if (!f)
		CFG_FAIL("token_file: cannot open \"%s\": %s", path, strerror(errno));
	n = fread(buf, 1, sizeof(buf) - 1, f);
	if (ferror(f))
	{
		fclose(f);
		CFG_FAIL("token_file: cannot read \"%s\"", path);
	}
	if (fclose(f) != 0)
		CFG_FAIL("token_file: cannot read \"%s\": %s", path, strerror(errno));
	buf[n] = '\0';
	while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r' || buf[n - 1] == ' '))
		buf[--n] = '\0';
	if (n == 0)
		CFG_FAIL("token_file: \"%s\" is empty", path);
	if (strpbrk(buf, "\r\n"))
		CFG_FAIL("token_file: \"%s\" must hold one line", path);
	agent.token = xstrdup(buf);
	return true;
}

static bool
load_unit(json_t *ju, int idx, unit *u, char *err, size_t errlen)
{
	static const char *const allowed[] = {"name", "labels", "instances", "base_port", "command",
		"health_path", "initial_version", "max_updating", NULL};
	char        where[64];
	const char *name = NULL, *health = "/health", *initial = NULL, *key;
	long        n = 0, base = 0, maxup = 0;
	json_t     *labels, *cmd, *v;
	size_t      i;
	char        bad[64];
	pthread_condattr_t ca;

	snprintf(where, sizeof(where), "units[%d].", idx);
	if (!json_is_object(ju))
		CFG_FAIL("units[%d]: must be an object", idx);
	if (!check_keys(ju, allowed, where, err, errlen) ||
		!get_str(ju, "name", where, &name, err, errlen) ||
		!get_str(ju, "health_path", where, &health, err, errlen) ||
		!get_str(ju, "initial_version", where, &initial, err, errlen) ||
		!get_int(ju, "instances", where, 1, 1000, &n, err, errlen) ||
		!get_int(ju, "base_port", where, 1, 65535, &base, err, errlen) ||
		!get_int(ju, "max_updating", where, 0, 1000, &maxup, err, errlen))
		return false;
	if (!name)
		CFG_FAIL("%sname: missing", where);
	if (!name_is_valid(name))
		CFG_FAIL("%sname: \"%s\" must be 1 to 100 letters, digits, '.', '_' or '-'", where, name);
	if (n == 0)
		CFG_FAIL("%sinstances: missing (the number of subunits, 1 to 1000)", where);
	if (base == 0)
		CFG_FAIL("%sbase_port: missing (instance i listens on base_port + i)", where);
	if (base + n - 1 > 65535)
		CFG_FAIL("%sbase_port: base_port + instances - 1 exceeds 65535", where);
	if (!initial)
		CFG_FAIL("%sinitial_version: missing (the version run before any update)", where);
	if (!version_is_valid(initial))
		CFG_FAIL("%sinitial_version: \"%s\" is not a valid version (letters, digits and ._+~:-)", where, initial);
	if (health[0] != '/')
		CFG_FAIL("%shealth_path: must start with '/'", where);

	labels = json_object_get(ju, "labels");
	if (labels)
	{
		if (!json_is_object(labels))
			CFG_FAIL("%slabels: must be an object of strings", where);
		json_object_foreach(labels, key, v)
			if (!json_is_string(v))
				CFG_FAIL("%slabels.%s: must be a string", where, key);
		u->labels = json_incref(labels);
	}
	else
		u->labels = json_object();

	cmd = json_object_get(ju, "command");
	if (!json_is_array(cmd) || json_array_size(cmd) == 0)
		CFG_FAIL("%scommand: must be a non-empty array of strings (argv; no shell is involved)", where);
	u->command = calloc(json_array_size(cmd) + 1, sizeof(char *));
	if (!u->command)
		CFG_FAIL("out of memory");
	json_array_foreach(cmd, i, v)
	{
		if (!json_is_string(v))
			CFG_FAIL("%scommand[%zu]: must be a string", where, i);
		if (!template_is_valid(json_string_value(v), bad, sizeof(bad)))
			CFG_FAIL("%scommand[%zu]: unknown placeholder \"%s\" (known: {version} {port} {instance} {unit})",
					 where, i, bad);
		u->command[i] = xstrdup(json_string_value(v));
	}

	u->name = xstrdup(name);
	u->ninstances = (int) n;
	u->base_port = (int) base;
	u->health_path = xstrdup(health);
	u->initial_version = xstrdup(initial);
	u->max_updating = (int) maxup;
	u->instances = calloc((size_t) n, sizeof(instance));
	if (!u->instances)
		CFG_FAIL("out of memory");
	for (int k = 0; k < n; k++)
	{
		instance *in = &u->instances[k];

		in->unit = u;
		in->index = k;
		snprintf(in->name, sizeof(in->name), "%d", k);
		in->port = (int) base + k;
		in->desired = xstrdup(initial);
		in->status = INST_UPDATING;
		in->want_gen = 1;       /* the first start is generation 1 */
		/* waits are timed on the monotonic clock: wall-clock jumps must not stall them */
		if (pthread_condattr_init(&ca) != 0 || pthread_condattr_setclock(&ca, CLOCK_MONOTONIC) != 0 ||
			pthread_cond_init(&in->wake, &ca) != 0 || pthread_condattr_destroy(&ca) != 0)
			CFG_FAIL("cannot create a condition variable");
	}
	return true;
}

/* Load PATH into the global agent; false with a message in err on any problem. */
bool
config_load(const char *path, char *err, size_t errlen)
{
	static const char *const allowed[] = {"listen", "token", "token_file", "state_dir", "grace_ms",
		"start_timeout_ms", "min_uptime_ms", "probe_timeout_ms", "probe_interval_ms", "probe_host",
		"max_body_bytes", "units", NULL};
	json_error_t jerr;
	json_t     *root, *units;
	const char *listen = NULL, *token = NULL, *token_file = NULL, *state_dir = NULL,
			   *probe_host = "127.0.0.1";
	long        grace = 5000, start_to = 10000, uptime = 1000, probe_to = 1000, probe_iv = 5000,
				maxbody = 8L << 20;
	bool        ok = false;

	agent.config_path = xstrdup(path);
	root = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
	if (!root)
		CFG_FAIL("line %d column %d: %s", jerr.line, jerr.column, jerr.text);
	if (!json_is_object(root))
	{
		snprintf(err, errlen, "the top level must be a JSON object");
		goto out;
	}
	if (!check_keys(root, allowed, "", err, errlen) ||
		!get_str(root, "listen", "", &listen, err, errlen) ||
		!get_str(root, "token", "", &token, err, errlen) ||
		!get_str(root, "token_file", "", &token_file, err, errlen) ||
		!get_str(root, "state_dir", "", &state_dir, err, errlen) ||
		!get_str(root, "probe_host", "", &probe_host, err, errlen) ||
		!get_int(root, "grace_ms", "", 0, 3600000, &grace, err, errlen) ||
		!get_int(root, "start_timeout_ms", "", 100, 3600000, &start_to, err, errlen) ||
		!get_int(root, "min_uptime_ms", "", 0, 3600000, &uptime, err, errlen) ||
		!get_int(root, "probe_timeout_ms", "", 10, 600000, &probe_to, err, errlen) ||
		!get_int(root, "probe_interval_ms", "", 100, 3600000, &probe_iv, err, errlen) ||
		!get_int(root, "max_body_bytes", "", 1024, 1L << 30, &maxbody, err, errlen))
		goto out;
	if (!listen)
	{
		snprintf(err, errlen, "listen: missing, e.g. \"127.0.0.1:8700\"");
		goto out;
	}
	if (!parse_listen(listen, err, errlen))
		goto out;
	if ((token != NULL) == (token_file != NULL))
	{
		snprintf(err, errlen, "give exactly one of token and token_file");
		goto out;
	}
	if (token)
	{
		if (strpbrk(token, "\r\n"))
		{
			snprintf(err, errlen, "token: must be one line");
			goto out;
		}
		agent.token = xstrdup(token);
	}
	else if (!read_token_file(token_file, err, errlen))
		goto out;
	if (!state_dir)
	{
		snprintf(err, errlen, "state_dir: missing (where the agent keeps versions and logs)");
		goto out;
	}
	if (uptime >= start_to)
	{
		snprintf(err, errlen, "min_uptime_ms (%ld) must be below start_timeout_ms (%ld)", uptime, start_to);
		goto out;
	}
	agent.state_dir = xstrdup(state_dir);
	agent.probe_host = xstrdup(probe_host);
	agent.grace_ms = (int) grace;
	agent.start_timeout_ms = (int) start_to;
	agent.min_uptime_ms = (int) uptime;
	agent.probe_timeout_ms = (int) probe_to;
	agent.probe_interval_ms = (int) probe_iv;
	agent.max_body_bytes = (size_t) maxbody;

	units = json_object_get(root, "units");
	if (!json_is_array(units) || json_array_size(units) == 0)
	{
		snprintf(err, errlen, "units: must be a non-empty array");
		goto out;
	}
	agent.units = calloc(json_array_size(units), sizeof(unit));
	if (!agent.units)
	{
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	for (size_t i = 0; i < json_array_size(units); i++)
	{
		unit *u = &agent.units[i];

		agent.nunits = (int) i + 1;   /* so config_free frees a half-built unit */
		if (!load_unit(json_array_get(units, i), (int) i, u, err, errlen))
			goto out;
		for (size_t j = 0; j < i; j++)
		{
			unit *o = &agent.units[j];

			if (strcmp(o->name, u->name) == 0)
			{
				snprintf(err, errlen, "units[%zu].name: \"%s\" is also units[%zu]", i, u->name, j);
				goto out;
			}
			if (u->base_port < o->base_port + o->ninstances && o->base_port < u->base_port + u->ninstances)
			{
				snprintf(err, errlen, "units[%zu].base_port: ports %d-%d overlap those of units[%zu] (%d-%d)",
						 i, u->base_port, u->base_port + u->ninstances - 1, j,
						 o->base_port, o->base_port + o->ninstances - 1);
				goto out;
			}
		}
		if (agent.listen_port >= u->base_port && agent.listen_port < u->base_port + u->ninstances)
		{
			snprintf(err, errlen, "units[%zu].base_port: its ports include the agent's own port %d",
					 i, agent.listen_port);
			goto out;
		}
	}
	ok = true;
out:
	json_decref(root);
	return ok;
}

/* Free everything config_load allocated (also after a failed load). */
void
config_free(void)
{
	for (int i = 0; i < agent.nunits; i++)
	{
		unit *u = &agent.units[i];

		if (u->instances)
			for (int k = 0; k < u->ninstances; k++)
			{
				instance *in = &u->instances[k];

				free(in->desired);
				free(in->running);
				for (int j = 0; j < AGENT_KEY_HISTORY; j++)
					free(in->keys[j].key);
				pthread_cond_destroy(&in->wake);
			}
		free(u->instances);
		if (u->command)
			for (char **c = u->command; *c; c++)
				free(*c);
		free(u->command);
		json_decref(u->labels);
		free(u->name);
		free(u->health_path);
		free(u->initial_version);
	}
	free(agent.units);
	free(agent.config_path);
	free(agent.listen_host);
	free(agent.token);
	free(agent.state_dir);
	free(agent.probe_host);
	memset(&agent, 0, sizeof(agent));
}

unit *
unit_find(const char *name)
{
	for (int i = 0; i < agent.nunits; i++)
		if (strcmp(agent.units[i].name, name) == 0)
			return &agent.units[i];
	return NULL;
}

/* Subunits are named "0", "1", ...: only the canonical decimal form matches. */
instance *
instance_find(unit *u, const char *subunit)
{
	char *end;
	long  k;

	if (!subunit[0] || (subunit[0] == '0' && subunit[1]) || subunit[0] < '0' || subunit[0] > '9')
		return NULL;
	errno = 0;
	k = strtol(subunit, &end, 10);
	if (errno || *end || k < 0 || k >= u->ninstances)
		return NULL;
	return &u->instances[k];
}
