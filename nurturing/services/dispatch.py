"""Running sequences: the beat tick claims due enrolments (SKIP LOCKED), runs their steps, and sends email.

Never twice: an email step first inserts its Message row (unique per enrolment and step) with status `queued`
and moves the enrolment past the step, all in the claiming transaction. After that commits, each email in turn is
switched `queued` -> `sending` (one committed UPDATE that only one process can win), handed to the mail server,
and marked `sent`. A worker that dies mid-batch leaves the emails it had not begun `queued`: a later tick sends
them. The one it was handing over stays `sending`, which the sweeper turns into `unknown`: such a message is never
sent again (at most once, by design).
"""

import html as html_lib
import logging
import re
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.conf import settings
from django.core.mail import EmailMultiAlternatives, get_connection
from django.db import transaction
from django.db.models import Count, Q
from django.urls import reverse
from django.utils import timezone
from django.utils.html import strip_tags

from agenda import services as agenda_services
from leadcrm import claims, events, metrics, rls
from leadcrm.links import site_url
from leadcrm.mailheaders import sender, sending_address
from leads.conditions import ConditionError
from leads.models import Activity, ActivityType, Lead, Segment
from leads.segments import definition_q
from leads.services import StageMoveRefused, move_stage, segment_q, update_lead

from .. import selectors
from ..models import (
    Enrollment,
    EnrollmentStatus,
    Message,
    MessageStatus,
    SequenceStep,
    StepType,
    TemplateVersion,
)
from ..rendering import TemplateProblem, render
from .tracking import make_token

logger = logging.getLogger(__name__)

BATCH = 200  # enrolments claimed per transaction
MAX_ROUNDS = 200  # claim rounds per tick; what is left waits for the next tick
MAX_STEPS_PER_RUN = 50  # steps one enrolment runs in one claim (a loop always waits, so this is a safety net)
MAX_TRACKED_LINKS = 100
RETRY_AFTER = timedelta(minutes=5)  # an enrolment whose step failed unexpectedly, or whose send could not start

# Why an email was not sent, and whether the lead leaves the sequence for it.
SKIP_REASONS = {
    "no_email": ("The lead has no email address.", False),
    "unsubscribed": ("The lead unsubscribed.", True),
    "bounced": ("Email to the lead bounced before.", True),
    "do_not_contact": ("The lead must not be contacted.", True),
    "no_consent": ("The lead has not opted in to marketing email.", False),
    "no_version": ("The template has no content.", False),
}
HREF = re.compile(r"""(<a\b[^>]*?\bhref\s*=\s*)(["'])(.*?)\2""", re.IGNORECASE | re.DOTALL)
BODY_END = re.compile(r"</body\s*>", re.IGNORECASE)


def _setting(name: str, default):
    return getattr(settings, name, default)


def _sender_domain() -> str:
    return sending_address().rpartition("@")[2] or "localhost"


def unsubscribe_mailto() -> str:
    address = _setting("NURTURE_UNSUBSCRIBE_MAILTO", "") or f"unsubscribe@{_sender_domain()}"
    return f"mailto:{address}?subject=unsubscribe"


# ----------------------------------------------------------------------------------------------- time


def lead_zone(lead) -> ZoneInfo:
    try:
        return ZoneInfo(lead.timezone) if lead.timezone else UTC
    except (ZoneInfoNotFoundError, ValueError):
        return UTC


def _window(sequence) -> tuple[time, time] | None:
    hours = sequence.sending_hours or {}
    try:
        return time.fromisoformat(hours["start"]), time.fromisoformat(hours["end"])
    except (KeyError, TypeError, ValueError):
        return None


def next_allowed(moment: datetime, *, sequence, lead, business_days: bool = False) -> datetime:
    """The first moment at or after `moment` inside the sequence's sending hours (and on a weekday when asked),
    in the lead's timezone."""
    zone = lead_zone(lead)
    window = _window(sequence)
    local = moment.astimezone(zone)
    for _ in range(16):
        day_start = window[0] if window else time(0, 0)
        if business_days and local.weekday() >= 5:
            local = datetime.combine(local.date() + timedelta(days=1), day_start, tzinfo=zone)
            continue
        if window and local.time() < window[0]:
            local = datetime.combine(local.date(), window[0], tzinfo=zone)
        elif window and local.time() >= window[1]:
            local = datetime.combine(local.date() + timedelta(days=1), day_start, tzinfo=zone)
            continue
        break
    return local.astimezone(UTC)


