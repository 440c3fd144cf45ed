"""Everything that changes webhook state: endpoints, deliveries (created set-based from domain events), sending
with retries, replays."""

import json
import logging
import random
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from datetime import timedelta

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from leadcrm import audit, claims, rls
from leadcrm.errors import Invalid
from leads.models import Activity, ActivityType, Deal, Lead

from . import net, selectors, signing
from .models import TEST_EVENT, Attempt, Delivery, DeliveryStatus, Endpoint, EventType

logger = logging.getLogger(__name__)

ENDPOINT_FIELDS = ("url", "description", "events", "active")


class EndpointError(Invalid):
    default_code = "invalid_endpoint"

    def __init__(self, errors: dict[str, list[str]]):
        super().__init__(errors=errors)


def clean_endpoint(data: dict) -> dict:
    """Checks what a user may get wrong; the URL is resolved and refused when it leads somewhere private."""
    errors = {}
    if "url" in data:
        url = (data["url"] or "").strip()
        if len(url) > 2000:
            errors["url"] = ["At most 2000 characters."]
        else:
            try:
                net.check_url(url)
            except net.Refused as exc:
                errors["url"] = [str(exc)]
        data = {**data, "url": url}
    if "events" in data:
        events = list(dict.fromkeys(data["events"] or []))
        unknown = [event for event in events if event not in EventType.values]
        if unknown:
            errors["events"] = [f"Unknown event: {', '.join(map(str, unknown))}. "
                                f"Choose from {', '.join(EventType.values)}."]
        elif not events:
            errors["events"] = ["Choose at least one event."]
        data = {**data, "events": events}
    if errors:
        raise EndpointError(errors)
    return data


@transaction.atomic
def create_endpoint(*, organization_id, data: dict, actor=None) -> Endpoint:
    data = clean_endpoint({key: data[key] for key in ENDPOINT_FIELDS if key in data})
    for required in ("url", "events"):
        if required not in data:
            raise EndpointError({required: ["This field is required."]})
    endpoint = Endpoint.objects.create(organization_id=organization_id, secret=signing.new_secret(), **data)
    audit.record_save(organization=organization_id, actor=actor, obj=endpoint, before=None)
    return endpoint


@transaction.atomic
def _save(endpoint: Endpoint, changes: dict, actor) -> Endpoint:
    """Apply `changes` to the endpoint and record them in the audit log (the secret only as "changed")."""
    before = audit.stored(endpoint)
    for field, value in changes.items():
        setattr(endpoint, field, value)
    endpoint.save(update_fields=[*changes, "updated_at"])
    audit.record_save(organization=endpoint.organization_id, actor=actor, obj=endpoint, before=before)
    return endpoint


def update_endpoint(*, endpoint: Endpoint, data: dict, actor=None) -> Endpoint:
    return _save(endpoint, clean_endpoint({key: data[key] for key in ENDPOINT_FIELDS if key in data}), actor)


def set_active(*, endpoint: Endpoint, active: bool, actor=None) -> Endpoint:
    """A disabled endpoint gets no new deliveries, and its pending ones wait until it is enabled again."""
    _save(endpoint, {"active": active}, actor)
    if active:
        transaction.on_commit(lambda: _enqueue_drain(1))
    return endpoint


def rotate_secret(*, endpoint: Endpoint, actor=None) -> Endpoint:
    return _save(endpoint, {"secret": signing.new_secret()}, actor)


@transaction.atomic
def delete_endpoint(*, endpoint: Endpoint, actor=None) -> None:
    with audit.Deletion(endpoint, organization=endpoint.organization_id, actor=actor):
        endpoint.delete()


# ------------------------------------------------------------------------------------------ creating deliveries

_LEAD_SNAPSHOT = ", ".join(f"'{field}', l.{field}" for field in (
    "id", "email", "first_name", "last_name", "phone", "job_title", "company", "country", "lifecycle_stage",
    "status", "score", "grade", "owner_id", "account_id", "source", "utm_campaign", "tags", "unsubscribed",
    "do_not_contact", "created_at", "updated_at"))
LEAD_JSON = f"jsonb_build_object({_LEAD_SNAPSHOT})"


def _new_message_id_sql() -> str:
    return "'msg_' || replace(gen_random_uuid()::text, '-', '')"


