/*
 * state.c: the agent's memory across restarts, STATE_DIR/state.json:
 *   {"format": 1, "units": {"web": [{"version": "1.5",
 *                                     "keys": [{"key": "k1", "status": "accepted"}]}, ...]}}
 * one entry per instance: the version it must run and its last update keys
 * (oldest first), so a restarted agent runs the same versions and still
 * recognises a re-sent update. Written atomically (temporary file, fsync,
 * rename, fsync of the directory) whenever an update is accepted.
 */
#include "agent.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define STATE_FORMAT 1

static void
state_path(char *buf, size_t len, const char *suffix)
{
	snprintf(buf, len, "%s/state.json%s", agent.state_dir, suffix);
}

/* Remember KEY's answer in the instance's ring (caller holds the lock or is alone). */
void
keys_remember(instance *in, const char *key, char status)
{
	key_entry *e = &in->keys[in->keys_next];
	char      *copy = strdup(key);

	if (!copy)
		return;                 /* forgetting a key only costs idempotency of that key */
	free(e->key);
	e->key = copy;
	e->status = status;
	in->keys_next = (in->keys_next + 1) % AGENT_KEY_HISTORY;
}

/* Read state.json if there is one; a missing file means a first start. */
bool
state_load(char *err, size_t errlen)
{
	char         path[4096];
	json_error_t jerr;
	json_t      *root, *units, *insts;
	const char  *uname;
	bool         ok = false;

	state_path(path, sizeof(path), "");
	if (access(path, F_OK) != 0)
	{
		if (errno == ENOENT)
			return true;
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return false;
	}
	root = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
	if (!root)
	{
		snprintf(err, errlen, "%s: line %d: %s (move it away to start from the config's initial versions)",
				 path, jerr.line, jerr.text);
		return false;
	}
	units = json_object_get(root, "units");
	if (!json_is_object(root) || json_integer_value(json_object_get(root, "format")) != STATE_FORMAT ||
		!json_is_object(units))
	{
		snprintf(err, errlen, "%s: not a state file of format %d", path, STATE_FORMAT);
		goto out;
	}
	json_object_foreach(units, uname, insts)
	{
		unit   *u = unit_find(uname);
		size_t  k;
		json_t *ji;

		if (!u)
		{
			agent_log("state: unit \"%s\" is no longer configured; forgetting it", uname);
			continue;
		}
		if (!json_is_array(insts))
		{
			snprintf(err, errlen, "%s: units.%s: not an array", path, uname);
			goto out;
		}
		json_array_foreach(insts, k, ji)
		{
			instance   *in;
			const char *v = json_string_value(json_object_get(ji, "version"));
			json_t     *keys = json_object_get(ji, "keys"), *jk;
			size_t      j;

			if ((int) k >= u->ninstances)
				break;          /* fewer instances configured now */
			in = &u->instances[k];
			if (!v || !version_is_valid(v))
			{
				snprintf(err, errlen, "%s: units.%s[%zu].version: missing or invalid", path, uname, k);
				goto out;
			}
			free(in->desired);
			in->desired = strdup(v);
			if (!in->desired)
			{
				snprintf(err, errlen, "out of memory");
				goto out;
			}
			json_array_foreach(keys, j, jk)
			{
				const char *key = json_string_value(json_object_get(jk, "key"));
				const char *st = json_string_value(json_object_get(jk, "status"));

				if (key && st)
					keys_remember(in, key, strcmp(st, "done") == 0 ? 'd' : 'a');
			}
		}
	}
	ok = true;
out:
	json_decref(root);
	return ok;
}

/* The whole state as JSON (caller holds the lock); NULL when out of memory. */
static json_t *
state_json(void)
{
	json_t *root = json_pack("{s:i, s:{}}", "format", STATE_FORMAT, "units");
	json_t *units;

	if (!root)
		return NULL;
	units = json_object_get(root, "units");
	for (int i = 0; i < agent.nunits; i++)
	{
		unit   *u = &agent.units[i];
		json_t *arr = json_array();

		if (!arr || json_object_set_new(units, u->name, arr) != 0)
			goto oom;
		for (int k = 0; k < u->ninstances; k++)
		{
			instance *in = &u->instances[k];
			json_t   *keys = json_array();

			if (!keys || json_array_append_new(arr, json_pack("{s:s, s:o}", "version", in->desired,
															   "keys", keys)) != 0)
				goto oom;
			for (int j = 0; j < AGENT_KEY_HISTORY; j++)
			{
				key_entry *e = &in->keys[(in->keys_next + j) % AGENT_KEY_HISTORY];

				if (e->key &&
					json_array_append_new(keys, json_pack("{s:s, s:s}", "key", e->key, "status",
														  e->status == 'd' ? "done" : "accepted")) != 0)
					goto oom;
			}
		}
	}
	return root;
oom:
	json_decref(root);
	return NULL;
}

/* Write the state atomically; on failure the old file stays intact. */
bool
state_save(char *err, size_t errlen)
{
	char    path[4096], tmp[4096];
	json_t *root = state_json();
	char   *text;
	size_t  len, off = 0;
	int     fd, dfd;

	if (!root)
	{
		snprintf(err, errlen, "out of memory");
		return false;
	}
	text = json_dumps(root, JSON_INDENT(1));
	json_decref(root);
	if (!text)
	{
		snprintf(err, errlen, "out of memory");
		return false;
	}
	len = strlen(text);
	state_path(path, sizeof(path), "");
	state_path(tmp, sizeof(tmp), ".tmp");
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
	{
		snprintf(err, errlen, "cannot write %s: %s", tmp, strerror(errno));
		free(text);
		return false;
	}
	while (off < len)
	{
		ssize_t w = write(fd, text + off, len - off);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
		{
			snprintf(err, errlen, "cannot write %s: %s", tmp, strerror(errno));
			goto fail;
		}
		off += (size_t) w;
	}
	free(text);
	text = NULL;
	if (fsync(fd) != 0)
	{
		snprintf(err, errlen, "cannot fsync %s: %s", tmp, strerror(errno));
		goto fail;
	}
	if (close(fd) != 0)
	{
		fd = -1;
		snprintf(err, errlen, "cannot write %s: %s", tmp, strerror(errno));
		goto fail;
	}
	fd = -1;
	if (rename(tmp, path) != 0)
	{
		snprintf(err, errlen, "cannot rename %s: %s", tmp, strerror(errno));
		goto fail;
	}
	/* make the rename itself durable */
	dfd = open(agent.state_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd >= 0)
	{
		if (fsync(dfd) != 0)
			agent_log("state: fsync of %s failed: %s", agent.state_dir, strerror(errno));
		if (close(dfd) != 0)
			agent_log("state: close of %s failed: %s", agent.state_dir, strerror(errno));
	}
	return true;
fail:
	free(text);
	if (fd >= 0 && close(fd) != 0)
		agent_log("state: close of %s failed: %s", tmp, strerror(errno));
	if (unlink(tmp) != 0 && errno != ENOENT)
		agent_log("state: cannot remove %s: %s", tmp, strerror(errno));
	return false;
}

/* The answer given to KEY on this instance: 'a', 'd', or 0 if unknown (caller holds the lock). */
char
keys_lookup(instance *in, const char *key)
{
	for (int j = 0; j < AGENT_KEY_HISTORY; j++)
		if (in->keys[j].key && strcmp(in->keys[j].key, key) == 0)
			return in->keys[j].status;
	return 0;
}
