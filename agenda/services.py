"""Everything that changes tasks: create (one, or one per lead of a selection), change, complete, snooze, delete,
and the reminder pass the beat runs. Plain functions, keyword-only arguments, one transaction each."""

from datetime import timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone

from leadcrm import claims, rls
from leadcrm.errors import Conflict, Invalid
from leads import services as lead_services
from leads import touches
from leads.models import Lead
from routing.models import NotificationKind
from routing.services.notify import notify_rows

from .models import REMINDER_PENDING, Task, TaskType

MAX_NOTE = 10_000
MAX_BULK = 1000
# The touch a completed task logs on the lead's timeline (a to-do logs nothing).
TOUCH_OF = {TaskType.CALL: "call", TaskType.EMAIL: "email_logged", TaskType.MEETING: "meeting"}
SNOOZES = {"1h": timedelta(hours=1), "3h": timedelta(hours=3), "1d": timedelta(days=1), "1w": timedelta(days=7)}


class TaskDone(Conflict):
    default_code = "task_done"


def problems(*, type=None, due_at=None, note=None, partial=False) -> dict[str, list[str]]:
    """Field errors of a task's own fields ({} when it may be saved). A due time in the past is allowed (a task
    logged late) and shows as overdue."""
    errors: dict[str, list[str]] = {}
    if (type is not None or not partial) and type not in TaskType.values:
        errors["type"] = ["Choose a call, an email, a meeting or a to-do."]
    if (due_at is not None or not partial) and (due_at is None or timezone.is_naive(due_at)):
        errors["due_at"] = ["Give the date and time it is due."]
    if note is not None and len(note) > MAX_NOTE:
        errors["note"] = [f"Keep the note under {MAX_NOTE:,} characters."]
    return errors


def person(actor):
    """The member behind an action (an API key is none)."""
    return actor if isinstance(actor, get_user_model()) else None


def default_owner(*, lead=None, deal=None, account=None, actor=None):
    target = lead or deal or account
    owner_id = getattr(target, "owner_id", None)
    if owner_id is None and deal is not None and deal.lead_id:
        owner_id = deal.lead.owner_id
    return owner_id or getattr(person(actor), "pk", None)


def create_task(
    *,
    organization_id,
    type: str,
    due_at,
    lead: Lead | None = None,
    deal=None,
    account=None,
    owner_id=None,
    note: str = "",
    actor=None,
) -> Task:
    """A task on exactly one of `lead`, `deal`, `account` (already checked to be the org's and the actor's to
    see), owned by `owner_id` (already checked assignable) or by default the target's owner, else the actor."""
    note = (note or "").strip()
    errors = problems(type=type, due_at=due_at, note=note)
    if sum(target is not None for target in (lead, deal, account)) != 1:
        errors["lead"] = ["Name the lead (or the deal, or the account) the task is about."]
    owner_id = owner_id or default_owner(lead=lead, deal=deal, account=account, actor=actor)
    if owner_id is None:
        errors["owner"] = ["Choose who does it: the lead has no owner."]
    if errors:
        raise Invalid(errors=errors)
    with transaction.atomic():
        return Task.objects.create(
            organization_id=organization_id,
            lead=lead,
            deal=deal,
            account=account,
            type=type,
            due_at=due_at,
            remind_at=due_at,
            owner_id=owner_id,
            note=note,
            created_by=person(actor),
        )


def create_for_leads(
    *, organization_id, leads: list[Lead], type: str, due_at, owner_id=None, note: str = "", actor=None
) -> list[Task]:
    """One task per lead of a selection (at most MAX_BULK), in one INSERT: each owned by `owner_id` or its lead's
    owner, else the actor."""
    note = (note or "").strip()
    errors = problems(type=type, due_at=due_at, note=note)
    if not leads:
        errors["leads"] = ["Choose the leads to plan a task for."]
    elif len(leads) > MAX_BULK:
        errors["leads"] = [f"At most {MAX_BULK:,} leads at once."]
    fallback = getattr(person(actor), "pk", None)
    if not errors and owner_id is None and fallback is None and any(lead.owner_id is None for lead in leads):
        errors["owner"] = ["Choose who does them: some of these leads have no owner."]
    if errors:
        raise Invalid(errors=errors)
    with transaction.atomic():
        return Task.objects.bulk_create(
            [
                Task(
                    organization_id=organization_id,
                    lead=lead,
                    type=type,
                    due_at=due_at,
                    remind_at=due_at,
                    owner_id=owner_id or lead.owner_id or fallback,
                    note=note,
                    created_by_id=fallback,
                )
                for lead in leads
            ]
        )


