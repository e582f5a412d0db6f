/*
 * demo-service: a tiny HTTP service for conveyor's demos and tests, so that
 * a deployment really starts and stops processes (docs/agent.md).
 *
 *   demo-service --port PORT --version VERSION [--faults FILE] [--host ADDR]
 *
 *   GET /         "hello from VERSION"
 *   GET /health   200 "ok", or 500 while the version's injected errors are active
 *   GET /metrics  Prometheus text: demo_requests_total, demo_errors_total,
 *                 demo_request_duration_seconds (histogram), demo_version_info
 *
 * A version can be told to misbehave by a faults file (--faults, or the
 * DEMO_FAULTS environment variable), read once at start-up; one fault a line:
 *
 *   # VERSION  FAULT
 *   2.0-bad    crash 300           exit with status 1, 300 ms after starting (default 300)
 *   2.1-bad    errors 0.5          half of the requests to / answer 500; /health answers 500
 *   2.2-bad    errors 1 after 2000 the same, from 2 s after start (passes a start-up probe first)
 *   2.3-slow   slow 250            every answer of / and /health takes 250 ms more
 *
 * Lines for other versions are ignored; a malformed line stops the service
 * with an error (exit status 2). SIGTERM or SIGINT stops it gracefully.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <math.h>
#include <microhttpd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define NBUCKETS 11
static const double bucket_le[NBUCKETS] = {0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5};

/* The paths counted separately; anything else is "other" (bounded label values). */
enum { P_ROOT, P_HEALTH, P_METRICS, P_OTHER, NPATHS };
static const char *const path_label[NPATHS] = {"/", "/health", "/metrics", "other"};

static struct
{
	const char *version;
	int         crash_ms;       /* -1: no crash */
	double      error_rate;     /* 0: no errors */
	int         errors_after_ms;
	int         slow_ms;
} cfg = {NULL, -1, 0, 0, 0};

static struct
{
	pthread_mutex_t lock;
	uint64_t        root_seen;                  /* requests to /, for the error share */
	uint64_t        requests[NPATHS][2];        /* [path][0: 2xx/4xx, 1: 5xx] */
	uint64_t        errors;
	uint64_t        buckets[2][NBUCKETS];       /* cumulative counts, for / and /health */
	uint64_t        count[2];
	double          sum[2];
} stats = {PTHREAD_MUTEX_INITIALIZER, 0, {{0}}, 0, {{0}}, {0}, {0}};

static struct timespec started;

static double
since(const struct timespec *t0)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (double) (now.tv_sec - t0->tv_sec) + (double) (now.tv_nsec - t0->tv_nsec) / 1e9;
}

static void
sleep_ms(int ms)
{
	struct timespec ts = {ms / 1000, (long) (ms % 1000) * 1000000L};

	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

/* Read FILE's faults for our version; false (with a message) on a malformed line. */
static bool
read_faults(const char *file)
{
	FILE   *f = fopen(file, "r");
	char    line[512];
	int     lineno = 0;

	if (!f)
	{
		fprintf(stderr, "demo-service: cannot open faults file %s: %s\n", file, strerror(errno));
		return false;
	}
	while (fgets(line, sizeof(line), f))
	{
		char   version[200], kind[32], extra[32];
		double arg = NAN, after = 0;
		int    n;

		lineno++;
		line[strcspn(line, "#\r\n")] = '\0';
		n = sscanf(line, "%199s %31s %lf %31s %lf", version, kind, &arg, extra, &after);
		if (n <= 0)
			continue;           /* blank or comment */
		if (n < 2 || (n == 4) || (n == 5 && strcmp(extra, "after") != 0) ||
			(strcmp(kind, "crash") != 0 && strcmp(kind, "errors") != 0 && strcmp(kind, "slow") != 0) ||
			(n >= 3 && arg < 0) || after < 0 ||
			(strcmp(kind, "errors") == 0 && (n < 3 || arg > 1)) ||
			(strcmp(kind, "slow") == 0 && n < 3) || (n == 5 && strcmp(kind, "errors") != 0))
		{
			fprintf(stderr, "demo-service: %s:%d: expected \"VERSION crash [MS]\", \"VERSION errors RATE [after MS]\" "
					"or \"VERSION slow MS\" (RATE from 0 to 1)\n", file, lineno);
			fclose(f);
			return false;
		}
		if (strcmp(version, cfg.version) != 0)
			continue;
		if (strcmp(kind, "crash") == 0)
			cfg.crash_ms = n >= 3 ? (int) arg : 300;
		else if (strcmp(kind, "errors") == 0)
		{
			cfg.error_rate = arg;
			cfg.errors_after_ms = (int) after;
		}
		else
			cfg.slow_ms = (int) arg;
	}
	if (ferror(f))
	{
		fprintf(stderr, "demo-service: cannot read %s\n", file);
		fclose(f);
		return false;
	}
	if (fclose(f) != 0)
	{
		fprintf(stderr, "demo-service: cannot read %s: %s\n", file, strerror(errno));
		return false;
	}
	return true;
}

static bool
errors_active(void)
{
	return cfg.error_rate > 0 && since(&started) * 1000 >= cfg.errors_after_ms;
}

/* Queue TEXT (static or copied) with CODE and CTYPE. */
static enum MHD_Result
reply(struct MHD_Connection *c, unsigned code, const char *text, const char *ctype)
{
	struct MHD_Response *r = MHD_create_response_from_buffer(strlen(text), (void *) text, MHD_RESPMEM_MUST_COPY);
	enum MHD_Result      ret;

	if (!r)
		return MHD_NO;
	if (MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, ctype) != MHD_YES)
	{
		MHD_destroy_response(r);
		return MHD_NO;
	}
	ret = MHD_queue_response(c, code, r);
	MHD_destroy_response(r);
	return ret;
}

