#!/usr/bin/env bash
# Cross-check reducers.txt against PostgreSQL itself: load every case's samples
# into a table and compute each reducer with the hand-written SQL a user would
# write (float8 aggregates, percentile_cont, a window for rate), then compare
# with the expected values at 1e-9 relative (bit for bit for min, max, count
# and the percentiles).  Where float8 disagrees, the same SQL over numeric
# (exact sums) decides: if numeric agrees with the vectors, the difference is
# float8 rounding inside PostgreSQL's aggregate (its sum adds naively, its
# stddev_samp loses digits under a large offset), reported but accepted.
# Not part of the unit suite: run it by hand after regenerating the vectors,
# with the usual PG* variables (or psql defaults) pointing at any scratch
# database; it creates only temporary tables.
#   bash test/unit/vectors/health/check_with_postgres.sh
# Prints one line per disagreement and exits non-zero if any is unexpected.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
tmp=$(mktemp -d /tmp/cv-health-sqlcheck.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
chmod 755 "$tmp"

# reducers.txt -> samples.csv (case, idx, ts, value) and expected.csv (case, reducer, value)
awk -v S="$tmp/samples.csv" -v E="$tmp/expected.csv" '
  /^#/ { next }
  $1 == "case" { c = $2; idx = 0; next }
  $1 == "samples" || $1 == "end" { next }
  $1 == "expect" { print c "," $2 "," ($3 == "nodata" ? "" : $3) > E; next }
  NF == 2 { print c "," idx++ "," $1 "," $2 > S }' "$here/reducers.txt"
chmod 644 "$tmp"/*.csv

psql -X -q -v ON_ERROR_STOP=1 <<SQL
CREATE TEMP TABLE samples (case_name text, idx int, ts float8, value float8);
CREATE TEMP TABLE expected (case_name text, reducer text, value float8);
\copy samples FROM '$tmp/samples.csv' WITH (FORMAT csv)
\copy expected FROM '$tmp/expected.csv' WITH (FORMAT csv)
-- float8 -> numeric keeping every digit that matters: the cast alone keeps 15
-- significant digits, so take the integer part as bigint (exact) and cast
-- only the remainder, which float8 subtraction computes exactly.
CREATE FUNCTION pg_temp.exact(x float8) RETURNS numeric LANGUAGE sql IMMUTABLE
  AS 'SELECT round(x)::bigint::numeric + (x - round(x))::numeric';
CREATE TEMP VIEW by_sql AS
  WITH c AS (SELECT DISTINCT case_name FROM expected),
  agg AS (
    SELECT case_name, avg(value) AS avg, min(value) AS min, max(value) AS max,
           sum(value) AS sum, count(value)::float8 AS count, stddev_samp(value) AS stddev,
           percentile_cont(0.5) WITHIN GROUP (ORDER BY value) AS p50,
           percentile_cont(0.9) WITHIN GROUP (ORDER BY value) AS p90,
           percentile_cont(0.95) WITHIN GROUP (ORDER BY value) AS p95,
           percentile_cont(0.99) WITHIN GROUP (ORDER BY value) AS p99
    FROM samples GROUP BY case_name),
  steps AS (
    SELECT case_name, ts, value, lag(value) OVER (PARTITION BY case_name ORDER BY idx) AS prev
    FROM samples),
  rate AS (
    -- increase: positive deltas, and after a drop (a reset) the whole new value
    SELECT case_name,
           sum(CASE WHEN value >= prev THEN value - prev ELSE value END) FILTER (WHERE prev IS NOT NULL)
             / nullif(max(ts) - min(ts), 0) AS rate,
           (sum(pg_temp.exact(CASE WHEN value >= prev THEN value - prev ELSE value END))
              FILTER (WHERE prev IS NOT NULL) / pg_temp.exact(nullif(max(ts) - min(ts), 0)))::float8 AS rate_n
    FROM steps GROUP BY case_name HAVING count(*) >= 2),
  num AS (
    SELECT case_name, avg(pg_temp.exact(value))::float8 AS avg, sum(pg_temp.exact(value))::float8 AS sum,
           stddev_samp(pg_temp.exact(value))::float8 AS stddev
    FROM samples GROUP BY case_name)
  SELECT c.case_name, r.reducer, r.value, r.exact_value
  FROM c LEFT JOIN agg a USING (case_name) LEFT JOIN rate USING (case_name)
  LEFT JOIN num n USING (case_name)
  CROSS JOIN LATERAL (VALUES ('avg', a.avg, n.avg), ('min', a.min, a.min), ('max', a.max, a.max),
      ('sum', a.sum, n.sum), ('count', coalesce(a.count, 0), coalesce(a.count, 0)),
      ('stddev', a.stddev, n.stddev), ('rate', rate.rate, rate.rate_n),
      ('p50', a.p50, a.p50), ('p90', a.p90, a.p90), ('p95', a.p95, a.p95),
      ('p99', a.p99, a.p99)) AS r(reducer, value, exact_value);
\pset format unaligned
\pset tuples_only on
\o $tmp/diff.txt
SELECT e.case_name, e.reducer, e.value, s.value,
       CASE WHEN abs(e.value - s.exact_value) <= 1e-9 * abs(e.value) THEN 'numeric agrees' ELSE 'numeric differs' END
FROM expected e JOIN by_sql s USING (case_name, reducer)
WHERE (e.value IS NULL) <> (s.value IS NULL)
   OR (e.reducer IN ('min', 'max', 'count', 'p50', 'p90', 'p95', 'p99') AND e.value <> s.value)
   OR abs(e.value - s.value) > 1e-9 * abs(e.value)
ORDER BY 1, 2;
\o
SELECT 'compared ' || count(*) || ' values in ' || count(DISTINCT case_name) || ' cases'
FROM expected e JOIN by_sql s USING (case_name, reducer);
SQL

unexpected=0
while IFS='|' read -r c r want got verdict; do
  [[ -z "$c" ]] && continue
  if [[ "$verdict" == "numeric agrees" ]]; then
    echo "float8 rounding in PostgreSQL: $c $r: vectors $want, float8 SQL $got, numeric SQL agrees"
  else
    echo "DIFFERENT: $c $r: vectors $want, SQL $got"
    unexpected=1
  fi
done <"$tmp/diff.txt"
[[ $unexpected -eq 0 ]] && echo "PostgreSQL agrees with reducers.txt"
exit $unexpected
