"""CSV export helpers shared by every download.

Spreadsheet programs run a cell that starts with =, +, -, @ (or a tab/carriage return followed by
one) as a formula, so a lead who types `=HYPERLINK(...)` as their name could attack whoever opens
the export. Every exported text cell goes through `neutralize`, which prefixes such cells with a
single quote: the spreadsheet then shows the text as given.
"""

import csv
from collections.abc import Iterable

from django.http import StreamingHttpResponse

FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")

# Excel opens a CSV as UTF-8 only when it starts with a byte-order mark.
BOM = "\ufeff"


def neutralize(value):
    """The cell as safe spreadsheet text; non-strings (numbers, None) pass through."""
    if isinstance(value, str) and value.startswith(FORMULA_TRIGGERS):
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
    """A streamed CSV download: large exports never sit in memory at once."""
    response = StreamingHttpResponse(
        (line.encode("utf-8") for line in iter_csv(header, rows)), content_type="text/csv; charset=utf-8"
    )
    safe_name = "".join(ch for ch in filename if ch.isalnum() or ch in "-_.") or "export.csv"
    response["Content-Disposition"] = f'attachment; filename="{safe_name}"'
    response["X-Content-Type-Options"] = "nosniff"
    return response
