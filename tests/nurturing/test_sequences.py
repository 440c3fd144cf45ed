"""Sequences: validation of steps, entry and exit; enrolment by every entry; every exit; branches; waits."""

from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone

from leads import services as lead_services
from leads.models import Activity, Form, Lead, LifecycleStage
from nurturing import handlers, services
from nurturing.models import Enrollment, EnrollmentStatus, Message, MessageStatus, Sequence

pytestmark = pytest.mark.django_db

HTML = '<html><body><p>Hi {{ lead.first_name|default:"there" }}</p><a href="https://example.com/pricing">Pricing</a>' \
       '<a href="{{ unsubscribe_url }}">Unsubscribe</a></body></html>'


def make_template(org, name="Welcome", subject="Hello {{ lead.first_name }}", html=HTML, text="Hi there"):
    return services.create_template(organization_id=org.pk, name=name, subject=subject, html=html, text=text)


def make_lead(org, email="ada@example.com", **fields):
    fields.setdefault("consent_opt_in", True)
    lead = lead_services.capture_lead(organization_id=org.pk, data={"email": email, "first_name": "Ada"}).lead
    Lead.objects.filter(pk=lead.pk).update(**fields)
    lead.refresh_from_db()
    return lead


def make_sequence(org, steps, **data):
    return services.save_sequence(organization_id=org.pk, data={"name": data.pop("name", "Drip"), "active": True,
                                                                "steps": steps, **data})


def errors_of(org, **data):
    with pytest.raises(services.SequenceError) as caught:
        services.save_sequence(organization_id=org.pk, data={"name": "Bad", **data})
    return caught.value.errors


def run(now=None):
    """One beat tick at `now` (default: the real now)."""
    return services.tick(now=now)


def enrollment_of(sequence, lead):
    return Enrollment.objects.get(sequence=sequence, lead=lead)


# ----------------------------------------------------------------------------------------------- validation


def test_a_sequence_is_saved_with_its_steps_entry_and_default_exit(org):
    template = make_template(org)
    sequence = make_sequence(org, [{"type": "email", "template": str(template.pk)}, {"type": "wait", "days": 2},
                                   {"type": "notify_owner"}])
    assert [step.type for step in sequence.steps.order_by("position")] == ["email", "wait", "notify_owner"]
    assert sequence.steps.get(position=0).template == template
    assert sequence.entry_type == "manual"
    assert sequence.exit_stages == ["sql", "opportunity", "customer"]


def test_a_loop_without_a_wait_is_refused(org):
    template = make_template(org)
    errors = errors_of(org, steps=[{"type": "email", "template": str(template.pk)}, {"type": "wait", "hours": 0},
                                   {"type": "branch", "condition": {"opened_last": True}, "then": 3, "else": 0}])
    assert "wait of zero" in errors["steps.2.else"][0]


def test_a_loop_with_a_wait_of_an_hour_is_accepted(org):
    sequence = make_sequence(org, [{"type": "wait", "hours": 1},
                                   {"type": "branch", "condition": {"score_gte": 50}, "then": 2, "else": 0}])
    assert sequence.steps.count() == 2


def test_a_loop_with_no_way_out_is_refused(org):
    errors = errors_of(org, exit={"stages": []}, steps=[
        {"type": "wait", "days": 1}, {"type": "branch", "condition": {"score_gte": 5}, "then": 0, "else": 0}])
    assert "loops for ever" in errors["steps.0"][0]


@pytest.mark.parametrize(("steps", "field"), [
    ([{"type": "branch", "condition": {"opened_last": True}, "then": 5, "else": 1}], "steps.0.then"),
    ([{"type": "branch", "condition": {"opened_last": True}, "then": 1, "else": -1}], "steps.0.else"),
    ([{"type": "branch", "condition": {"sneaky": 1}, "then": 1, "else": 1}], "steps.0.condition"),
    ([{"type": "email", "template": "not-an-id"}], "steps.0.template"),
    ([{"type": "wait", "hours": 2, "days": 1}], "steps.0"),
    ([{"type": "wait", "hours": -1}], "steps.0.hours"),
    ([{"type": "update", "field": "email", "value": "x@y.z"}], "steps.0.field"),
    ([{"type": "update", "field": "lifecycle_stage", "value": "king"}], "steps.0.value"),
    ([{"type": "teleport"}], "steps.0.type"),
    ([{"type": "email", "template": None, "extra": 1}], "steps.0"),
    ("not a list", "steps"),
])
def test_bad_steps_are_refused_by_field(org, steps, field):
    assert field in errors_of(org, steps=steps)


