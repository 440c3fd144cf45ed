"""Drip sequences: checking and saving their steps, enrolling leads (set-based) and taking them out again."""

import re
import uuid

from django.core.exceptions import EmptyResultSet, ValidationError
from django.db import connection, transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

from agenda import services as agenda_services
from leadcrm import audit, rls
from leadcrm.errors import Invalid
from leads.conditions import ConditionError
from leads.models import Form, Lead, LeadStatus, LifecycleStage, Segment, Temperature
from leads.services import clean_definition, segment_q

from .. import selectors
from ..models import (
    EmailTemplate,
    Enrollment,
    EnrollmentStatus,
    EntryType,
    Sequence,
    SequenceStep,
    StepType,
)

MAX_STEPS = 100
MAX_WAIT_HOURS = 24 * 365
DEFAULT_EXIT_STAGES = [LifecycleStage.SQL, LifecycleStage.OPPORTUNITY, LifecycleStage.CUSTOMER]
# Lead fields an update step may set: values a marketer changes in bulk; never consent or contact details.
UPDATE_FIELDS = {
    "lifecycle_stage": "the lifecycle stage (moved along the allowed moves)",
    "status": "the lead status",
    "temperature": "the temperature",
    "industry": "the industry",
    "source": "the source detail",
    "job_title": "the job title",
}
BRANCH_CONDITIONS = ("opened_last", "clicked_last", "score_gte", "segment")
HOURS = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")


class SequenceError(Invalid):
    """A sequence that cannot be saved or run as given; `errors` maps fields (`steps.2.then`) to messages."""

    default_code = "invalid_sequence"

    def __init__(self, errors: dict[str, list[str]]):
        super().__init__(errors=errors)


def _uuid(value) -> uuid.UUID | None:
    if isinstance(value, uuid.UUID):
        return value
    if not isinstance(value, str):
        return None
    try:
        return uuid.UUID(value)
    except ValueError:
        return None


def _count(value, low: int, high: int) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        return None
    return value