def wait_until(now: datetime, config: dict, *, sequence, lead) -> datetime:
    """When a wait step started at `now` ends."""
    business_days = bool(config.get("business_days"))
    local = now.astimezone(lead_zone(lead))
    if "days" in config:
        days = config["days"]
        if business_days:
            while days > 0:
                local += timedelta(days=1)
                if local.weekday() < 5:
                    days -= 1
        else:
            local += timedelta(days=days)  # calendar days: the same wall-clock time, across DST changes too
    else:
        local = (now + timedelta(hours=config.get("hours", 0))).astimezone(local.tzinfo)
    return next_allowed(local, sequence=sequence, lead=lead, business_days=business_days)


# ----------------------------------------------------------------------------------------------- one claim


@dataclass
class Outgoing:
    message_id: uuid.UUID
    organization_id: uuid.UUID
    lead: Lead
    enrollment_id: uuid.UUID
    position: int  # the email step's position (a send that could not start puts the enrolment back there)
    email: EmailMultiAlternatives
    sequence_name: str
    due_at: datetime | None = None  # when the step was due (its send lag is measured from here)


class _Batch:
    """What one claim needs, loaded once for all the enrolments it holds."""

    def __init__(self, enrollments, now):
        self.now = now
        self.organizations = _organizations({enrollment.organization_id for enrollment in enrollments})
        self.messages: list[Message] = []
        self.outgoing: list[Outgoing] = []
        self.limited: set = set()
        self.notify: list[tuple] = []
        self.tasks: list = []  # planned by "create a task" steps, saved with the batch
        sequence_ids = {enrollment.sequence_id for enrollment in enrollments}
        self.steps = defaultdict(list)
        for step in SequenceStep.objects.filter(sequence_id__in=sequence_ids).order_by("sequence_id", "position"):
            self.steps[step.sequence_id].append(step)
        template_ids = {step.template_id for steps in self.steps.values() for step in steps if step.template_id}
        self.versions = {version.template_id: version for version in
                         TemplateVersion.objects.filter(template_id__in=template_ids)
                         .order_by("template_id", "-number").distinct("template_id")}
        self.done = set(Message.objects.filter(enrollment__in=[e.pk for e in enrollments])
                        .values_list("enrollment_id", "step_id"))
        self.exiting = self._exit_matches(enrollments)
        organization_ids = {enrollment.organization_id for enrollment in enrollments}
        since = now - timedelta(minutes=1)
        recent = dict(Message.objects.filter(organization_id__in=organization_ids, created_at__gte=since)
                      .exclude(status=MessageStatus.SKIPPED).order_by().values("organization_id")
                      .annotate(n=Count("pk")).values_list("organization_id", "n"))
        limit = _setting("NURTURE_RATE_PER_MINUTE", 600)
        self.budget = {org: limit - recent.get(org, 0) for org in organization_ids}

    def _exit_matches(self, enrollments) -> set:
        """(sequence, lead) pairs whose exit condition holds now."""
        by_sequence = defaultdict(list)
        for enrollment in enrollments:
            if enrollment.sequence.exit_condition:
                by_sequence[enrollment.sequence].append(enrollment.lead_id)
        matches = set()
        for sequence, lead_ids in by_sequence.items():
            try:
                q = definition_q(sequence.organization_id, sequence.exit_condition)
            except ConditionError:
                continue
            for lead_id in Lead.objects.for_org(sequence.organization_id).filter(q, pk__in=lead_ids).values_list(
                    "pk", flat=True):
                matches.add((sequence.pk, lead_id))
        return matches


