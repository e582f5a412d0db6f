#!/usr/bin/python3
"""Reference vectors for src/health_stats.c, computed independently.

Run from anywhere with Debian's Python and its python3-numpy/python3-scipy:
    /usr/bin/python3 test/unit/vectors/health/gen_vectors.py
It rewrites reducers.txt and mannwhitney.txt next to itself.  The inputs come
from seeded numpy generators, so a rerun with the same versions reproduces
the files byte for byte (README.md says which versions made them).

Nothing here shares code or algorithms with the C implementation:
  reducers   min/max/count by Python builtins; sum and avg by math.fsum
             (correctly rounded); stddev by statistics.stdev (exact
             rational arithmetic); percentiles by sorting the whole list and
             applying PostgreSQL's percentile_cont formula (cross-checked
             against numpy.percentile); rate by the documented rule with
             math.fsum
  U, p       scipy.stats.mannwhitneyu(new, old, method='asymptotic',
             use_continuity=True), or method='exact' for the cases the C code
             treats exactly, for the three alternatives; z from scipy's
             rankdata tie term
  k          the exact null distribution as Python integers (a product of
             q-integers with exact division), or scipy.stats.norm.isf
  HL, CI     brute force: all m*n differences new - old (numpy.subtract.outer,
             the same IEEE subtraction), fully sorted, indexed
"""
import math
import os
import statistics
import sys
from fractions import Fraction

import numpy as np
import scipy
import scipy.stats as st

HERE = os.path.dirname(os.path.abspath(__file__))
DBL_EPSILON = sys.float_info.epsilon
EXACT_LIMIT = 50          # CV_MW_EXACT_LIMIT
PERCENTILES = (("p50", 0.5), ("p90", 0.9), ("p95", 0.95), ("p99", 0.99))


def r(x):
    """Shortest text that reads back as the same double."""
    return repr(float(x))


def values_block(vals, per_line=8):
    out = []
    for i in range(0, len(vals), per_line):
        out.append(" ".join(r(v) for v in vals[i:i + per_line]))
    return out


# ---------------------------------------------------------------- reducers

def percentile_cont(sorted_vals, f):
    """PostgreSQL's percentile_cont_final_common with float8_lerp."""
    n = len(sorted_vals)
    pos = f * (n - 1)
    first = math.floor(pos)
    second = math.ceil(pos)
    lo = sorted_vals[first]
    if second == first:
        return lo
    hi = sorted_vals[second]
    return lo + (pos - first) * (hi - lo)


def rate(ts, vals):
    if len(vals) < 2 or ts[-1] == ts[0]:
        return None
    inc = []
    for i in range(1, len(vals)):
        d = vals[i] - vals[i - 1]
        inc.append(d if d >= 0 else vals[i])
    return math.fsum(inc) / (ts[-1] - ts[0])


def reducer_expectations(ts, vals):
    n = len(vals)
    e = {"count": float(n)}
    if n == 0:
        for k in ("avg", "min", "max", "sum", "stddev", "rate") + tuple(p for p, _ in PERCENTILES):
            e[k] = None
        return e
    e["avg"] = math.fsum(vals) / n
    e["sum"] = math.fsum(vals)
    e["min"] = min(vals)
    e["max"] = max(vals)
    e["stddev"] = statistics.stdev(vals) if n >= 2 else None
    s = sorted(vals)
    for name, f in PERCENTILES:
        v = percentile_cont(s, f)
        ref = float(np.percentile(np.array(vals), 100 * f))
        assert abs(v - ref) <= 1e-12 * max(1.0, abs(ref)), (name, v, ref)
        e[name] = v
    e["rate"] = rate(ts, vals)
    return e


def reducer_cases():
    cases = []

    def add(name, ts, vals):
        cases.append((name, [float(t) for t in ts], [float(v) for v in vals]))

    g = np.random.default_rng(101)
    ts = np.cumsum(g.uniform(10, 20, 2000)) + 1.7e9
    add("normal_2000", ts, g.normal(50.0, 7.5, 2000))

    g = np.random.default_rng(102)
    add("ties_small_ints_3000", np.arange(3000) * 15.0, g.integers(0, 4, 3000))

    g = np.random.default_rng(103)
    add("lognormal_heavy_5000", np.arange(5000) * 1.0, g.lognormal(3.0, 2.0, 5000))

    # A request counter scraped every ~15 s that restarts three times.
    g = np.random.default_rng(104)
    inc = g.poisson(40, 1200).astype(float)
    counter = np.cumsum(inc)
    for at in (300, 701, 1100):
        counter[at:] -= counter[at - 1] - g.integers(0, 30)
    ts = np.cumsum(g.uniform(14.0, 16.0, 1200))
    add("counter_resets_1200", ts, counter)

    # Large offset, tiny spread: a naive sum of squares loses every digit.
    g = np.random.default_rng(105)
    add("offset_1e9_tiny_spread", np.arange(1000) * 60.0, 1e9 + g.normal(0, 1e-3, 1000))

    g = np.random.default_rng(106)
    add("negative_values_777", np.arange(777) * 2.0, g.normal(-250.0, 80.0, 777))

    # Duplicate timestamps are allowed; only the span matters for rate.
    # Cancellation: a naive running sum loses the small terms entirely.
    add("cancellation", [0, 1, 2, 3, 4, 5], [1e16, 1.0, -1e16, 1.0, 3.0, 0.5])
    add("duplicate_ts", [0, 0, 10, 10, 30], [1, 3, 4, 10, 12])
    add("equal_values_10", np.arange(10.0), [7.25] * 10)
    add("three", [100, 110, 130], [3.0, 1.0, 2.0])
    add("two", [5, 65], [10.0, 70.0])
    add("one", [42], [3.5])
    add("empty", [], [])
    add("reset_to_zero", [0, 10, 20, 30], [100, 150, 0, 40])
    add("span_zero", [7, 7, 7], [1, 2, 3])
    return cases


