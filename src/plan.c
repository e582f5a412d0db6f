/*
 * plan.c - conveyor's push planner: scope and amount parsing, scope
 * matching and the choice of subunits each phase of a push updates
 *
 * Pure C: no PostgreSQL headers beyond what cv_alloc.h pulls in for the
 * backend build, no backend calls.  See plan.h for the syntax and semantics.
 */
#include "cv_alloc.h"
#include "plan.h"

#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------------
 * Compiled scope
 * ------------------------------------------------------------------------ */

/*
 * Every value is a non-empty run of source bytes followed by at least one
 * other byte (or the end), so a scope of CV_SCOPE_MAX_LEN bytes holds at most
 * this many globs.
 */
#define CV_SCOPE_MAX_VALUES ((CV_SCOPE_MAX_LEN + 1) / 2)

/*
 * Every copied token is a run of source bytes plus its terminating NUL, and
 * tokens do not overlap, so twice the text length bounds the arena.
 */
#define CV_SCOPE_ARENA_LEN	(2 * CV_SCOPE_MAX_LEN + 2)

/* One term of an alternative: a negatable name glob or label match. */
typedef struct CvTerm
{
	bool		negate;			/* '!' or '!=' flips the result */
	bool		is_label;		/* key=values; otherwise a glob on the name */
	bool		key_is_name;	/* key "name" reads the unit name */
	const char *key;			/* label key, when is_label */
	int			first_value;	/* globs are values[first_value ..] */
	int			nvalues;
} CvTerm;

/*
 * The scope is one fixed-size block: parsing never reallocates and freeing
 * is a single cv_free, which keeps the fuzzer and the backend build simple.
 * The limits make it a few kilobytes, and there is one per phase.
 */
struct CvScope
{
	bool		is_all;			/* the bare '*' */
	int			nterms;
	int			nalts;
	int			alt_end[CV_SCOPE_MAX_TERMS];	/* alternative a's terms end
												 * (exclusive) at alt_end[a] */
	CvTerm		terms[CV_SCOPE_MAX_TERMS];
	int			nvalues;
	const char *values[CV_SCOPE_MAX_VALUES];
	bool		literal[CV_SCOPE_MAX_VALUES];	/* no wildcard: strcmp will do */
	int			arena_used;
	char		arena[CV_SCOPE_ARENA_LEN];
};

/* Parser state for one cv_scope_parse() call. */
typedef struct ScopeParser
{
	const char *text;
	int			pos;			/* next byte to read */
	int			end;			/* one past the last non-space byte */
	CvScope    *scope;
	char	   *errbuf;
	size_t		errlen;
	int		   *errpos;
} ScopeParser;

/* Whitespace as the C locale sees it, without depending on the locale. */
static bool
is_space(unsigned char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' ||
		c == '\f' || c == '\v';
}

/* ASCII letter or digit, without depending on the locale. */
static bool
is_alnum(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		(c >= '0' && c <= '9');
}

/* Bytes a glob may contain: name characters and the two wildcards. */
static bool
is_glob_char(unsigned char c)
{
	return is_alnum(c) || c == '_' || c == '.' || c == ':' || c == '/' ||
		c == '@' || c == '+' || c == '-' || c == '*' || c == '?';
}

/* Bytes a label key may start with. */
static bool
is_key_start(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}

/* Bytes a label key may continue with. */
static bool
is_key_char(unsigned char c)
{
	return is_alnum(c) || c == '_' || c == '.' || c == '-';
}

/* Write a formatted message to a caller's buffer, if it gave one. */
static void
write_message(char *errbuf, size_t errlen, const char *fmt, va_list ap)
{
	if (errbuf == NULL || errlen == 0)
		return;
	vsnprintf(errbuf, errlen, fmt, ap);
}

/* Record a scope syntax error at a byte offset; returns CV_PARSE_ERROR. */
__attribute__((format(printf, 3, 4)))
static int
scope_error(ScopeParser *p, int pos, const char *fmt,...)
{
	va_list		ap;

	va_start(ap, fmt);
	write_message(p->errbuf, p->errlen, fmt, ap);
	va_end(ap);
	if (p->errpos)
		*p->errpos = pos;
	return CV_PARSE_ERROR;
}