def _finish(enrollment, status: str, now, reason: str = "") -> None:
    enrollment.status = status
    enrollment.exit_reason = reason[:200]
    enrollment.finished_at = now
    enrollment.next_run_at = None


def _skip_reason(lead) -> str | None:
    if not lead.email:
        return "no_email"
    if lead.unsubscribed:
        return "unsubscribed"
    if lead.bounced:
        return "bounced"
    if lead.do_not_contact:
        return "do_not_contact"
    if not lead.consent_opt_in:
        return "no_consent"
    return None


def _branch(enrollment, condition: dict) -> bool:
    key, value = next(iter(condition.items()))
    lead = enrollment.lead
    if key in ("opened_last", "clicked_last"):
        last = (Message.objects.filter(enrollment=enrollment, status__in=(MessageStatus.SENT, MessageStatus.UNKNOWN))
                .order_by("-created_at").values("opened_at", "clicked_at").first())
        happened = last is not None and last["opened_at" if key == "opened_last" else "clicked_at"] is not None
        return happened == value
    if key == "score_gte":
        return lead.score >= value
    segment = Segment.objects.for_org(lead.organization_id).filter(pk=value).first()
    if segment is None:
        return False
    try:
        return Lead.objects.for_org(lead.organization_id).filter(segment_q(segment), pk=lead.pk).exists()
    except ConditionError:
        return False


def _update(enrollment, config: dict) -> None:
    lead = enrollment.lead
    field, value = config["field"], config["value"]
    if field == "lifecycle_stage":
        if lead.lifecycle_stage == value:
            return
        try:
            move_stage(lead=lead, to_stage=value, reason="")
        except StageMoveRefused as exc:
            logger.info("Sequence %s could not move lead %s: %s", enrollment.sequence_id, lead.pk, exc)
        lead.refresh_from_db(fields=["lifecycle_stage", "stage_entered_at", "stage_reason"])
        return
    update_lead(lead=lead, data={field: value})


def _email(batch: _Batch, enrollment, step) -> str:
    """Claim the step's one message: skipped, failed to render, or `sending` and queued. Returns what happened:
    "sent", "skipped", "exit", "deferred" (outside sending hours), "limited" (rate) or "failed"."""
    lead, sequence, now = enrollment.lead, enrollment.sequence, batch.now
    reason = _skip_reason(lead)
    version = batch.versions.get(step.template_id)
    if reason is None and version is None:
        reason = "no_version"
    common = {"organization_id": enrollment.organization_id, "lead": lead, "enrollment": enrollment, "step": step,
              "template_version": version, "to_email": lead.email}
    if reason is not None:
        text, leaves = SKIP_REASONS[reason]
        batch.messages.append(Message(status=MessageStatus.SKIPPED, skip_reason=reason, error=text, **common))
        return "exit" if leaves else "skipped"
    allowed = next_allowed(now, sequence=sequence, lead=lead)
    if allowed > now:
        enrollment.next_run_at = allowed
        return "deferred"
    if batch.budget.get(enrollment.organization_id, 0) <= 0:
        batch.limited.add(enrollment.organization_id)
        return "limited"
    message_id = uuid.uuid4()
    try:
        email, links = compose(message_id, version, lead, batch.organizations[enrollment.organization_id])
    except TemplateProblem as exc:
        batch.messages.append(Message(id=message_id, status=MessageStatus.FAILED, error=str(exc)[:2000],
                                      **common))
        return "failed"
    batch.messages.append(Message(id=message_id, status=MessageStatus.QUEUED, subject=email.subject, links=links,
                                  **common))
    batch.outgoing.append(Outgoing(message_id=message_id, organization_id=enrollment.organization_id, lead=lead,
                                   enrollment_id=enrollment.pk, position=step.position, email=email,
                                   sequence_name=sequence.name, due_at=enrollment.next_run_at))
    batch.budget[enrollment.organization_id] -= 1
    return "sent"


