"""Incremental sync: a change feed an integration can poll without ever missing a change.

The hole every `updated_after` poller falls into: transaction A stamps a lead `updated_at = 10:00:00.100` and is
still running when transaction B stamps another `10:00:00.200` and commits. A poller sees B's lead, remembers
10:00:00.200 and asks for what changed after it; A commits a moment later with its earlier time and is skipped
for ever. A safety lag only narrows the window (a transaction may run longer than any lag).

What closes it is PostgreSQL's transaction ids. Every insert or update of a synced table stamps the row with the id
of the transaction that wrote it (`sync_xid`, the 64-bit `pg_current_xact_id()`, set by the trigger below, so no
path that writes the row can forget it). Ids are handed out in increasing order, a transaction that has none yet
gets a larger one than any handed out so far, and a snapshot names the ones still running. So at any moment there
is a *horizon* H: every transaction below it has ended (its rows are committed or gone), and every change that will
ever become visible later carries an id at or above it. Rows with `sync_xid < H` are final; rows at or above it
wait for the next poll.

A feed position is therefore (lo, hi, after): the changes of transactions in [lo, hi), in (`updated_at`, id) order,
after the row `after`. The first request starts at lo = 0 with hi = the horizon of that moment; paging goes on in
that range; when it is exhausted the next position is (hi, horizon of the next request, none). Every row version
lies in exactly one range, each range is read in a fixed order by a keyset cursor, so every change arrives exactly
once, and a change that commits late arrives in a later range instead of being skipped. A row changed again
meanwhile moves to a later range: the feed delivers its latest state once, never a stale one after a fresh one.

Only this database's transactions hold the horizon back: running transaction ids that pg_stat_activity shows in
another database of the same server (say another app's long report) are left out, since they cannot write here.
How fresh the feed is therefore depends only on how long this database's writing transactions run (usually
milliseconds; a bulk re-score or import batch holds back what commits after it started until it commits).
"""

import base64
import binascii
import json
from datetime import UTC, datetime
from uuid import UUID

from django.db import connection
from django.db.models import F, Field, Func, Value
from django.db.models.lookups import GreaterThan, LessThan
from rest_framework.exceptions import NotFound

from .pagination import CreatedCursorPagination

# The trigger of every synced table: the writing transaction's id, and `updated_at` for a statement that changed
# the row without saying when (a set-based UPDATE, a column touched by another app), so updated_at never lags.
STAMP_FUNCTION = "leadcrm_stamp_change"
STAMP_FUNCTION_SQL = f"""
CREATE OR REPLACE FUNCTION {STAMP_FUNCTION}() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.sync_xid := pg_current_xact_id()::text::bigint;
    IF TG_OP = 'UPDATE' THEN
        IF NEW.updated_at IS NOT DISTINCT FROM OLD.updated_at THEN
            NEW.updated_at := statement_timestamp();
        END IF;
    END IF;
    RETURN NEW;
END
$$
"""


def stamp_trigger_sql(table: str, *, updates: bool = True) -> str:
    """The trigger that stamps `table`'s rows (insert only for tables whose rows never change)."""
    events = "INSERT OR UPDATE" if updates else "INSERT"
    return (f"DROP TRIGGER IF EXISTS {table}_stamp_change ON {table}; "
            f"CREATE TRIGGER {table}_stamp_change BEFORE {events} ON {table} "
            f"FOR EACH ROW EXECUTE FUNCTION {STAMP_FUNCTION}()")


# The horizon: the oldest transaction id still running in this database, or, when none is, the snapshot's xmax
# (latest completed id + 1; any id at or above it may still be running). pg_stat_activity is read first, then the
# snapshot: a running id it showed in another database is left out (a transaction never changes its database, and
# ids are never reused); one it cannot place (handed out in between) counts, which only makes the feed wait a little.
RUNNING_SQL = """
SELECT coalesce(array_agg(xid) FILTER (WHERE elsewhere), '{}'),
       coalesce(array_agg(xid) FILTER (WHERE NOT elsewhere), '{}') || coalesce(
           (SELECT array_agg(transaction::text::bigint) FROM pg_prepared_xacts), '{}'),
       pg_current_xact_id_if_assigned()::text::bigint
FROM (SELECT backend_xid::text::bigint AS xid,
             coalesce(datid <> (SELECT oid FROM pg_database WHERE datname = current_database()), false) AS elsewhere
      FROM pg_stat_activity WHERE backend_xid IS NOT NULL AND pid <> pg_backend_pid()) running
"""
HORIZON_SQL = """
WITH snap AS (SELECT pg_current_snapshot() AS s)
SELECT coalesce(
    (SELECT min(x::text::bigint) FROM snap, pg_snapshot_xip(snap.s) AS x
     WHERE x::text::bigint %% %s <> ALL(%s::bigint[])),
    (SELECT pg_snapshot_xmax(s)::text::bigint FROM snap)),
    (SELECT pg_snapshot_xmax(s)::text::bigint FROM snap)
"""
WRAP = 2 ** 32  # pg_stat_activity and pg_prepared_xacts show 32-bit ids