/* Describe the byte at pos for a message: "x" when printable, else its code. */
static void
describe_byte(unsigned char c, char *buf, size_t buflen)
{
	if (c >= 0x21 && c <= 0x7e)
		snprintf(buf, buflen, "\"%c\"", c);
	else if (c == ' ')
		snprintf(buf, buflen, "space");
	else
		snprintf(buf, buflen, "byte 0x%02x", c);
}

/* Error for a byte that cannot appear where it stands. */
static int
scope_unexpected(ScopeParser *p, int pos)
{
	char		what[16];

	describe_byte((unsigned char) p->text[pos], what, sizeof(what));
	return scope_error(p, pos, "unexpected %s in scope", what);
}

/* Advance past whitespace, never beyond the trimmed end. */
static void
skip_space(ScopeParser *p)
{
	while (p->pos < p->end && is_space((unsigned char) p->text[p->pos]))
		p->pos++;
}

/* Copy text[from..to) into the arena as a NUL-terminated string. */
static const char *
arena_copy(CvScope *scope, const char *text, int from, int to)
{
	int			len = to - from;
	char	   *dst;

	/* The arena bound is proven above; guard it anyway rather than overrun. */
	if (len < 0 || scope->arena_used + len + 1 > CV_SCOPE_ARENA_LEN)
		cv_fail("scope arena overflow");
	dst = scope->arena + scope->arena_used;
	memcpy(dst, text + from, len);
	dst[len] = '\0';
	scope->arena_used += len + 1;
	return dst;
}

/* Store one glob text[from..to) as the next value of the scope. */
static void
add_value(CvScope *scope, const char *text, int from, int to)
{
	const char *glob;

	if (scope->nvalues >= CV_SCOPE_MAX_VALUES)
		cv_fail("scope value overflow");
	glob = arena_copy(scope, text, from, to);
	scope->values[scope->nvalues] = glob;
	scope->literal[scope->nvalues] = strpbrk(glob, "*?") == NULL;
	scope->nvalues++;
}

/* Parse the globs after '=' or '!=' into the current term. */
static int
parse_values(ScopeParser *p, CvTerm *term, const char *op)
{
	const char *after = op;

	term->first_value = p->scope->nvalues;
	for (;;)
	{
		int			from = p->pos;

		while (p->pos < p->end && is_glob_char((unsigned char) p->text[p->pos]))
			p->pos++;
		if (p->pos == from)
			return scope_error(p, p->pos, "expected a value after \"%s\"", after);
		add_value(p->scope, p->text, from, p->pos);
		term->nvalues++;
		/* No whitespace around ',': a space separates terms. */
		if (p->pos < p->end && p->text[p->pos] == ',')
		{
			p->pos++;
			after = ",";
			continue;
		}
		return CV_PARSE_OK;
	}
}

/* Check that text[from..to) is a valid label key. */
static int
check_key(ScopeParser *p, int from, int to)
{
	int			i;

	if (!is_key_start((unsigned char) p->text[from]))
		return scope_error(p, from,
						   "label key must start with a letter or \"_\"");
	for (i = from + 1; i < to; i++)
	{
		if (!is_key_char((unsigned char) p->text[i]))
		{
			char		what[16];

			describe_byte((unsigned char) p->text[i], what, sizeof(what));
			return scope_error(p, i, "invalid character %s in label key", what);
		}
	}
	return CV_PARSE_OK;
}

