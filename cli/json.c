/*
 * Reading a few fields of a notification payload (compact JSON written by the
 * extension, docs/operations.md): the top-level "push", "kind", "phase",
 * "at". A small scanner rather than a JSON library: it walks the top-level
 * object, skips nested values and strings with escapes, and never reads past
 * the terminating NUL, so a malformed payload just yields "not found".
 */
#include <stdlib.h>
#include <string.h>

#include "cli.h"

/* Skip whitespace. */
static const char *
skip_space(const char *p)
{
	while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')
		p++;
	return p;
}

/* p at a '"': return just past the closing quote, or NULL if unterminated. */
static const char *
skip_string(const char *p)
{
	for (p++; *p; p++)
	{
		if (*p == '\\')
		{
			if (p[1] == '\0')
				return NULL;
			p++;
		}
		else if (*p == '"')
			return p + 1;
	}
	return NULL;
}

/* p at the start of a value: return just past it, or NULL if malformed. */
static const char *
skip_value(const char *p)
{
	int			depth = 0;

	p = skip_space(p);
	if (*p == '"')
		return skip_string(p);
	if (*p != '{' && *p != '[')
	{
		/* a number, true, false, null */
		while (*p && *p != ',' && *p != '}' && *p != ']')
			p++;
		return p;
	}
	while (*p)
	{
		if (*p == '"')
		{
			p = skip_string(p);
			if (p == NULL)
				return NULL;
			continue;
		}
		if (*p == '{' || *p == '[')
			depth++;
		else if (*p == '}' || *p == ']')
		{
			depth--;
			if (depth == 0)
				return p + 1;
		}
		p++;
	}
	return NULL;
}

/* The start of the value of a top-level key, or NULL if absent. */
static const char *
find_value(const char *json, const char *key)
{
	size_t		keylen = strlen(key);
	const char *p = skip_space(json);

	if (*p != '{')
		return NULL;
	p++;
	for (;;)
	{
		const char *name;
		const char *after;

		p = skip_space(p);
		if (*p != '"')
			return NULL;
		name = p + 1;
		after = skip_string(p);
		if (after == NULL)
			return NULL;
		p = skip_space(after);
		if (*p != ':')
			return NULL;
		p = skip_space(p + 1);
		/* keys written by the extension have no escapes: compare the raw text */
		if ((size_t) (after - 1 - name) == keylen && strncmp(name, key, keylen) == 0)
			return p;
		p = skip_value(p);
		if (p == NULL)
			return NULL;
		p = skip_space(p);
		if (*p != ',')
			return NULL;
		p++;
	}
}

/* An integer field; false if absent, null or not an integer. */
bool
json_get_int(const char *json, const char *key, long long *out)
{
	const char *p = find_value(json, key);
	char	   *end;
	long long	v;

	if (p == NULL || (*p != '-' && (*p < '0' || *p > '9')))
		return false;
	v = strtoll(p, &end, 10);
	if (end == p)
		return false;
	*out = v;
	return true;
}

/* A string field without its quotes (escapes kept as written); false if absent or not a string. */
bool
json_get_string(const char *json, const char *key, char *buf, size_t size)
{
	const char *p = find_value(json, key);
	const char *end;
	size_t		n;

	if (p == NULL || *p != '"' || size == 0)
		return false;
	end = skip_string(p);
	if (end == NULL)
		return false;
	n = (size_t) (end - 1 - (p + 1));
	if (n >= size)
		n = size - 1;
	memcpy(buf, p + 1, n);
	buf[n] = '\0';
	return true;
}
