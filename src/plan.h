/*
 * plan.h - conveyor's push planner: scopes, amounts and phase targets
 *
 * Pure C with no PostgreSQL dependency, so it can be unit-tested, fuzzed and
 * benchmarked alone (test/unit/test_plan.c, test/unit/fuzz_plan.c,
 * test/bench/bench_plan.c).  The SQL layer converts rows to these structs,
 * calls cv_plan_compute() and stores the result.
 *
 * A service's fleet is a list of units (a job, a host, a tier).  Each unit has
 * a name, labels (key/value strings such as region=eu) and subunits
 * (instances), each with a name and the version it currently runs.  A push
 * plan is an ordered list of phases; each phase has a scope (which units) and
 * an amount (how many of each unit's subunits, cumulatively).
 *
 * ---------------------------------------------------------------------------
 * Scope syntax
 * ---------------------------------------------------------------------------
 *
 *   scope       := '*' | alternative ( '|' alternative )*
 *   alternative := term ( (whitespace | '&') term )*
 *   term        := ['!'] atom
 *   atom        := key '=' values | key '!=' values | glob
 *   values      := glob ( ',' glob )*
 *   glob        := one or more of [A-Za-z0-9_.:/@+-] and the wildcards * ?
 *   key         := [A-Za-z_][A-Za-z0-9_.-]*
 *
 * A unit is in scope when any alternative matches it; an alternative matches
 * when all of its terms match (terms are separated by whitespace or '&').
 *
 *   key=v1,v2   the unit has label key and its value matches glob v1 or v2
 *   key!=v1,v2  the opposite of key=v1,v2: true when the label is missing or
 *               its value matches none of the globs
 *   !term       negates a term; !key=v is the same as key!=v
 *   word        a bare glob matched against the unit name
 *   name=...    the key "name" means the unit name, not a label
 *   *           on its own, the whole scope: every unit
 *
 * In globs '*' matches any run of characters (also none) and '?' exactly
 * one character; everything else matches itself, case-sensitively.
 * Whitespace is allowed around '|', '&', '=' and '!=' and at both ends; it is
 * not allowed after '!' or around ','.  A scope is at most 1024 bytes and 64
 * terms.  A bare term made only of '*' is refused: write the scope '*' alone.
 * If a unit has the same label key twice, key=v matches when any of them does.
 *
 * Examples:
 *   *                          every unit
 *   region=eu                  units labelled region=eu
 *   region=eu,us tier=web      web units in eu or us
 *   region=eu & !tier=canary   eu units except the canary tier
 *   web-*                      units whose name starts with "web-"
 *   name=db-?? | region=ap     units db-00 .. db-zz, and every unit in ap
 *   region!=eu                 units outside eu, and units with no region
 *
 * ---------------------------------------------------------------------------
 * Amount syntax
 * ---------------------------------------------------------------------------
 *
 *   "5%", "12.5%", "100%"   a percentage of each unit's subunits, greater than
 *                           0 and at most 100, with at most 4 decimal places;
 *                           rounded up, so a 1-subunit unit at 5% gets 1
 *   "3"                     an absolute count per unit, 1 .. 1,000,000,
 *                           capped at the unit's size
 *
 * Surrounding whitespace is ignored.
 *
 * ---------------------------------------------------------------------------
 * Planning
 * ---------------------------------------------------------------------------
 *
 * Amounts are cumulative: phase k's target for unit u is
 *   c_k(u) = max(c_{k-1}(u), u in scope_k ? count_k(n_u) : 0)
 * where n_u is the unit's number of subunits, so a unit never shrinks.  The
 * caller appends the completion phase (scope '*', amount 100%) itself.
 *
 * Subunits already running the version count towards c_k(u) first.  The
 * others are ranked by cv_subunit_rank(seed, unit name, subunit name) and
 * taken in rank order, so the choice depends only on the seed and the names,
 * never on input order: re-planning after a crash picks the same subunits.
 */
#ifndef CV_PLAN_H
#define CV_PLAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Return codes of the parsers. */
#define CV_PARSE_OK			0
#define CV_PARSE_ERROR		1

/* Limits on scope text, enforced by cv_scope_parse(). */
#define CV_SCOPE_MAX_LEN	1024
#define CV_SCOPE_MAX_TERMS	64

/* Percentages are stored scaled by this factor: 12.5% is 125000. */
#define CV_PCT_SCALE		10000
#define CV_PCT_MAX			(100 * CV_PCT_SCALE)
/* Largest absolute count an amount may name. */
#define CV_COUNT_MAX		1000000

/* Room for cv_amount_format() output, e.g. "100.0000%" or "1000000". */
#define CV_AMOUNT_FORMAT_LEN 16

/* One label of a unit, e.g. region=eu. */
typedef struct CvLabel
{
	const char *key;
	const char *value;
} CvLabel;

/* One instance inside a unit and the version it runs now. */
typedef struct CvSubunit
{
	const char *name;
	const char *version;
} CvSubunit;