def compose(message_id, version, lead, organization) -> tuple[EmailMultiAlternatives, list[str]]:
    """The email of one message (the same every time for the same message and lead) and its tracked links."""
    token = make_token(message_id)
    unsubscribe_url = site_url(reverse("tracking-unsubscribe", args=[token]))
    rendered = render(version, lead, unsubscribe_url=unsubscribe_url, organization=organization)
    html, links = track_links(rendered.html, token, unsubscribe_url)
    email = build_email(
        subject=rendered.subject, html=html, text=rendered.text, to=lead.email, organization=organization,
        owner=lead.owner if lead.owner_id else None,
        headers={
            "List-Unsubscribe": f"<{unsubscribe_url}>, <{unsubscribe_mailto()}>",
            "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
            "Message-ID": f"<{message_id}@{_sender_domain()}>",
        },
    )
    return email, links


def build_email(*, subject: str, html: str, text: str, to: str, organization, owner=None,
                headers=None) -> EmailMultiAlternatives:
    """An email to a lead (or a test of one) as the organization sends it: From its sending address in its name,
    or in the lead owner's name with replies to the owner (leadcrm.mailheaders.sender)."""
    from_email, reply_to = sender(organization, owner)
    email = EmailMultiAlternatives(subject=subject, body=text or strip_tags(html), from_email=from_email, to=[to],
                                   reply_to=reply_to, headers=dict(headers or {}))
    email.attach_alternative(html, "text/html")
    return email


def track_links(html: str, token: str, unsubscribe_url: str) -> tuple[str, list[str]]:
    """Point the email's web links at the click redirect (which only ever goes to these recorded URLs), and add
    the open pixel."""
    links: list[str] = []

    def replace(match):
        url = html_lib.unescape(match.group(3)).strip()
        if not url.lower().startswith(("http://", "https://")) or url == unsubscribe_url:
            return match.group(0)
        if url not in links:
            if len(links) >= MAX_TRACKED_LINKS:
                return match.group(0)
            links.append(url)
        click = site_url(reverse("tracking-click", args=[token, links.index(url)]))
        return f"{match.group(1)}{match.group(2)}{click}{match.group(2)}"

    html = HREF.sub(replace, html)
    pixel = (f'<img src="{site_url(reverse("tracking-open", args=[token]))}" width="1" height="1" alt="" '
             'style="display:none">')
    if BODY_END.search(html):
        html = BODY_END.sub(lambda match: pixel + match.group(0), html, count=1)
    else:
        html += pixel
    return html, links


def _advance(batch: _Batch, enrollment, counts: Counter) -> None:
    """Run the enrolment's steps until a wait, an email, or the end."""
    now = batch.now
    steps = batch.steps[enrollment.sequence_id]
    if (enrollment.sequence_id, enrollment.lead_id) in batch.exiting:
        _finish(enrollment, EnrollmentStatus.EXITED, now, "exit condition met")
        counts["exited"] += 1
        return
    for _ in range(MAX_STEPS_PER_RUN):
        if enrollment.position >= len(steps):
            _finish(enrollment, EnrollmentStatus.COMPLETED, now)
            counts["completed"] += 1
            return
        step = steps[enrollment.position]
        config = step.config or {}
        if step.type == StepType.WAIT:
            enrollment.position += 1
            enrollment.next_run_at = wait_until(now, config, sequence=enrollment.sequence, lead=enrollment.lead)
            if enrollment.next_run_at > now:
                return
        elif step.type == StepType.EMAIL:
            if (enrollment.pk, step.pk) in batch.done:  # sent (or claimed) before: never again
                enrollment.position += 1
                continue
            outcome = _email(batch, enrollment, step)
            counts["queued" if outcome == "sent" else outcome] += 1
            if outcome in ("deferred", "limited"):
                return
            batch.done.add((enrollment.pk, step.pk))
            enrollment.position += 1
            if outcome == "exit":
                _finish(enrollment, EnrollmentStatus.EXITED, now, batch.messages[-1].skip_reason)
                return
            if outcome == "sent":
                enrollment.next_run_at = now  # the next step runs in the next claim, after this one is sent
                return
        elif step.type == StepType.BRANCH:
            enrollment.position = config["then"] if _branch(enrollment, config["condition"]) else config["else"]
        elif step.type == StepType.UPDATE:
            _update(enrollment, config)
            enrollment.position += 1
        elif step.type == StepType.CREATE_TASK:
            task = agenda_services.planned_by_sequence(organization_id=enrollment.organization_id,
                                                       lead=enrollment.lead, config=config, now=batch.now)
            if task is not None:
                batch.tasks.append(task)
            enrollment.position += 1
        elif step.type == StepType.NOTIFY_OWNER:
            if enrollment.lead.owner_id:
                batch.notify.append((enrollment.organization_id, enrollment.lead_id, enrollment.sequence_id,
                                     config.get("message", "")))
            enrollment.position += 1
        else:  # a step type this code does not know: skip it rather than stall
            enrollment.position += 1
    enrollment.next_run_at = now + RETRY_AFTER


