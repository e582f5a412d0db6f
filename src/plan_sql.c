/*
 * plan_sql.c
 *	  Thin SQL wrappers around the pure C planner (plan.c): scope and amount
 *	  validation with PostgreSQL-style errors, and the planning function the
 *	  engine and plan_preview call.
 */
#include "conveyor.h"

#include "catalog/pg_type.h"
#include "fmgr.h"
#include "funcapi.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"

#include "plan.h"

PG_FUNCTION_INFO_V1(cv_scope_check);
PG_FUNCTION_INFO_V1(cv_amount_check);
PG_FUNCTION_INFO_V1(cv_amount_cmp);
PG_FUNCTION_INFO_V1(cv_plan_targets);
PG_FUNCTION_INFO_V1(cv_scope_unit_count);

/* The planner's messages are lower-case fragments; a DETAIL is a sentence. */
static char *
sentence(const char *fragment)
{
	char	   *s = pstrdup(fragment);

	if (s[0] >= 'a' && s[0] <= 'z')
		s[0] = s[0] - 'a' + 'A';
	return s;
}

#define SCOPE_HINT "A scope is '*', label matches such as region=eu or tier!=canary, " \
	"unit-name globs such as web-*, combined with spaces or '&' (and), '|' (or) and '!' (not)."

/* Parse a scope or raise 22023 with the position of the problem. */
static CvScope *
scope_parse_or_error(const char *text)
{
	CvScope    *scope = NULL;
	char		err[256];
	int			pos = 0;

	if (cv_scope_parse(text, &scope, err, sizeof(err), &pos) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid scope \"%s\"", text),
				 errdetail("At character %d: %s.", pos + 1, err),
				 errhint(SCOPE_HINT)));
	return scope;
}

/* Parse an amount or raise 22023. */
static CvAmount
amount_parse_or_error(const char *text)
{
	CvAmount	amount;
	char		err[256];

	if (cv_amount_parse(text, &amount, err, sizeof(err)) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid amount \"%s\"", text),
				 errdetail("%s.", sentence(err)),
				 errhint("An amount is a percentage of each unit's subunits above 0%% and at most 100%% "
						 "(such as 5%% or 12.5%%), or a count of subunits per unit (such as 3).")));
	return amount;
}

/* SQL: conveyor._scope_check(scope text) raises unless the scope is valid. */
Datum
cv_scope_check(PG_FUNCTION_ARGS)
{
	cv_scope_free(scope_parse_or_error(text_to_cstring(PG_GETARG_TEXT_PP(0))));
	PG_RETURN_VOID();
}

/* SQL: conveyor._amount_check(amount text) raises unless the amount is valid. */
Datum
cv_amount_check(PG_FUNCTION_ARGS)
{
	(void) amount_parse_or_error(text_to_cstring(PG_GETARG_TEXT_PP(0)));
	PG_RETURN_VOID();
}

/*
 * SQL: conveyor._amount_cmp(a, b) is -1, 0 or 1, or NULL when one is a
 * percentage and the other a count (they cannot be ordered in general).
 */
Datum
cv_amount_cmp(PG_FUNCTION_ARGS)
{
	CvAmount	a = amount_parse_or_error(text_to_cstring(PG_GETARG_TEXT_PP(0)));
	CvAmount	b = amount_parse_or_error(text_to_cstring(PG_GETARG_TEXT_PP(1)));

	if (!cv_amount_same_kind(&a, &b))
		PG_RETURN_NULL();
	PG_RETURN_INT32(cv_amount_compare(&a, &b));
}

/* Deconstruct a one-dimensional text[] into C strings (NULL elements stay NULL). */
static int
text_array_cstrings(ArrayType *arr, char ***out)
{
	Datum	   *elems;
	bool	   *nulls;
	int			n;

	deconstruct_array(arr, TEXTOID, -1, false, TYPALIGN_INT, &elems, &nulls, &n);
	*out = palloc(sizeof(char *) * Max(n, 1));
	for (int i = 0; i < n; i++)
		(*out)[i] = nulls[i] ? NULL : TextDatumGetCString(elems[i]);
	return n;
}

