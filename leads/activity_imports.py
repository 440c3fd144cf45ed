"""CSV import of activities: the timeline a company brings from its old CRM, each row one thing that happened to a
lead that is already here (found by email or external id), at its real time.

The job, upload checks, chunking, resume and error report are `imports`'s; this module says what an activity row
is (its targets and checks) and loads a chunk set-based: COPY into a staging table, match the leads, one INSERT of
the activities, one UPDATE of the leads' last activity, and the rows whose lead is unknown become row errors.
"""

import json

from django.db import connection
from django.db.models import F

from . import activity_types, bulk_sql
from .imports import (
    _EMAIL_FAST,
    _PLACEHOLDER_TRIM,
    ERROR_COLUMNS,
    ERROR_PREVIEW,
    ERROR_STAGE_DDL,
    IGNORE,
    MAX_CUSTOM_VALUE,
    PLACEHOLDERS,
    Kind,
    _reader,
    _too_long,
    _valid_email,
    normalize_header,
    parse_when,
)
from .models import Activity, ActivityType, ImportJob, ImportRowError, ImportStatus, Lead

CHUNK_ROWS = 5000
PROPERTY = "property"
PROPERTY_PREFIX = "properties."
MAX_EXTERNAL_ID = Lead._meta.get_field("external_id").max_length

TARGETS = {
    "email": "Lead's email", "external_id": "Lead's external id", "type": "Activity type",
    "occurred_at": "When it happened (date and time)", PROPERTY: "Property of the activity",
}
_ALIASES = {
    "email": "email emailaddress mail leademail contactemail workemail",
    "external_id": "externalid id leadid contactid recordid crmid leadexternalid",
    "type": "type activitytype eventtype event kind action activity",
    "occurred_at": "occurredat date time timestamp datetime when activitydate eventdate occurred happenedat"
                   "createdat",
}
GUESSES = {alias: target for target, aliases in _ALIASES.items() for alias in aliases.split()}

# Types only the app itself records (an import, a score or stage change, a merge, deals): a file cannot bring them.
SYSTEM_TYPES = frozenset({
    ActivityType.IMPORTED, ActivityType.STAGE_CHANGE, ActivityType.OWNER_CHANGE, ActivityType.SCORE_CHANGE,
    ActivityType.MERGE, ActivityType.DEAL_CREATED, ActivityType.DEAL_WON, ActivityType.DEAL_LOST,
})


def importable_activity_types(*, organization_id) -> dict[str, str]:
    """{how a file may spell a type (its value or label, any case): the type} for the organization: every activity
    type but those only the app records. The one place the type check lives, so types an organization defines can
    join it."""
    types = {}
    for value, label in activity_types.choices(organization_id):  # built-in ones, then the org's own
        if value not in SYSTEM_TYPES:
            types[value] = value
            types[str(label).casefold()] = value
            types[normalize_header(str(label))] = value
    return types


def _check_mapping(used: dict) -> list[str]:
    problems = []
    if not {"email", "external_id"} & set(used):
        problems.append("Map a column to the lead's email or external id: each activity belongs to a lead.")
    if "type" not in used:
        problems.append("Map a column to the activity type.")
    if "occurred_at" not in used:
        problems.append("Map a column to when it happened: history keeps each activity's real time.")
    return problems


ACTIVITY_KIND = Kind(targets=TARGETS, guesses=GUESSES, custom=PROPERTY, prefix=PROPERTY_PREFIX,
                     custom_label="Property", unguessed=PROPERTY, check=_check_mapping)


