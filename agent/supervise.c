/*
 * supervise.c: one thread per instance starts its process on the version it
 * must run, restarts it gracefully when an update changes that version,
 * reaps it, restarts it with backoff when it dies, and probes it.
 *
 * Only an instance's own thread forks, waits for and signals its process,
 * so no other thread ever reaps a pid it did not start. The process runs in
 * its own process group (the whole group is stopped) and gets SIGTERM if its
 * thread, and so the agent, dies (PR_SET_PDEATHSIG): a killed agent leaves no
 * instance holding its port.
 */
#define _GNU_SOURCE
#include "agent.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define CRASH_BACKOFF_MIN_MS 1000
#define CRASH_BACKOFF_MAX_MS 30000

typedef enum { START_OK, START_DIED, START_UNHEALTHY, START_INTERRUPTED } start_result;

const char *
inst_status_name(inst_status s)
{
	switch (s)
	{
		case INST_OK: return "ok";
		case INST_UPDATING: return "updating";
		case INST_FAILED: return "failed";
	}
	return "failed";
}

static int64_t
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Sleep up to MS, returning early when the instance is woken (caller holds the lock). */
static void
wait_locked(instance *in, int64_t ms)
{
	struct timespec ts;
	int             rc;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	ts.tv_sec += ms / 1000;
	ts.tv_nsec += (ms % 1000) * 1000000;
	if (ts.tv_nsec >= 1000000000)
	{
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000;
	}
	rc = pthread_cond_timedwait(&in->wake, &agent.lock, &ts);
	if (rc != 0 && rc != ETIMEDOUT)
		agent_log("%s/%s: pthread_cond_timedwait: %s", in->unit->name, in->name, strerror(rc));
}

static void
wait_unlocked(instance *in, int64_t ms)
{
	pthread_mutex_lock(&agent.lock);
	wait_locked(in, ms);
	pthread_mutex_unlock(&agent.lock);
}

/* Should a start in progress give way (shutdown, or a newer update)? */
static bool
interrupted(instance *in, uint64_t gen)
{
	bool r;

	pthread_mutex_lock(&agent.lock);
	r = agent.stopping || in->want_gen != gen;
	pthread_mutex_unlock(&agent.lock);
	return r;
}

/* Caller holds the lock: make VERSION the one the instance must run and wake its thread. */
bool
instance_set_desired(instance *in, const char *version)
{
	char *v = strdup(version);

	if (!v)
		return false;
	free(in->desired);
	in->desired = v;
	in->want_gen++;
	in->status = INST_UPDATING;
	in->reason[0] = '\0';
	pthread_cond_signal(&in->wake);
	return true;
}

static void
describe_exit(int st, char *buf, size_t len)
{
	if (WIFEXITED(st))
		snprintf(buf, len, "exited with status %d", WEXITSTATUS(st));
	else if (WIFSIGNALED(st))
		snprintf(buf, len, "killed by signal %d", WTERMSIG(st));
	else
		snprintf(buf, len, "ended (wait status %d)", st);
}

/* TEMPLATE with its placeholders filled in; NULL when out of memory. */
static char *
expand(const char *template, instance *in, const char *version)
{
	char   port[16], index[16];
	size_t cap = strlen(template) + 1, len = 0;
	char  *out;

	snprintf(port, sizeof(port), "%d", in->port);
	snprintf(index, sizeof(index), "%d", in->index);
	for (const char *p = template; *p; p++)
		if (*p == '{')
			cap += AGENT_VERSION_MAX + strlen(in->unit->name) + 16;
	out = malloc(cap);
	if (!out)
		return NULL;
	for (const char *p = template; *p;)
	{
		const char *val = NULL;
		size_t      skip = 0;

		if (strncmp(p, "{version}", 9) == 0)
			val = version, skip = 9;
		else if (strncmp(p, "{port}", 6) == 0)
			val = port, skip = 6;
		else if (strncmp(p, "{instance}", 10) == 0)
			val = index, skip = 10;
		else if (strncmp(p, "{unit}", 6) == 0)
			val = in->unit->name, skip = 6;
		if (val)
		{
			memcpy(out + len, val, strlen(val));
			len += strlen(val);
			p += skip;
		}
		else
			out[len++] = *p++;
	}
	out[len] = '\0';
	return out;
}