/* Parse one term at p->pos; `after` names the token before it, for messages. */
static int
parse_term(ScopeParser *p, const char *after)
{
	CvScope    *scope = p->scope;
	CvTerm	   *term;
	int			start = p->pos;
	int			word_from;
	int			word_to;
	int			q;
	unsigned char c;

	/* A missing term reads best as "expected a term after X". */
	if (p->pos >= p->end || p->text[p->pos] == '|' || p->text[p->pos] == '&' ||
		p->text[p->pos] == ',')
	{
		if (after)
			return scope_error(p, p->pos, "expected a term after \"%s\"", after);
		return scope_error(p, p->pos, "expected a term");
	}
	if (scope->nterms >= CV_SCOPE_MAX_TERMS)
		return scope_error(p, start, "too many terms in scope (at most %d)",
						   CV_SCOPE_MAX_TERMS);
	term = &scope->terms[scope->nterms];
	memset(term, 0, sizeof(*term));

	if (p->text[p->pos] == '!')
	{
		term->negate = true;
		p->pos++;
		if (p->pos >= p->end ||
			(!is_glob_char((unsigned char) p->text[p->pos]) &&
			 p->text[p->pos] != '='))
			return scope_error(p, p->pos, "expected a term after \"!\"");
	}
	c = (unsigned char) p->text[p->pos];
	if (c == '=')
		return scope_error(p, p->pos, "missing label key before \"=\"");
	if (!is_glob_char(c))
		return scope_unexpected(p, p->pos);

	word_from = p->pos;
	while (p->pos < p->end && is_glob_char((unsigned char) p->text[p->pos]))
		p->pos++;
	word_to = p->pos;

	/* Look past optional whitespace for '=' or '!=' to tell a label match. */
	q = p->pos;
	while (q < p->end && is_space((unsigned char) p->text[q]))
		q++;
	if (q < p->end && (p->text[q] == '=' ||
					   (p->text[q] == '!' && q + 1 < p->end &&
						p->text[q + 1] == '=')))
	{
		const char *op = p->text[q] == '=' ? "=" : "!=";
		int			rc;

		if ((rc = check_key(p, word_from, word_to)) != CV_PARSE_OK)
			return rc;
		term->is_label = true;
		term->key = arena_copy(scope, p->text, word_from, word_to);
		term->key_is_name = strcmp(term->key, "name") == 0;
		/* key!=v is defined as the negation of key=v. */
		if (op[0] == '!')
			term->negate = !term->negate;
		p->pos = q + (int) strlen(op);
		skip_space(p);
		if ((rc = parse_values(p, term, op)) != CV_PARSE_OK)
			return rc;
	}
	else
	{
		int			i;
		bool		only_stars = true;

		for (i = word_from; i < word_to; i++)
			if (p->text[i] != '*')
				only_stars = false;
		if (only_stars)
			return scope_error(p, word_from,
							   "\"*\" must be the whole scope when it stands alone");
		term->first_value = scope->nvalues;
		term->nvalues = 1;
		add_value(scope, p->text, word_from, word_to);
	}
	scope->nterms++;
	return CV_PARSE_OK;
}

/* Parse terms joined by whitespace or '&' up to a '|' or the end. */
static int
parse_alternative(ScopeParser *p, const char *after)
{
	int			rc;

	if ((rc = parse_term(p, after)) != CV_PARSE_OK)
		return rc;
	for (;;)
	{
		int			before_space = p->pos;

		skip_space(p);
		if (p->pos >= p->end || p->text[p->pos] == '|')
			break;
		if (p->text[p->pos] == '&')
		{
			p->pos++;
			skip_space(p);
			rc = parse_term(p, "&");
		}
		else if (p->pos > before_space)
			rc = parse_term(p, NULL);
		else
			return scope_unexpected(p, p->pos);
		if (rc != CV_PARSE_OK)
			return rc;
	}
	p->scope->alt_end[p->scope->nalts++] = p->scope->nterms;
	return CV_PARSE_OK;
}

/* Parse alternatives joined by '|' over the whole trimmed text. */
static int
parse_alternatives(ScopeParser *p)
{
	const char *after = NULL;
	int			rc;

	for (;;)
	{
		if ((rc = parse_alternative(p, after)) != CV_PARSE_OK)
			return rc;
		if (p->pos >= p->end)
			return CV_PARSE_OK;
		/* parse_alternative stops only at '|' or the end. */
		p->pos++;
		skip_space(p);
		after = "|";
	}
}

