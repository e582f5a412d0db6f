#!/usr/bin/env bash
# Developer tool: a private copy of the machine's PostgreSQL 15 installation, so
# several working trees can `make install` and `make test` at once without
# overwriting each other's extension files. PostgreSQL finds its share and lib
# directories relative to its binaries, so the copy is self-contained.
# Usage: eval "$(bash test/private-pg.sh DIR)"   (then make install / make test)
set -euo pipefail
dir=${1:?usage: private-pg.sh DIR}
if [[ ! -x "$dir/usr/lib/postgresql/15/bin/postgres" ]]; then
  mkdir -p "$dir/usr/lib/postgresql" "$dir/usr/share/postgresql" "$dir/usr/include/postgresql"
  cp -a /usr/lib/postgresql/15 "$dir/usr/lib/postgresql/"
  cp -a /usr/share/postgresql/15 "$dir/usr/share/postgresql/"
  cp -a /usr/include/postgresql/15 "$dir/usr/include/postgresql/"
  chmod -R a+rX "$dir"
fi
# libpq's headers (for the conveyor command line) sit beside the server's in
# pg_config --includedir; copies made before they were needed get them too
if [[ ! -f "$dir/usr/include/postgresql/libpq-fe.h" && -f /usr/include/postgresql/libpq-fe.h ]]; then
  cp -a /usr/include/postgresql/*.h "$dir/usr/include/postgresql/"
  [[ -d /usr/include/postgresql/libpq ]] && cp -a /usr/include/postgresql/libpq "$dir/usr/include/postgresql/"
  chmod -R a+rX "$dir/usr/include/postgresql"
fi
echo "export PATH=$dir/usr/lib/postgresql/15/bin:\$PATH"