def write_reducers(path):
    lines = ["# reducers: generated by gen_vectors.py, do not edit",
             "# case NAME / samples N / N lines 'ts value' / expect REDUCER VALUE|nodata / end"]
    for name, ts, vals in reducer_cases():
        e = reducer_expectations(ts, vals)
        lines.append("case " + name)
        lines.append("samples %d" % len(vals))
        for t, v in zip(ts, vals):
            lines.append(r(t) + " " + r(v))
        for k in ("avg", "min", "max", "sum", "count", "rate", "stddev", "p50", "p90", "p95", "p99"):
            lines.append("expect %s %s" % (k, "nodata" if e[k] is None else r(e[k])))
        lines.append("end")
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")


# ----------------------------------------------------------- Mann-Whitney

def exact_counts(m, n):
    """Orderings of m old and n new values by U: coefficients of the
    Gaussian binomial [m+n choose m]_q = prod_i (1 - q^(n+i)) / (1 - q^i),
    in exact integers (multiply, then divide exactly)."""
    poly = [1]
    for i in range(1, m + 1):
        grown = poly + [0] * (n + i)
        for u in range(len(grown) - 1, n + i - 1, -1):   # times (1 - q^(n+i))
            grown[u] -= grown[u - (n + i)]
        for u in range(i, len(grown)):                   # divided by (1 - q^i)
            grown[u] += grown[u - i]
        while len(grown) > 1 and grown[-1] == 0:
            grown.pop()
        poly = grown
    assert len(poly) == m * n + 1 and sum(poly) == math.comb(m + n, m)
    return poly


def tie_term(pooled):
    _, t = np.unique(pooled, return_counts=True)
    t = t.astype(object)     # Python integers: exact
    return sum(x ** 3 - x for x in t)