/* Compile scope text; see plan.h. */
int
cv_scope_parse(const char *text, CvScope **out, char *errbuf, size_t errlen,
			   int *errpos)
{
	ScopeParser p;
	size_t		len;
	int			start;
	int			rc;

	if (out)
		*out = NULL;
	if (errbuf && errlen > 0)
		errbuf[0] = '\0';
	if (errpos)
		*errpos = -1;

	memset(&p, 0, sizeof(p));
	p.text = text;
	p.errbuf = errbuf;
	p.errlen = errlen;
	p.errpos = errpos;

	if (text == NULL)
		return scope_error(&p, 0, "scope is null");
	/* Bounded scan: an enormous string costs no more than a short one. */
	len = strnlen(text, CV_SCOPE_MAX_LEN + 1);
	if (len > CV_SCOPE_MAX_LEN)
		return scope_error(&p, CV_SCOPE_MAX_LEN,
						   "scope is longer than %d bytes", CV_SCOPE_MAX_LEN);

	start = 0;
	while (start < (int) len && is_space((unsigned char) text[start]))
		start++;
	p.end = (int) len;
	while (p.end > start && is_space((unsigned char) text[p.end - 1]))
		p.end--;
	if (start == p.end)
		return scope_error(&p, 0, "empty scope");
	p.pos = start;

	p.scope = cv_alloc0(sizeof(CvScope));
	if (p.end - start == 1 && text[start] == '*')
	{
		p.scope->is_all = true;
		rc = CV_PARSE_OK;
	}
	else
		rc = parse_alternatives(&p);

	if (rc != CV_PARSE_OK || out == NULL)
	{
		/* Nothing half-built escapes; a NULL out means "just validate". */
		cv_free(p.scope);
		return rc;
	}
	*out = p.scope;
	return CV_PARSE_OK;
}

/* Release a compiled scope. */
void
cv_scope_free(CvScope *scope)
{
	if (scope)
		cv_free(scope);
}

/* True for the bare '*' scope. */
bool
cv_scope_is_all(const CvScope *scope)
{
	return scope != NULL && scope->is_all;
}

/*
 * Glob match without recursion: on a mismatch, retry from the last '*' with
 * one more byte swallowed.  Only the last '*' needs remembering, because an
 * earlier '*' could only swallow what the later one already can, so the
 * worst case is O(len(glob) * len(text)) and the stack stays flat.
 */
bool
cv_glob_match(const char *glob, const char *text)
{
	const char *g = glob;
	const char *t = text;
	const char *star_g = NULL;	/* glob position just after the last '*' */
	const char *star_t = NULL;	/* text position that '*' was tried from */

	if (glob == NULL || text == NULL)
		return false;
	while (*t)
	{
		if (*g == '*')
		{
			star_g = ++g;
			star_t = t;
		}
		else if (*g != '\0' && (*g == '?' || *g == *t))
		{
			g++;
			t++;
		}
		else if (star_g)
		{
			g = star_g;
			t = ++star_t;
		}
		else
			return false;
	}
	while (*g == '*')
		g++;
	return *g == '\0';
}

/* True when any of a term's globs matches s. */
static bool
term_values_match(const CvScope *scope, const CvTerm *term, const char *s)
{
	int			i;

	for (i = term->first_value; i < term->first_value + term->nvalues; i++)
	{
		if (scope->literal[i] ? strcmp(scope->values[i], s) == 0
			: cv_glob_match(scope->values[i], s))
			return true;
	}
	return false;
}

/* Evaluate one term on a unit, negation included. */
static bool
term_matches(const CvScope *scope, const CvTerm *term, const CvUnit *unit)
{
	const char *name = unit->name ? unit->name : "";
	bool		result = false;

	if (!term->is_label || term->key_is_name)
		result = term_values_match(scope, term, name);
	else if (unit->labels != NULL)
	{
		int			i;

		/* A missing label leaves result false, so key!=v holds for it. */
		for (i = 0; i < unit->nlabels; i++)
		{
			const CvLabel *label = &unit->labels[i];

			if (label->key == NULL || strcmp(label->key, term->key) != 0)
				continue;
			if (term_values_match(scope, term,
								  label->value ? label->value : ""))
			{
				result = true;
				break;
			}
		}
	}
	return result != term->negate;
}

/* True when any alternative has all of its terms matching the unit. */
bool
cv_scope_matches(const CvScope *scope, const CvUnit *unit)
{
	int			a;
	int			t = 0;

	if (scope == NULL || unit == NULL)
		return false;
	if (scope->is_all)
		return true;
	for (a = 0; a < scope->nalts; a++)
	{
		bool		all = true;

		for (; t < scope->alt_end[a]; t++)
		{
			if (!term_matches(scope, &scope->terms[t], unit))
			{
				all = false;
				break;
			}
		}
		if (all)
			return true;
		t = scope->alt_end[a];
	}
	return false;
}