def claim_due(*, now, limit: int, skip_organizations=(), organization_id=None) -> list[Enrollment]:
    """Lock up to `limit` due enrolments of active sequences that others do not hold (of one org, when given), the
    longest due first, with their sequence, lead and owner. Inside the caller's transaction: its row locks keep
    other ticks away until it commits, and by then each enrolment has its next run time (the lease written by the
    claim is never seen)."""
    due = Enrollment.objects.filter(status=EnrollmentStatus.ACTIVE, sequence__active=True).exclude(
        organization_id__in=list(skip_organizations))
    if organization_id is not None:
        due = due.for_org(organization_id)
    claimed = claims.claim(due, due="next_run_at", limit=limit, now=now, lease=RETRY_AFTER)
    found = Enrollment.objects.select_related("sequence", "lead", "lead__owner").in_bulk([row.pk for row in claimed])
    enrollments = []
    for row in claimed:
        enrollment = found[row.pk]
        enrollment.next_run_at = row.due_at  # an enrolment that waits for the next tick (the rate limit) stays due
        enrollments.append(enrollment)
    return enrollments


def claim_and_run(*, now=None, batch_size: int = BATCH, skip_organizations=(),
                  organization_id=None) -> tuple[int, _Batch | None]:
    """One claim: lock up to `batch_size` due enrolments others do not hold (of one org, when given), run them,
    and commit. Returns how many were claimed and the batch (its `outgoing` emails are for `deliver`)."""
    now = now or timezone.now()
    counts = Counter()
    with transaction.atomic():
        enrollments = claim_due(now=now, limit=batch_size, skip_organizations=skip_organizations,
                                organization_id=organization_id)
        if not enrollments:
            return 0, None
        batch = _Batch(enrollments, now)
        batch.counts = counts
        for enrollment in enrollments:
            state = (enrollment.status, enrollment.position, len(batch.messages), len(batch.outgoing),
                     len(batch.notify), dict(batch.budget), len(batch.tasks))
            try:
                with transaction.atomic():
                    _advance(batch, enrollment, counts)
            except Exception:  # one broken enrolment must not hold up the others: it retries later
                logger.exception("Enrolment %s failed at step %s", enrollment.pk, enrollment.position)
                enrollment.status, enrollment.position = state[0], state[1]
                del batch.messages[state[2]:], batch.outgoing[state[3]:], batch.notify[state[4]:]
                del batch.tasks[state[6]:]
                batch.budget = state[5]
                enrollment.next_run_at = now + RETRY_AFTER
                counts["errors"] += 1
        Message.objects.bulk_create(batch.messages)
        agenda_services.save_planned(batch.tasks)
        Enrollment.objects.bulk_update(enrollments, ["status", "position", "next_run_at", "exit_reason",
                                                     "finished_at"])
        notify = list(batch.notify)
        if notify:
            transaction.on_commit(lambda: _enqueue_notifications(notify))
    return len(enrollments), batch


def _organizations(ids) -> dict:
    from leadcrm.models import Organization

    return {organization.pk: organization for organization in Organization.objects.filter(pk__in=ids)}


def _enqueue_notifications(items) -> None:
    from .. import tasks

    for organization_id, lead_id, sequence_id, message in items:
        tasks.notify_owner.delay(str(organization_id), str(lead_id), str(sequence_id), message)


