"""A small in-process domain event dispatcher.

Services emit events after their transaction commits; other apps subscribe in AppConfig.ready(),
so `leads` never imports the stages built on it. Handlers take ids and usually enqueue a task.

`emit` is durable: the event is written to an outbox table in the emitting transaction, so follow-up work
(scoring, routing, enrolment…) survives a broker that is down or a process that dies right after the commit.

Who runs the handlers:
  * with settings.OUTBOX_RELAY on, the relay (leadcrm/relay.py, a thread of every worker), woken by
    NOTIFY when the emitting transaction commits: a request only inserts the row and makes no broker call. Under
    load the relay takes many rows at once and a batch handler (`subscribe(..., batch=True)`) gets all of one
    org's events of a kind in one call, so one task scores the leads of many captures;
  * with OUTBOX_RELAY off (the unit tests, which have no worker), the emitting process itself once its transaction
    commits, those of one org and kind in one call, as the relay would.
Either way, a handler that fails is retried by `deliver_due` with a growing back-off.
"""

import json
import logging
from collections import defaultdict
from collections.abc import Callable
from datetime import timedelta

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import DatabaseError, connection, transaction
from kombu.exceptions import OperationalError as BrokerUnavailable

from . import claims, rls

logger = logging.getLogger(__name__)

LEAD_CAPTURED = "lead.captured"  # organization_id, lead_id, created (bool), channel, utm_campaign (the lead's)
LEAD_UPDATED = "lead.updated"  # organization_id, lead_id, fields, actor_id; bulk: a leads.changed follows
ACTIVITY_RECORDED = "activity.recorded"  # organization_id, lead_id, activity_id, type
LEADS_CHANGED = "leads.changed"  # organization_id, lead_ids, fields: many leads changed at once (bulk edits)
LEADS_IMPORTED = "leads.imported"  # organization_id, import_id (set-based: consumers re-process in bulk)
# organization_id, import_id: an import of history (leads with their created/stage/deal dates, or past activities).
# Only re-scoring should react: webhooks, campaign joins, routing and nurture are for what happens now.
LEADS_HISTORY_IMPORTED = "leads.history_imported"
LEAD_STAGE_CHANGED = "lead.stage_changed"  # organization_id, lead_id, from_stage, to_stage
LEAD_MQL = "lead.mql"  # organization_id, lead_ids (reached the MQL threshold, or moved there by hand)
LEAD_CONVERTED = "lead.converted"  # organization_id, lead_id, account_id, deal_id
DEAL_WON = "deal.won"  # organization_id, deal_id, lead_id
DEAL_LOST = "deal.lost"  # organization_id, deal_id, lead_id
LEADS_MERGED = "leads.merged"  # organization_id, keep_id, merged_ids; emit_now, before the merged leads go
LEAD_ASSIGNED = "lead.assigned"  # organization_id, lead_id, owner_id (None: to a pool), assignment_id, reason
MEMBER_ADDED = "member.added"  # organization_id, user_id, role; emit_now
EMAIL_UNSUBSCRIBED = "email.unsubscribed"  # organization_id, lead_id, how, message_id (None: no message named)
ORG_CREATED = "organization.created"  # organization_id; delivered inside the creating transaction (emit_now)

_handlers: dict[str, list[Callable]] = defaultdict(list)
_batch_handlers: set[Callable] = set()  # those taking (organization_id, payloads) instead of one event's fields

# The relay LISTENs here; an emitting transaction NOTIFYs it, and PostgreSQL delivers that only on commit.
RELAY_CHANNEL = "leadcrm_outbox"

TRANSIENT_ERRORS = (BrokerUnavailable, ConnectionError, TimeoutError)

# A fresh row is left to the process that committed it for this long before the beat may deliver it too.
OUTBOX_GRACE = timedelta(seconds=30)
# Between attempts of a handler that keeps failing: 5 s, doubling, at most 5 min.
RETRY_BACKOFF = claims.Backoff(first=timedelta(seconds=5), cap=timedelta(minutes=5))
# A broker or network that is down fails in milliseconds and is back any moment: retry those at least this often,
# so follow-up work drains soon after an outage rather than at the end of a long backoff.
TRANSIENT_BACKOFF = claims.Backoff(first=timedelta(seconds=5), cap=timedelta(seconds=15))
OUTBOX_BATCH = 100  # rows one beat run claims per statement
# A claimed row is left to its claimer this long; handlers only enqueue, so a turn takes milliseconds.
OUTBOX_LEASE = timedelta(seconds=60)


def handler_name(handler: Callable) -> str:
    return f"{handler.__module__}.{handler.__qualname__}"