/* ------------------------------------------------------------------------
 * Amounts
 * ------------------------------------------------------------------------ */

/* Record an amount error message; returns CV_PARSE_ERROR. */
__attribute__((format(printf, 3, 4)))
static int
amount_error(char *errbuf, size_t errlen, const char *fmt,...)
{
	va_list		ap;

	va_start(ap, fmt);
	write_message(errbuf, errlen, fmt, ap);
	va_end(ap);
	return CV_PARSE_ERROR;
}

/* Parse "12.5%" or "3"; see plan.h. */
int
cv_amount_parse(const char *text, CvAmount *out, char *errbuf, size_t errlen)
{
	CvAmount	result;
	size_t		s;
	size_t		e;
	size_t		i;
	int64_t		whole = 0;
	int64_t		frac = 0;
	int			nwhole = 0;
	int			nfrac = 0;
	bool		has_point = false;
	bool		too_big = false;

	memset(&result, 0, sizeof(result));
	if (out)
		*out = result;
	if (errbuf && errlen > 0)
		errbuf[0] = '\0';
	if (text == NULL)
		return amount_error(errbuf, errlen, "amount is null");

	s = 0;
	e = strlen(text);
	while (s < e && is_space((unsigned char) text[s]))
		s++;
	while (e > s && is_space((unsigned char) text[e - 1]))
		e--;
	if (s == e)
		return amount_error(errbuf, errlen, "empty amount");
	if (text[s] == '-')
		return amount_error(errbuf, errlen, "amount must not be negative");

	if (text[e - 1] == '%')
	{
		result.is_percent = true;
		e--;
	}

	/* Saturate instead of overflowing: any value this large is refused. */
	for (i = s; i < e && text[i] >= '0' && text[i] <= '9'; i++)
	{
		if (whole > 100000000)
			too_big = true;
		else
			whole = whole * 10 + (text[i] - '0');
		nwhole++;
	}
	if (i < e && text[i] == '.')
	{
		has_point = true;
		for (i++; i < e && text[i] >= '0' && text[i] <= '9'; i++)
		{
			if (nfrac < 4)
				frac = frac * 10 + (text[i] - '0');
			nfrac++;
		}
	}
	if (i != e || nwhole == 0 || (has_point && nfrac == 0))
		return amount_error(errbuf, errlen, "%s",
							"invalid amount: expected a percentage such as \"5%\" or a count such as \"3\"");

	if (result.is_percent)
	{
		if (nfrac > 4)
			return amount_error(errbuf, errlen,
								"a percentage must have at most 4 decimal places");
		while (nfrac < 4)
		{
			frac *= 10;
			nfrac++;
		}
		if (too_big || whole > 100)
			return amount_error(errbuf, errlen,
								"a percentage must be at most 100%%");
		result.scaled_pct = whole * CV_PCT_SCALE + frac;
		if (result.scaled_pct == 0)
			return amount_error(errbuf, errlen,
								"a percentage must be greater than 0%%");
		if (result.scaled_pct > CV_PCT_MAX)
			return amount_error(errbuf, errlen,
								"a percentage must be at most 100%%");
	}
	else
	{
		if (has_point)
			return amount_error(errbuf, errlen,
								"a count must be a whole number");
		if (too_big || whole > CV_COUNT_MAX)
			return amount_error(errbuf, errlen,
								"a count must be at most %d", CV_COUNT_MAX);
		if (whole == 0)
			return amount_error(errbuf, errlen, "a count must be at least 1");
		result.count = whole;
	}
	if (out)
		*out = result;
	return CV_PARSE_OK;
}

/*
 * ceil(scaled_pct * n / CV_PCT_MAX) in exact integer arithmetic.  Splitting
 * n into q * CV_PCT_MAX + r keeps every product below 2^63 for any n, and
 * no float means 33.3333% of 3 is 0.999999 -> 1, never 2.
 */