# ----------------------------------------------------------------------------------------------- sending


def deliver(outgoing: list[Outgoing], *, now=None, put_back: bool = True) -> dict[str, int]:
    """Hand claimed emails to the mail server over one connection, then mark them sent (or failed) and record
    `email_sent` on each lead's timeline. If the connection cannot even open, nothing was sent: the enrolments go
    back to their email step for a later tick."""
    if not outgoing:
        return {}
    connection = get_connection()
    try:
        connection.open()
    except Exception as exc:  # noqa: BLE001 — any failure to connect means nothing left
        logger.warning("Mail server unavailable, %d emails wait for a later tick: %s", len(outgoing), exc)
        if put_back:
            _put_back(outgoing, str(exc))
        return {"deferred": len(outgoing)}
    sent, failed = [], {}
    try:
        for item in outgoing:
            # Committed before the hand-over begins: a worker killed after this never sends it again, one killed
            # before leaves it `queued` for a later tick.
            if not Message.objects.filter(pk=item.message_id, status=MessageStatus.QUEUED).update(
                    status=MessageStatus.SENDING):
                continue  # another process took it over (see send_abandoned)
            item.email.connection = connection
            try:
                item.email.send()
            except Exception as exc:  # noqa: BLE001 — refused by the server: recorded, never retried
                failed[item.message_id] = f"{exc.__class__.__name__}: {exc}"[:2000]
            else:
                sent.append(item)
    finally:
        try:
            connection.close()
        except Exception:  # noqa: BLE001 — a QUIT that fails after sending changes nothing
            logger.debug("closing the mail connection failed", exc_info=True)
    now = now or timezone.now()
    _mark_sent(sent, now)
    for message_id, error in failed.items():
        Message.objects.filter(pk=message_id, status__in=(MessageStatus.SENDING, MessageStatus.UNKNOWN)).update(
            status=MessageStatus.FAILED, error=error)
    return {"sent": len(sent), "failed": len(failed)}


def _mark_sent(sent: list[Outgoing], now) -> None:
    if not sent:
        return
    lags = [(now - item.due_at).total_seconds() for item in sent if item.due_at is not None]
    with transaction.atomic():
        transaction.on_commit(lambda: metrics.observe_many(metrics.NURTURE_SEND_LAG, lags))
        Message.objects.filter(pk__in=[item.message_id for item in sent],
                               status__in=(MessageStatus.SENDING, MessageStatus.UNKNOWN)).update(
            status=MessageStatus.SENT, sent_at=now, error="")
        activities = Activity.objects.bulk_create([
            Activity(organization_id=item.organization_id, lead_id=item.lead.pk, type=ActivityType.EMAIL_SENT,
                     occurred_at=now, properties={"message": str(item.message_id), "subject": item.email.subject,
                                                  "sequence": item.sequence_name})
            for item in sent
        ])
        Lead.objects.filter(pk__in=[item.lead.pk for item in sent]).filter(
            Q(last_activity_at__isnull=True) | Q(last_activity_at__lt=now)).update(last_activity_at=now)
        for item, activity in zip(sent, activities, strict=True):
            events.emit(events.ACTIVITY_RECORDED, organization_id=item.organization_id, lead_id=item.lead.pk,
                        activity_id=activity.pk, type=ActivityType.EMAIL_SENT)


def _put_back(outgoing: list[Outgoing], error: str) -> None:
    """Emails that were never handed over: forget their claim and let the enrolment retry the step later, unless
    the enrolment moved on meanwhile (then the message is recorded as failed)."""
    retry_at = timezone.now() + RETRY_AFTER
    with transaction.atomic():
        for item in outgoing:
            reverted = (Enrollment.objects.filter(pk=item.enrollment_id, status=EnrollmentStatus.ACTIVE,
                                                  position=item.position + 1)
                        .update(position=item.position, next_run_at=retry_at))
            if reverted:
                Message.objects.filter(pk=item.message_id, status=MessageStatus.QUEUED).delete()
            else:
                Message.objects.filter(pk=item.message_id, status=MessageStatus.QUEUED).update(
                    status=MessageStatus.FAILED, error=f"Not sent: {error}"[:2000])