def test_another_orgs_template_segment_and_form_are_refused(org, other_org):
    theirs = make_template(other_org)
    segment = lead_services.create_segment(organization_id=other_org.pk, name="Theirs", kind="static")
    form = Form.objects.create(organization=other_org, name="Theirs", slug="theirs", fields=["email"])
    errors = errors_of(org, steps=[{"type": "email", "template": str(theirs.pk)},
                                   {"type": "branch", "condition": {"segment": str(segment.pk)}, "then": 2,
                                    "else": 2}], entry={"form": str(form.pk)})
    assert set(errors) >= {"steps.0.template", "steps.1.condition.segment", "entry.form"}
    assert "entry.segment" in errors_of(org, steps=[], entry={"segment": str(segment.pk)})


def test_entry_stage_cannot_be_an_exit_stage_and_hours_must_make_sense(org):
    errors = errors_of(org, steps=[], entry={"stage": "customer"}, exit={"stages": ["customer"]},
                       sending_hours={"start": "18:00", "end": "09:00"})
    assert "exit.stages" in errors and "sending_hours.end" in errors
    # By default a post-sale sequence (entered at customer) does not leave at customer.
    sequence = make_sequence(org, [], entry={"stage": "customer"})
    assert sequence.exit_stages == ["sql", "opportunity"]


def test_editing_keeps_steps_by_position(org):
    template = make_template(org)
    sequence = make_sequence(org, [{"type": "email", "template": str(template.pk)}, {"type": "wait", "days": 1}])
    first = sequence.steps.get(position=0).pk
    services.save_sequence(organization_id=org.pk, instance=sequence,
                           data={"steps": [{"type": "email", "template": str(template.pk)}]})
    assert list(sequence.steps.values_list("pk", flat=True)) == [first]


# ----------------------------------------------------------------------------------------------- enrolment


def test_manual_enrolment_is_set_based_and_honours_one_active_and_reenrolment(org):
    sequence = make_sequence(org, [{"type": "wait", "days": 1}])
    leads = [make_lead(org, f"l{i}@example.com") for i in range(3)]
    assert services.enroll(sequence=sequence, leads=[lead.pk for lead in leads]) == 3
    assert services.enroll(sequence=sequence, leads=[lead.pk for lead in leads]) == 0  # already running
    Enrollment.objects.filter(lead=leads[0]).update(status=EnrollmentStatus.COMPLETED)
    assert services.enroll(sequence=sequence, leads=[leads[0].pk]) == 0  # ran it before, not allowed again
    Sequence.objects.filter(pk=sequence.pk).update(allow_reenrollment=True)
    sequence.refresh_from_db()
    assert services.enroll(sequence=sequence, leads=[leads[0].pk]) == 1
    assert Enrollment.objects.filter(lead=leads[0]).count() == 2


def test_enrolment_never_takes_another_orgs_leads(org, other_org):
    sequence = make_sequence(org, [])
    outsider = make_lead(other_org, "out@example.com")
    assert services.enroll(sequence=sequence, leads=[outsider.pk]) == 0
    assert not Enrollment.objects.exists()


def test_segment_entry_enrols_leads_in_the_segment_on_the_tick(org):
    segment = lead_services.create_segment(organization_id=org.pk, name="Germans", definition={
        "all": [{"field": "country", "op": "eq", "value": "DE"}]})
    sequence = make_sequence(org, [{"type": "wait", "days": 3}], entry={"segment": str(segment.pk)})
    german = make_lead(org, "de@example.com", country="DE")
    make_lead(org, "fr@example.com", country="FR")
    run()
    assert list(Enrollment.objects.values_list("lead_id", flat=True)) == [german.pk]
    assert enrollment_of(sequence, german).enrolled_by == "segment"
    Enrollment.objects.update(status=EnrollmentStatus.COMPLETED)
    run()
    assert Enrollment.objects.count() == 1  # a segment enrols each lead once