def create_lead_deliveries(*, organization_id, event_type: str, leads_sql: str, leads_params: list,
                           data: dict | None = None, event_key: str | None = None, returning: bool = True):
    """One INSERT … SELECT: a delivery of `event_type` to each active endpoint of the org that subscribes to it, for
    each lead in `leads_sql` (a query of lead ids), with the lead as it is now in `data.lead`. With `event_key`, a
    repeat of the same event adds nothing. Returns the new delivery ids (or their number, returning=False)."""
    if not subscribed(organization_id, event_type):
        return [] if returning else 0
    now = timezone.now()
    key_sql = "%s || ':' || l.id::text" if event_key is not None else "NULL::text"
    key_params = [event_key] if event_key is not None else []
    sql = (
        f"INSERT INTO {Delivery._meta.db_table} (id, organization_id, endpoint_id, message_id, event_type, event_key,"
        " lead_id, payload, status, attempt_count, next_attempt_at, last_error, created_at, updated_at)"
        f" SELECT gen_random_uuid(), e.organization_id, e.id, {_new_message_id_sql()}, %s, {key_sql}, l.id,"
        f" jsonb_build_object('type', %s::text, 'timestamp', %s::text, 'data',"
        f"  jsonb_build_object('lead', {LEAD_JSON}) || %s::jsonb),"
        " %s, 0, %s, '', %s, %s"
        f" FROM {Endpoint._meta.db_table} e JOIN {Lead._meta.db_table} l ON l.organization_id = e.organization_id"
        f" WHERE e.organization_id = %s AND e.active AND %s = ANY(e.events) AND l.id IN ({leads_sql})"
        " ON CONFLICT (endpoint_id, event_key) WHERE event_key IS NOT NULL DO NOTHING"
    )
    params = [event_type, *key_params, event_type, now.isoformat(), json.dumps(data or {}, default=str),
              DeliveryStatus.PENDING, now, now, now, organization_id, event_type, *leads_params]
    return _insert(sql, params, returning)


def subscribed(organization_id, *event_types: str) -> bool:
    """Whether an active endpoint of the org takes one of these events. Most orgs have none: this indexed probe
    costs a fraction of planning the delivery INSERT … SELECT, which builds each lead's whole JSON."""
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT EXISTS (SELECT FROM {Endpoint._meta.db_table} WHERE organization_id = %s AND active"
                       " AND events && %s::varchar[])", [organization_id, list(event_types)])
        return cursor.fetchone()[0]


def _insert(sql: str, params: list, returning: bool):
    # One statement, atomic by itself: no transaction of its own (and no COMMIT round trip on the capture path).
    # Inside the caller's transaction, the deliveries are sent once that commits.
    with connection.cursor() as cursor:
        if returning:
            cursor.execute(sql + " RETURNING id", params)
            ids = [row[0] for row in cursor.fetchall()]
        else:
            cursor.execute(sql, params)
            ids = cursor.rowcount
        if ids:
            transaction.on_commit(lambda: _enqueue(ids))
    return ids


def deliveries_for_lead(*, organization_id, event_type: str, lead_id, data: dict | None = None,
                        event_id=None) -> list:
    return create_lead_deliveries(
        organization_id=organization_id, event_type=event_type, leads_sql="%s", leads_params=[lead_id], data=data,
        event_key=f"{event_id}:{event_type}" if event_id else None)


def deliveries_for_leads(*, organization_id, event_type: str, lead_ids: list, data: dict | None = None,
                         event_id=None):
    return create_lead_deliveries(
        organization_id=organization_id, event_type=event_type, leads_sql="SELECT unnest(%s::uuid[])",
        leads_params=[[str(i) for i in lead_ids]], data=data,
        event_key=f"{event_id}:{event_type}" if event_id else None, returning=len(lead_ids) <= 100)


def deliveries_for_import(*, organization_id, import_id, event_id=None) -> int:
    """lead.created for each lead an import created, lead.updated for each it merged into: two statements
    whatever the number of leads. An import finishes once, so its id alone makes a repeat add nothing."""
    total = 0
    for event_type, merged in ((EventType.LEAD_CREATED, "false"), (EventType.LEAD_UPDATED, "true")):
        total += create_lead_deliveries(
            organization_id=organization_id, event_type=event_type,
            leads_sql=(f"SELECT a.lead_id FROM {Activity._meta.db_table} a WHERE a.organization_id = %s"
                       " AND a.type = %s AND a.properties ->> 'import_id' = %s AND a.properties ->> 'merged' = %s"),
            leads_params=[organization_id, ActivityType.IMPORTED, str(import_id), merged],
            data={"import_id": str(import_id)}, event_key=f"import:{import_id}:{event_type}", returning=False)
    return total