def subscribe(event: str, handler: Callable, *, batch: bool = False) -> None:
    """`handler(**payload)` runs for each event; with `batch`, `handler(organization_id=…, payloads=[…])` runs once
    for the events of one org and kind delivered together (one, or many when the relay catches up)."""
    if handler not in _handlers[event]:
        _handlers[event].append(handler)
    if batch:
        _batch_handlers.add(handler)


def _call(handler: Callable, payloads: list[dict]) -> None:
    if handler in _batch_handlers:
        handler(organization_id=payloads[0].get("organization_id"), payloads=payloads)
    else:
        for payload in payloads:
            handler(**payload)


def emit_now(event: str, **payload) -> None:
    """Deliver at once, inside the caller's transaction, for consumers whose writes belong to it.
    A failing handler fails the caller."""
    for handler in list(_handlers[event]):
        _call(handler, [payload])


def _table() -> str:
    from .models import OutboxEvent

    return connection.ops.quote_name(OutboxEvent._meta.db_table)


def emit(event: str, **payload) -> None:
    """Record the event in the outbox inside the caller's transaction (at once outside one) and deliver it to
    every subscriber once that commits. A handler that fails is retried by the beat (`deliver_due`) until it
    succeeds, so handlers must be safe to run twice; `event_id` in the payload lets them tell repeats apart."""
    emit_many([(event, payload)])


def emit_many(items: list[tuple[str, dict]]) -> None:
    """`emit` for several events of one change (a lead's stage moves, its assignment): one insert, one delivery."""
    emission = Emission.of(items)
    if emission is None:
        return
    with connection.cursor() as cursor:
        cursor.execute(f"WITH {emission.cte} SELECT {emission.select}", emission.params)
        emission.recorded(cursor.fetchone()[0])


class Emission:
    """The outbox rows of some events, written by a statement of the caller's as one of its CTEs (a capture writes its
    lead, activity and events in one statement):

        WITH ..., {emission.cte} SELECT ..., {emission.select}   (params: the caller's, then emission.params)

    `guard` is a condition the rows are written under (a capture's: only when its lead was new). The caller passes
    the value its statement returned for `select` to `recorded`."""

    def __init__(self, items: list[tuple[str, dict]], guard: str):
        self.items = items
        relay = settings.OUTBOX_RELAY
        rows, self.params = [], []
        for event, payload in items:
            # For the relay the row is due at once; else the emitting process has it for OUTBOX_GRACE first.
            rows.append("(%s, %s::jsonb, 0, '', now(), now() + %s::interval)")
            self.params += [event, json.dumps(payload, cls=DjangoJSONEncoder), timedelta(0) if relay else OUTBOX_GRACE]
        self.cte = (f"outbox_added AS (INSERT INTO {_table()} (event, payload, attempts, last_error, created_at, "
                    f"next_attempt_at) SELECT * FROM (VALUES {', '.join(rows)}) AS added WHERE {guard} RETURNING id)")
        # The relay is told on commit (PostgreSQL delivers a NOTIFY then), so a request makes no broker call; the ids
        # are for the emitting process, which delivers itself when the relay is off. Sequence order is VALUES order.
        self.select = ("(SELECT pg_notify(%s, '') FROM outbox_added LIMIT 1)" if relay
                       else "ARRAY(SELECT id FROM outbox_added ORDER BY id)")
        if relay:
            self.params.append(RELAY_CHANNEL)

    @classmethod
    def of(cls, items: list[tuple[str, dict]], guard: str = "true") -> "Emission | None":
        """None when no event has a subscriber: nothing to write."""
        items = [(event, payload) for event, payload in items if _handlers[event]]
        return cls(items, guard) if items else None

    def recorded(self, selected) -> None:
        if settings.OUTBOX_RELAY or not selected:
            return
        batch = [(event_id, event, {**payload, "event_id": event_id})
                 for event_id, (event, payload) in zip(selected, self.items, strict=True)]
        transaction.on_commit(lambda: _deliver_fresh(batch))


def _run(handlers, payloads: list[dict], event: str) -> tuple[list[str], str, bool]:
    """Call each handler on the events' payloads, outside any transaction, as after the emitting commit (a service a
    handler calls keeps its own transaction; a handler that fails halfway is run again, so each is safe to repeat);
    return the names of those that failed, the last error, and whether every failure was a connection that could
    not be made (a broker down)."""
    failed, error, transient = [], "", True
    for handler in handlers:
        try:
            _call(handler, payloads)
        except Exception as exc:  # one consumer's failure must not break capture or the others
            # A warning, not a traceback per event: while the broker is down every capture gets here; the outbox
            # row keeps the error and the beat retries.
            logger.warning("handler %s failed for %s #%s: %r", handler_name(handler), event,
                           ",".join(str(payload.get("event_id")) for payload in payloads), exc,
                           exc_info=logger.isEnabledFor(logging.DEBUG))
            failed.append(handler_name(handler))
            error = f"{handler_name(handler)}: {exc.__class__.__name__}: {exc}"[:2000]
            transient = transient and isinstance(exc, TRANSIENT_ERRORS)
    return failed, error, transient