/* Turn a flat jsonb object into labels; non-string values use their text form. */
static int
jsonb_labels(Jsonb *jb, CvLabel **out)
{
	JsonbIterator *it;
	JsonbValue	v;
	JsonbIteratorToken tok;
	int			n = 0;
	int			cap = 4;
	char	   *key = NULL;

	*out = palloc(sizeof(CvLabel) * cap);
	if (jb == NULL || !JB_ROOT_IS_OBJECT(jb))
		return 0;
	it = JsonbIteratorInit(&jb->root);
	while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
	{
		if (tok == WJB_KEY)
			key = pnstrdup(v.val.string.val, v.val.string.len);
		else if (tok == WJB_VALUE && key != NULL)
		{
			char	   *value;

			if (v.type == jbvString)
				value = pnstrdup(v.val.string.val, v.val.string.len);
			else if (v.type == jbvNull)
				value = pstrdup("");
			else
				value = JsonbToCString(NULL, &(JsonbValueToJsonb(&v))->root, 0);
			if (n == cap)
			{
				cap *= 2;
				*out = repalloc(*out, sizeof(CvLabel) * cap);
			}
			(*out)[n].key = key;
			(*out)[n].value = value;
			n++;
			key = NULL;
		}
	}
	return n;
}

/* qsort context: subunit rows ordered by unit name. */
static char **sort_units;

/* Order row indexes by unit name, then by row index for stability. */
static int
cmp_row_unit(const void *a, const void *b)
{
	int			ia = *(const int *) a;
	int			ib = *(const int *) b;
	int			c = strcmp(sort_units[ia], sort_units[ib]);

	return c != 0 ? c : (ia > ib) - (ia < ib);
}

/*
 * SQL: conveyor._plan_targets(units text[], labels jsonb[], subunits text[],
 *     versions text[], scopes text[], amounts text[], start_phase int,
 *     version text, seed bigint)
 *   RETURNS TABLE(phase int, unit text, subunit text, from_version text)
 *
 * Row i of the first four arrays is one subunit (a NULL subunit stands for a
 * unit without subunits). Returns the subunits each phase from start_phase on
 * updates; phases are numbered from 0 like start_phase.
 */
Datum
cv_plan_targets(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	char	  **unit_names;
	char	  **subunit_names;
	char	  **versions;
	char	  **scope_texts;
	char	  **amount_texts;
	Datum	   *label_datums;
	bool	   *label_nulls;
	int			nrows,
				nlabels,
				nsub,
				nver,
				nscopes,
				namounts;
	int			start_phase = PG_GETARG_INT32(6);
	char	   *version = text_to_cstring(PG_GETARG_TEXT_PP(7));
	uint64_t	seed = (uint64_t) PG_GETARG_INT64(8);
	int		   *order;
	CvUnit	   *units;
	int			nunits = 0;
	CvPhaseSpec *phases;
	CvPlan		plan;

	for (int i = 0; i < 9; i++)
		if (PG_ARGISNULL(i))
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("argument %d of conveyor._plan_targets must not be null", i + 1)));

	nrows = text_array_cstrings(PG_GETARG_ARRAYTYPE_P(0), &unit_names);
	deconstruct_array(PG_GETARG_ARRAYTYPE_P(1), JSONBOID, -1, false, TYPALIGN_INT,
					  &label_datums, &label_nulls, &nlabels);
	nsub = text_array_cstrings(PG_GETARG_ARRAYTYPE_P(2), &subunit_names);
	nver = text_array_cstrings(PG_GETARG_ARRAYTYPE_P(3), &versions);
	nscopes = text_array_cstrings(PG_GETARG_ARRAYTYPE_P(4), &scope_texts);
	namounts = text_array_cstrings(PG_GETARG_ARRAYTYPE_P(5), &amount_texts);
	if (nlabels != nrows || nsub != nrows || nver != nrows)
		ereport(ERROR,
				(errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
				 errmsg("unit, label, subunit and version arrays must have the same length")));
	if (nscopes != namounts)
		ereport(ERROR,
				(errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
				 errmsg("scope and amount arrays must have the same length")));
	if (start_phase < 0 || start_phase > nscopes)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("start phase %d is outside the plan's %d phases", start_phase, nscopes)));

	phases = palloc0(sizeof(CvPhaseSpec) * Max(nscopes, 1));
	for (int p = 0; p < nscopes; p++)
	{
		if (scope_texts[p] == NULL || amount_texts[p] == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("phase %d has a null scope or amount", p + 1)));
		phases[p].scope = scope_parse_or_error(scope_texts[p]);
		phases[p].amount = amount_parse_or_error(amount_texts[p]);
	}

	/* group the subunit rows into units, by unit name */
	order = palloc(sizeof(int) * Max(nrows, 1));
	for (int i = 0; i < nrows; i++)
	{
		if (unit_names[i] == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("unit name of row %d is null", i + 1)));
		if (subunit_names[i] != NULL && versions[i] == NULL)
			versions[i] = "";
		order[i] = i;
	}
	sort_units = unit_names;
	qsort(order, nrows, sizeof(int), cmp_row_unit);

	units = palloc0(sizeof(CvUnit) * Max(nrows, 1));
	for (int k = 0; k < nrows;)
	{
		int			first = order[k];
		int			end = k;
		CvSubunit  *subs;
		int			nsubs = 0;
		CvLabel    *labels;

		while (end < nrows && strcmp(unit_names[order[end]], unit_names[first]) == 0)
			end++;
		subs = palloc(sizeof(CvSubunit) * (end - k));
		for (int j = k; j < end; j++)
		{
			if (subunit_names[order[j]] == NULL)
				continue;
			subs[nsubs].name = subunit_names[order[j]];
			subs[nsubs].version = versions[order[j]];
			nsubs++;
		}
		units[nunits].name = unit_names[first];
		units[nunits].nlabels = jsonb_labels(label_nulls[first] ? NULL :
											 DatumGetJsonbP(label_datums[first]), &labels);
		units[nunits].labels = labels;
		units[nunits].subunits = subs;
		units[nunits].nsubunits = nsubs;
		nunits++;
		k = end;
	}

	cv_plan_compute(units, nunits, phases, nscopes, start_phase, version, seed, &plan);

	InitMaterializedSRF(fcinfo, 0);
	for (int p = 0; p < plan.nphases; p++)
	{
		for (int t = plan.phase_offset[p]; t < plan.phase_offset[p + 1]; t++)
		{
			const CvUnit *u = &units[plan.targets[t].unit];
			const CvSubunit *s = &u->subunits[plan.targets[t].subunit];
			Datum		values[4];
			bool		nulls[4] = {false, false, false, false};

			values[0] = Int32GetDatum(start_phase + p);
			values[1] = CStringGetTextDatum(u->name);
			values[2] = CStringGetTextDatum(s->name);
			values[3] = CStringGetTextDatum(s->version);
			tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
		}
	}
	cv_plan_free(&plan);
	for (int p = 0; p < nscopes; p++)
		cv_scope_free((CvScope *) phases[p].scope);
	PG_RETURN_NULL();
}