int64_t
cv_amount_count(const CvAmount *amount, int64_t nsubunits)
{
	int64_t		result;

	if (amount == NULL || nsubunits <= 0)
		return 0;
	if (amount->is_percent)
	{
		int64_t		pct = amount->scaled_pct;
		int64_t		q = nsubunits / CV_PCT_MAX;
		int64_t		r = nsubunits % CV_PCT_MAX;

		/* Clamp a hand-built struct to the range the parser allows. */
		if (pct <= 0)
			return 0;
		if (pct > CV_PCT_MAX)
			pct = CV_PCT_MAX;
		result = q * pct + (r * pct + CV_PCT_MAX - 1) / CV_PCT_MAX;
	}
	else
		result = amount->count < 0 ? 0 : amount->count;
	return result < nsubunits ? result : nsubunits;
}

/* True when both amounts are percentages or both are counts. */
bool
cv_amount_same_kind(const CvAmount *a, const CvAmount *b)
{
	return a != NULL && b != NULL && a->is_percent == b->is_percent;
}

/* Three-way order of two amounts; see plan.h for mixed kinds. */
int
cv_amount_compare(const CvAmount *a, const CvAmount *b)
{
	int64_t		va;
	int64_t		vb;

	if (a == NULL || b == NULL)
		return (a != NULL) - (b != NULL);
	if (a->is_percent != b->is_percent)
		return a->is_percent ? 1 : -1;
	va = a->is_percent ? a->scaled_pct : a->count;
	vb = b->is_percent ? b->scaled_pct : b->count;
	return (va > vb) - (va < vb);
}

/* Canonical amount text: shortest decimals for a percentage. */
void
cv_amount_format(const CvAmount *amount, char *buf, size_t buflen)
{
	if (buf == NULL || buflen == 0)
		return;
	buf[0] = '\0';
	if (amount == NULL)
		return;
	if (amount->is_percent)
	{
		long long	whole = (long long) (amount->scaled_pct / CV_PCT_SCALE);
		long long	frac = (long long) (amount->scaled_pct % CV_PCT_SCALE);
		int			digits = 4;

		if (frac < 0)
			frac = -frac;
		if (frac == 0)
		{
			snprintf(buf, buflen, "%lld%%", whole);
			return;
		}
		while (frac % 10 == 0)
		{
			frac /= 10;
			digits--;
		}
		snprintf(buf, buflen, "%lld.%0*lld%%", whole, digits, frac);
	}
	else
		snprintf(buf, buflen, "%lld", (long long) amount->count);
}

/* ------------------------------------------------------------------------
 * Subunit ranking
 * ------------------------------------------------------------------------ */

#define FNV_OFFSET	UINT64_C(0xcbf29ce484222325)
#define FNV_PRIME	UINT64_C(0x100000001b3)

/*
 * FNV-1a over a C string including its NUL: the NUL separates the unit name
 * from the subunit name, so ("ab", "c") and ("a", "bc") hash apart.
 */
static uint64_t
fnv_string(uint64_t h, const char *s)
{
	const unsigned char *b = (const unsigned char *) (s ? s : "");

	for (;;)
	{
		h ^= *b;
		h *= FNV_PRIME;
		if (*b == '\0')
			return h;
		b++;
	}
}

/* FNV-1a state after the seed and the unit name, shared by its subunits. */
static uint64_t
rank_prefix(uint64_t seed, const char *unit)
{
	uint64_t	h = FNV_OFFSET;
	int			i;

	/* Byte order fixed (little-endian), so ranks agree across machines. */
	for (i = 0; i < 8; i++)
	{
		h ^= (seed >> (8 * i)) & 0xff;
		h *= FNV_PRIME;
	}
	return fnv_string(h, unit);
}

/*
 * Finish a rank: FNV-1a's last bytes barely reach the high bits, so the
 * splitmix64 finalizer spreads every input bit over the whole word.
 */
static uint64_t
rank_finish(uint64_t prefix, const char *subunit)
{
	uint64_t	x = fnv_string(prefix, subunit);

	x ^= x >> 30;
	x *= UINT64_C(0xbf58476d1ce4e5b9);
	x ^= x >> 27;
	x *= UINT64_C(0x94d049bb133111eb);
	x ^= x >> 31;
	return x;
}