MAX_SEQUENCE_HOURS = 24 * 90


def sequence_step_problems(step: dict, path: str) -> dict[str, list[str]]:
    """Field errors of a sequence's "create a task" step (`task_type`, `due_hours`, `note`), for the sequence
    checks; {} when it may be saved."""
    errors = {}
    if step.get("task_type", TaskType.CALL) not in TaskType.values:
        errors[f"{path}.task_type"] = ["Choose a call, an email, a meeting or a to-do."]
    hours = step.get("due_hours", 0)
    if isinstance(hours, bool) or not isinstance(hours, int) or not 0 <= hours <= MAX_SEQUENCE_HOURS:
        errors[f"{path}.due_hours"] = [f"A whole number of hours from 0 to {MAX_SEQUENCE_HOURS:,}."]
    note = step.get("note", "")
    if not isinstance(note, str) or len(note) > 500 or "\x00" in note:
        errors[f"{path}.note"] = ["Text of at most 500 characters."]
    return errors


def planned_by_sequence(*, organization_id, lead: Lead, config: dict, now) -> Task | None:
    """The task a sequence step plans for the lead's owner (None for a lead without one), unsaved: the nurture tick
    saves the tasks of its whole batch at once, in its own transaction (save_planned)."""
    if lead.owner_id is None:
        return None
    due_at = now + timedelta(hours=config.get("due_hours", 0))
    return Task(
        organization_id=organization_id,
        lead=lead,
        owner_id=lead.owner_id,
        due_at=due_at,
        remind_at=due_at,
        type=config.get("task_type", TaskType.CALL),
        note=config.get("note", ""),
    )


def save_planned(tasks: list[Task]) -> list[Task]:
    """Insert the tasks sequences planned, in one statement (inside the caller's transaction)."""
    with transaction.atomic():
        return Task.objects.bulk_create(tasks) if tasks else []


def update_task(*, task: Task, data: dict) -> Task:
    """Change a task's type, note, due time or owner (already checked assignable). A new due time re-arms its
    reminder; a done task keeps its outcome and takes no new due time."""
    note = data.get("note")
    if note is not None:
        data["note"] = note = note.strip()
    errors = problems(type=data.get("type"), due_at=data.get("due_at"), note=note, partial=True)
    if errors:
        raise Invalid(errors=errors)
    if task.done_at is not None and "due_at" in data:
        raise TaskDone("This task is done; plan a new one instead.")
    fields = {"updated_at"}
    with transaction.atomic():
        for name in ("type", "note", "due_at", "owner_id"):
            if name in data:
                setattr(task, name, data[name])
                fields.add(name)
        if "due_at" in data:
            task.remind_at, task.reminded_at = task.due_at, None
            fields |= {"remind_at", "reminded_at"}
        task.save(update_fields=sorted(fields))
    return task


def snooze(*, task: Task, until) -> Task:
    """Move an open task's due time (snooze or reschedule); its reminder comes again then."""
    return update_task(task=task, data={"due_at": until})


