"""Leased work: claim due rows, back off on failure, and the sweepers that re-enqueue work whose task was lost.

Work that must survive crashes (webhook deliveries, nurture steps, missed first-touch deadlines, imports, the
outbox) keeps, on each row, the time it is next due. `claim` takes up to N due rows of a queryset in ONE statement:

    UPDATE t SET <lease column> = now + lease
    FROM (SELECT id, <due> FROM t WHERE <the queryset> AND <due> <= now ORDER BY <due> LIMIT n
          FOR UPDATE OF t SKIP LOCKED) due
    WHERE t.id = due.id RETURNING t.id, due.<due>

so several workers on several hosts share the rows (SKIP LOCKED), and a claimed row stays out of the others' way
for its lease even after the claiming transaction commits. A worker that dies mid-work leaves its rows due again
when the lease ends: due means "its time came, or its lease ran out", one comparison.

`reschedule` records failures set-based: attempts + 1, the error, and the next due time after a back-off that
grows with the attempts and is capped (or follows an explicit schedule, after which it gives up).

Apps only say what is due (a queryset, a due column or expression) and what to do with what they claimed.
"""

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, NamedTuple

from django.db import connections
from django.db.models import Expression, F
from django.utils import timezone

logger = logging.getLogger(__name__)

# Doubling stops here: 2**30 times any first delay is far past every cap (and keeps the SQL's power() finite).
_MAX_DOUBLINGS = 30


@dataclass(frozen=True)
class Backoff:
    """How long to wait after the n-th failure in a row: `first`, doubling each time, at most `cap`. With
    `schedule`, the waits are the schedule's steps instead, and after the last one the work gives up (None)."""

    first: timedelta = timedelta(seconds=5)
    cap: timedelta = timedelta(minutes=5)
    schedule: tuple[timedelta, ...] = ()

    def after(self, failures: int) -> timedelta | None:
        if self.schedule:
            return self.schedule[failures - 1] if 1 <= failures <= len(self.schedule) else None
        return min(self.cap, self.first * 2 ** min(max(failures - 1, 0), _MAX_DOUBLINGS))

    def gives_up(self, failures: int) -> bool:
        return self.after(failures) is None

    def sql(self, previous_failures_sql: str) -> tuple[str, list]:
        """The same wait as an SQL interval, from a column holding the failures before this one (NULL: give up)."""
        if self.schedule:
            return f"(%s::interval[])[{previous_failures_sql} + 1]", [list(self.schedule)]
        return (f"LEAST(%s::interval, %s::interval * power(2, LEAST(GREATEST({previous_failures_sql}, 0), "
                f"{_MAX_DOUBLINGS})))"), [self.cap, self.first]


class Claimed(NamedTuple):
    pk: Any
    due_at: Any  # when the row was due before this claim leased it
    values: dict = {}  # the columns asked for with `returning`, by field name


def claim(queryset, *, due: str | Expression, limit: int, lease: timedelta, now=None,
          lease_field: str | None = None, returning: Iterable[str] = ()) -> list[Claimed]:
    """Lease up to `limit` rows of `queryset` whose `due` (a column, or an expression over the row) is at or before
    `now`, the longest due first, skipping rows another transaction holds. The lease (`now + lease`) is written to
    `lease_field` (by default the due column itself) in the same statement. Returns the claimed rows' keys with the
    time each was due (and the fields named in `returning`, as stored before the claim), in that order. Inside the
    caller's transaction when there is one (its row locks then last until it ends), else the statement commits on
    its own, so the lease is committed before the work starts."""
    now = now or timezone.now()
    if lease_field is None:
        if not isinstance(due, str):
            raise ValueError("claim() needs a lease_field when `due` is an expression")
        lease_field = due
    model = queryset.model
    database = queryset.db
    connection = connections[database]
    quote = connection.ops.quote_name
    due_expression = F(due) if isinstance(due, str) else due
    returning = list(returning)
    fields = [model._meta.get_field(name) for name in returning]
    locked = (queryset.annotate(claim_pk=F("pk"), claim_due=due_expression).filter(claim_due__lte=now)
              .order_by("claim_due").values("claim_pk", "claim_due", *returning)[:limit])
    table = quote(model._meta.db_table)
    column = model._meta.get_field(lease_field).column
    pk_column = model._meta.pk.column
    # FOR UPDATE written here rather than by select_for_update(), which Django compiles only inside a transaction:
    # on its own the one statement needs none (no BEGIN and COMMIT around it).
    locked_sql, locked_params = locked.query.get_compiler(using=database).as_sql()
    extra = "".join(f", due.{quote(name)}" for name in returning)
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {table} AS claimed SET {quote(column)} = %s"
            f" FROM ({locked_sql} FOR UPDATE OF {table} SKIP LOCKED) AS due"
            f" WHERE claimed.{quote(pk_column)} = due.claim_pk"
            f" RETURNING claimed.{quote(pk_column)}, due.claim_due{extra}", [now + lease, *locked_params])
        rows = cursor.fetchall()
    claimed = [Claimed(pk, due_at, {model_field.name: _from_db(model_field, value, connection)
                                    for model_field, value in zip(fields, values, strict=True)})
               for pk, due_at, *values in rows]
    # Ordered by the due time alone, so an index on it serves the LIMIT (a tie-breaker would sort every due row on each
    # claim). RETURNING keeps no order: give the rows back in the order they were due.
    return sorted(claimed, key=lambda row: (row.due_at, str(row.pk)))