class _Checker:
    def __init__(self, organization_id):
        self.organization_id = organization_id
        self.errors: dict[str, list[str]] = {}

    def error(self, field: str, message: str) -> None:
        self.errors.setdefault(field, []).append(message)

    def raise_if_any(self) -> None:
        if self.errors:
            raise SequenceError(self.errors)

    # ------------------------------------------------------------------ steps

    def steps(self, steps) -> list[dict]:
        if not isinstance(steps, list):
            self.error("steps", "A list of steps.")
            return []
        if len(steps) > MAX_STEPS:
            self.error("steps", f"At most {MAX_STEPS} steps.")
            return []
        templates = self._templates(steps)
        cleaned = []
        for index, step in enumerate(steps):
            path = f"steps.{index}"
            if not isinstance(step, dict):
                self.error(path, "A step is an object with a type.")
                continue
            kind = step.get("type")
            handler = {StepType.EMAIL: self.email, StepType.WAIT: self.wait, StepType.BRANCH: self.branch,
                       StepType.UPDATE: self.update, StepType.NOTIFY_OWNER: self.notify,
                       StepType.CREATE_TASK: self.task}.get(kind)
            if handler is None:
                self.error(f"{path}.type", f"Use one of {', '.join(StepType.values)}.")
                continue
            allowed = {"type", *{StepType.EMAIL: ("template",), StepType.WAIT: ("hours", "days", "business_days"),
                                 StepType.BRANCH: ("condition", "then", "else"), StepType.UPDATE: ("field", "value"),
                                 StepType.NOTIFY_OWNER: ("message",),
                                 StepType.CREATE_TASK: ("task_type", "due_hours", "note")}[kind]}
            unknown = sorted(str(key) for key in step if key not in allowed)
            if unknown:
                self.error(path, f"Unknown keys for a {kind} step: {', '.join(unknown)}.")
                continue
            result = handler(step, path, len(steps), templates)
            if result is not None:
                cleaned.append({"type": kind, **result})
        if not self.errors:
            self.flow(cleaned)
        return cleaned

    def _templates(self, steps) -> dict:
        ids = {_uuid(step.get("template")) for step in steps if isinstance(step, dict)} - {None}
        return {template.pk: template
                for template in EmailTemplate.objects.for_org(self.organization_id).filter(pk__in=ids)}

    def email(self, step, path, count, templates):
        if not step.get("template"):
            self.error(f"{path}.template", "Choose the email template this step sends.")
            return None
        template = templates.get(_uuid(step.get("template")))
        if template is None:
            self.error(f"{path}.template", "No such email template in this organization.")
            return None
        return {"template": template}

    def wait(self, step, path, count, templates):
        given = [key for key in ("hours", "days") if key in step]
        if len(given) != 1:
            self.error(path, 'A wait is {"hours": N} or {"days": N}.')
            return None
        key = given[0]
        amount = _count(step[key], 0, MAX_WAIT_HOURS if key == "hours" else MAX_WAIT_HOURS // 24)
        if amount is None:
            limit = MAX_WAIT_HOURS if key == "hours" else MAX_WAIT_HOURS // 24
            self.error(f"{path}.{key}", f"A whole number from 0 to {limit}.")
            return None
        business_days = step.get("business_days", False)
        if not isinstance(business_days, bool):
            self.error(f"{path}.business_days", "true or false.")
            return None
        return {"config": {key: amount, "business_days": business_days}}

    def branch(self, step, path, count, templates):
        config = {}
        for key in ("then", "else"):
            target = step.get(key)
            if _count(target, 0, count) is None:
                self.error(f"{path}.{key}", f"A step index from 0 to {count} ({count}: the end of the sequence).")
            else:
                config[key] = target
        condition = self.condition(step.get("condition"), f"{path}.condition")
        if condition is None or len(config) != 2:
            return None
        return {"config": {"condition": condition, **config}}

    def condition(self, condition, path):
        if not isinstance(condition, dict) or len(condition) != 1 or next(iter(condition)) not in BRANCH_CONDITIONS:
            self.error(path, 'One of {"opened_last": true}, {"clicked_last": true}, {"score_gte": N}, '
                             '{"segment": ID}.')
            return None
        key, value = next(iter(condition.items()))
        if key in ("opened_last", "clicked_last"):
            if not isinstance(value, bool):
                self.error(f"{path}.{key}", "true or false.")
                return None
            return {key: value}
        if key == "score_gte":
            if _count(value, -1_000_000, 1_000_000) is None:
                self.error(f"{path}.score_gte", "A whole number.")
                return None
            return {key: value}
        segment_id = _uuid(value)
        if segment_id is None or not Segment.objects.for_org(self.organization_id).filter(pk=segment_id).exists():
            self.error(f"{path}.segment", "No such segment in this organization.")
            return None
        return {"segment": str(segment_id)}

    def update(self, step, path, count, templates):
        field = step.get("field")
        if field not in UPDATE_FIELDS:
            self.error(f"{path}.field", "One of: " + ", ".join(f"{name} ({what})" for name, what in
                                                               UPDATE_FIELDS.items()) + ".")
            return None
        value = step.get("value")
        choices = {"lifecycle_stage": LifecycleStage.values, "status": LeadStatus.values,
                   "temperature": ["", *Temperature.values]}.get(field)
        if choices is not None:
            if value not in choices:
                self.error(f"{path}.value", f"One of {', '.join(repr(choice) for choice in choices)}.")
                return None
        else:
            try:
                value = Lead._meta.get_field(field).clean(value, None)
            except ValidationError as exc:
                self.error(f"{path}.value", " ".join(exc.messages))
                return None
            if not isinstance(value, str) or "\x00" in value:
                self.error(f"{path}.value", "Text without null characters.")
                return None
        return {"config": {"field": field, "value": value}}

    def notify(self, step, path, count, templates):
        message = step.get("message", "")
        if not isinstance(message, str) or len(message) > 500 or "\x00" in message:
            self.error(f"{path}.message", "Text of at most 500 characters.")
            return None
        return {"config": {"message": message} if message else {}}

    def task(self, step, path, count, templates):
        problems = agenda_services.sequence_step_problems(step, path)
        for field, messages in problems.items():
            for message in messages:
                self.error(field, message)
        if problems:
            return None
        return {"config": {"task_type": step.get("task_type", "call"), "due_hours": step.get("due_hours", 0),
                           "note": step.get("note", "")}}

    def flow(self, steps) -> None:
        """Loops must wait (at least an hour per round) and a run must always be able to reach the end."""
        count = len(steps)

        def targets(index):
            step = steps[index]
            if step["type"] == StepType.BRANCH:
                return {step["config"]["then"], step["config"]["else"]}
            return {index + 1}

        for index, step in enumerate(steps):
            if step["type"] != StepType.BRANCH:
                continue
            for key in ("then", "else"):
                target = step["config"][key]
                if target > index:
                    continue
                waits = [steps[i] for i in range(target, index) if steps[i]["type"] == StepType.WAIT]
                if not any(_wait_hours(wait["config"]) >= 1 for wait in waits):
                    self.error(f"steps.{index}.{key}", "This jumps back into a loop without a wait of at least an "
                                                       "hour (a wait of zero in a loop would repeat at once).")
        # From every step reachable from the first, the end must be reachable.
        reachable, todo = set(), [0] if count else []
        while todo:
            index = todo.pop()
            if index in reachable or index >= count:
                continue
            reachable.add(index)
            todo.extend(targets(index))
        ends = {count}
        changed = True
        while changed:
            changed = False
            for index in range(count):
                if index not in ends and targets(index) & ends:
                    ends.add(index)
                    changed = True
        stuck = sorted(reachable - ends)
        if stuck:
            self.error(f"steps.{stuck[0]}", "A lead reaching this step loops for ever: no branch leads out of the "
                                            "loop to the end of the sequence.")

    # ------------------------------------------------------------------ entry, exit, hours

    def entry(self, entry) -> dict:
        if entry is None or entry == {} or entry == {"manual": True}:
            return {"entry_type": EntryType.MANUAL, "entry_segment": None, "entry_form": None, "entry_stage": ""}
        if not isinstance(entry, dict) or len(entry) != 1:
            self.error("entry", 'One of {"segment": ID}, {"form": ID}, {"stage": STAGE} or {"manual": true}.')
            return {}
        key, value = next(iter(entry.items()))
        result = {"entry_type": key, "entry_segment": None, "entry_form": None, "entry_stage": ""}
        if key == "segment":
            segment = Segment.objects.for_org(self.organization_id).filter(pk=_uuid(value)).first() \
                if _uuid(value) else None
            if segment is None:
                self.error("entry.segment", "No such segment in this organization.")
            result["entry_segment"] = segment
        elif key == "form":
            form = Form.objects.for_org(self.organization_id).filter(pk=_uuid(value)).first() if _uuid(value) else None
            if form is None:
                self.error("entry.form", "No such form in this organization.")
            result["entry_form"] = form
        elif key == "stage":
            if value not in LifecycleStage.values:
                self.error("entry.stage", f"One of {', '.join(LifecycleStage.values)}.")
            result["entry_stage"] = value
        else:
            self.error("entry", 'One of {"segment": ID}, {"form": ID}, {"stage": STAGE} or {"manual": true}.')
        return result

    def exit(self, exit_, entry_stage: str) -> dict:
        if exit_ is None:
            return {"exit_stages": [stage for stage in DEFAULT_EXIT_STAGES if stage != entry_stage],
                    "exit_condition": {}}
        if not isinstance(exit_, dict) or set(exit_) - {"stages", "condition"}:
            self.error("exit", 'An object: {"stages": [...], "condition": {segment definition}}.')
            return {}
        stages = exit_.get("stages", [])
        if not isinstance(stages, list) or any(stage not in LifecycleStage.values for stage in stages):
            self.error("exit.stages", f"A list of stages: {', '.join(LifecycleStage.values)}.")
            stages = []
        stages = list(dict.fromkeys(stages))
        if entry_stage and entry_stage in stages:
            self.error("exit.stages", f"Leads enter at {entry_stage}; it cannot also be an exit stage.")
        condition = exit_.get("condition") or {}
        if condition:
            try:
                condition = clean_definition(self.organization_id, condition)
            except ConditionError as exc:
                for key, messages in exc.errors.items():
                    for message in messages:
                        self.error(f"exit.condition.{key}" if key != "definition" else "exit.condition", message)
                condition = {}
        return {"exit_stages": stages, "exit_condition": condition}

    def sending_hours(self, hours) -> dict:
        if not hours:
            return {}
        if not isinstance(hours, dict) or set(hours) != {"start", "end"}:
            self.error("sending_hours", 'An object {"start": "09:00", "end": "17:00"}, or {} for any time.')
            return {}
        start, end = hours["start"], hours["end"]
        for key, value in (("start", start), ("end", end)):
            if not isinstance(value, str) or not HOURS.match(value):
                self.error(f"sending_hours.{key}", "A time as HH:MM (24 hours).")
        if not self.errors.get("sending_hours.start") and not self.errors.get("sending_hours.end") and end <= start:
            self.error("sending_hours.end", "The end must be after the start.")
        return {"start": start, "end": end}


def _wait_hours(config: dict) -> int:
    return config.get("hours", 0) + 24 * config.get("days", 0)


def clean_sequence(*, organization_id, data: dict, instance: Sequence | None = None) -> dict:
    """The sequence's fields and steps from the API shape, or SequenceError naming every problem."""
    checker = _Checker(organization_id)
    fields = {}
    if instance is None or "name" in data:
        name = data.get("name")
        if not isinstance(name, str) or not name.strip() or len(name) > 200 or "\x00" in name:
            checker.error("name", "A name of 1 to 200 characters.")
        else:
            fields["name"] = name.strip()
    for key in ("active", "allow_reenrollment"):
        if key in data:
            if not isinstance(data[key], bool):
                checker.error(key, "true or false.")
            else:
                fields[key] = data[key]
    if instance is None or "entry" in data:
        fields.update(checker.entry(data.get("entry")))
    entry_stage = fields.get("entry_stage", instance.entry_stage if instance else "")
    if instance is None or "exit" in data:
        fields.update(checker.exit(data.get("exit"), entry_stage))
    elif "entry" in data and entry_stage in instance.exit_stages:
        checker.error("exit.stages", f"Leads enter at {entry_stage}; it cannot also be an exit stage.")
    if "sending_hours" in data:
        fields["sending_hours"] = checker.sending_hours(data["sending_hours"])
    steps = None
    if instance is None or "steps" in data:
        steps = checker.steps(data.get("steps", []))
    checker.raise_if_any()
    return {"fields": fields, "steps": steps}


def save_sequence(*, organization_id, data: dict, instance: Sequence | None = None, actor=None) -> Sequence:
    """Create or change a sequence. Steps are kept by position, so stats and sent messages stay with the step
    that sent them; steps past the new end are removed (their messages keep their history)."""
    cleaned = clean_sequence(organization_id=organization_id, data=data, instance=instance)
    with transaction.atomic():
        if instance is None:
            before = None
            sequence = Sequence.objects.create(organization_id=organization_id, **cleaned["fields"])
        else:
            sequence = Sequence.objects.for_org(organization_id).select_for_update().get(pk=instance.pk)
            before = audit.snapshot(sequence)
            for field, value in cleaned["fields"].items():
                setattr(sequence, field, value)
            sequence.save()
        if cleaned["steps"] is not None:
            _save_steps(sequence, cleaned["steps"])
        audit.record_save(organization=organization_id, actor=actor, obj=sequence, before=before)
    return sequence


def _save_steps(sequence: Sequence, steps: list[dict]) -> None:
    existing = {step.position: step for step in SequenceStep.objects.filter(sequence=sequence)}
    changed, created = [], []
    for position, data in enumerate(steps):
        values = {"type": data["type"], "template": data.get("template"), "config": data.get("config", {})}
        step = existing.get(position)
        if step is None:
            created.append(SequenceStep(organization_id=sequence.organization_id, sequence=sequence,
                                        position=position, **values))
        elif (step.type, step.template_id, step.config) != (values["type"], getattr(values["template"], "pk", None),
                                                            values["config"]):
            for field, value in values.items():
                setattr(step, field, value)
            changed.append(step)
    SequenceStep.objects.filter(sequence=sequence, position__gte=len(steps)).delete()
    if changed:
        SequenceStep.objects.bulk_update(changed, ["type", "template", "config"])
    if created:
        SequenceStep.objects.bulk_create(created)


@transaction.atomic
def delete_sequence(*, sequence: Sequence, actor=None) -> None:
    with audit.Deletion(sequence, organization=sequence.organization_id, actor=actor):
        sequence.delete()


# ----------------------------------------------------------------------------------------------- enrolment


def enroll(*, sequence: Sequence, leads: QuerySet | list | None = None, segment: Segment | None = None,
           enrolled_by: str = "manual", now=None, unless_enrolled_since=None) -> int:
    """Enrol the org's leads (a queryset or ids, or a segment's leads) in one statement; returns how many were
    enrolled. A lead already running the sequence is left alone; one that ran it before only if the sequence
    allows re-enrolment, and not if it was enrolled at or after `unless_enrolled_since` (the moment of the fact
    that enrols it, so an event handled twice enrols once)."""
    organization_id = sequence.organization_id
    if segment is not None:
        if str(segment.organization_id) != str(organization_id):
            return 0
        try:
            leads = Lead.objects.for_org(organization_id).filter(segment_q(segment))
        except ConditionError:
            return 0
    elif leads is None:
        return 0
    elif not isinstance(leads, QuerySet):
        leads = Lead.objects.for_org(organization_id).filter(pk__in=[pk for pk in map(_uuid_str, leads) if pk])
    elif leads.query.is_sliced:  # "the first N": fix the ids, then scope them like any others
        leads = Lead.objects.for_org(organization_id).filter(pk__in=list(leads.values_list("pk", flat=True)))
    try:
        ids_sql, ids_params = (leads.filter(organization_id=organization_id).order_by().values("id")
                               .query.sql_with_params())
    except EmptyResultSet:
        return 0
    now = now or timezone.now()
    table = Enrollment._meta.db_table
    before = "AND e.status = 'active'" if sequence.allow_reenrollment else ""
    if sequence.allow_reenrollment and unless_enrolled_since is not None:
        before = "AND (e.status = 'active' OR e.enrolled_at >= %s)"
    # The chosen ids (already scoped to the org) are read once: joining them back to the lead table made the
    # planner compare every pair of leads while the table had no statistics yet.
    sql = f"""
        INSERT INTO {table} (id, organization_id, sequence_id, lead_id, status, position, next_run_at, exit_reason,
                             enrolled_by, enrolled_at)
        SELECT gen_random_uuid(), %s, %s, chosen.id, 'active', 0, %s, '', %s, %s FROM ({ids_sql}) chosen
        WHERE NOT EXISTS (SELECT 1 FROM {table} e WHERE e.sequence_id = %s AND e.lead_id = chosen.id {before})
        ON CONFLICT (sequence_id, lead_id) WHERE status = 'active' DO NOTHING
    """
    with transaction.atomic(), connection.cursor() as cursor:
        since = [unless_enrolled_since] if "%s" in before else []
        cursor.execute(sql, [organization_id, sequence.pk, now, enrolled_by[:32], now, *ids_params, sequence.pk,
                             *since])
        return cursor.rowcount


def _uuid_str(value) -> str | None:
    value = _uuid(value) if not isinstance(value, uuid.UUID) else value
    return str(value) if value else None


def enroll_segment_entries(*, now=None) -> int:
    """Beat: enrol the leads now in the entry segment of each active segment-entered sequence that never ran it
    (a segment cannot tell a lead that left and came back from one that stayed, so it enrols each lead once)."""
    total = 0
    for organization_id in selectors.organizations_with_segment_entry():
        with rls.scope(organization_id):
            sequences = list(Sequence.objects.for_org(organization_id).filter(
                active=True, entry_type=EntryType.SEGMENT, entry_segment__isnull=False).select_related("entry_segment"))
            for sequence in sequences:
                sequence.allow_reenrollment = False  # once per lead, see above
                total += enroll(sequence=sequence, segment=sequence.entry_segment, enrolled_by="segment", now=now)
    return total


def stage_sequences(organization_id, to_stage: str):
    """The org's active sequences that enrol leads reaching `to_stage`."""
    return Sequence.objects.for_org(organization_id).filter(active=True, entry_type=EntryType.STAGE,
                                                             entry_stage=to_stage)


def enroll_on_stage(*, organization_id, lead_id, to_stage: str, since=None) -> int:
    """`since`: when the lead reached the stage (an enrolment from then on already answered it)."""
    total = 0
    for sequence in stage_sequences(organization_id, to_stage):
        total += enroll(sequence=sequence, leads=[lead_id], enrolled_by="stage", unless_enrolled_since=since)
    return total


def enroll_on_form(*, organization_id, lead_id, form_id, since=None) -> int:
    """`since`: when the form was submitted (an enrolment from then on already answered it)."""
    total = 0
    for sequence in Sequence.objects.for_org(organization_id).filter(active=True, entry_type=EntryType.FORM,
                                                                       entry_form_id=form_id):
        total += enroll(sequence=sequence, leads=[lead_id], enrolled_by="form", unless_enrolled_since=since)
    return total


# ----------------------------------------------------------------------------------------------- exit


def exit_enrollments(*, organization_id, lead_ids, reason: str, sequences: Q | None = None, now=None) -> int:
    """Take leads out of the org's running enrolments (all, or of the sequences matching `sequences`)."""
    now = now or timezone.now()
    running = Enrollment.objects.for_org(organization_id).filter(lead_id__in=list(lead_ids),
                                                                 status=EnrollmentStatus.ACTIVE)
    if sequences is not None:
        running = running.filter(sequence__in=Sequence.objects.for_org(organization_id).filter(sequences))
    return running.update(status=EnrollmentStatus.EXITED, exit_reason=reason[:200], finished_at=now,
                          next_run_at=None)


def exit_enrollment(*, enrollment: Enrollment, reason: str = "replied") -> bool:
    """End one running enrolment by hand (the lead replied, say); False when it had already ended."""
    return exit_enrollments(organization_id=enrollment.organization_id, lead_ids=[enrollment.lead_id],
                            reason=reason, sequences=Q(pk=enrollment.sequence_id)) > 0


def exit_on_stage(*, organization_id, lead_ids, to_stage: str) -> int:
    return exit_enrollments(organization_id=organization_id, lead_ids=lead_ids, reason=f"reached {to_stage}",
                            sequences=Q(exit_stages__contains=[to_stage]))


STOPPING_FLAGS = {"unsubscribed": "unsubscribed", "bounced": "bounced", "do_not_contact": "do not contact"}


def exit_if_unreachable(*, organization_id, lead_id) -> int:
    """After a change to a lead's consent: a lead that unsubscribed, bounced or must not be contacted leaves
    every sequence."""
    lead = Lead.objects.for_org(organization_id).filter(pk=lead_id).values(*STOPPING_FLAGS).first()
    if lead is None:
        return 0
    reasons = [reason for flag, reason in STOPPING_FLAGS.items() if lead[flag]]
    if not reasons:
        return 0
    return exit_enrollments(organization_id=organization_id, lead_ids=[lead_id], reason=reasons[0])
