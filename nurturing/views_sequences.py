"""Browser pages of sequences: the list with each one's numbers, the step editor, a sequence's page (per-step
numbers, enrolments, enrolling leads), and the Emails card of the lead page."""

import json

from django.contrib import messages
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from agenda.models import TaskType
from leadcrm import policy
from leadcrm.errors import DomainError
from leadcrm.paging import keyset_page
from leadcrm.policy import Action, allowed
from leads import selectors as lead_selectors
from leads import services as lead_services
from leads.models import LifecycleStage, Segment, SegmentKind
from leads.views.segments import builder_context, describe

from . import selectors, services
from .forms_sequences import (
    CONDITIONS,
    UPDATE_FIELD_CHOICES,
    EnrollForm,
    SequenceForm,
    apply_action,
    blank_row,
    initial_of,
    primary_input,
    row_of,
    rows_from_post,
    step_errors,
    step_of,
    step_words,
)
from .models import EmailTemplate, EnrollmentStatus, Sequence, StepType

org_wide = allowed(Action.NURTURE)
LEAD_CARD_MESSAGES = 20
RATES = ("open", "click", "bounce", "unsubscribe")


def percent(rate) -> str:
    return "—" if rate is None else f"{rate * 100:.1f}%"


def with_percents(row: dict) -> dict:
    """A numbers row (selectors.with_rates) with its rates as text: `open_pct`, `click_pct`…"""
    for name in RATES:
        row[f"{name}_pct"] = percent(row.get(f"{name}_rate"))
    return row


def _sequence(request, pk) -> Sequence:
    return get_object_or_404(Sequence.objects.for_org(request.organization.pk).select_related(
        "entry_segment", "entry_form"), pk=pk)


@org_wide
@require_GET
def sequence_list(request):
    rows, next_url, previous_url = keyset_page(
        request, Sequence.objects.for_org(request.organization.pk).select_related("entry_segment", "entry_form"),
        "name", page_size=50)
    numbers = selectors.sequence_numbers(request.organization.pk, [sequence.pk for sequence in rows])
    for sequence in rows:
        sequence.numbers = with_percents(numbers[sequence.pk])
    return render(request, "nurturing/sequence_list.html",
                  {"sequences": rows, "next_url": next_url, "previous_url": previous_url})


# ----------------------------------------------------------------------------------------------- editor


def _posted_definition(form, sequence):
    """The exit condition for the condition builder: as posted (even when it cannot be saved), else as saved."""
    if form.is_bound:
        try:
            return json.loads(form.data.get("exit_condition") or "{}")
        except ValueError:
            return {}
    return sequence.exit_condition if sequence is not None else {}


def _editor(request, *, form, rows, sequence=None, errors=None, status=200, partial=False, focus="",
            announce="", tests=None):
    """The editor page, or (`partial`, for htmx) only its steps section: `focus` names the input the page's script
    moves the focus to, `announce` what a screen reader is told, `tests` the outcome of "Send me a test" by row."""
    organization_id = request.organization.pk
    per_row, general = step_errors(errors or {}, len(rows))
    templates = list(EmailTemplate.objects.for_org(organization_id).only("id", "name").order_by("name", "id"))
    segments = list(Segment.objects.for_org(organization_id).only("id", "name").order_by("name", "id"))
    names = {"templates": {str(item.pk): item.name for item in templates},
             "segments": {str(item.pk): item.name for item in segments}}
    context = {
        "form": form, "sequence": sequence, "steps": [
            {"index": index, "number": index + 1, "row": row, "errors": per_row[index],
             "words": step_words(row, **names), "test": (tests or {}).get(index)}
            for index, row in enumerate(rows)],
        "steps_errors": general, "refused": status == 400 and not tests, "step_count": len(rows),
        "step_types": StepType.choices, "add_buttons": ADD_BUTTONS, "templates": templates, "segments": segments,
        "conditions": CONDITIONS, "update_fields": UPDATE_FIELD_CHOICES, "stages": LifecycleStage.choices,
        "task_types": TaskType.choices,
        "targets": [str(number) for number in range(1, len(rows) + 1)], "focus": focus, "announce": announce,
        "partial": partial,
    }
    if partial:
        return render(request, "nurturing/_sequence_steps.html", context, status=status)
    definition = _posted_definition(form, sequence)
    context.update(builder_context(request, definition if isinstance(definition, dict) else {}))
    return render(request, "nurturing/sequence_form.html", context, status=status)


