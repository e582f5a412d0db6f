# conveyor: PGXS build, plus the project's commands:
#   make deps     install what the build and the tests need (Debian 12, apt-get)
#   make test     deps, build, install, then every test suite on throwaway clusters
#   make demo     start (or reuse) a local cluster in ./.demo and three conveyor-agents on
#                 loopback; push a version to real processes, then a bad one that is reverted
#                 (docs/demo.md; DEMO=sim for the simulated fleet); make demo-stop stops it all
#   make bench    benchmarks, each figure beside a baseline measured in the same run

EXTENSION   = conveyor
EXTVERSION  = $(shell sed -n "s/^default_version *= *'\(.*\)'/\1/p" conveyor.control)

MODULE_big  = conveyor
OBJS        = $(patsubst %.c,%.o,$(sort $(wildcard src/*.c)))

# Install and update scripts for every version, assembled from src/sql/<version>/
SQL_VERSIONS = $(shell ls -d src/sql/*/ | xargs -n1 basename | sort -V)
SQL_SOURCES  = $(wildcard src/sql/*/*.sql) src/sql/finish.sql src/sql/assemble.sh
SQL_UPDATES  = $(shell p=; for v in $(SQL_VERSIONS); do [ -n "$$p" ] && echo conveyor--$$p--$$v.sql; p=$$v; done)
DATA_built   = $(foreach v,$(SQL_VERSIONS),conveyor--$(v).sql) $(SQL_UPDATES)
EXTRA_CLEAN  = $(DATA_built) agent/conveyor-agent agent/demo-service cli/conveyor test/http/bench_endpoint

PG_CONFIG  ?= pg_config
PG_CPPFLAGS = -DCONVEYOR_BACKEND -I$(srcdir)/src
PG_CFLAGS   = -Wall -Wextra -Werror -Wno-unused-parameter -Wno-sign-compare \
              -Wno-missing-field-initializers -Wno-clobbered
SHLIB_LINK  = -lcurl -lcjson

PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

$(DATA_built) &: $(SQL_SOURCES)
	bash src/sql/assemble.sh .

# The reference push-type agent and its demo service (docs/agent.md): plain
# programs beside the extension, built by `make` but not installed.
AGENT_CFLAGS = -std=gnu11 -O2 -g -Wall -Wextra -Werror -pthread
AGENT_SRCS   = $(filter-out agent/demo-service.c,$(sort $(wildcard agent/*.c)))

all: agent/conveyor-agent agent/demo-service

agent/conveyor-agent: $(AGENT_SRCS) agent/agent.h agent/endpoint.h
	$(CC) $(AGENT_CFLAGS) -o $@ $(AGENT_SRCS) -lmicrohttpd -ljansson -lcurl

agent/demo-service: agent/demo-service.c
	$(CC) $(AGENT_CFLAGS) -o $@ $< -lmicrohttpd -lm

# The benchmark endpoint (test/http/bench_endpoint.c): a fast push-type
# endpoint for make bench and the agent suite; built on demand, not by `make`
# and never installed.
test/http/bench_endpoint: test/http/bench_endpoint.c agent/endpoint.c agent/endpoint.h
	$(CC) $(AGENT_CFLAGS) -Iagent -o $@ test/http/bench_endpoint.c agent/endpoint.c -lmicrohttpd -ljansson

# The conveyor command line (cli/, docs/cli.md): a libpq client, installed
# beside psql in PostgreSQL's bindir.
CLI_SOURCES = $(sort $(wildcard cli/*.c))
CLI_CFLAGS  = -std=gnu11 -O2 -g -Wall -Wextra -Werror -I$(shell $(PG_CONFIG) --includedir)
CLI_LIBS    = -L$(shell $(PG_CONFIG) --libdir) -lpq

all: cli/conveyor

cli/conveyor: $(CLI_SOURCES) $(wildcard cli/*.h)
	$(CC) $(CLI_CFLAGS) -o $@ $(CLI_SOURCES) $(CLI_LIBS)

install: install-cli

.PHONY: install-cli
install-cli: cli/conveyor
	$(MKDIR_P) '$(DESTDIR)$(bindir)'
	$(INSTALL_PROGRAM) cli/conveyor '$(DESTDIR)$(bindir)/conveyor'

.PHONY: deps test demo demo-stop bench unit

deps:
	@bash test/deps.sh

unit:
	@bash test/unit/run.sh

test: deps
	$(MAKE) all
	$(MAKE) install
	@bash test/run-tests.sh

demo: deps
	$(MAKE) all
	$(MAKE) install
	@bash test/demo.sh start

demo-stop:
	@bash test/demo.sh stop

bench: deps
	$(MAKE) all
	$(MAKE) install
	@bash test/bench/run.sh