def test_form_submission_enrols(org, django_capture_on_commit_callbacks):
    form = Form.objects.create(organization=org, name="Demo", slug="demo", fields=["email"])
    other_form = Form.objects.create(organization=org, name="Other", slug="other", fields=["email"])
    sequence = make_sequence(org, [{"type": "wait", "days": 1}], entry={"form": str(form.pk)})
    with django_capture_on_commit_callbacks(execute=True):
        lead_services.submit_form(form=form, values={"email": "f@example.com"}, data={}, touch={},
                                  ip_address=None, referrer="")
        lead_services.submit_form(form=other_form, values={"email": "g@example.com"}, data={}, touch={},
                                  ip_address=None, referrer="")
    assert [e.lead.email for e in Enrollment.objects.filter(sequence=sequence)] == ["f@example.com"]


def test_stage_change_enrols_in_a_recycled_sequence_and_exits_at_sql(org, django_capture_on_commit_callbacks):
    recycled = make_sequence(org, [{"type": "wait", "days": 1}], name="Recycled", entry={"stage": "recycled"})
    lead = make_lead(org, lifecycle_stage=LifecycleStage.MQL)
    with django_capture_on_commit_callbacks(execute=True):
        lead_services.move_stage(lead=lead, to_stage="recycled", reason="Not ready to buy yet")
    enrollment = enrollment_of(recycled, lead)
    assert enrollment.status == "active" and enrollment.enrolled_by == "stage"
    with django_capture_on_commit_callbacks(execute=True):
        lead_services.move_stage(lead=lead, to_stage="sal")
        lead.refresh_from_db()
        lead_services.move_stage(lead=lead, to_stage="sql")
    enrollment.refresh_from_db()
    assert (enrollment.status, enrollment.exit_reason) == ("exited", "reached sql")


def test_inactive_sequences_do_not_enrol_automatically_or_run(org):
    segment = lead_services.create_segment(organization_id=org.pk, name="All", definition={
        "all": [{"field": "email", "op": "contains", "value": "@"}]})
    sequence = make_sequence(org, [{"type": "wait", "days": 1}], entry={"segment": str(segment.pk)}, active=False)
    make_lead(org)
    run()
    assert not Enrollment.objects.filter(sequence=sequence).exists()


# ----------------------------------------------------------------------------------------------- exits


def test_unsubscribing_bouncing_and_do_not_contact_exit_every_sequence(org):
    first = make_sequence(org, [{"type": "wait", "days": 1}], name="A")
    second = make_sequence(org, [{"type": "wait", "days": 1}], name="B")
    leads = {flag: make_lead(org, f"{flag}@example.com") for flag in ("unsubscribed", "bounced", "do_not_contact")}
    for sequence in (first, second):
        services.enroll(sequence=sequence, leads=[lead.pk for lead in leads.values()])
    for flag, lead in leads.items():
        lead_services.update_lead(lead=lead, data={flag: True})
        handlers.lead_updated(organization_id=org.pk, lead_id=lead.pk, fields=[flag])
    reasons = dict(Enrollment.objects.filter(sequence=first).values_list("lead__email", "exit_reason"))
    assert reasons == {"unsubscribed@example.com": "unsubscribed", "bounced@example.com": "bounced",
                       "do_not_contact@example.com": "do not contact"}
    assert not Enrollment.objects.filter(status="active").exists()


def test_a_reply_marked_by_hand_exits(org):
    sequence = make_sequence(org, [{"type": "wait", "days": 1}])
    lead = make_lead(org)
    services.enroll(sequence=sequence, leads=[lead.pk])
    enrollment = enrollment_of(sequence, lead)
    assert services.exit_enrollment(enrollment=enrollment) is True
    assert services.exit_enrollment(enrollment=enrollment) is False
    enrollment.refresh_from_db()
    assert (enrollment.status, enrollment.exit_reason) == ("exited", "replied")


