/*
 * Query results as aligned text tables, like psql's but plainer: a header,
 * a rule, the rows, NULL as an empty cell. Numbers are right-aligned.
 */
#include <stdlib.h>
#include <string.h>

#include "cli.h"

/* Characters of a UTF-8 string (continuation bytes do not count), for alignment. */
static int
display_width(const char *s)
{
	int			n = 0;

	for (; *s; s++)
		if (((unsigned char) *s & 0xC0) != 0x80)
			n++;
	return n;
}

/* Whether a column holds numbers (int, numeric, float, oid types), to right-align it. */
static bool
numeric_column(const PGresult *res, int col)
{
	switch (PQftype(res, col))
	{
		case 20:				/* int8 */
		case 21:				/* int2 */
		case 23:				/* int4 */
		case 700:				/* float4 */
		case 701:				/* float8 */
		case 1700:				/* numeric */
			return true;
		default:
			return false;
	}
}

/* Print one cell padded to width. */
static void
print_cell(FILE *out, const char *value, int width, bool right, bool last)
{
	int			pad = width - display_width(value);

	if (right)
		fprintf(out, "%*s%s", pad > 0 ? pad : 0, "", value);
	else if (last)
		fputs(value, out);
	else
		fprintf(out, "%s%*s", value, pad > 0 ? pad : 0, "");
}

void
cli_print_table(FILE *out, const PGresult *res)
{
	int			ncols = PQnfields(res);
	int			nrows = PQntuples(res);
	int		   *widths;

	if (ncols == 0)
		return;
	widths = calloc((size_t) ncols, sizeof(int));
	if (widths == NULL)
	{
		fprintf(stderr, "conveyor: out of memory\n");
		return;
	}
	for (int c = 0; c < ncols; c++)
	{
		widths[c] = display_width(PQfname(res, c));
		for (int r = 0; r < nrows; r++)
		{
			int			w = display_width(PQgetvalue(res, r, c));

			if (w > widths[c])
				widths[c] = w;
		}
	}
	for (int c = 0; c < ncols; c++)
	{
		print_cell(out, PQfname(res, c), widths[c], false, c == ncols - 1);
		fputs(c == ncols - 1 ? "\n" : "  ", out);
	}
	for (int c = 0; c < ncols; c++)
	{
		for (int i = 0; i < widths[c]; i++)
			fputc('-', out);
		fputs(c == ncols - 1 ? "\n" : "  ", out);
	}
	for (int r = 0; r < nrows; r++)
	{
		for (int c = 0; c < ncols; c++)
		{
			print_cell(out, PQgetvalue(res, r, c), widths[c], numeric_column(res, c), c == ncols - 1);
			fputs(c == ncols - 1 ? "\n" : "  ", out);
		}
	}
	fprintf(out, "(%d %s)\n", nrows, nrows == 1 ? "row" : "rows");
	free(widths);
}