def complete_task(*, task: Task, outcome: str = "", note: str = "", actor=None, now=None):
    """Mark the task done with how it went. A call, an email or a meeting on a lead (or on a deal that came from
    one) is logged on the lead's timeline through the touch log, which stops a running first-touch clock and is
    scored like any activity. Returns the activity logged, or None."""
    now = now or timezone.now()
    if task.done_at is not None:
        raise TaskDone("This task is already done.")
    note = (note or "").strip()
    touch_type = TOUCH_OF.get(task.type)
    errors = {}
    if touch_type and (problem := touches.outcome_problem(touch_type, outcome)):
        errors["outcome"] = [problem]
    elif not touch_type and outcome:
        errors["outcome"] = ["A to-do has no outcome; leave it empty."]
    if len(note) > MAX_NOTE:
        errors["note"] = [f"Keep the note under {MAX_NOTE:,} characters."]
    if errors:
        raise Invalid(errors=errors)
    lead = task.lead or (task.deal.lead if task.deal_id and task.deal.lead_id else None)
    with transaction.atomic():
        locked = (
            Task.objects.for_org(task.organization_id)
            .select_for_update()
            .filter(pk=task.pk, done_at__isnull=True)
            .first()
        )
        if locked is None:
            raise TaskDone("This task is already done.")
        activity = None
        if touch_type and lead is not None:
            activity = lead_services.log_touch(
                organization_id=task.organization_id,
                lead=lead,
                type=touch_type,
                outcome=outcome,
                note=" — ".join(part for part in (task.note, note) if part)[:MAX_NOTE],
                actor=actor,
            )
        task.done_at, task.outcome = now, outcome or ""
        if note:
            task.note = f"{task.note}\n{note}".strip()[:MAX_NOTE]
        task.save(update_fields=["done_at", "outcome", "note", "updated_at"])
    return activity


def delete_task(*, task: Task) -> None:
    with transaction.atomic():
        task.delete()


# ---------------------------------------------------------------------------------------------- reminders


def _reminder(row: dict) -> str:
    """ "Call due: Ada Lovelace — ask about the budget": the task's kind, its lead (or deal, or account), its note."""
    name = " ".join(part for part in (row["lead__first_name"], row["lead__last_name"]) if part)
    target = (
        name or row["lead__email"] or row["lead__phone"] or row["deal__name"] or row["account__name"] or "(no name)"
    )
    return f"{TaskType(row['type']).label} due: {target[:200]}" + (f" — {row['note'][:60]}" if row["note"] else "")


def remind_org(organization_id, *, now=None, limit=None) -> int:
    """Tell each owner of this org's tasks that came due (one in-app notification per task; one email per owner
    listing theirs, sent once the pass commits). The claim (leadcrm.claims, SKIP LOCKED, stamping `reminded_at`)
    and the notifications are one transaction: a pass that dies sends nothing and leaves the tasks due, and two
    passes at once never claim the same task, so each reminder is sent exactly once. Set-based: one claim, one
    read, one insert."""
    now = now or timezone.now()
    limit = limit or settings.AGENDA_REMINDER_BATCH
    with transaction.atomic():
        # The claim stamps `reminded_at` (a lease of nothing: the stamp is the state change itself), so the tasks
        # leave the pending reminders in the same statement that locks them.
        pending = Task.objects.for_org(organization_id).filter(REMINDER_PENDING)
        claimed = claims.claim(
            pending, due="remind_at", lease_field="reminded_at", lease=timedelta(0), limit=limit, now=now
        )
        if not claimed:
            return 0
        ids = [row.pk for row in claimed]
        # Only what the message needs (a whole row per task would cost more to read than the rest of the pass).
        rows = list(
            Task.objects.for_org(organization_id)
            .filter(pk__in=ids)
            .order_by("due_at", "id")
            .values(
                "owner_id",
                "lead_id",
                "type",
                "note",
                "lead__first_name",
                "lead__last_name",
                "lead__email",
                "lead__phone",
                "deal__name",
                "account__name",
            )
        )
        notify_rows(
            organization_id,
            kind=NotificationKind.TASK_DUE,
            rows=[(row["owner_id"], row["lead_id"], _reminder(row)) for row in rows],
        )
    return len(rows)


def send_due_reminders(*, now=None, limit=None) -> int:
    """The beat: the orgs with due reminders (a definer function, leadcrm/rls.py), then each under its own scope."""
    now = now or timezone.now()
    sent = 0
    for organization_id in rls.lookup_ids("agenda_organizations_with_due_reminders", now):
        with rls.scope(organization_id):
            sent += remind_org(organization_id, now=now, limit=limit)
    return sent