/* The rank of a subunit inside its unit for a seed; lower goes first. */
uint64_t
cv_subunit_rank(uint64_t seed, const char *unit, const char *subunit)
{
	return rank_finish(rank_prefix(seed, unit), subunit);
}

/* ------------------------------------------------------------------------
 * Planning
 * ------------------------------------------------------------------------ */

/* A subunit waiting for the version, with its place in line. */
typedef struct RankedSubunit
{
	uint64_t	rank;
	const char *name;
	int			index;
} RankedSubunit;

/* Order by rank, then name, then input index: a total order. */
static int
ranked_cmp(const void *pa, const void *pb)
{
	const RankedSubunit *a = pa;
	const RankedSubunit *b = pb;
	int			c;

	if (a->rank != b->rank)
		return a->rank < b->rank ? -1 : 1;
	c = strcmp(a->name, b->name);
	if (c != 0)
		return c;
	return (a->index > b->index) - (a->index < b->index);
}

/* Sort a unit's ranked subunits; insertion sort wins on tiny units. */
static void
sort_ranked(RankedSubunit *r, int n)
{
	int			i;

	if (n > 12)
	{
		qsort(r, n, sizeof(RankedSubunit), ranked_cmp);
		return;
	}
	for (i = 1; i < n; i++)
	{
		RankedSubunit x = r[i];
		int			j = i;

		while (j > 0 && ranked_cmp(&r[j - 1], &x) > 0)
		{
			r[j] = r[j - 1];
			j--;
		}
		r[j] = x;
	}
}

/* True when a subunit already runs the version being pushed. */
static bool
at_version(const CvSubunit *sub, const char *version)
{
	return version != NULL && sub->version != NULL &&
		strcmp(sub->version, version) == 0;
}

/* A unit's subunit array, or NULL with *n 0 for an empty or broken unit. */
static const CvSubunit *
unit_subunits(const CvUnit *unit, int *n)
{
	if (unit->subunits == NULL || unit->nsubunits <= 0)
	{
		*n = 0;
		return NULL;
	}
	*n = unit->nsubunits;
	return unit->subunits;
}

/*
 * One unit's share of each planned phase: take[i] new targets and
 * already[i] subunits at the version covered, for planned phase i.
 * Returns the unit's total targets.  Pure arithmetic on counts, so both
 * planning passes get the same answer.
 */
static int64_t
unit_phase_counts(const CvUnit *unit, const CvPhaseSpec *phases, int nphases,
				  int start_phase, const char *version,
				  int64_t *take, int64_t *already)
{
	const CvSubunit *subs;
	int			n;
	int			i;
	int			p;
	int64_t		at = 0;			/* subunits already at the version */
	int64_t		cum = 0;		/* cumulative target c_p(u) */
	int64_t		filled;
	int64_t		total = 0;

	subs = unit_subunits(unit, &n);
	for (i = 0; i < n; i++)
		if (at_version(&subs[i], version))
			at++;
	filled = at;
	for (p = 0; p < nphases; p++)
	{
		int64_t		prev = cum;

		if (cv_scope_matches(phases[p].scope, unit))
		{
			int64_t		c = cv_amount_count(&phases[p].amount, n);

			if (c > cum)
				cum = c;
		}
		if (p < start_phase)
			continue;
		/* Subunits already at the version fill the target first. */
		take[p - start_phase] = cum > filled ? cum - filled : 0;
		already[p - start_phase] = (at < cum ? at : cum) - (at < prev ? at : prev);
		if (cum > filled)
			filled = cum;
		total += take[p - start_phase];
	}
	return total;
}