class ActivityRowCleaner:
    """One CSV record as an activity row: the lead's email / external id, type, time and properties."""

    def __init__(self, headers: list[str], mapping: dict[str, str], types: dict[str, str], now=None):
        from django.utils import timezone

        self.width = len(headers)
        self.columns = [(index, header, mapping[header]) for index, header in enumerate(headers)
                        if mapping.get(header, IGNORE)]
        self.types = types
        self.allowed = ", ".join(sorted(set(types.values())))
        self.now = now or timezone.now()

    def header_of(self, target: str) -> str:
        return next((header for _, header, mapped in self.columns if mapped == target), "non_field_errors")

    def clean(self, cells: list[str]) -> tuple[dict | None, dict | None]:
        if len(cells) != self.width and (
            len(cells) < self.width or any(cell.strip() for cell in cells[self.width:])
        ):
            return None, {"non_field_errors": [
                f"This row has {len(cells)} cells; the header has {self.width}. "
                "Check for unquoted commas or missing cells."]}
        values: dict = {"properties": {}}
        errors: dict = {}
        for index, header, target in self.columns:
            raw = cells[index].strip()
            if not raw or (len(raw) <= 24 and raw.casefold().strip(_PLACEHOLDER_TRIM) in PLACEHOLDERS):
                continue
            if target == "email":
                raw = raw.lower()
                if len(raw) > 254 or (not _EMAIL_FAST.match(raw) and not _valid_email(raw)):
                    errors[header] = ["Enter a valid email address."]
                    continue
                values["email"] = raw
            elif target == "external_id":
                if len(raw) > MAX_EXTERNAL_ID:
                    errors[header] = [_too_long(MAX_EXTERNAL_ID, raw)]
                    continue
                values["external_id"] = raw
            elif target == "type":
                kind = self.types.get(raw.casefold()) or self.types.get(normalize_header(raw))
                if kind is None:
                    errors[header] = [f"“{raw[:60]}” is not an activity type; use one of: {self.allowed}."]
                    continue
                values["type"] = kind
            elif target == "occurred_at":
                value, problem = parse_when(raw, self.now)
                if problem:
                    errors[header] = [problem]
                    continue
                values["occurred_at"] = value
            elif target.startswith(PROPERTY_PREFIX):
                if len(raw) > MAX_CUSTOM_VALUE:
                    errors[header] = [_too_long(MAX_CUSTOM_VALUE, raw)]
                    continue
                values["properties"][target[len(PROPERTY_PREFIX):]] = raw
        if not errors:
            if not values.get("email") and not values.get("external_id"):
                errors["non_field_errors"] = ["Name the lead: give its email or external id."]
            if "type" not in values:
                errors.setdefault(self.header_of("type"), []).append(
                    f"Give the activity type; use one of: {self.allowed}.")
            if "occurred_at" not in values:
                errors.setdefault(self.header_of("occurred_at"), []).append("Give the time the activity happened.")
        return (None, errors) if errors else (values, None)


class _Chunk:
    __slots__ = ("rows_seen", "staged", "errors", "valid_rows", "external_ids")

    def __init__(self):
        self.rows_seen = 0
        self.staged: list[tuple] = []
        self.errors: list[tuple[int, list, dict]] = []
        self.valid_rows = 0
        self.external_ids = False


def chunks(text: str, delimiter: str, cleaner: ActivityRowCleaner, skip: int):
    """_Chunk objects of up to CHUNK_ROWS records, starting after `skip` data records; staged rows keep their
    cells, so a row whose lead turns out unknown goes to the error report as it was given."""
    records = _reader(text, delimiter)
    next(records, None)  # header
    seen, chunk = 0, _Chunk()
    for row_number, cells in records:
        seen += 1
        if seen <= skip:
            continue
        chunk.rows_seen += 1
        values, errors = cleaner.clean(cells)
        if errors:
            chunk.errors.append((row_number, cells, errors))
        else:
            chunk.valid_rows += 1
            chunk.external_ids = chunk.external_ids or bool(values.get("external_id"))
            chunk.staged.append((row_number, json.dumps(cells), values.get("email", ""), values.get("external_id", ""),
                                 values["type"], values["occurred_at"], json.dumps(values["properties"])))
        if chunk.rows_seen >= CHUNK_ROWS:
            yield chunk
            chunk = _Chunk()
    if chunk.rows_seen:
        yield chunk


STAGE_COLUMNS = ("row_number", "cells", "email", "external_id", "type", "occurred_at", "properties")
STAGE_DDL = (
    "DROP TABLE IF EXISTS pg_temp.leads_activity_import_stage; "
    "CREATE TEMP TABLE leads_activity_import_stage (row_number integer NOT NULL, cells jsonb NOT NULL,"
    " email text NOT NULL, external_id text NOT NULL, type text NOT NULL, occurred_at timestamptz NOT NULL,"
    " properties jsonb NOT NULL, lead_id uuid) ON COMMIT DROP"
)
_STAGE = "pg_temp.leads_activity_import_stage"
# Leads are found by external id first (the other system's id names the person more surely), then by email; as in
# the lead import, `= ANY(ARRAY(...))` keeps each lookup an index probe per staged row.
_MATCH = (
    "UPDATE " + _STAGE + " s SET lead_id = l.id FROM {table} l"
    " WHERE s.lead_id IS NULL AND s.{key} <> '' AND l.organization_id = %(org)s::uuid"
    " AND l.{key} = ANY(ARRAY(SELECT {key} FROM " + _STAGE + " WHERE lead_id IS NULL AND {key} <> ''))"
    " AND l.{key} = s.{key} AND l.{key} <> ''"
)
_UNKNOWN = (
    "CASE WHEN s.external_id <> '' AND s.email <> '' THEN format('No lead has the external id “%%s” or the email"
    " %%s. Import the lead first, or correct the row.', s.external_id, s.email)"
    " WHEN s.external_id <> '' THEN format('No lead has the external id “%%s”. Import the lead first, or correct"
    " the row.', s.external_id)"
    " ELSE format('No lead has the email %%s. Import the lead first, or correct the row.', s.email) END"
)


