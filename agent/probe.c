/*
 * probe.c: HTTP health probes of instances, through libcurl's multi
 * interface so a health request probes all its instances at once and takes
 * at most one probe timeout, not one per instance.
 */
#include "agent.h"

#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A probe reads only the status code; the body is thrown away. */
static size_t
discard(char *ptr, size_t size, size_t nmemb, void *userdata)
{
	(void) ptr;
	(void) userdata;
	return size * nmemb;
}

/* A ready-to-run easy handle probing P, or NULL. */
static CURL *
probe_handle(probe_t *p)
{
	CURL     *e = curl_easy_init();
	char      url[512];
	CURLcode  rc = CURLE_OK;
	bool      v6 = strchr(agent.probe_host, ':') != NULL;

	if (!e)
		return NULL;
	snprintf(url, sizeof(url), "http://%s%s%s:%d%s", v6 ? "[" : "", agent.probe_host, v6 ? "]" : "",
			 p->port, p->path);
	rc |= curl_easy_setopt(e, CURLOPT_URL, url);
	rc |= curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);             /* threads: no SIGALRM timeouts */
	rc |= curl_easy_setopt(e, CURLOPT_NOPROXY, "*");             /* an http_proxy must not see probes */
	rc |= curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long) agent.probe_timeout_ms);
	rc |= curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long) agent.probe_timeout_ms);
	rc |= curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
	rc |= curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, discard);
	rc |= curl_easy_setopt(e, CURLOPT_PRIVATE, (void *) p);
	rc |= curl_easy_setopt(e, CURLOPT_USERAGENT, "conveyor-agent-probe");
	if (rc != CURLE_OK)
	{
		curl_easy_cleanup(e);
		return NULL;
	}
	return e;
}

/* Probe every entry of PROBES concurrently and fill in its results. */
void
probe_many(probe_t *probes, int n)
{
	CURLM *m = curl_multi_init();
	CURL **handles = calloc((size_t) (n > 0 ? n : 1), sizeof(CURL *));
	int    running = 0, left;
	CURLMsg *msg;

	for (int i = 0; i < n; i++)
	{
		probes[i].passed = false;
		probes[i].http_code = 0;
		probes[i].seconds = 0;
		snprintf(probes[i].error, sizeof(probes[i].error), "not probed (out of memory)");
	}
	if (!m || !handles)
		goto out;
	for (int i = 0; i < n; i++)
	{
		handles[i] = probe_handle(&probes[i]);
		if (handles[i] && curl_multi_add_handle(m, handles[i]) != CURLM_OK)
		{
			curl_easy_cleanup(handles[i]);
			handles[i] = NULL;
		}
	}
	for (;;)
	{
		if (curl_multi_perform(m, &running) != CURLM_OK || running == 0)
			break;
		if (curl_multi_poll(m, NULL, 0, 100, NULL) != CURLM_OK)
			break;
	}
	while ((msg = curl_multi_info_read(m, &left)))
	{
		probe_t *p = NULL;
		long     code = 0;
		double   t = 0;

		if (msg->msg != CURLMSG_DONE ||
			curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **) &p) != CURLE_OK || !p)
			continue;
		if (curl_easy_getinfo(msg->easy_handle, CURLINFO_RESPONSE_CODE, &code) != CURLE_OK)
			code = 0;
		if (curl_easy_getinfo(msg->easy_handle, CURLINFO_TOTAL_TIME, &t) != CURLE_OK)
			t = 0;
		p->http_code = code;
		p->seconds = t;
		if (msg->data.result != CURLE_OK)
			snprintf(p->error, sizeof(p->error), "%s: %s", p->path, curl_easy_strerror(msg->data.result));
		else if (code < 200 || code > 299)
			snprintf(p->error, sizeof(p->error), "%s answered %ld", p->path, code);
		else
		{
			p->passed = true;
			p->error[0] = '\0';
		}
	}
out:
	if (handles)
		for (int i = 0; i < n; i++)
			if (handles[i])
			{
				if (curl_multi_remove_handle(m, handles[i]) != CURLM_OK)
					agent_log("probe: curl_multi_remove_handle failed");
				curl_easy_cleanup(handles[i]);
			}
	free(handles);
	if (m && curl_multi_cleanup(m) != CURLM_OK)
		agent_log("probe: curl_multi_cleanup failed");
}