def test_the_exit_condition_is_checked_before_each_step(org):
    template = make_template(org)
    sequence = make_sequence(org, [{"type": "email", "template": str(template.pk)}],
                             exit={"stages": ["sql"], "condition": {"all": [{"field": "score", "op": "gte",
                                                                              "value": 80}]}})
    hot, cold = make_lead(org, "hot@example.com", score=90), make_lead(org, "cold@example.com", score=10)
    services.enroll(sequence=sequence, leads=[hot.pk, cold.pk])
    run()
    assert (enrollment_of(sequence, hot).status, enrollment_of(sequence, hot).exit_reason) == (
        "exited", "exit condition met")
    assert not Message.objects.filter(lead=hot).exists()
    assert Message.objects.get(lead=cold).status == MessageStatus.SENT


def test_a_customer_post_sale_sequence_runs_like_any_other(org, django_capture_on_commit_callbacks, mailoutbox):
    template = make_template(org, name="Onboarding")
    sequence = make_sequence(org, [{"type": "email", "template": str(template.pk)}], entry={"stage": "customer"})
    lead = make_lead(org, lifecycle_stage=LifecycleStage.OPPORTUNITY)
    with django_capture_on_commit_callbacks(execute=True):
        lead_services.move_stage(lead=lead, to_stage="customer")
    run()
    assert enrollment_of(sequence, lead).status == "completed"
    assert [message.to for message in mailoutbox] == [["ada@example.com"]]


# ----------------------------------------------------------------------------------------------- branches


def _branching(org, condition):
    template = make_template(org)
    second = make_template(org, name="Second", subject="Yes branch")
    third = make_template(org, name="Third", subject="No branch")
    return make_sequence(org, [
        {"type": "email", "template": str(template.pk)},
        {"type": "wait", "hours": 2},
        {"type": "branch", "condition": condition, "then": 3, "else": 4},
        {"type": "email", "template": str(second.pk)},
        {"type": "email", "template": str(third.pk)},
    ])


def _subjects(lead):
    return list(Message.objects.filter(lead=lead, status="sent").order_by("created_at").values_list("subject",
                                                                                                   flat=True))


@pytest.mark.parametrize("condition", [{"opened_last": True}, {"clicked_last": True}])
def test_branch_on_opening_or_clicking_the_last_email(org, condition):
    sequence = _branching(org, condition)
    yes, no = make_lead(org, "yes@example.com"), make_lead(org, "no@example.com")
    services.enroll(sequence=sequence, leads=[yes.pk, no.pk])
    run()
    message = Message.objects.get(lead=yes)
    if "opened_last" in condition:
        services.record_open(message)
    else:
        services.record_click(message, 0)
    later = timezone.now() + timedelta(hours=3)
    run(now=later)
    run(now=later)
    assert _subjects(yes) == ["Hello Ada", "Yes branch", "No branch"]  # then: step 3, which goes on to step 4
    assert _subjects(no) == ["Hello Ada", "No branch"]


def test_branch_on_score_and_on_segment(org):
    segment = lead_services.create_segment(organization_id=org.pk, name="VIP", kind="static")
    by_score = make_sequence(org, [{"type": "branch", "condition": {"score_gte": 50}, "then": 1, "else": 2},
                                   {"type": "update", "field": "temperature", "value": "hot"}], name="Score")
    by_segment = make_sequence(org, [{"type": "branch", "condition": {"segment": str(segment.pk)}, "then": 1,
                                      "else": 2}, {"type": "update", "field": "status", "value": "working"}],
                               name="Segment")
    high, low = make_lead(org, "high@example.com", score=60), make_lead(org, "low@example.com", score=10)
    lead_services.add_to_list(segment=segment, leads=Lead.objects.filter(pk=low.pk))
    for sequence in (by_score, by_segment):
        services.enroll(sequence=sequence, leads=[high.pk, low.pk])
    run()
    high.refresh_from_db()
    low.refresh_from_db()
    assert (high.temperature, low.temperature) == ("hot", "")
    assert (high.status, low.status) == ("open", "working")
    assert not Enrollment.objects.filter(status="active").exists()