# The "add a step" buttons: (type, button text).
ADD_BUTTONS = [(StepType.EMAIL, "Add email"), (StepType.WAIT, "Add wait"), (StepType.BRANCH, "Add branch"),
               (StepType.UPDATE, "Add field change"), (StepType.NOTIFY_OWNER, "Add owner notification"),
               (StepType.CREATE_TASK, "Add task")]


def _moved(action: str, before: int, rows: list[dict]) -> tuple[str, str]:
    """Where the focus goes after a button changed the rows, and what a screen reader is told."""
    name, _, index = action.partition("-")
    if name == "add":
        if len(rows) == before:
            return "add-step-buttons", f"No step added: a sequence has at most {len(rows)} steps."
        kind = rows[-1]["type"]
        return primary_input(len(rows) - 1, kind), f"Step {len(rows)} added: {StepType(kind).label.lower()}."
    if not index.isdigit() or len(rows) == before and name == "remove":
        return "", ""
    index = int(index)
    if name == "remove":
        if not rows:
            return "add-step-buttons", "Step removed; the sequence has no steps now."
        place = min(index, len(rows) - 1)
        return f"step-{place + 1}", f"Step {index + 1} removed; {len(rows)} step{'s' * (len(rows) != 1)} left."
    if name in ("up", "down"):
        place = index - 1 if name == "up" else index + 1
        if not 0 <= place < len(rows):
            return "", ""
        # the same button on the step's new place, unless it moved to the end it points to
        same = f"s{place}-{name}" if (name == "up" and place > 0) or (name == "down" and place < len(rows) - 1) \
            else f"step-{place + 1}"
        return same, f"Step {index + 1} is now step {place + 1}."
    return "", ""


def _step_test(request, row: dict) -> tuple[dict, int]:
    """Send the template of an email step (as chosen, saved or not) to the signed-in member, with sample data."""
    if row["type"] != StepType.EMAIL:
        return {"problems": ["Only an email step sends email."]}, 400
    template = EmailTemplate.objects.for_org(request.organization.pk).filter(pk=_uuid_or_none(row["template"])).first()
    if template is None:
        return {"problems": ["Choose the step's template first."]}, 400
    version = services.latest_version(template)
    if version is None:
        return {"problems": [f"“{template.name}” has no content yet."]}, 400
    try:
        sent_to = services.send_test_email(organization=request.organization, user=request.user,
                                           subject=version.subject, html=version.html, text=version.text)
    except DomainError as exc:  # content that cannot render, no address, too many just now, mail server down
        return {"problems": exc.messages}, exc.status
    return {"sent_to": sent_to, "template": template.name}, 200