def deliveries_for_deal(*, organization_id, event_type: str, deal_id, event_id=None) -> list:
    """deal.won: the deal and its lead (null when the deal has none) as they are now."""
    now = timezone.now()
    deal_json = ("jsonb_build_object('id', d.id, 'name', d.name, 'amount', d.amount::text, 'currency', d.currency,"
                 " 'status', d.status, 'account_id', d.account_id, 'owner_id', d.owner_id, 'closed_at', d.closed_at)")
    key_sql, key_params = ("%s", [f"{event_id}:{event_type}"]) if event_id else ("NULL::text", [])
    sql = (
        f"INSERT INTO {Delivery._meta.db_table} (id, organization_id, endpoint_id, message_id, event_type, event_key,"
        " lead_id, payload, status, attempt_count, next_attempt_at, last_error, created_at, updated_at)"
        f" SELECT gen_random_uuid(), e.organization_id, e.id, {_new_message_id_sql()}, %s, {key_sql}, l.id,"
        f" jsonb_build_object('type', %s::text, 'timestamp', %s::text, 'data', jsonb_build_object('deal', {deal_json},"
        f"  'lead', CASE WHEN l.id IS NULL THEN NULL ELSE {LEAD_JSON} END)),"
        " %s, 0, %s, '', %s, %s"
        f" FROM {Endpoint._meta.db_table} e JOIN {Deal._meta.db_table} d ON d.organization_id = e.organization_id"
        f" LEFT JOIN {Lead._meta.db_table} l ON l.id = d.lead_id AND l.organization_id = d.organization_id"
        " WHERE e.organization_id = %s AND e.active AND %s = ANY(e.events) AND d.id = %s"
        " ON CONFLICT (endpoint_id, event_key) WHERE event_key IS NOT NULL DO NOTHING"
    )
    params = [event_type, *key_params, event_type, now.isoformat(), DeliveryStatus.PENDING, now, now, now,
              organization_id, event_type, deal_id]
    return _insert(sql, params, True)


def send_test_event(*, endpoint: Endpoint) -> Delivery:
    now = timezone.now()
    with transaction.atomic():
        delivery = Delivery.objects.create(
            organization_id=endpoint.organization_id, endpoint=endpoint, message_id=new_message_id(),
            event_type=TEST_EVENT, next_attempt_at=now,
            payload={"type": TEST_EVENT, "timestamp": now.isoformat(),
                     "data": {"message": "A test event from LeadCRM.", "endpoint_id": str(endpoint.pk)}})
        transaction.on_commit(lambda: _enqueue([delivery.pk]))
    return delivery


def new_message_id() -> str:
    import uuid

    return "msg_" + uuid.uuid4().hex


def replay(*, delivery: Delivery) -> Delivery:
    """A new delivery of the same payload with a new message id, sent now with a retry schedule of its own; the
    original keeps its history. (A new id, because receivers drop a webhook-id they have seen, and a replay is
    asked for when the receiver needs the event again.)"""
    now = timezone.now()
    with transaction.atomic():
        copy = Delivery.objects.create(
            organization_id=delivery.organization_id, endpoint_id=delivery.endpoint_id,
            message_id=new_message_id(), event_type=delivery.event_type, lead_id=delivery.lead_id,
            payload=delivery.payload, next_attempt_at=now, replay_of=delivery)
        transaction.on_commit(lambda: _enqueue([copy.pk]))
    return copy


# ------------------------------------------------------------------------------------------------- sending


def retry_backoff() -> claims.Backoff:
    """The wait after each failed attempt, WEBHOOKS_RETRY_SCHEDULE's steps; after the last the delivery fails."""
    steps = [int(step) for step in str(settings.WEBHOOKS_RETRY_SCHEDULE).split(",") if step.strip()]
    return claims.Backoff(schedule=tuple(timedelta(seconds=seconds) for seconds in steps))


def _enqueue(ids) -> None:
    """Hand new deliveries to workers. Many at once (an import) go to a few draining tasks instead of a task each.
    If the broker is down the sweeper finds them: they are due in the database."""
    from . import tasks

    try:
        if isinstance(ids, int) or len(ids) > 100:
            _enqueue_drain(ids if isinstance(ids, int) else len(ids))
        else:
            for delivery_id in ids:
                tasks.deliver.apply_async((str(delivery_id),), retry=False)
    except Exception:  # the sweeper sends what could not be enqueued
        logger.warning("could not enqueue webhook deliveries; the sweeper will send them", exc_info=True)