def _activity_insert_sql(params: dict) -> str:
    """The activities of the matched rows at their own times; a row already on the lead's timeline (same type and
    time: the file imported again) is not added twice."""
    table = bulk_sql.quote(Activity._meta.db_table)
    given = {
        "id": "gen_random_uuid()", "organization_id": "%(org)s::uuid", "lead_id": "s.lead_id", "type": "s.type",
        "properties": "s.properties || jsonb_build_object('import_id', %(job)s::text)",
        "occurred_at": "s.occurred_at", "created_at": "%(now)s",
        "actor_id": f"%(actor)s::{Activity._meta.get_field('actor').db_type(connection)}",
    }
    columns, select = bulk_sql.insert_sql(Activity, given, params)
    return (f"INSERT INTO {table} ({columns}) SELECT {select} FROM {_STAGE} s WHERE s.lead_id IS NOT NULL"
            f" AND NOT EXISTS (SELECT FROM {table} a WHERE a.organization_id = %(org)s::uuid AND a.lead_id = s.lead_id"
            f"  AND a.occurred_at = s.occurred_at AND a.type = s.type)")


def load_chunk_once(job: ImportJob, chunk: _Chunk, offset: int, preview: list) -> bool:
    from django.utils import timezone

    current = ImportJob.objects.select_for_update().filter(pk=job.pk).values_list("status", "processed_rows").first()
    if current != (ImportStatus.RUNNING, offset):
        return False
    cleaner_headers = {target: header for header, target in job.mapping.items() if target}
    params = {"org": job.organization_id, "job": str(job.pk), "now": timezone.now(), "actor": job.created_by_id,
              "email_header": cleaner_headers.get("email", "non_field_errors"),
              "external_header": cleaner_headers.get("external_id", "non_field_errors")}
    leads = bulk_sql.quote(Lead._meta.db_table)
    recorded, failed = 0, []
    with connection.cursor() as cursor:
        if chunk.staged:
            cursor.execute(STAGE_DDL)
            with cursor.cursor.copy(f"COPY {_STAGE} ({', '.join(STAGE_COLUMNS)}) FROM STDIN") as copy:
                for row in chunk.staged:
                    copy.write_row(row)
            if chunk.external_ids:
                cursor.execute(_MATCH.format(table=leads, key="external_id"), params)
            cursor.execute(_MATCH.format(table=leads, key="email"), params)
            cursor.execute(_activity_insert_sql(params), params)
            recorded = cursor.rowcount
            # last_activity_at only moves forward (record_activity's rule), here for all the chunk's leads at once
            cursor.execute(
                f"UPDATE {leads} l SET last_activity_at = GREATEST(l.last_activity_at, m.latest)"
                f" FROM (SELECT lead_id, max(occurred_at) AS latest FROM {_STAGE} WHERE lead_id IS NOT NULL"
                f"  GROUP BY lead_id) m WHERE l.id = m.lead_id AND l.organization_id = %(org)s::uuid"
                f" AND (l.last_activity_at IS NULL OR l.last_activity_at < m.latest)", params)
        if chunk.errors:
            cursor.execute(ERROR_STAGE_DDL)
            with cursor.cursor.copy(f"COPY pg_temp.leads_import_error_stage ({ERROR_COLUMNS}) FROM STDIN") as copy:
                for row_number, cells, errors in chunk.errors:
                    copy.write_row((job.organization_id, job.pk, row_number, json.dumps(cells), json.dumps(errors)))
        sources = []
        if chunk.staged:
            sources.append(
                f"SELECT %(org)s::uuid, %(job)s::uuid, s.row_number, s.cells, jsonb_build_object(CASE WHEN"
                f" s.external_id <> '' THEN %(external_header)s ELSE %(email_header)s END,"
                f" jsonb_build_array({_UNKNOWN}))"
                f" FROM {_STAGE} s WHERE s.lead_id IS NULL")
        if chunk.errors:
            sources.append(f"SELECT {ERROR_COLUMNS} FROM pg_temp.leads_import_error_stage")
        if sources:
            cursor.execute(f"INSERT INTO {bulk_sql.quote(ImportRowError._meta.db_table)} ({ERROR_COLUMNS}) "
                           f"{' UNION ALL '.join(sources)} RETURNING row_number, errors", params)
            failed = sorted(cursor.fetchall())
    room = ERROR_PREVIEW - len(preview)
    update = {
        "processed_rows": F("processed_rows") + chunk.rows_seen,
        "created_count": F("created_count") + recorded,
        # rows of a lead already holding the same activity (the file imported again)
        "merged_count": F("merged_count") + (chunk.valid_rows - (len(failed) - len(chunk.errors)) - recorded),
        "failed_count": F("failed_count") + len(failed),
    }
    if room > 0 and failed:
        preview.extend({"row": row, "errors": errors if isinstance(errors, dict) else json.loads(errors)}
                       for row, errors in failed[:room])
        update["errors"] = preview
    ImportJob.objects.filter(pk=job.pk).update(**update)
    return True
