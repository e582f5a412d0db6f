/*
 * conveyor-agent: serves conveyor's push-type protocol for the processes of
 * one host (docs/agent.md).
 *
 *   conveyor-agent -c CONFIG [--check]
 *
 * SIGTERM or SIGINT: stop serving, stop every instance (SIGTERM, then
 * SIGKILL after grace_ms), exit 0. The versions stay recorded in the state
 * directory, so the next start runs the same ones.
 */
#define _GNU_SOURCE
#include "agent.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* One log line on stderr: UTC time, then the message. */
void
agent_log(const char *fmt, ...)
{
	char       line[1024], when[32];
	struct tm  tm;
	time_t     t = time(NULL);
	va_list    ap;

	if (!gmtime_r(&t, &tm) || strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		snprintf(when, sizeof(when), "?");
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	/* a single write per line keeps lines whole when threads log at once */
	fprintf(stderr, "%s conveyor-agent: %s\n", when, line);
}

static void
usage(FILE *f)
{
	fprintf(f, "usage: conveyor-agent -c CONFIG [--check]\n"
			   "  -c, --config CONFIG  the agent's JSON config file (docs/agent.md)\n"
			   "  --check              validate the config and exit\n");
}

/* Create the state directory if needed and hold an exclusive lock on it. */
static bool
lock_state_dir(char *err, size_t errlen)
{
	char path[4096];

	if (mkdir(agent.state_dir, 0755) != 0 && errno != EEXIST)
	{
		snprintf(err, errlen, "cannot create state_dir %s: %s", agent.state_dir, strerror(errno));
		return false;
	}
	snprintf(path, sizeof(path), "%s/agent.lock", agent.state_dir);
	agent.lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	if (agent.lock_fd < 0)
	{
		snprintf(err, errlen, "cannot open %.400s: %s", path, strerror(errno));
		return false;
	}
	/* two agents on one state directory would fight over the same ports and versions */
	if (flock(agent.lock_fd, LOCK_EX | LOCK_NB) != 0)
	{
		snprintf(err, errlen, "state_dir %s is in use by another conveyor-agent (%s)", agent.state_dir,
				 strerror(errno));
		return false;
	}
	return true;
}

int
main(int argc, char **argv)
{
	const char *config = NULL;
	bool        check = false;
	char        err[512];
	sigset_t    sigs;
	int         sig = 0, total = 0;

	for (int i = 1; i < argc; i++)
	{
		if ((strcmp(argv[i], "-c") == 0 || strcmp(argv[i], "--config") == 0) && i + 1 < argc)
			config = argv[++i];
		else if (strcmp(argv[i], "--check") == 0)
			check = true;
		else if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0)
		{
			usage(stdout);
			return 0;
		}
		else
		{
			usage(stderr);
			return 2;
		}
	}
	if (!config)
	{
		usage(stderr);
		return 2;
	}
	agent.lock_fd = -1;
	if (!config_load(config, err, sizeof(err)))
	{
		fprintf(stderr, "conveyor-agent: %s: %s\n", config, err);
		config_free();
		return 2;
	}
	for (int i = 0; i < agent.nunits; i++)
		total += agent.units[i].ninstances;
	if (check)
	{
		printf("conveyor-agent: %s: ok (%d units, %d instances)\n", config, agent.nunits, total);
		config_free();
		return 0;
	}
	if (pthread_mutex_init(&agent.lock, NULL) != 0)
	{
		fprintf(stderr, "conveyor-agent: cannot create a mutex\n");
		return 1;
	}
	if (!lock_state_dir(err, sizeof(err)) || !state_load(err, sizeof(err)))
	{
		fprintf(stderr, "conveyor-agent: %s\n", err);
		if (agent.lock_fd >= 0)
			close(agent.lock_fd);
		config_free();
		return 1;
	}
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
	{
		fprintf(stderr, "conveyor-agent: curl_global_init failed\n");
		return 1;
	}

	/*
	 * Every thread inherits this mask, so the signals below reach only the
	 * sigwait() here; SIGPIPE is ignored (a client hanging up is no reason
	 * to die). Children get their mask and SIGPIPE reset in spawn().
	 */
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGHUP);
	if (pthread_sigmask(SIG_BLOCK, &sigs, NULL) != 0 || signal(SIGPIPE, SIG_IGN) == SIG_ERR)
	{
		fprintf(stderr, "conveyor-agent: cannot set up signals\n");
		return 1;
	}

	if (!api_start(err, sizeof(err)))
	{
		fprintf(stderr, "conveyor-agent: %s\n", err);
		curl_global_cleanup();
		close(agent.lock_fd);
		config_free();
		return 1;
	}
	agent_log("listening on %s:%d; %d units, %d instances; state in %s", agent.listen_host, agent.listen_port,
			  agent.nunits, total, agent.state_dir);
	if (!supervise_start(err, sizeof(err)))
	{
		agent_log("%s", err);
		api_stop();
		supervise_stop();
		curl_global_cleanup();
		close(agent.lock_fd);
		config_free();
		return 1;
	}

	for (;;)
	{
		int rc = sigwait(&sigs, &sig);

		if (rc != 0)
		{
			agent_log("sigwait: %s", strerror(rc));
			continue;
		}
		if (sig == SIGHUP)
		{
			agent_log("SIGHUP ignored: restart the agent to read its config again");
			continue;
		}
		break;
	}
	agent_log("%s: stopping", strsignal(sig));
	api_stop();
	supervise_stop();
	curl_global_cleanup();
	if (close(agent.lock_fd) != 0)
		agent_log("close: %s", strerror(errno));
	pthread_mutex_destroy(&agent.lock);
	config_free();
	fprintf(stderr, "conveyor-agent: stopped\n");
	return 0;
}