def test_update_step_moves_the_stage_along_the_lifecycle(org):
    sequence = make_sequence(org, [{"type": "update", "field": "lifecycle_stage", "value": "mql"}])
    lead = make_lead(org, lifecycle_stage=LifecycleStage.LEAD)
    services.enroll(sequence=sequence, leads=[lead.pk])
    run()
    lead.refresh_from_db()
    assert lead.lifecycle_stage == "mql"
    assert Activity.objects.filter(lead=lead, type="stage_change").exists()


# ----------------------------------------------------------------------------------------------- waits


def _lead_in(org, zone="Europe/Berlin"):
    return make_lead(org, timezone=zone)


def test_waits_in_business_days_skip_the_weekend(org):
    sequence = make_sequence(org, [{"type": "wait", "days": 1, "business_days": True}])
    lead = _lead_in(org)
    friday = datetime(2026, 1, 2, 10, 0, tzinfo=UTC)  # a Friday
    due = services.wait_until(friday, {"days": 1, "business_days": True}, sequence=sequence, lead=lead)
    assert due == datetime(2026, 1, 5, 10, 0, tzinfo=UTC)  # Monday, same time
    assert services.wait_until(friday, {"days": 1}, sequence=sequence, lead=lead) == friday + timedelta(days=1)


def test_waits_land_inside_the_sending_hours_in_the_leads_timezone(org):
    sequence = make_sequence(org, [], sending_hours={"start": "09:00", "end": "17:00"})
    lead = _lead_in(org, "America/New_York")
    evening = datetime(2026, 1, 6, 23, 30, tzinfo=UTC)  # 18:30 in New York
    due = services.wait_until(evening, {"hours": 0}, sequence=sequence, lead=lead)
    assert due == datetime(2026, 1, 7, 14, 0, tzinfo=UTC)  # 09:00 the next morning in New York


def test_an_email_due_outside_sending_hours_waits_for_them(org, mailoutbox):
    template = make_template(org)
    sequence = make_sequence(org, [{"type": "email", "template": str(template.pk)}],
                             sending_hours={"start": "09:00", "end": "17:00"})
    lead = _lead_in(org, "UTC")
    services.enroll(sequence=sequence, leads=[lead.pk], now=datetime(2026, 1, 6, 20, 0, tzinfo=UTC))
    run(now=datetime(2026, 1, 6, 20, 0, tzinfo=UTC))
    assert mailoutbox == []
    assert enrollment_of(sequence, lead).next_run_at == datetime(2026, 1, 7, 9, 0, tzinfo=UTC)
    run(now=datetime(2026, 1, 7, 9, 0, tzinfo=UTC))
    assert len(mailoutbox) == 1


def test_a_wait_holds_the_lead_at_the_next_step_until_it_is_due(org, mailoutbox):
    template = make_template(org)
    sequence = make_sequence(org, [{"type": "wait", "days": 2}, {"type": "email", "template": str(template.pk)}])
    lead = make_lead(org)
    services.enroll(sequence=sequence, leads=[lead.pk])
    now = timezone.now()
    run(now=now)
    enrollment = enrollment_of(sequence, lead)
    assert enrollment.position == 1 and enrollment.next_run_at == now + timedelta(days=2)
    run(now=now + timedelta(days=1))
    assert mailoutbox == []
    run(now=now + timedelta(days=2))
    assert len(mailoutbox) == 1
    assert enrollment_of(sequence, lead).status == "completed"



def test_enrolling_the_first_few_of_a_list_of_leads(org):
    sequence = Sequence.objects.create(organization=org, name="Few")
    for number in range(5):
        Lead.objects.create(organization=org, email=f"few{number}@example.test")

    assert services.enroll(sequence=sequence, leads=Lead.objects.for_org(org).order_by("email")[:3]) == 3
    assert sorted(Enrollment.objects.filter(sequence=sequence).values_list("lead__email", flat=True)) == [
        "few0@example.test", "few1@example.test", "few2@example.test"]