# ----------------------------------------------------------------------------------------------- the tick


def sweep_stale(*, now=None) -> int:
    """Messages left `sending` by a worker that stopped: after NURTURE_SENDING_STALE_MINUTES they become
    `unknown` (perhaps delivered, perhaps not) and are never sent again."""
    now = now or timezone.now()
    cutoff = now - timedelta(minutes=_setting("NURTURE_SENDING_STALE_MINUTES", 30))
    return Message.objects.filter(status=MessageStatus.SENDING, created_at__lt=cutoff).update(
        status=MessageStatus.UNKNOWN,
        error="The sender stopped between handing the email over and recording it; it is not sent again.")


def send_abandoned(*, now=None, limit: int = BATCH) -> dict[str, int]:
    """Emails a stopped worker claimed but never began to hand over (still `queued` after
    NURTURE_QUEUED_STALE_SECONDS): build them again from their message row and send them. The switch to `sending`
    in `deliver` lets only one process send each, should the first worker still be alive after all."""
    now = now or timezone.now()
    cutoff = now - timedelta(seconds=_setting("NURTURE_QUEUED_STALE_SECONDS", 60))
    messages = list(Message.objects.filter(status=MessageStatus.QUEUED, created_at__lt=cutoff)
                    .select_related("lead__owner", "template_version", "enrollment__sequence", "step")
                    .order_by("created_at")[:limit])
    organizations = _organizations({message.organization_id for message in messages})
    outgoing = []
    for message in messages:
        try:
            email, _ = compose(message.pk, message.template_version, message.lead,
                               organizations[message.organization_id])
        except (TemplateProblem, AttributeError) as exc:  # the version was deleted meanwhile, say
            Message.objects.filter(pk=message.pk, status=MessageStatus.QUEUED).update(
                status=MessageStatus.FAILED, error=f"Not sent: {exc}"[:2000])
            continue
        outgoing.append(Outgoing(
            message_id=message.pk, organization_id=message.organization_id, lead=message.lead,
            enrollment_id=message.enrollment_id, position=message.step.position if message.step else -1, email=email,
            sequence_name=message.enrollment.sequence.name if message.enrollment else "", due_at=message.created_at))
    # Should the mail server be down they stay `queued` for the next tick.
    return deliver(outgoing, now=now, put_back=False) if outgoing else {}


def tick(*, now=None, batch_size: int = BATCH, max_rounds: int = MAX_ROUNDS) -> dict[str, int]:
    """Beat: sweep stale sends, enrol segment entrants, then claim and run due enrolments until none are left
    (orgs over their sending rate wait for the next tick)."""
    from .sequences import enroll_segment_entries

    now = now or timezone.now()
    totals = Counter()
    # Recovery sweeps, set-based within each org that has an unsent message old enough for either of them.
    queued_cutoff = now - timedelta(seconds=_setting("NURTURE_QUEUED_STALE_SECONDS", 60))
    sending_cutoff = now - timedelta(minutes=_setting("NURTURE_SENDING_STALE_MINUTES", 30))
    for organization_id in selectors.organizations_with_unsent(max(queued_cutoff, sending_cutoff)):
        with rls.scope(organization_id):
            totals["unknown"] += sweep_stale(now=now)
            totals.update({f"abandoned_{key}": value for key, value in send_abandoned(now=now).items()})
    totals["enrolled"] += enroll_segment_entries(now=now)
    for organization_id in selectors.organizations_with_due_steps(now):  # each then claimed under its own org
        with rls.scope(organization_id):
            for _ in range(max_rounds):
                claimed, batch = claim_and_run(now=now, batch_size=batch_size, organization_id=organization_id)
                if not claimed:
                    break
                totals["claimed"] += claimed
                totals.update(batch.counts)
                totals.update(deliver(batch.outgoing))
                if batch.limited:  # over its sending rate: the rest waits for the next tick
                    break
    return {key: value for key, value in totals.items() if value}