def mw_case(name, old, new, confidence=0.98, method="auto"):
    old = [float(v) for v in old]
    new = [float(v) for v in new]
    m, n = len(old), len(new)
    mn = m * n
    pooled = np.array(old + new)
    ties = len(np.unique(pooled)) < m + n
    exact = method == "auto" and not ties and m < EXACT_LIMIT and n < EXACT_LIMIT
    how = "exact" if exact else "asymptotic"
    res = {a: st.mannwhitneyu(new, old, alternative=a, method=how, use_continuity=True)
           for a in ("two-sided", "greater", "less")}
    u = float(res["two-sided"].statistic)
    mu = mn / 2
    N = m + n
    sigma = math.sqrt(mn / 12 * ((N + 1) - float(tie_term(pooled)) / (N * (N - 1))))
    d = u - mu
    z = 0.0 if d == 0 else (d - math.copysign(0.5, d)) / sigma

    alpha = 1.0 - confidence
    if exact:
        counts = exact_counts(m, n)
        total = sum(counts)
        target = Fraction(alpha / 2) - Fraction(10 * DBL_EPSILON)
        cum = 0
        q = None
        for qq, c in enumerate(counts):
            cum += c
            if Fraction(cum, total) >= target:
                # A value this close to the target could round the other way in C.
                assert abs(Fraction(cum, total) - target) > Fraction(1, 10 ** 12) * target, name
                q = qq
                break
        k = q
        cdf = lambda x: Fraction(sum(counts[:x + 1]), total) if x >= 0 else Fraction(0)
    else:
        kreal = mu - 0.5 - st.norm.isf(alpha / 2) * sigma
        assert abs(kreal - round(kreal)) > 1e-6, (name, kreal)
        k = math.ceil(kreal)
    reached = k >= 1
    k = max(1, min(k, (mn + 1) // 2))
    if exact:
        achieved = float(1 - 2 * cdf(k - 1))
    else:
        achieved = 1 - 2 * float(st.norm.cdf((k - 1 + 0.5 - mu) / sigma))

    diffs = np.subtract.outer(np.array(new), np.array(old)).ravel()
    diffs.sort(kind="stable")
    if mn % 2:
        hl = float(diffs[(mn - 1) // 2])
    else:
        hl = 0.5 * float(diffs[mn // 2 - 1]) + 0.5 * float(diffs[mn // 2])
    lo = float(diffs[k - 1])
    hi = float(diffs[mn - k])

    # Kayenta's classification with the default tolerance.
    band = 0.25 * abs(hl)
    shift = "high" if lo > band else "low" if hi < -band else "none"

    return {
        "name": name, "confidence": confidence, "method": method,
        "old": old, "new": new, "exact": int(exact), "ties": int(ties),
        "u": u, "z": z, "sigma": sigma,
        "p_two_sided": float(res["two-sided"].pvalue),
        "p_greater": float(res["greater"].pvalue),
        "p_less": float(res["less"].pvalue),
        "ci_k": k, "ci_reached": int(reached), "ci_achieved": achieved,
        "hl": hl, "ci_low": lo, "ci_high": hi, "shift": shift,
    }


def mw_cases():
    out = []
    g = np.random.default_rng(201)
    out.append(mw_case("exact_tiny_shift", g.normal(0, 1, 5), g.normal(1.0, 1, 7)))
    g = np.random.default_rng(202)
    out.append(mw_case("exact_small_same", g.normal(10, 2, 20), g.normal(10, 2, 25)))
    g = np.random.default_rng(203)
    out.append(mw_case("exact_small_shift", g.normal(10, 2, 30), g.normal(12, 2, 40)))
    g = np.random.default_rng(204)
    out.append(mw_case("exact_limit_49x49", g.normal(0, 1, 49), g.normal(-0.6, 1, 49)))
    g = np.random.default_rng(205)
    out.append(mw_case("asymptotic_forced_small", g.normal(0, 1, 20), g.normal(0.8, 1, 25),
                       method="asymptotic"))
    g = np.random.default_rng(206)
    out.append(mw_case("asymptotic_50x49", g.normal(0, 1, 50), g.normal(0.3, 1, 49)))
    g = np.random.default_rng(207)
    out.append(mw_case("ties_small_ints", g.integers(0, 6, 30), g.integers(1, 7, 30)))
    g = np.random.default_rng(208)
    out.append(mw_case("medium_same_2000", g.normal(100, 15, 2000), g.normal(100, 15, 2000)))
    g = np.random.default_rng(209)
    out.append(mw_case("medium_shift_2000x2100", g.normal(100, 15, 2000), g.normal(101.5, 15, 2100)))
    g = np.random.default_rng(210)
    out.append(mw_case("medium_ties_poisson", g.poisson(3.0, 2000), g.poisson(3.3, 2000)))
    g = np.random.default_rng(211)
    out.append(mw_case("heavy_cauchy_2000x1800", g.standard_cauchy(2000), g.standard_cauchy(1800) - 0.2))
    g = np.random.default_rng(212)
    out.append(mw_case("latency_lognormal_decrease", g.lognormal(4.0, 1.0, 1900), g.lognormal(3.8, 1.0, 2000),
                       confidence=0.95))
    g = np.random.default_rng(216)
    out.append(mw_case("medium_increase_high", g.normal(100, 15, 2000), g.normal(103, 15, 2000)))
    g = np.random.default_rng(217)
    out.append(mw_case("errors_poisson_2_vs_4", g.poisson(2.0, 1500), g.poisson(4.0, 1500)))
    out.append(mw_case("constant_0_vs_5", [0.0] * 50, [5.0] * 60))
    g = np.random.default_rng(213)
    same = g.normal(0, 1, 300)
    out.append(mw_case("identical_samples", same, g.permutation(same)))
    out.append(mw_case("one_each", [1.0], [2.0]))
    g = np.random.default_rng(214)
    out.append(mw_case("one_vs_200", [0.5], g.normal(0, 1, 200)))
    g = np.random.default_rng(215)
    out.append(mw_case("exact_even_mn_4x6", g.normal(0, 1, 4), g.normal(0.5, 1, 6), confidence=0.9))
    return out


def write_mw(path):
    lines = ["# mannwhitney: generated by gen_vectors.py, do not edit",
             "# case NAME / confidence C / method auto|asymptotic / old M + values / new N + values /",
             "# expected numbers / shift high|low|none (Kayenta, tolerance 0.25, either direction) / end"]
    for c in mw_cases():
        lines.append("case " + c["name"])
        lines.append("confidence " + r(c["confidence"]))
        lines.append("method " + c["method"])
        lines.append("old %d" % len(c["old"]))
        lines.extend(values_block(c["old"]))
        lines.append("new %d" % len(c["new"]))
        lines.extend(values_block(c["new"]))
        for k in ("exact", "ties", "ci_k", "ci_reached"):
            lines.append("%s %d" % (k, c[k]))
        for k in ("u", "z", "sigma", "p_two_sided", "p_greater", "p_less", "ci_achieved",
                  "hl", "ci_low", "ci_high"):
            lines.append("%s %s" % (k, r(c[k])))
        lines.append("shift " + c["shift"])
        lines.append("end")
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")


def main():
    write_reducers(os.path.join(HERE, "reducers.txt"))
    write_mw(os.path.join(HERE, "mannwhitney.txt"))
    print("python %s, numpy %s, scipy %s" % (sys.version.split()[0], np.__version__, scipy.__version__))


if __name__ == "__main__":
    main()