/* Plan phases start_phase .. nphases-1; see plan.h. */
void
cv_plan_compute(const CvUnit *units, int nunits, const CvPhaseSpec *phases,
				int nphases, int start_phase, const char *version,
				uint64_t seed, CvPlan *out)
{
	int			nplanned;
	int64_t    *take;
	int64_t    *covered;
	int64_t    *phase_total;
	int64_t    *phase_already;
	int		   *cursor;
	RankedSubunit *ranked = NULL;
	int			max_rank = 0;
	int64_t		ntargets = 0;
	int			u;
	int			i;

	if (out == NULL)
		return;
	memset(out, 0, sizeof(*out));
	if (phases == NULL || nphases < 0)
		nphases = 0;
	if (units == NULL || nunits < 0)
		nunits = 0;
	if (start_phase < 0)
		start_phase = 0;
	if (start_phase > nphases)
		start_phase = nphases;
	nplanned = nphases - start_phase;

	/* Sizes of zero are fine: the shim always returns a real block. */
	take = cv_alloc(sizeof(int64_t) * (size_t) nplanned);
	covered = cv_alloc(sizeof(int64_t) * (size_t) nplanned);
	phase_total = cv_alloc0(sizeof(int64_t) * (size_t) nplanned);
	phase_already = cv_alloc0(sizeof(int64_t) * (size_t) nplanned);

	/* Pass 1: how many targets each phase gets, so targets[] is one block. */
	for (u = 0; u < nunits; u++)
	{
		int64_t		t = unit_phase_counts(&units[u], phases, nphases,
										  start_phase, version, take, covered);

		for (i = 0; i < nplanned; i++)
		{
			phase_total[i] += take[i];
			phase_already[i] += covered[i];
		}
		if (t > 0 && units[u].nsubunits > max_rank)
			max_rank = units[u].nsubunits;
		ntargets += t;
	}
	/* Each target is a distinct input subunit, so this needs over 2^31 of them. */
	if (ntargets > INT_MAX)
		cv_fail("push plan has too many targets");

	out->nphases = nplanned;
	out->ntargets = (int) ntargets;
	out->phase_offset = cv_alloc(sizeof(int) * ((size_t) nplanned + 1));
	out->already = cv_alloc(sizeof(int) * (size_t) (nplanned > 0 ? nplanned : 1));
	out->targets = cv_alloc(sizeof(CvTarget) * (size_t) ntargets);
	cursor = cv_alloc(sizeof(int) * (size_t) (nplanned > 0 ? nplanned : 1));
	out->phase_offset[0] = 0;
	for (i = 0; i < nplanned; i++)
	{
		out->phase_offset[i + 1] = out->phase_offset[i] + (int) phase_total[i];
		cursor[i] = out->phase_offset[i];
		/* already counts distinct subunits too, so it fits an int as well. */
		out->already[i] = (int) phase_already[i];
	}
	if (max_rank > 0)
		ranked = cv_alloc(sizeof(RankedSubunit) * (size_t) max_rank);

	/*
	 * Pass 2: rank each unit's waiting subunits and deal them out to the
	 * phases in order.  Units go in index order, so each phase's slice comes
	 * out ordered by unit index, then rank.
	 */
	for (u = 0; u < nunits && ntargets > 0; u++)
	{
		const CvUnit *unit = &units[u];
		const CvSubunit *subs;
		uint64_t	prefix;
		int			n;
		int			k = 0;
		int			next = 0;

		if (unit_phase_counts(unit, phases, nphases, start_phase, version,
							  take, covered) == 0)
			continue;
		subs = unit_subunits(unit, &n);
		prefix = rank_prefix(seed, unit->name);
		for (i = 0; i < n; i++)
		{
			if (at_version(&subs[i], version))
				continue;
			ranked[k].name = subs[i].name ? subs[i].name : "";
			ranked[k].rank = rank_finish(prefix, ranked[k].name);
			ranked[k].index = i;
			k++;
		}
		sort_ranked(ranked, k);
		for (i = 0; i < nplanned; i++)
		{
			int64_t		j;

			for (j = 0; j < take[i]; j++)
			{
				CvTarget   *target = &out->targets[cursor[i]++];

				target->unit = u;
				target->subunit = ranked[next++].index;
			}
		}
	}

	if (ranked)
		cv_free(ranked);
	cv_free(cursor);
	cv_free(take);
	cv_free(covered);
	cv_free(phase_total);
	cv_free(phase_already);
}

/* Release a plan's arrays; safe on a zeroed or already-freed plan. */
void
cv_plan_free(CvPlan *plan)
{
	if (plan == NULL)
		return;
	/* pfree(NULL) is an error in the backend, so test each pointer. */
	if (plan->phase_offset)
		cv_free(plan->phase_offset);
	if (plan->targets)
		cv_free(plan->targets);
	if (plan->already)
		cv_free(plan->already);
	memset(plan, 0, sizeof(*plan));
}