/* Count a finished request in the metrics. */
static void
observe(int path, unsigned code, double seconds)
{
	pthread_mutex_lock(&stats.lock);
	stats.requests[path][code >= 500]++;
	if (code >= 500)
		stats.errors++;
	if (path == P_ROOT || path == P_HEALTH)
	{
		for (int b = 0; b < NBUCKETS; b++)
			if (seconds <= bucket_le[b])
				stats.buckets[path][b]++;
		stats.count[path]++;
		stats.sum[path] += seconds;
	}
	pthread_mutex_unlock(&stats.lock);
}

/* The metrics page (malloc'd), or NULL. */
static char *
render_metrics(void)
{
	char  *text = NULL;
	size_t len = 0;
	FILE  *f = open_memstream(&text, &len);
	const char *v = cfg.version;

	if (!f)
		return NULL;
	pthread_mutex_lock(&stats.lock);
	fprintf(f, "# HELP demo_version_info The version this process runs.\n# TYPE demo_version_info gauge\n"
			   "demo_version_info{version=\"%s\"} 1\n", v);
	fputs("# HELP demo_requests_total Requests answered, by path and status class.\n"
		  "# TYPE demo_requests_total counter\n", f);
	for (int p = 0; p < NPATHS; p++)
		for (int e = 0; e < 2; e++)
			fprintf(f, "demo_requests_total{version=\"%s\",path=\"%s\",code=\"%s\"} %llu\n", v, path_label[p],
					e ? "5xx" : "2xx", (unsigned long long) stats.requests[p][e]);
	fprintf(f, "# HELP demo_errors_total Requests answered with a 5xx status.\n# TYPE demo_errors_total counter\n"
			   "demo_errors_total{version=\"%s\"} %llu\n", v, (unsigned long long) stats.errors);
	fputs("# HELP demo_request_duration_seconds Time to answer / and /health.\n"
		  "# TYPE demo_request_duration_seconds histogram\n", f);
	for (int p = 0; p < 2; p++)
	{
		for (int b = 0; b < NBUCKETS; b++)
			fprintf(f, "demo_request_duration_seconds_bucket{version=\"%s\",path=\"%s\",le=\"%g\"} %llu\n", v,
					path_label[p], bucket_le[b], (unsigned long long) stats.buckets[p][b]);
		fprintf(f, "demo_request_duration_seconds_bucket{version=\"%s\",path=\"%s\",le=\"+Inf\"} %llu\n", v,
				path_label[p], (unsigned long long) stats.count[p]);
		fprintf(f, "demo_request_duration_seconds_sum{version=\"%s\",path=\"%s\"} %.6f\n", v, path_label[p],
				stats.sum[p]);
		fprintf(f, "demo_request_duration_seconds_count{version=\"%s\",path=\"%s\"} %llu\n", v, path_label[p],
				(unsigned long long) stats.count[p]);
	}
	pthread_mutex_unlock(&stats.lock);
	if (ferror(f))
	{
		fclose(f);
		free(text);
		return NULL;
	}
	if (fclose(f) != 0)
	{
		free(text);
		return NULL;
	}
	return text;
}

static enum MHD_Result
on_request(void *cls, struct MHD_Connection *c, const char *url, const char *method, const char *version,
		   const char *upload_data, size_t *upload_data_size, void **con_cls)
{
	static int      marker;
	struct timespec t0;
	enum MHD_Result ret;
	char            body[300];
	unsigned        code = 200;
	int             path;

	(void) cls;
	(void) version;
	(void) upload_data;
	if (*con_cls == NULL)
	{
		*con_cls = &marker;      /* the first call only announces the headers */
		return MHD_YES;
	}
	if (*upload_data_size)
	{
		*upload_data_size = 0;   /* bodies are ignored */
		return MHD_YES;
	}
	clock_gettime(CLOCK_MONOTONIC, &t0);
	path = strcmp(url, "/") == 0 ? P_ROOT : strcmp(url, "/health") == 0 ? P_HEALTH
		 : strcmp(url, "/metrics") == 0 ? P_METRICS : P_OTHER;

	if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0)
	{
		code = 405;
		ret = reply(c, code, "use GET\n", "text/plain");
	}
	else if (path == P_METRICS)
	{
		char *text = render_metrics();

		if (!text)
			return MHD_NO;
		code = 200;
		ret = reply(c, code, text, "text/plain; version=0.0.4; charset=utf-8");
		free(text);
	}
	else if (path == P_OTHER)
	{
		code = 404;
		ret = reply(c, code, "not found\n", "text/plain");
	}
	else
	{
		bool fail = false;

		if (cfg.slow_ms > 0)
			sleep_ms(cfg.slow_ms);
		if (errors_active())
		{
			if (path == P_HEALTH)
				fail = true;
			else
			{
				/* an exact share: the n-th request fails when floor(n * rate) steps up */
				uint64_t n;

				pthread_mutex_lock(&stats.lock);
				n = stats.root_seen++;
				pthread_mutex_unlock(&stats.lock);
				fail = floor((double) (n + 1) * cfg.error_rate) > floor((double) n * cfg.error_rate);
			}
		}
		if (fail)
		{
			code = 500;
			snprintf(body, sizeof(body), "injected error in version %s\n", cfg.version);
		}
		else if (path == P_HEALTH)
			snprintf(body, sizeof(body), "ok\n");
		else
			snprintf(body, sizeof(body), "hello from %s\n", cfg.version);
		ret = reply(c, code, body, "text/plain");
	}
	observe(path, code, since(&t0));
	return ret;
}