def _from_db(model_field, value, connection):
    """A value as the ORM would load it (a JSON field's text parsed, say)."""
    for converter in model_field.get_db_converters(connection):
        value = converter(value, None, connection)
    return value


@dataclass(frozen=True)
class Failure:
    """One claimed row whose work failed: its key, what went wrong, and other columns to set on it."""

    pk: Any
    error: str = ""
    values: dict = field(default_factory=dict)


def reschedule(queryset, failures: Iterable[Failure], *, due_field: str, backoff: Backoff,
               attempts_field: str = "attempts", error_field: str | None = "last_error", now=None,
               error_length: int | None = None) -> int:
    """Record failed attempts in one statement: `attempts_field` + 1, the error, each failure's `values`, and
    `due_field` = now + the back-off after that many failures (NULL once a schedule is spent: the caller's own
    status column says what that means). Only rows of `queryset` are touched. Returns how many rows changed."""
    failures = list(failures)
    if not failures:
        return 0
    now = now or timezone.now()
    model = queryset.model
    meta = model._meta
    connection = connections[queryset.db]
    quote = connection.ops.quote_name
    extra = sorted({name for failure in failures for name in failure.values})
    columns = [meta.pk, *(meta.get_field(name) for name in extra)]
    if error_field:
        columns.append(meta.get_field(error_field))
    row_sql = "(" + ", ".join(f"%s::{column.cast_db_type(connection)}" for column in columns) + ")"
    params = []
    for failure in failures:
        values = [failure.values[name] for name in extra]
        if error_field:
            values.append(failure.error[:error_length] if error_length else failure.error)
        for column, value in zip(columns, [failure.pk, *values], strict=True):
            params.append(column.get_db_prep_save(value, connection))
    attempts = quote(meta.get_field(attempts_field).column)
    wait_sql, wait_params = backoff.sql(f"t.{attempts}")
    names = ["claim_pk", *(f"v{index}" for index in range(len(columns) - 1))]
    assignments = [f"{attempts} = t.{attempts} + 1", f"{quote(meta.get_field(due_field).column)} = %s + {wait_sql}"]
    assignments += [f"{quote(column.column)} = v.{name}" for column, name in zip(columns[1:], names[1:], strict=True)]
    scope_sql, scope_params = queryset.values("pk").query.get_compiler(using=queryset.db).as_sql()
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {quote(meta.db_table)} AS t SET {', '.join(assignments)}"
            f" FROM (VALUES {', '.join([row_sql] * len(failures))}) AS v({', '.join(names)})"
            f" WHERE t.{quote(meta.pk.column)} = v.claim_pk AND t.{quote(meta.pk.column)} IN ({scope_sql})",
            [now, *wait_params, *params, *scope_params])
        return cursor.rowcount


# --------------------------------------------------------------------------------------------- sweepers

_sweepers: dict[str, Callable[[], int]] = {}


def register_sweeper(name: str, sweeper: Callable[[], int]) -> None:
    """A function the beat's one sweep task runs every SWEEP_TICK_SECONDS: it re-enqueues work of its kind whose
    task was lost (claiming the rows with `claim`, so each is re-enqueued once per lease) and returns how many."""
    _sweepers[name] = sweeper


def run_sweepers() -> dict[str, int]:
    """Every registered sweeper, each on its own: one that fails does not keep the others from running."""
    found = {}
    for name, sweeper in _sweepers.items():
        try:
            found[name] = sweeper()
        except Exception:  # the next tick tries again; the other kinds of work are not held up
            logger.exception("sweeper %s failed", name)
    return found