/* A deployable group of subunits with labels. */
typedef struct CvUnit
{
	const char *name;
	const CvLabel *labels;
	int			nlabels;
	const CvSubunit *subunits;
	int			nsubunits;
} CvUnit;

/* A compiled scope; build with cv_scope_parse(), release with cv_scope_free(). */
typedef struct CvScope CvScope;

/* A parsed amount: a scaled percentage or an absolute count. */
typedef struct CvAmount
{
	bool		is_percent;
	int64_t		scaled_pct;		/* percent * CV_PCT_SCALE, when is_percent */
	int64_t		count;			/* subunits per unit, when !is_percent */
} CvAmount;

/* One phase of a push plan as the planner sees it. */
typedef struct CvPhaseSpec
{
	const CvScope *scope;		/* NULL matches no unit */
	CvAmount	amount;
} CvPhaseSpec;

/* One subunit to update: indexes into the input units and their subunits. */
typedef struct CvTarget
{
	int			unit;
	int			subunit;
} CvTarget;

/* The planner's answer for phases start_phase .. nphases-1. */
typedef struct CvPlan
{
	int			nphases;		/* phases planned: nphases_input - start_phase */
	int		   *phase_offset;	/* nphases+1 offsets into targets[] */
	CvTarget   *targets;		/* phase p's targets are targets[phase_offset[p]
								 * .. phase_offset[p+1]) */
	int			ntargets;
	int		   *already;		/* per planned phase: subunits already at the
								 * version that the phase's growth covers */
} CvPlan;

/*
 * Compile scope text.  Returns CV_PARSE_OK and sets *out, or returns
 * CV_PARSE_ERROR, leaves *out NULL, writes a short lower-case message to
 * errbuf (if errbuf and errlen allow) and the 0-based byte offset of the
 * problem to *errpos (if errpos is not NULL).
 */
int			cv_scope_parse(const char *text, CvScope **out,
						   char *errbuf, size_t errlen, int *errpos);

/* True when the unit is in the scope.  A NULL scope or unit matches nothing. */
bool		cv_scope_matches(const CvScope *scope, const CvUnit *unit);

/* True when the scope is the bare '*' (every unit). */
bool		cv_scope_is_all(const CvScope *scope);

/* Release a compiled scope; NULL is fine. */
void		cv_scope_free(CvScope *scope);

/* Match text against a glob ('*' any run, '?' one character). */
bool		cv_glob_match(const char *glob, const char *text);

/*
 * Parse amount text.  Returns CV_PARSE_OK and fills *out, or returns
 * CV_PARSE_ERROR and writes a short lower-case message to errbuf.
 */
int			cv_amount_parse(const char *text, CvAmount *out,
							char *errbuf, size_t errlen);

/* The number of subunits an amount means for a unit of nsubunits (0..n). */
int64_t		cv_amount_count(const CvAmount *amount, int64_t nsubunits);

/*
 * Order two amounts: <0, 0 or >0.  Meaningful only when both are the same
 * kind (both percentages or both counts): a percentage and a count cannot be
 * compared without a unit size.  Mixed kinds still give a stable total order
 * (every count sorts before every percentage) so sorting never misbehaves,
 * but "never shrinks" validation must check cv_amount_same_kind() first.
 */
int			cv_amount_compare(const CvAmount *a, const CvAmount *b);

/* True when both amounts are percentages or both are counts. */
bool		cv_amount_same_kind(const CvAmount *a, const CvAmount *b);

/* Write the canonical text of an amount ("12.5%", "3") into buf. */
void		cv_amount_format(const CvAmount *amount, char *buf, size_t buflen);

/*
 * Plan phases start_phase .. nphases-1 of a push of `version`.
 *
 * For each unit, filled(u) starts at the number of its subunits already at
 * the version.  Phases before start_phase only raise the cumulative target
 * (they are done).  For each later phase p, when c_p(u) > filled(u), the
 * next c_p(u) - filled(u) ranked subunits not at the version become phase
 * p's targets and filled(u) becomes c_p(u).  Targets within a phase are
 * ordered by unit index, then rank.
 *
 * already[p] counts the subunits already at the version that phase p's
 * growth covers: summed over units, min(A_u, c_p(u)) - min(A_u, c_{p-1}(u))
 * where A_u is the unit's count already at the version.  So for every
 * planned phase, targets + already = the growth of the cumulative target,
 * and with start_phase 0 and the completion phase appended, all targets
 * plus all already add up to the fleet's subunit count.
 *
 * out is always fully set (release with cv_plan_free()).  A start_phase
 * below 0 counts as 0; at or past nphases, no phase is planned.
 */
void		cv_plan_compute(const CvUnit *units, int nunits,
							const CvPhaseSpec *phases, int nphases,
							int start_phase, const char *version,
							uint64_t seed, CvPlan *out);

/* Release what cv_plan_compute() allocated and zero the struct. */
void		cv_plan_free(CvPlan *plan);

/* The rank of a subunit inside its unit for a seed; lower goes first. */
uint64_t	cv_subunit_rank(uint64_t seed, const char *unit, const char *subunit);

#endif							/* CV_PLAN_H */