def _enqueue_drain(count: int) -> None:
    from . import tasks

    try:
        for _ in range(min(settings.WEBHOOKS_DRAIN_TASKS, max(1, count // settings.WEBHOOKS_BATCH_SIZE))):
            tasks.drain.apply_async(retry=False)
    except Exception:
        logger.warning("could not enqueue webhook draining; the sweeper will send them", exc_info=True)


def _claim(*, delivery_id=None, limit: int = 1) -> list[Delivery]:
    """Lease due deliveries (of active endpoints) to this worker: their next_attempt_at moves past the longest a
    send can take, so no other worker takes them meanwhile, and a worker that dies leaves them due again later."""
    due = Delivery.objects.filter(status=DeliveryStatus.PENDING, endpoint__active=True)
    if delivery_id is not None:
        due = due.filter(pk=delivery_id)
    ids = [row.pk for row in claims.claim(due, due="next_attempt_at", limit=limit,
                                          lease=timedelta(seconds=settings.WEBHOOKS_LEASE_SECONDS))]
    if not ids:
        return []
    return list(Delivery.objects.filter(pk__in=ids).select_related("endpoint").order_by("next_attempt_at"))


def body_of(delivery: Delivery) -> bytes:
    return json.dumps(delivery.payload, separators=(",", ":"), ensure_ascii=False).encode()


def _post(delivery: Delivery):
    """One signed POST of a claimed delivery; returns (attempted_at, result) for `_record`."""
    body = body_of(delivery)
    timestamp = int(timezone.now().timestamp())
    headers = signing.headers(delivery.endpoint.secret, delivery.message_id, timestamp, body)
    attempted_at = timezone.now()
    return attempted_at, net.post(delivery.endpoint.url, body, headers)


def _record(outcomes: list) -> list[Attempt]:
    """Store the attempts of sent deliveries, and move each to delivered, due again after its backoff, or failed —
    in one transaction for a whole batch (a crash before it commits only means those are sent again later)."""
    backoff = retry_backoff()
    now = timezone.now()
    if not outcomes:
        return []
    attempts, retries, rows = [], [], []
    with transaction.atomic():
        for delivery, attempted_at, result in outcomes:
            ok = result.status_code is not None and 200 <= result.status_code < 300 and not result.error
            count = delivery.attempt_count + 1
            wait = None if ok else backoff.after(count)
            if ok:
                status, next_at = DeliveryStatus.DELIVERED, None
            elif wait is None:  # the schedule is spent
                status, next_at = DeliveryStatus.FAILED, None
            else:
                status, next_at = DeliveryStatus.PENDING, now + wait
                if wait <= timedelta(seconds=settings.WEBHOOKS_SWEEP_SECONDS):
                    retries.append((delivery.pk, wait.total_seconds()))  # sooner than the sweeper's next look
            error = (result.error or ("" if ok else f"HTTP {result.status_code}"))[:500]
            attempts.append(Attempt(
                organization_id=delivery.organization_id, delivery=delivery, attempted_at=attempted_at,
                url=result.url, status_code=result.status_code, response_body=result.body.replace("\x00", ""),
                error=result.error, duration_ms=result.duration_ms))
            rows.append((delivery.pk, status, count, next_at, result.status_code, error))
            delivery.status, delivery.attempt_count, delivery.next_attempt_at = status, count, next_at
            delivery.last_status_code, delivery.last_error = result.status_code, error
        Attempt.objects.bulk_create(attempts)
        # One statement for the batch's deliveries.
        values = ", ".join(["(%s::uuid, %s, %s::integer, %s::timestamptz, %s::smallint, %s)"] * len(rows))
        with connection.cursor() as cursor:
            cursor.execute(
                f"UPDATE {Delivery._meta.db_table} d SET status = v.status, attempt_count = v.attempt_count,"
                " next_attempt_at = v.next_attempt_at, last_status_code = v.code, last_error = v.error, updated_at = %s"
                f" FROM (VALUES {values}) AS v(id, status, attempt_count, next_attempt_at, code, error)"
                " WHERE d.id = v.id", [now, *(value for row in rows for value in row)])
        if retries:
            transaction.on_commit(lambda: [_retry_later(pk, seconds) for pk, seconds in retries])
    return attempts


def attempt(delivery: Delivery) -> Attempt:
    """Send a claimed delivery once and record the outcome."""
    return _record([(delivery, *_post(delivery))])[0]


def _retry_later(delivery_id, seconds: float) -> None:
    from . import tasks

    try:
        tasks.deliver.apply_async((str(delivery_id),), countdown=seconds, retry=False)
    except Exception:
        logger.warning("could not schedule a webhook retry; the sweeper will send it", exc_info=True)


def send_delivery(*, delivery_id) -> Attempt | None:
    """Send one delivery if it is due and nobody else is sending it (safe to run twice), under its org."""
    organization_id = selectors.organization_of_delivery(delivery_id)
    if organization_id is None:
        return None
    with rls.scope(organization_id):
        claimed = _claim(delivery_id=delivery_id)
        return attempt(claimed[0]) if claimed else None


def send_due(*, budget_seconds: float | None = None, batch: int | None = None) -> int:
    """Send due deliveries, claimed in batches with FOR UPDATE SKIP LOCKED (workers share the load), until none
    is due or the time budget is spent. Returns how many were attempted."""
    budget = settings.WEBHOOKS_DRAIN_SECONDS if budget_seconds is None else budget_seconds
    deadline = time.monotonic() + budget
    sent = 0
    with ThreadPoolExecutor(max_workers=max(1, settings.WEBHOOKS_SEND_CONCURRENCY)) as pool:
        while time.monotonic() < deadline:
            claimed = _claim(limit=batch or settings.WEBHOOKS_BATCH_SIZE)
            if not claimed:
                break
            # Receivers answer slowly next to the work here: several POSTs of a batch are in flight at once.
            futures = {pool.submit(_post, delivery): delivery for delivery in claimed}
            outcomes, flushed = [], time.monotonic()
            for future in as_completed(futures):
                outcomes.append((futures[future], *future.result()))
                if time.monotonic() - flushed >= 1.0:  # slow receivers: record progress at least every second
                    _record(outcomes)
                    outcomes, flushed = [], time.monotonic()
            _record(outcomes)
            sent += len(claimed)
    return sent


def due_count() -> int:
    return Delivery.objects.filter(status=DeliveryStatus.PENDING, next_attempt_at__lte=timezone.now(),
                                   endpoint__active=True).count()


def send_due_in_every_org(*, budget_seconds: float | None = None) -> tuple[int, int]:
    """send_due for each org with due deliveries, under its own org, within one time budget; in a random order, so
    one org's backlog does not always go first. Returns (attempted, still due)."""
    budget = settings.WEBHOOKS_DRAIN_SECONDS if budget_seconds is None else budget_seconds
    deadline = time.monotonic() + budget
    sent = backlog = 0
    organization_ids = selectors.organizations_with_due(timezone.now())
    random.shuffle(organization_ids)
    for organization_id in organization_ids:
        with rls.scope(organization_id):
            remaining = deadline - time.monotonic()
            if remaining > 0:
                sent += send_due(budget_seconds=remaining)
            backlog += due_count()
    return sent, backlog


# ----------------------------------------------------------------------------------------------- retention

PURGE_BATCH = 5000


def purge_old_deliveries(*, now=None) -> int:
    """Delivered and failed deliveries created more than WEBHOOKS_RETENTION_DAYS ago go, with their attempts;
    pending ones stay whatever their age. Endpoint by endpoint, so each batch reads an (org, endpoint, created)
    index. Returns how many deliveries went."""
    cutoff = (now or timezone.now()) - timedelta(days=settings.WEBHOOKS_RETENTION_DAYS)
    delivery, attempt = Delivery._meta.db_table, Attempt._meta.db_table
    sql = f"""
        WITH old AS (
            SELECT id FROM {delivery} WHERE organization_id = %(org)s AND endpoint_id = %(endpoint)s
            AND created_at < %(cutoff)s AND status <> %(pending)s LIMIT {PURGE_BATCH}
        ), unlinked AS (  -- a newer replay keeps its body and only forgets what it replayed
            UPDATE {delivery} SET replay_of_id = NULL
            WHERE replay_of_id IN (SELECT id FROM old) AND id NOT IN (SELECT id FROM old)
        ), attempts AS (
            DELETE FROM {attempt} WHERE organization_id = %(org)s AND delivery_id IN (SELECT id FROM old)
        )
        DELETE FROM {delivery} WHERE id IN (SELECT id FROM old)
    """
    purged = 0
    for organization_id in selectors.organizations_with_endpoints():
        with rls.scope(organization_id):
            for org, endpoint in Endpoint.objects.for_org(organization_id).values_list("organization_id", "pk"):
                params = {"org": org, "endpoint": endpoint, "cutoff": cutoff, "pending": DeliveryStatus.PENDING}
                while True:
                    with transaction.atomic(), connection.cursor() as cursor:
                        cursor.execute(sql, params)
                        purged += cursor.rowcount
                    if cursor.rowcount < PURGE_BATCH:
                        break
    return purged