static void
usage(void)
{
	fprintf(stderr, "usage: demo-service --port PORT --version VERSION [--faults FILE] [--host ADDR]\n");
}

int
main(int argc, char **argv)
{
	const char        *faults = getenv("DEMO_FAULTS"), *host = "127.0.0.1";
	long               port = -1;
	struct sockaddr_in sa;
	struct MHD_Daemon *d;
	sigset_t           sigs;
	int                sig;

	for (int i = 1; i < argc; i++)
	{
		if (strcmp(argv[i], "--port") == 0 && i + 1 < argc)
		{
			char *end;

			errno = 0;
			port = strtol(argv[++i], &end, 10);
			if (errno || *end || port < 1 || port > 65535)
			{
				fprintf(stderr, "demo-service: --port must be from 1 to 65535\n");
				return 2;
			}
		}
		else if (strcmp(argv[i], "--version") == 0 && i + 1 < argc)
			cfg.version = argv[++i];
		else if (strcmp(argv[i], "--faults") == 0 && i + 1 < argc)
			faults = argv[++i];
		else if (strcmp(argv[i], "--host") == 0 && i + 1 < argc)
			host = argv[++i];
		else
		{
			usage();
			return 2;
		}
	}
	if (port < 0 || !cfg.version || !cfg.version[0] || strpbrk(cfg.version, "\"\\\n"))
	{
		usage();
		return 2;
	}
	if (faults && faults[0] && !read_faults(faults))
		return 2;
	clock_gettime(CLOCK_MONOTONIC, &started);

	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_port = htons((uint16_t) port);
	if (inet_pton(AF_INET, host, &sa.sin_addr) != 1)
	{
		fprintf(stderr, "demo-service: --host must be an IPv4 address\n");
		return 2;
	}

	/* only sigwait below sees these; MHD's threads inherit the mask */
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGINT);
	if (pthread_sigmask(SIG_BLOCK, &sigs, NULL) != 0 || signal(SIGPIPE, SIG_IGN) == SIG_ERR)
	{
		fprintf(stderr, "demo-service: cannot set up signals\n");
		return 1;
	}
	d = MHD_start_daemon(MHD_USE_THREAD_PER_CONNECTION | MHD_USE_POLL_INTERNAL_THREAD | MHD_USE_ERROR_LOG,
						 (uint16_t) port, NULL, NULL, on_request, NULL,
						 MHD_OPTION_SOCK_ADDR, (struct sockaddr *) &sa,
						 MHD_OPTION_CONNECTION_LIMIT, (unsigned int) 256,
						 MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int) 30,
						 MHD_OPTION_END);
	if (!d)
	{
		fprintf(stderr, "demo-service: cannot listen on %s:%ld\n", host, port);
		return 1;
	}
	fprintf(stderr, "demo-service: version %s listening on %s:%ld%s%s\n", cfg.version, host, port,
			cfg.crash_ms >= 0 ? " (will crash)" : "", cfg.error_rate > 0 ? " (will answer errors)" : "");

	for (;;)
	{
		if (cfg.crash_ms >= 0)
		{
			double          left = cfg.crash_ms / 1000.0 - since(&started);
			struct timespec ts;

			if (left <= 0)
			{
				fprintf(stderr, "demo-service: version %s crashes (injected fault)\n", cfg.version);
				_exit(1);       /* a crash: no clean shutdown */
			}
			ts.tv_sec = (time_t) left;
			ts.tv_nsec = (long) ((left - (double) ts.tv_sec) * 1e9);
			sig = sigtimedwait(&sigs, NULL, &ts);
			if (sig < 0)
				continue;       /* timed out (or EINTR): look at the clock again */
		}
		else if (sigwait(&sigs, &sig) != 0)
			continue;
		break;
	}
	fprintf(stderr, "demo-service: version %s stopping (%s)\n", cfg.version, strsignal(sig));
	MHD_stop_daemon(d);
	return 0;
}
