# conveyor: PGXS build, plus the project's commands:
#   make deps     install what the build and the tests need (Debian 12, apt-get)
#   make test     deps, build, install, then every test suite on throwaway clusters
#   make demo     start (or reuse) a local cluster in ./.demo with conveyor and show a push
#   make bench    benchmarks, each figure beside a baseline measured in the same run

EXTENSION   = conveyor
EXTVERSION  = $(shell sed -n "s/^default_version *= *'\(.*\)'/\1/p" conveyor.control)

MODULE_big  = conveyor
OBJS        = $(patsubst %.c,%.o,$(sort $(wildcard src/*.c)))
DATA_built  = conveyor--$(EXTVERSION).sql
# frozen install scripts of released versions, and the upgrade scripts between them
DATA        = $(wildcard src/released/*.sql) $(wildcard src/updates/*.sql)
EXTRA_CLEAN = conveyor--$(EXTVERSION).sql

PG_CONFIG  ?= pg_config
PG_CPPFLAGS = -DCONVEYOR_BACKEND -I$(srcdir)/src
PG_CFLAGS   = -Wall -Wextra -Werror -Wno-unused-parameter -Wno-sign-compare \
              -Wno-missing-field-initializers -Wno-clobbered
SHLIB_LINK  = -lcurl

PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

# The installed script is assembled from the SQL sources, in name order.
conveyor--$(EXTVERSION).sql: $(sort $(wildcard src/sql/*.sql))
	cat $^ > $@

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