/*
 * SQL: conveyor._scope_unit_count(scope text, units text[], labels jsonb[])
 *   RETURNS int
 *
 * How many distinct units the scope matches; row i of units and labels is one
 * subunit row as get_units returns them (a unit repeats once per subunit).
 * push_start refuses a plan with a phase whose scope matches no unit.
 */
Datum
cv_scope_unit_count(PG_FUNCTION_ARGS)
{
	CvScope    *scope;
	char	  **unit_names;
	Datum	   *label_datums;
	bool	   *label_nulls;
	int			nrows,
				nlabels,
				count = 0;
	int		   *order;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1) || PG_ARGISNULL(2))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("arguments of conveyor._scope_unit_count must not be null")));
	scope = scope_parse_or_error(text_to_cstring(PG_GETARG_TEXT_PP(0)));
	nrows = text_array_cstrings(PG_GETARG_ARRAYTYPE_P(1), &unit_names);
	deconstruct_array(PG_GETARG_ARRAYTYPE_P(2), JSONBOID, -1, false, TYPALIGN_INT,
					  &label_datums, &label_nulls, &nlabels);
	if (nlabels != nrows)
		ereport(ERROR,
				(errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
				 errmsg("unit and label arrays must have the same length")));

	/* each unit once: rows sorted by unit name, the first row of a run counts */
	order = palloc(sizeof(int) * Max(nrows, 1));
	for (int i = 0; i < nrows; i++)
	{
		if (unit_names[i] == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("unit name of row %d is null", i + 1)));
		order[i] = i;
	}
	sort_units = unit_names;
	qsort(order, nrows, sizeof(int), cmp_row_unit);
	for (int k = 0; k < nrows; k++)
	{
		int			i = order[k];
		CvUnit		unit = {0};
		CvLabel    *labels;

		if (k > 0 && strcmp(unit_names[order[k - 1]], unit_names[i]) == 0)
			continue;
		unit.name = unit_names[i];
		unit.nlabels = jsonb_labels(label_nulls[i] ? NULL : DatumGetJsonbP(label_datums[i]), &labels);
		unit.labels = labels;
		if (cv_scope_matches(scope, &unit))
			count++;
	}
	cv_scope_free(scope);
	PG_RETURN_INT32(count);
}
