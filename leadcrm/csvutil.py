"""CSV export helpers shared by every download.

Spreadsheet programs run a cell that starts with =, +, -, @ (or a tab/carriage return followed by
one) as a formula, so a lead who types `=HYPERLINK(...)` as their name could attack whoever opens
the export. They also look past leading spaces, no-break spaces and quotes (` =1+1`, `"=1+1"`), so the
test is made on the first character that is none of those. Every exported text cell goes through
`neutralize`, which prefixes such cells with a single quote: the spreadsheet then shows the text as given.

Only text is neutralised: numbers the app writes itself (an int, a Decimal, a float) stay numbers, so a
negative amount still adds up. Text from leads and files stays text, even when it looks like a number.
"""

import csv
from collections.abc import Iterable

from django.http import StreamingHttpResponse

from . import replica

FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")
# Skipped before looking for a trigger: whitespace of any kind (space, tab, NBSP, line breaks, U+2000-U+200A...),
# zero-width characters and both quote marks.
_LEADING_NOISE = (" \t\n\r\x0b\x0c\x1c\x1d\x1e\x1f\x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007"
                  "\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000\u200b\u200c\u200d\u2060\ufeff\"'")

# Excel opens a CSV as UTF-8 only when it starts with a byte-order mark.
BOM = "\ufeff"


def neutralize(value):
    """The cell as safe spreadsheet text; non-strings (numbers, None) pass through."""
    if isinstance(value, str) and (value.startswith(FORMULA_TRIGGERS)
                                   or value.lstrip(_LEADING_NOISE).startswith(FORMULA_TRIGGERS)):
        return "'" + value
    return value


class _Line:
    """A file-like sink for csv.writer that hands back each written line."""

    def write(self, value):
        return value


def iter_csv(header: Iterable, rows: Iterable[Iterable], *, bom: bool = True):
    """Yield CSV text line by line, every cell neutralised (the header too: it may echo user input)."""
    writer = csv.writer(_Line())
    first = writer.writerow([neutralize(cell) for cell in header])
    yield (BOM + first) if bom else first
    for row in rows:
        yield writer.writerow([neutralize(cell) for cell in row])


def csv_response(filename: str, header: Iterable, rows: Iterable[Iterable]) -> StreamingHttpResponse:
    """A streamed CSV download: large exports never sit in memory at once. Its rows are read from the read replica
    when it may serve them (leadcrm/replica.py)."""
    response = StreamingHttpResponse(
        (line.encode("utf-8") for line in iter_csv(header, replica.streamed(rows))),
        content_type="text/csv; charset=utf-8",
    )
    safe_name = "".join(ch for ch in filename if ch.isalnum() or ch in "-_.") or "export.csv"
    response["Content-Disposition"] = f'attachment; filename="{safe_name}"'
    response["X-Content-Type-Options"] = "nosniff"
    return response