def _deliver_fresh(batch: list[tuple[int, str, dict]]) -> None:
    """Run the handlers of events this process just committed: those of one org and kind together, as the relay
    would; then delete the rows of those delivered, and reschedule the rest."""
    groups = defaultdict(list)
    for event_id, event, payload in batch:
        groups[(event, payload.get("organization_id"))].append((event_id, payload))
    done, failures = [], []
    for (event, _organization_id), rows in groups.items():
        failed, error, transient = _run(list(_handlers[event]), [payload for _, payload in rows], event)
        if failed:
            failures += [(event_id, failed, error, transient) for event_id, _ in rows]
        else:
            done += [event_id for event_id, _ in rows]
    try:
        if done:
            with connection.cursor() as cursor:
                # One statement on the capture path. Its commit need not wait for the disk: losing it in a database
                # crash only means the beat delivers these events once more (set_config(..., true) lasts until the
                # end of this statement's own transaction).
                cursor.execute(f"WITH quick AS (SELECT set_config('synchronous_commit', 'off', true)) "
                               f"DELETE FROM {_table()} WHERE id = ANY(%s) AND EXISTS (SELECT FROM quick)", [done])
        _reschedule(failures)
    except DatabaseError:  # the rows stay: the beat delivers them again after the grace period
        logger.warning("could not record the delivery of events %s", [event_id for event_id, _, _ in batch],
                       exc_info=True)


def deliver_due(*, limit: int = OUTBOX_BATCH) -> dict[str, int]:
    """The relay, and the beat after it: run the handlers still pending on due outbox rows, the rows of one org,
    kind and pending handlers together (batch handlers get them in one call); delete a row once nothing is pending,
    else try again later with a growing back-off. Rows are claimed with a lease (leadcrm.claims), so several relays,
    beats and workers share them, and the rows of one that dies mid-turn are due again when the lease ends."""
    from .models import OutboxEvent

    totals = {"delivered": 0, "failed": 0}
    while True:
        claimed = claims.claim(OutboxEvent.objects.all(), due="next_attempt_at", limit=limit, lease=OUTBOX_LEASE,
                               returning=("event", "payload", "pending", "created_at"))
        if not claimed:
            return totals
        groups = defaultdict(list)
        for row in sorted(claimed, key=lambda row: (row.values["created_at"], row.pk)):
            pending = None if row.values["pending"] is None else tuple(sorted(row.values["pending"]))
            groups[(row.values["event"], row.values["payload"].get("organization_id"), pending)].append(row)
        done, failures = [], []
        for (event, organization_id, pending), group in groups.items():
            handlers = [h for h in _handlers[event] if pending is None or handler_name(h) in pending]
            # Handlers run for the event's org, as they did in the request or task that emitted it.
            with rls.scope(organization_id or rls.NOBODY):
                failed, error, transient = _run(
                    handlers, [{**row.values["payload"], "event_id": row.pk} for row in group], event)
            if failed:
                failures += [(row.pk, failed, error, transient) for row in group]
            else:
                done += [row.pk for row in group]
        _delete(done)
        _reschedule(failures)
        totals["delivered"] += len(done)
        totals["failed"] += len(failures)
        if len(claimed) < limit:
            return totals


def _delete(pks: list[int]) -> None:
    """Delivered rows go in one statement (nothing refers to them, so there is nothing to collect first, and no
    transaction is needed around one statement)."""
    from .models import OutboxEvent

    if pks:
        with connection.cursor() as cursor:
            cursor.execute(f"DELETE FROM {OutboxEvent._meta.db_table} WHERE id = ANY(%s)", [pks])


def _reschedule(failures: list[tuple[int, list[str], str, bool]]) -> None:
    """Record failed deliveries (row id, the handlers that failed, the error, whether only the broker was
    unreachable): the handlers left to run, and the next attempt after a back-off."""
    from .models import OutboxEvent

    for transient in (False, True):
        claims.reschedule(
            OutboxEvent.objects.all(),
            [claims.Failure(pk, error, {"pending": failed}) for pk, failed, error, was in failures if was == transient],
            due_field="next_attempt_at", backoff=TRANSIENT_BACKOFF if transient else RETRY_BACKOFF, error_length=2000)