@org_wide
@require_http_methods(["GET", "POST"])
def sequence_edit(request, pk=None):
    """Create or change a sequence. Buttons that add, remove or move a step show the steps again unsaved (htmx
    swaps in only the steps; without scripts the whole page comes back); "Send me a test" on an email step mails its
    template to the member. Save builds the API's shape and hands it to `save_sequence`, whose refusals land next
    to their inputs; it saves everything or nothing."""
    organization_id = request.organization.pk
    sequence = _sequence(request, pk) if pk else None
    if request.method == "GET":
        if sequence is None:
            form = SequenceForm(organization_id=organization_id,
                                initial={"exit_stages": list(services.DEFAULT_EXIT_STAGES)})
            rows = [blank_row(StepType.EMAIL)]
        else:
            steps = list(sequence.steps.order_by("position"))
            form = SequenceForm(organization_id=organization_id, initial=initial_of(sequence))
            rows = [row_of(step, len(steps)) for step in steps]
        return _editor(request, form=form, rows=rows, sequence=sequence)

    form = SequenceForm(request.POST, organization_id=organization_id)
    rows = rows_from_post(request.POST)
    action = request.POST.get("action", "save")
    partial = bool(request.htmx)
    if action.startswith("test-"):
        index = action.partition("-")[2]
        if not index.isdigit() or int(index) >= len(rows):
            return _editor(request, form=form, rows=rows, sequence=sequence, partial=partial)
        result, status = _step_test(request, rows[int(index)])
        return _editor(request, form=form, rows=rows, sequence=sequence, partial=partial, status=status,
                       tests={int(index): result})
    if action != "save":
        before = len(rows)
        rows = apply_action(rows, action, request.POST.get("add_type", StepType.EMAIL))
        focus, announce = _moved(action, before, rows)
        if not partial:
            form.is_valid()  # shows what is already wrong; nothing is saved
        return _editor(request, form=form, rows=rows, sequence=sequence, partial=partial, focus=focus,
                       announce=announce)
    steps = [step_of(row, len(rows)) for row in rows]
    errors = {}
    if form.is_valid():
        data = {**form.api_data(), "steps": steps}
        try:
            saved = services.save_sequence(organization_id=organization_id, data=data, instance=sequence,
                                           actor=request.user)
        except services.SequenceError as exc:
            errors = exc.errors
            form.add_problems(errors)
        else:
            messages.success(request, f"Sequence “{saved.name}” saved{' and active' if saved.active else ''}.")
            return redirect("nurturing:sequence-detail", pk=saved.pk)
    else:
        # The steps are still checked, so every problem shows at once.
        try:
            services.clean_sequence(organization_id=organization_id, data={"name": "-", "steps": steps})
        except services.SequenceError as exc:
            errors = exc.errors
    return _editor(request, form=form, rows=rows, sequence=sequence, errors=errors, status=400)


# ----------------------------------------------------------------------------------------------- a sequence


def _detail(request, sequence, *, enroll_form=None, status=200):
    organization_id = request.organization.pk
    stats = selectors.sequence_stats(sequence)
    templates = {str(pk): name for pk, name in EmailTemplate.objects.for_org(organization_id).filter(
        pk__in=[row["template"] for row in stats["steps"] if row["template"]]).values_list("pk", "name")}
    steps = list(sequence.steps.order_by("position"))
    branched_on = [(step.config or {}).get("condition", {}).get("segment") for step in steps]
    segments = {str(pk): name for pk, name in Segment.objects.for_org(organization_id).filter(
        pk__in=[pk for pk in branched_on if _uuid_or_none(pk)]).values_list("pk", "name")}
    words = {step.position: step_words(row_of(step, len(steps)), templates=templates, segments=segments)
             for step in steps}
    for row in stats["steps"]:
        row["number"] = row["position"] + 1
        with_percents(row)
        row["template_name"] = templates.get(row["template"]) if row["template"] else None
        row["words"] = words.get(row["position"], "")
    wanted = request.GET.get("status", "")
    queryset = selectors.enrollments(sequence)
    if wanted in EnrollmentStatus.values:
        queryset = queryset.filter(status=wanted)
    else:
        wanted = ""
    enrollments, next_url, previous_url = keyset_page(request, queryset, "-enrolled_at", page_size=50)
    exit_words = None
    if sequence.exit_condition:
        lists = Segment.objects.for_org(organization_id).filter(kind=SegmentKind.STATIC).values_list("pk", "name")
        exit_words = describe(sequence.exit_condition, {str(pk): name for pk, name in lists}, organization_id)
    return render(request, "nurturing/sequence_detail.html", {
        "sequence": sequence, "stats": stats, "exit_words": exit_words, "enrollments": enrollments,
        "next_url": next_url, "previous_url": previous_url, "status_filter": wanted,
        "statuses": EnrollmentStatus.choices,
        "enroll_form": enroll_form or EnrollForm(organization_id=organization_id),
    }, status=status)


@org_wide
@require_GET
def sequence_detail(request, pk):
    return _detail(request, _sequence(request, pk))


