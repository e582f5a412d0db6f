/*
 * conveyor-agent: the reference endpoint of conveyor's push-type protocol
 * (docs/push-type-protocol.md) for the processes of one host.
 *
 * Threads: the main thread waits for signals; libmicrohttpd serves requests
 * on its own threads (api.c); every instance has one supervising thread
 * (supervise.c) that starts, stops, reaps and probes its process. All shared
 * state below is guarded by agent.lock, which is never held across a
 * blocking call (a process stop, a probe, a sleep).
 */
#ifndef CONVEYOR_AGENT_H
#define CONVEYOR_AGENT_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <jansson.h>

#define AGENT_PROTOCOL      1
#define AGENT_VERSION_MAX   128   /* version strings (bytes) */
#define AGENT_KEY_HISTORY   16    /* update keys remembered per instance */
#define AGENT_REASON_MAX    200

/* The lifecycle of one instance, as reported by GET /v1/units. */
typedef enum
{
	INST_OK,        /* started on its version, passed its start probe */
	INST_UPDATING,  /* an update or a restart is in progress */
	INST_FAILED     /* its version did not come up, or its process died */
} inst_status;

/* An update key this instance has answered, with the answer to repeat. */
typedef struct
{
	char   *key;        /* NULL: empty slot */
	char    status;     /* 'a' accepted, 'd' done */
} key_entry;

struct unit;

typedef struct instance
{
	struct unit *unit;
	int          index;       /* subunit name is this number in decimal */
	char         name[16];
	int          port;
	pthread_t    thread;
	bool         thread_started;
	pthread_cond_t wake;      /* signalled when desired/want_gen change or on shutdown */

	/* guarded by agent.lock */
	char        *desired;     /* the version it must run (persisted) */
	char        *running;     /* the version of the current process; NULL if none */
	inst_status  status;
	char         reason[AGENT_REASON_MAX];
	pid_t        pid;         /* 0: no process */
	uint64_t     want_gen;    /* bumped by every accepted update */
	uint64_t     done_gen;    /* the generation the thread last carried out */
	key_entry    keys[AGENT_KEY_HISTORY];
	int          keys_next;   /* ring position of the next key */
	uint64_t     seen_seq;    /* the last update request that named it (finds duplicates) */

	/* metrics, guarded by agent.lock */
	uint64_t     restarts_update;
	uint64_t     restarts_crash;
	uint64_t     probes_ok;
	uint64_t     probes_failed;
	double       probe_seconds;   /* duration of the last probe */
	bool         probe_passed;    /* result of the last probe */
} instance;

typedef struct unit
{
	char        *name;
	json_t      *labels;          /* object of strings (owned) */
	int          ninstances;
	int          base_port;
	char       **command;         /* argv template, NULL-terminated */
	char        *health_path;
	char        *initial_version;
	int          max_updating;    /* task control: 0 = no limit */
	instance    *instances;
} unit;

typedef struct
{
	/* configuration (read-only after start-up) */
	char        *config_path;
	char        *listen_host;
	int          listen_port;
	char        *token;
	char        *state_dir;
	char        *probe_host;
	int          grace_ms;
	int          start_timeout_ms;
	int          min_uptime_ms;
	int          probe_timeout_ms;
	int          probe_interval_ms;
	size_t       max_body_bytes;
	unit        *units;
	int          nunits;

	/* runtime */
	pthread_mutex_t lock;
	bool         stopping;        /* guarded by lock */
	int          lock_fd;         /* flock on the state directory */
} agent_t;

extern agent_t agent;

/* log.c-style helper (main.c): one line on stderr with a timestamp */
void agent_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* config.c */
bool config_load(const char *path, char *err, size_t errlen);
void config_free(void);
bool version_is_valid(const char *v);
unit *unit_find(const char *name);
instance *instance_find(unit *u, const char *subunit);

/* state.c: which version each instance must run, and its recent update keys */
bool state_load(char *err, size_t errlen);
bool state_save(char *err, size_t errlen);     /* caller holds agent.lock */
void keys_remember(instance *in, const char *key, char status);
char keys_lookup(instance *in, const char *key);

/* supervise.c */
bool supervise_start(char *err, size_t errlen);
void supervise_stop(void);
const char *inst_status_name(inst_status s);
bool instance_set_desired(instance *in, const char *version); /* caller holds lock */

/* probe.c: HTTP health probes through libcurl */
typedef struct
{
	int     port;
	const char *path;
	bool    passed;
	long    http_code;       /* 0: no answer */
	double  seconds;
	char    error[128];
} probe_t;
void probe_many(probe_t *probes, int n);

/* api.c */
bool api_start(char *err, size_t errlen);
void api_stop(void);

#endif