/* The executable for ARGV0: itself if it has a '/', else the first match in PATH. */
static char *
resolve(const char *argv0)
{
	const char *path = getenv("PATH");
	char        buf[4096];

	if (strchr(argv0, '/'))
		return strdup(argv0);
	if (!path)
		path = "/usr/local/bin:/usr/bin:/bin";
	for (const char *p = path; *p;)
	{
		const char *colon = strchr(p, ':');
		size_t      n = colon ? (size_t) (colon - p) : strlen(p);

		snprintf(buf, sizeof(buf), "%.*s/%s", (int) n, n ? p : ".", argv0);
		if (access(buf, X_OK) == 0)
			return strdup(buf);
		p += n + (colon ? 1 : 0);
	}
	return NULL;
}

static void
free_argv(char **argv)
{
	if (argv)
		for (char **a = argv; *a; a++)
			free(*a);
	free(argv);
}

/*
 * Fork and exec the unit's command for VERSION; its output goes to
 * STATE_DIR/logs/UNIT.INSTANCE.log. Returns the pid, or 0 with a reason.
 * Everything the child needs is prepared before fork(): between fork and
 * exec the child of a threaded process may call async-signal-safe
 * functions only.
 */
static pid_t
spawn(instance *in, const char *version, char *why, size_t whylen)
{
	unit    *u = in->unit;
	size_t   argc = 0;
	char   **argv, *exe = NULL, logpath[4096];
	int      logfd = -1, nullfd = -1;
	pid_t    parent = getpid(), pid = 0;
	sigset_t empty;

	while (u->command[argc])
		argc++;
	argv = calloc(argc + 1, sizeof(char *));
	if (!argv)
	{
		snprintf(why, whylen, "out of memory");
		return 0;
	}
	for (size_t i = 0; i < argc; i++)
		if (!(argv[i] = expand(u->command[i], in, version)))
		{
			snprintf(why, whylen, "out of memory");
			goto out;
		}
	exe = resolve(argv[0]);
	if (!exe)
	{
		snprintf(why, whylen, "command \"%s\" not found in PATH", argv[0]);
		goto out;
	}
	snprintf(logpath, sizeof(logpath), "%s/logs/%s.%d.log", agent.state_dir, u->name, in->index);
	logfd = open(logpath, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
	nullfd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	if (logfd < 0 || nullfd < 0)
	{
		snprintf(why, whylen, "cannot open %.120s: %s", logfd < 0 ? logpath : "/dev/null", strerror(errno));
		goto out;
	}
	sigemptyset(&empty);

	pid = fork();
	if (pid < 0)
	{
		snprintf(why, whylen, "fork: %s", strerror(errno));
		pid = 0;
		goto out;
	}
	if (pid == 0)
	{
		static const char msg[] = "conveyor-agent: exec failed\n";
		struct sigaction dfl;

		setpgid(0, 0);
		if (prctl(PR_SET_PDEATHSIG, SIGTERM) != 0 || getppid() != parent)
			_exit(126);         /* the agent is already gone */
		if (dup2(nullfd, 0) < 0 || dup2(logfd, 1) < 0 || dup2(logfd, 2) < 0)
			_exit(126);
		close_range(3, ~0U, 0); /* no agent socket may outlive the agent in a child */
		memset(&dfl, 0, sizeof(dfl));
		dfl.sa_handler = SIG_DFL;
		sigaction(SIGPIPE, &dfl, NULL);   /* ignored by the agent; ignoring survives exec */
		sigprocmask(SIG_SETMASK, &empty, NULL);
		execv(exe, argv);
		if (write(2, msg, sizeof(msg) - 1) < 0)
			_exit(127);
		_exit(127);
	}
	/* also from the parent, so the group exists before we might signal it */
	if (setpgid(pid, pid) != 0 && errno != EACCES && errno != ESRCH)
		agent_log("%s/%s: setpgid: %s", u->name, in->name, strerror(errno));
out:
	if (logfd >= 0 && close(logfd) != 0)
		agent_log("close: %s", strerror(errno));
	if (nullfd >= 0 && close(nullfd) != 0)
		agent_log("close: %s", strerror(errno));
	free(exe);
	free_argv(argv);
	return pid;
}

/* Stop PID's process group: SIGTERM, up to grace_ms, then SIGKILL; reap it. */
static void
stop_process(instance *in, pid_t pid)
{
	int64_t deadline = now_ms() + agent.grace_ms;
	int     st = 0;
	pid_t   r = 0;

	if (kill(-pid, SIGTERM) != 0 && errno != ESRCH)
		agent_log("%s/%s: kill: %s", in->unit->name, in->name, strerror(errno));
	while (now_ms() < deadline)
	{
		r = waitpid(pid, &st, WNOHANG);
		if (r == pid || (r < 0 && errno != EINTR))
			break;
		struct timespec ts = {0, 20 * 1000000};
		nanosleep(&ts, NULL);
	}
	if (r != pid && !(r < 0 && errno == ECHILD))
	{
		agent_log("%s/%s: pid %d still running after %d ms; SIGKILL", in->unit->name, in->name,
				  (int) pid, agent.grace_ms);
		if (kill(-pid, SIGKILL) != 0 && errno != ESRCH)
			agent_log("%s/%s: kill: %s", in->unit->name, in->name, strerror(errno));
		while ((r = waitpid(pid, &st, 0)) < 0 && errno == EINTR)
			;
	}
	/* anything the process left behind in its group goes too */
	if (kill(-pid, SIGKILL) != 0 && errno != ESRCH)
		agent_log("%s/%s: kill: %s", in->unit->name, in->name, strerror(errno));
}

/* Record a probe's result in the instance's metrics (caller holds the lock). */
static void
note_probe(instance *in, const probe_t *p)
{
	in->probe_passed = p->passed;
	in->probe_seconds = p->seconds;
	if (p->passed)
		in->probes_ok++;
	else
		in->probes_failed++;
}

/*
 * Stop the current process, if any, start VERSION, and wait until it has
 * been up min_uptime_ms and passes its probe (START_OK), dies (START_DIED),
 * or start_timeout_ms passes (START_UNHEALTHY). The result is also left in
 * the instance's status and reason.
 */
static start_result
start_version(instance *in, const char *version, uint64_t gen)
{
	pid_t   old, pid;
	char    why[AGENT_REASON_MAX] = "";
	int64_t started;
	probe_t p;

	pthread_mutex_lock(&agent.lock);
	old = in->pid;
	pthread_mutex_unlock(&agent.lock);
	if (old)
	{
		stop_process(in, old);
		pthread_mutex_lock(&agent.lock);
		in->pid = 0;
		free(in->running);
		in->running = NULL;
		in->probe_passed = false;
		pthread_mutex_unlock(&agent.lock);
	}
	if (interrupted(in, gen))
		return START_INTERRUPTED;

	pid = spawn(in, version, why, sizeof(why));
	pthread_mutex_lock(&agent.lock);
	if (!pid)
	{
		in->status = INST_FAILED;
		snprintf(in->reason, sizeof(in->reason), "cannot start: %.180s", why);
		pthread_mutex_unlock(&agent.lock);
		agent_log("%s/%s: %s", in->unit->name, in->name, in->reason);
		return START_DIED;
	}
	in->pid = pid;
	free(in->running);              /* set when the previous process died on its own */
	in->running = strdup(version);   /* NULL only when out of memory: then reported as unknown */
	pthread_mutex_unlock(&agent.lock);
	agent_log("%s/%s: started version %s (pid %d, port %d)", in->unit->name, in->name, version,
			  (int) pid, in->port);

	started = now_ms();
	for (;;)
	{
		int     st;
		pid_t   r = waitpid(pid, &st, WNOHANG);
		int64_t up = now_ms() - started;

		if (r == pid)
		{
			pthread_mutex_lock(&agent.lock);
			in->pid = 0;
			in->status = INST_FAILED;
			in->probe_passed = false;
			describe_exit(st, why, sizeof(why));
			snprintf(in->reason, sizeof(in->reason), "version %.100s %.60s after %lld ms", version, why,
					 (long long) up);
			pthread_mutex_unlock(&agent.lock);
			agent_log("%s/%s: %s", in->unit->name, in->name, in->reason);
			return START_DIED;
		}
		if (interrupted(in, gen))
			return START_INTERRUPTED;
		if (up >= agent.min_uptime_ms)
		{
			memset(&p, 0, sizeof(p));
			p.port = in->port;
			p.path = in->unit->health_path;
			probe_many(&p, 1);
			pthread_mutex_lock(&agent.lock);
			note_probe(in, &p);
			if (p.passed)
			{
				in->status = INST_OK;
				in->reason[0] = '\0';
				pthread_mutex_unlock(&agent.lock);
				agent_log("%s/%s: version %s is up", in->unit->name, in->name, version);
				return START_OK;
			}
			if (now_ms() - started >= agent.start_timeout_ms)
			{
				in->status = INST_FAILED;
				snprintf(in->reason, sizeof(in->reason), "version %.60s not healthy within %d ms: %.100s",
						 version, agent.start_timeout_ms, p.error);
				pthread_mutex_unlock(&agent.lock);
				agent_log("%s/%s: %s", in->unit->name, in->name, in->reason);
				return START_UNHEALTHY;
			}
			pthread_mutex_unlock(&agent.lock);
		}
		wait_unlocked(in, 100);
	}
}

/* The life of one instance, until the agent stops; then its process is stopped. */
static void *
instance_main(void *arg)
{
	instance *in = arg;
	int64_t   backoff = CRASH_BACKOFF_MIN_MS, restart_at = 0,
			  next_probe = now_ms() + agent.probe_interval_ms;
	pid_t     pid;

	pthread_mutex_lock(&agent.lock);
	while (!agent.stopping)
	{
		int64_t now = now_ms(), sleep_ms = 100;

		if (in->want_gen != in->done_gen)
		{
			/* an update (or the first start): run the desired version */
			uint64_t     gen = in->want_gen;
			char        *version = strdup(in->desired);
			start_result r;

			if (!version)
			{
				wait_locked(in, 1000);      /* out of memory: try again soon */
				continue;
			}
			if (in->pid || in->running)
				in->restarts_update++;
			in->status = INST_UPDATING;
			pthread_mutex_unlock(&agent.lock);
			r = start_version(in, version, gen);
			free(version);
			pthread_mutex_lock(&agent.lock);
			if (r != START_INTERRUPTED)
				in->done_gen = gen;
			backoff = CRASH_BACKOFF_MIN_MS;
			restart_at = r == START_DIED ? now_ms() + backoff : 0;
			next_probe = now_ms() + agent.probe_interval_ms;
			continue;
		}
		if (in->pid)
		{
			int   st;
			pid_t r = waitpid(in->pid, &st, WNOHANG);

			if (r == in->pid || (r < 0 && errno == ECHILD))
			{
				char why[64] = "vanished";

				if (r == in->pid)
					describe_exit(st, why, sizeof(why));
				in->pid = 0;
				in->status = INST_FAILED;
				in->probe_passed = false;
				snprintf(in->reason, sizeof(in->reason), "version %.100s %.60s", in->running ? in->running : "?", why);
				agent_log("%s/%s: %s; restarting in %lld ms", in->unit->name, in->name, in->reason,
						  (long long) backoff);
				restart_at = now + backoff;
				continue;
			}
		}
		if (!in->pid && restart_at && now >= restart_at)
		{
			/* it died: start the same version again, backing off while it keeps dying */
			char        *version = strdup(in->desired);
			uint64_t     gen = in->want_gen;
			start_result r;

			if (!version)
			{
				wait_locked(in, 1000);
				continue;
			}
			in->restarts_crash++;
			pthread_mutex_unlock(&agent.lock);
			r = start_version(in, version, gen);
			free(version);
			pthread_mutex_lock(&agent.lock);
			if (r == START_OK)
				backoff = CRASH_BACKOFF_MIN_MS;
			else if (backoff < CRASH_BACKOFF_MAX_MS)
				backoff = backoff * 2 > CRASH_BACKOFF_MAX_MS ? CRASH_BACKOFF_MAX_MS : backoff * 2;
			restart_at = r == START_DIED ? now_ms() + backoff : 0;
			continue;
		}
		if (in->pid && now >= next_probe)
		{
			/* a periodic probe keeps up and probe latency in /metrics current */
			probe_t p;

			memset(&p, 0, sizeof(p));
			p.port = in->port;
			p.path = in->unit->health_path;
			pthread_mutex_unlock(&agent.lock);
			probe_many(&p, 1);
			pthread_mutex_lock(&agent.lock);
			note_probe(in, &p);
			next_probe = now_ms() + agent.probe_interval_ms;
			continue;
		}
		if (restart_at && !in->pid && restart_at - now < sleep_ms)
			sleep_ms = restart_at - now;
		/* the wait is also the reaping cadence: a dead process is seen within 100 ms */
		wait_locked(in, sleep_ms > 0 ? sleep_ms : 1);
	}
	pid = in->pid;
	pthread_mutex_unlock(&agent.lock);
	if (pid)
	{
		stop_process(in, pid);
		agent_log("%s/%s: stopped (pid %d)", in->unit->name, in->name, (int) pid);
		pthread_mutex_lock(&agent.lock);
		in->pid = 0;
		pthread_mutex_unlock(&agent.lock);
	}
	return NULL;
}

/* Start every instance's thread (the logs directory first). */
bool
supervise_start(char *err, size_t errlen)
{
	char dir[4096];

	snprintf(dir, sizeof(dir), "%s/logs", agent.state_dir);
	if (mkdir(dir, 0755) != 0 && errno != EEXIST)
	{
		snprintf(err, errlen, "cannot create %s: %s", dir, strerror(errno));
		return false;
	}
	for (int i = 0; i < agent.nunits; i++)
		for (int k = 0; k < agent.units[i].ninstances; k++)
		{
			instance *in = &agent.units[i].instances[k];
			int       rc = pthread_create(&in->thread, NULL, instance_main, in);

			if (rc != 0)
			{
				snprintf(err, errlen, "cannot start a thread: %s", strerror(rc));
				return false;
			}
			in->thread_started = true;
		}
	return true;
}

/* Tell every instance thread to stop its process, and wait for them all. */
void
supervise_stop(void)
{
	pthread_mutex_lock(&agent.lock);
	agent.stopping = true;
	for (int i = 0; i < agent.nunits; i++)
		for (int k = 0; k < agent.units[i].ninstances; k++)
			pthread_cond_signal(&agent.units[i].instances[k].wake);
	pthread_mutex_unlock(&agent.lock);
	for (int i = 0; i < agent.nunits; i++)
		for (int k = 0; k < agent.units[i].ninstances; k++)
		{
			instance *in = &agent.units[i].instances[k];
			int       rc;

			if (!in->thread_started)
				continue;
			rc = pthread_join(in->thread, NULL);
			if (rc != 0)
				agent_log("pthread_join: %s", strerror(rc));
			in->thread_started = false;
		}
}