@org_wide
@require_POST
def sequence_enroll(request, pk):
    sequence = _sequence(request, pk)
    organization_id = request.organization.pk
    form = EnrollForm(request.POST, organization_id=organization_id)
    if form.is_valid():
        data = form.cleaned_data
        if data["segment"]:
            enrolled = services.enroll(sequence=sequence, segment=data["segment"], enrolled_by="manual")
        else:
            try:
                leads = lead_services.leads_by_emails(organization_id, data["emails"])
            except lead_services.UnknownLeads as exc:
                form.add_error("emails", str(exc))
                return _detail(request, sequence, enroll_form=form, status=400)
            enrolled = services.enroll(sequence=sequence, leads=leads, enrolled_by="manual")
        note = "" if sequence.active else " The sequence is not active: nothing is sent until it is."
        messages.success(request, f"{enrolled} lead{'s' if enrolled != 1 else ''} enrolled.{note}")
        return redirect("nurturing:sequence-detail", pk=sequence.pk)
    return _detail(request, sequence, enroll_form=form, status=400)


@org_wide
@require_POST
def enrollment_exit(request, pk, enrollment_id):
    """Take one lead out by hand (they replied, say). From the lead's card it answers with the card."""
    sequence = _sequence(request, pk)
    enrollment = get_object_or_404(selectors.enrollments(sequence), pk=enrollment_id)
    reason = (request.POST.get("reason") or "replied").strip()[:200] or "replied"
    if services.exit_enrollment(enrollment=enrollment, reason=reason):
        messages.success(request, f"{enrollment.lead} left “{sequence.name}”.")
    else:
        messages.info(request, f"{enrollment.lead} was no longer running “{sequence.name}”.")
    if request.POST.get("from") == "lead":
        if request.htmx:
            return _lead_card(request, enrollment.lead)
        return redirect("leads:detail", pk=enrollment.lead_id)
    return redirect("nurturing:sequence-detail", pk=sequence.pk)


# ----------------------------------------------------------------------------------------------- the lead card


def _visible_lead(request, pk):
    return get_object_or_404(policy.visible_to(request, lead_selectors.leads_for(request.organization)), pk=pk)


def _lead_card(request, lead, *, problem="", status=200):
    organization_id = request.organization.pk
    can_manage = policy.can(request, Action.NURTURE)
    context = {
        "lead": lead, "can_manage": can_manage, "problem": problem,
        "lead_messages": list(selectors.lead_messages(organization_id, lead).order_by("-created_at", "-id")
                              [:LEAD_CARD_MESSAGES]),
        "enrollments": list(selectors.lead_enrollments(organization_id, lead)),
        "sequences": list(selectors.sequence_choices(organization_id)) if can_manage else [],
    }
    template = "nurturing/_lead_messages.html" if request.htmx else "nurturing/sequence_lead_messages.html"
    return render(request, template, context, status=status)


@allowed(Action.WORK_LEADS)
@require_GET
def lead_card(request, pk):
    """The lead page's Emails card: the emails sent to the lead with what it did with them, and its sequences."""
    return _lead_card(request, _visible_lead(request, pk))


@org_wide
@require_POST
def lead_enroll(request, pk):
    lead = _visible_lead(request, pk)
    sequence = Sequence.objects.for_org(request.organization.pk).filter(
        pk=_uuid_or_none(request.POST.get("sequence"))).first()
    if sequence is None:
        if request.htmx:
            return _lead_card(request, lead, problem="Choose a sequence of this organization.", status=200)
        return _lead_card(request, lead, problem="Choose a sequence of this organization.", status=400)
    enrolled = services.enroll(sequence=sequence, leads=[lead.pk], enrolled_by="manual")
    if enrolled:
        messages.success(request, f"{lead} enrolled in “{sequence.name}”.")
        problem = ""
    else:
        problem = (f"Not enrolled: the lead is running “{sequence.name}” already, or ran it before and the "
                   "sequence does not allow re-enrolment.")
        messages.info(request, problem)
    if request.htmx:
        return _lead_card(request, lead, problem=problem)
    return redirect("leads:detail", pk=lead.pk)


def _uuid_or_none(value):
    import uuid

    try:
        return uuid.UUID(str(value))
    except ValueError:
        return None
