#!/usr/bin/env bash
# Unit tests of the pure C cores, built without PostgreSQL: test/unit/test_NAME.c
# is linked with src/NAME.c. Usage: run.sh [BUILD_DIR]
set -uo pipefail
src=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
out=${1:-$(mktemp -d /tmp/conveyor-unit.XXXXXX)}
mkdir -p "$out"
rc=0
shopt -s nullglob
for t in "$src"/test/unit/test_*.c; do
  name=$(basename "$t" .c)
  core="$src/src/${name#test_}.c"
  if ! gcc -std=gnu99 -O1 -g -Wall -Wextra -Werror -fsanitize=address,undefined -fno-sanitize-recover=all \
       -I"$src/src" "$core" "$t" -lm -o "$out/$name" 2>"$out/$name.build"; then
    echo "unit: build failed: $name"; cat "$out/$name.build"; rc=1; continue
  fi
  echo "-- $name"
  "$out/$name" || rc=1
done
exit $rc
