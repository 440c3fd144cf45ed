"""CSV downloads of the reports: a header row of the report's keys, then a line per row.

Cells go through leadcrm.csvutil, which neutralises anything a spreadsheet would run as a formula (a lead
source such as `=HYPERLINK(...)` is shown as text). Numbers are written as text of the number.
"""

from rest_framework.renderers import BaseRenderer

from leadcrm.csvutil import csv_response, iter_csv


class CSVRenderer(BaseRenderer):
    """Lets `?format=csv` through content negotiation; report views answer it with `report_csv`."""

    media_type = "text/csv"
    format = "csv"
    charset = "utf-8"

    def render(self, data, accepted_media_type=None, renderer_context=None):
        rows = (data or {}).get("rows", []) if isinstance(data, dict) else []
        header = list(rows[0]) if rows else []
        return "".join(iter_csv(header, ([row[key] for key in header] for row in rows))).encode("utf-8")


def report_csv(filename: str, header: list[str], rows: list[dict]):
    return csv_response(filename, header, ([_cell(row.get(key)) for key in header] for row in rows))


def _cell(value):
    return "" if value is None else value