def horizon() -> int:
    """Every change by a transaction id below this is final; every change yet to be seen has one at or above it.

    A reader that has written in its own open transaction (a test, say) sees its own changes as final too, when no
    other transaction of this database that began writing before it is still running: the horizon is then just past
    its own id. (So a change it makes after reading the feed is not reported to that same transaction again.)"""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_stat_clear_snapshot()")  # pg_stat_activity as it is now, not as first read
        cursor.execute(RUNNING_SQL)
        elsewhere, here, own = cursor.fetchone()
        cursor.execute(HORIZON_SQL, [WRAP, elsewhere])
        found, xmax = cursor.fetchone()
    if own is None or found < xmax or own < xmax:
        return found
    # Ids from xmax up are not in the snapshot; pg_stat_activity names those running here (each the 64-bit id
    # nearest the reader's own). One below the reader's own was handed out before it, so before that read.
    running = [own + (x - own + WRAP // 2) % WRAP - WRAP // 2 for x in here]
    return min([own + 1, *(x for x in running if x >= xmax)])


def _row(*columns) -> Func:
    """A row value, so (time, id) > (t, i) is one condition the (organization, time, id) index starts its scan at,
    however many rows share one time (an import stamps thousands alike)."""
    return Func(*columns, function="ROW", output_field=Field())


class ChangeFeedPagination(CreatedCursorPagination):
    """Cursor pages; ascending `ordering=<time_field>` (or a `sync_token`) makes the list the change feed of the
    module docstring, with a `sync_token` in every answer. Other orderings page as every list does."""

    time_field = "updated_at"
    token_query_param = "sync_token"

    def feed_requested(self, request, queryset, view) -> bool:
        if request.query_params.get(self.token_query_param):
            return True
        return tuple(CreatedCursorPagination.get_ordering(self, request, queryset, view)) == (self.time_field, "pk")

    def get_ordering(self, request, queryset, view):
        if request.query_params.get(self.token_query_param):
            return (self.time_field, "pk")
        return super().get_ordering(request, queryset, view)

    def paginate_queryset(self, queryset, request, view=None):
        self.feed = self.feed_requested(request, queryset, view)
        if not self.feed:
            return super().paginate_queryset(queryset, request, view)
        self.request = request
        self.page_size = self.get_page_size(request)
        self.base_url = request.build_absolute_uri()
        self.ordering = (self.time_field, "pk")
        lo, hi, position, backwards = self._decode(request)
        if hi is None:
            hi = horizon()
        self.lo, self.hi = lo, hi
        queryset = queryset.filter(sync_xid__gte=lo, sync_xid__lt=hi)
        key = _row(F(self.time_field), F("pk"))
        if position is not None:
            beyond = LessThan if backwards else GreaterThan
            queryset = queryset.filter(beyond(key, _row(Value(position[0]), Value(position[1]))))
        terms = [f"-{self.time_field}", "-pk"] if backwards else [self.time_field, "pk"]
        return self.take_page(queryset.order_by(*terms), from_cursor=position is not None, backwards=backwards)

    # ----------------------------------------------------------------------------------------------- tokens

    def _decode(self, request):
        token = request.query_params.get(self.token_query_param) or request.query_params.get(self.cursor_query_param)
        if not token:
            return 0, None, None, False
        try:
            data = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
            lo, hi, position = data["lo"], data["hi"], data.get("p")
            if not isinstance(lo, int) or not (hi is None or isinstance(hi, int)) or lo < 0:
                raise ValueError
            if position is not None:
                at, pk = position
                position = (datetime.fromisoformat(at), UUID(pk))
                if hi is None or position[0].tzinfo is None:
                    raise ValueError
                position = (position[0].astimezone(UTC), position[1])  # PostgreSQL takes offsets to 15:59 only
            return lo, hi, position, bool(data.get("r"))
        except (TypeError, ValueError, KeyError, binascii.Error, UnicodeDecodeError, AttributeError, OverflowError):
            raise NotFound(self.invalid_cursor_message) from None

    def _token(self, *, lo, hi, row=None, backwards=False) -> str:
        data = {"lo": lo, "hi": hi}
        if row is not None:
            data["p"] = [getattr(row, self.time_field).isoformat(), str(row.pk)]
        if backwards:
            data["r"] = 1
        return base64.urlsafe_b64encode(json.dumps(data, separators=(",", ":")).encode()).decode().rstrip("=")

    def _url(self, token: str) -> str:
        from rest_framework.utils.urls import remove_query_param, replace_query_param

        url = remove_query_param(self.base_url, self.token_query_param)
        return replace_query_param(url, self.cursor_query_param, token)

    def get_next_link(self):
        if not self.feed:
            return super().get_next_link()
        if not self.has_next or not self.page:
            return None
        return self._url(self._token(lo=self.lo, hi=self.hi, row=self.page[-1]))

    def get_previous_link(self):
        if not self.feed:
            return super().get_previous_link()
        if not self.has_previous or not self.page:
            return None
        return self._url(self._token(lo=self.lo, hi=self.hi, row=self.page[0], backwards=True))

    def sync_token(self) -> str | None:
        """Where the next poll starts: the next page of this range while it has more rows, else the next range."""
        if not self.feed:
            return None
        if self.has_next and self.page:
            return self._token(lo=self.lo, hi=self.hi, row=self.page[-1])
        return self._token(lo=self.hi, hi=None)

    def get_paginated_response(self, data):
        response = super().get_paginated_response(data)
        if self.feed:
            response.data["sync_token"] = self.sync_token()
        return response

    def get_paginated_response_schema(self, schema):
        schema = super().get_paginated_response_schema(schema)
        schema["properties"]["sync_token"] = {
            "type": "string", "nullable": True,
            "description": "With `ordering=updated_at`: pass it back as `sync_token` to get the changes after this "
                           "page (the next page while there are more, else whatever changed since). Store it after "
                           "each page; it never skips a change, even one committed late."}
        return schema

    def get_schema_operation_parameters(self, view):
        parameters = super().get_schema_operation_parameters(view)
        parameters.append({
            "name": self.token_query_param, "required": False, "in": "query", "schema": {"type": "string"},
            "description": "The `sync_token` of the last answer: continue the change feed from there "
                           "(implies `ordering=updated_at`; keep the other filters the same).",
        })
        return parameters
