"""Browser pages of sequences: list, editor (save and every kind of refusal), a sequence's page (per-step numbers,
enrolments, enrolling, exit), the lead page's Emails card, template version numbers, roles and tenancy."""

import re
from datetime import timedelta

import pytest
from django.utils import timezone

from leadcrm.models import Role
from leads import services as lead_services
from leads.models import Lead
from nurturing import services
from nurturing.models import Enrollment, EnrollmentStatus, Message, Sequence, SequenceStep, TemplateVersion

pytestmark = pytest.mark.django_db

HTML = '<p>Hi {{ lead.first_name|default:"there" }}</p><a href="{{ unsubscribe_url }}">Unsubscribe</a>'


def make_template(org, name="Welcome"):
    return services.create_template(organization_id=org.pk, name=name, subject="Hello", html=HTML, text="Hi")


def make_lead(org, email="ada@example.com", **fields):
    lead = lead_services.capture_lead(organization_id=org.pk, data={"email": email, "first_name": "Ada"}).lead
    if fields:
        Lead.objects.filter(pk=lead.pk).update(**fields)
        lead.refresh_from_db()
    return lead


def make_sequence(org, steps, name="Welcome drip", **data):
    return services.save_sequence(organization_id=org.pk, data={"name": name, "active": True, "steps": steps,
                                                                **data})


def editor_post(steps=(), **fields):
    """The editor's POST: settings, then rows s0-…, s1-… as the browser sends them."""
    data = {"name": "Onboarding", "active": "on", "entry_type": "manual", "exit_stages": ["sql", "customer"],
            "exit_condition": "", "sending_start": "", "sending_end": "", "step_count": str(len(steps)),
            "action": "save", **fields}
    for index, row in enumerate(steps):
        for key, value in row.items():
            data[f"s{index}-{key}"] = value
    return data


# ----------------------------------------------------------------------------------------------- list


def test_list_shows_each_sequence_with_its_numbers(org, browser):
    template = make_template(org)
    sequence = make_sequence(org, [{"type": "email", "template": str(template.pk)}], name="<b>Spring</b> drip")
    leads = [make_lead(org, f"lead{n}@example.com") for n in range(4)]
    services.enroll(sequence=sequence, leads=[lead.pk for lead in leads])
    step = sequence.steps.get()
    now = timezone.now()
    for index, enrollment in enumerate(Enrollment.objects.filter(sequence=sequence)):
        Message.objects.create(organization=org, lead=enrollment.lead, enrollment=enrollment, step=step,
                               status="sent", sent_at=now, opened_at=now if index < 2 else None,
                               clicked_at=now if index == 0 else None)
    Enrollment.objects.filter(pk=Enrollment.objects.filter(sequence=sequence).first().pk).update(status="exited")

    response = browser.get("/emails/sequences/")

    assert response.status_code == 200
    html = response.content.decode()
    assert "&lt;b&gt;Spring&lt;/b&gt; drip" in html and "<b>Spring</b>" not in html
    row = html.split("&lt;b&gt;Spring&lt;/b&gt; drip", 1)[1].split("</tr>", 1)[0]
    cells = [cell.split(">", 1)[1] for cell in row.split("<td")[1:]]
    assert cells[2].startswith("4")  # enrolled
    assert cells[3].startswith("3")  # still running
    assert cells[4].startswith("4")  # sent
    assert "50.0%" in cells[5] and "25.0%" in cells[6]  # opens and clicks of the 4 delivered


def test_list_query_count_does_not_grow_with_sequences(org, browser, django_assert_max_num_queries):
    template = make_template(org)
    make_sequence(org, [{"type": "email", "template": str(template.pk)}], name="One")
    with django_assert_max_num_queries(12) as few:
        browser.get("/emails/sequences/")
    for n in range(6):
        sequence = make_sequence(org, [{"type": "email", "template": str(template.pk)}], name=f"More {n}")
        services.enroll(sequence=sequence, leads=[make_lead(org, f"m{n}@example.com").pk])
    with django_assert_max_num_queries(len(few.captured_queries)):
        response = browser.get("/emails/sequences/")
    assert response.content.decode().count("/emails/sequences/") >= 7


def test_reps_get_404_on_sequence_pages(org, client, member):
    template = make_template(org)
    sequence = make_sequence(org, [{"type": "email", "template": str(template.pk)}])
    client.force_login(member(Role.REP))
    for path in ("/emails/sequences/", "/emails/sequences/new/", f"/emails/sequences/{sequence.pk}/",
                 f"/emails/sequences/{sequence.pk}/edit/"):
        assert client.get(path).status_code == 403, path
    assert client.post(f"/emails/sequences/{sequence.pk}/enroll/", {"emails": "x@example.com"}).status_code == 403


@pytest.mark.parametrize("role", [Role.MANAGER, Role.ADMIN, Role.MARKETER])
def test_org_wide_roles_open_the_list(org, client, member, role):
    client.force_login(member(role, email=f"{role}-x@acme.test"))
    assert client.get("/emails/sequences/").status_code == 200


def test_other_org_gets_404(org, other_org, client):
    from leadcrm.models import Membership

    template = make_template(org)
    sequence = make_sequence(org, [{"type": "email", "template": str(template.pk)}], name="Acme only")
    lead = make_lead(org)
    services.enroll(sequence=sequence, leads=[lead.pk])
    enrollment = Enrollment.objects.get(sequence=sequence)
    client.force_login(Membership.objects.get(organization=other_org, role=Role.ADMIN).user)
    assert client.get(f"/emails/sequences/{sequence.pk}/").status_code == 404
    assert client.get(f"/emails/sequences/{sequence.pk}/edit/").status_code == 404
    assert client.post(f"/emails/sequences/{sequence.pk}/edit/", editor_post()).status_code == 404
    assert client.post(f"/emails/sequences/{sequence.pk}/enrollments/{enrollment.pk}/exit/").status_code == 404
    assert client.get(f"/emails/leads/{lead.pk}/").status_code == 404
    assert "Acme only" not in client.get("/emails/sequences/").content.decode()
    assert Enrollment.objects.get(pk=enrollment.pk).status == EnrollmentStatus.ACTIVE


# ----------------------------------------------------------------------------------------------- editor


def test_editor_saves_every_step_type_in_order(org, browser):
    template = make_template(org)
    segment = lead_services.create_segment(organization_id=org.pk, name="Hot", definition={
        "all": [{"field": "company", "op": "contains", "value": "Acme"}]})
    steps = [
        {"type": "email", "template": str(template.pk)},
        {"type": "wait", "amount": "3", "unit": "days", "business_days": "on"},
        {"type": "branch", "condition": "clicked_last", "then": "5", "else": "4"},
        {"type": "branch", "condition": "segment", "segment": str(segment.pk), "then": "end", "else": "5"},
        {"type": "update", "field": "temperature", "value": "hot"},
        {"type": "notify_owner", "message": "Call them"},
    ]
    response = browser.post("/emails/sequences/new/", editor_post(steps, sending_start="09:00",
                                                                  sending_end="17:00"))

    sequence = Sequence.objects.get(organization=org, name="Onboarding")
    assert response.status_code == 302 and response["Location"] == f"/emails/sequences/{sequence.pk}/"
    assert sequence.active and sequence.exit_stages == ["sql", "customer"]
    assert sequence.sending_hours == {"start": "09:00", "end": "17:00"}
    saved = [(step.type, step.template_id, step.config) for step in sequence.steps.order_by("position")]
    assert saved == [
        ("email", template.pk, {}),
        ("wait", None, {"days": 3, "business_days": True}),
        ("branch", None, {"condition": {"clicked_last": True}, "then": 4, "else": 3}),
        ("branch", None, {"condition": {"segment": str(segment.pk)}, "then": 6, "else": 4}),
        ("update", None, {"field": "temperature", "value": "hot"}),
        ("notify_owner", None, {"message": "Call them"}),
    ]
    # and the editor shows them again as they were entered
    html = browser.get(f"/emails/sequences/{sequence.pk}/edit/").content.decode()
    assert 'name="s1-amount" type="number" min="0" value="3"' in html
    assert '<option value="5" selected>step 5</option>' in html  # step 3's "then"
    assert 'value="Call them"' in html


def test_editor_entry_by_segment_and_exit_condition(org, browser):
    template = make_template(org)
    segment = lead_services.create_segment(organization_id=org.pk, name="Trial users", definition={
        "all": [{"field": "company", "op": "contains", "value": "Trial"}]})
    condition = '{"all": [{"field": "score", "op": "gte", "value": 80}]}'
    response = browser.post("/emails/sequences/new/", editor_post(
        [{"type": "email", "template": str(template.pk)}], entry_type="segment", entry_segment=str(segment.pk),
        exit_condition=condition, allow_reenrollment="on"))
    assert response.status_code == 302
    sequence = Sequence.objects.get(organization=org)
    assert (sequence.entry_type, sequence.entry_segment_id, sequence.allow_reenrollment) == ("segment", segment.pk,
                                                                                            True)
    assert sequence.exit_condition["all"][0]["field"] == "score"


def test_editor_refuses_a_loop_without_a_wait_next_to_the_step(org, browser):
    template = make_template(org)
    steps = [{"type": "email", "template": str(template.pk)},
             {"type": "branch", "condition": "opened_last", "then": "end", "else": "1"}]
    response = browser.post("/emails/sequences/new/", editor_post(steps))

    assert response.status_code == 400
    html = response.content.decode()
    step_two = html.split('id="step-2"', 1)[1].split("</fieldset>", 1)[0]
    assert "Else: This jumps back into a loop without a wait" in step_two
    assert "jumps back" not in html.split('id="step-2"', 1)[0]
    assert not Sequence.objects.exists()


def test_editor_refuses_a_template_of_another_org_on_its_step(org, other_org, browser):
    mine = make_template(org)
    theirs = services.create_template(organization_id=other_org.pk, name="Rival", subject="x", html="<p>x</p>",
                                      text="x")
    steps = [{"type": "email", "template": str(mine.pk)}, {"type": "wait", "amount": "1", "unit": "days"},
             {"type": "email", "template": str(theirs.pk)}]
    response = browser.post("/emails/sequences/new/", editor_post(steps))
    assert response.status_code == 400
    step_three = response.content.decode().split('id="step-3"', 1)[1].split("</fieldset>", 1)[0]
    assert "Template: No such email template in this organization." in step_three
    assert not Sequence.objects.exists()


@pytest.mark.parametrize(("fields", "row", "message"), [
    ({"name": ""}, None, "A name of 1 to 200 characters."),
    ({"exit_condition": "{not json"}, None, "Not valid JSON"),
    ({"exit_condition": '{"all": [{"field": "nope", "op": "eq", "value": 1}]}'}, None, "nope"),
    ({"sending_start": "17:00", "sending_end": "09:00"}, None, "The end must be after the start."),
    ({"sending_start": "25:00", "sending_end": "26:00"}, None, "A time as HH:MM (24 hours)."),
    ({"entry_type": "stage", "entry_stage": "sql"}, None, "it cannot also be an exit stage"),
    ({"entry_type": "segment"}, None, "No such segment in this organization."),
    ({}, {"type": "wait", "amount": "soon", "unit": "hours"}, "Hours: A whole number from 0 to 8760."),
    ({}, {"type": "update", "field": "email", "value": "x"}, "Field: One of:"),
    ({}, {"type": "update", "field": "status", "value": "bogus"}, "Value: One of"),
    ({}, {"type": "branch", "condition": "score_gte", "score": "", "then": "end", "else": "end"}, "A whole number."),
    ({}, {"type": "email", "template": ""}, "Template: Choose the email template this step sends."),
    ({}, {"type": "email", "template": "8a2c8c56-5d3e-4f55-9a0e-1b1f7d3c2b10"},
     "Template: No such email template in this organization."),
])
def test_editor_shows_each_refusal_with_400_and_saves_nothing(org, browser, fields, row, message):
    template = make_template(org)
    steps = [{"type": "email", "template": str(template.pk)}] + ([row] if row else [])
    response = browser.post("/emails/sequences/new/", editor_post(steps, **fields))
    assert response.status_code == 400
    html = response.content.decode()
    assert "The sequence was not saved" in html
    assert message in html
    if row:  # next to the step it is about
        assert message in html.split('id="step-2"', 1)[1].split("</fieldset>", 1)[0]
    assert not Sequence.objects.exists()


def test_editor_changes_keep_steps_by_position(org, browser):
    first, second = make_template(org, "First"), make_template(org, "Second")
    sequence = make_sequence(org, [{"type": "email", "template": str(first.pk)}, {"type": "wait", "hours": 2},
                                   {"type": "email", "template": str(second.pk)}])
    kept = sequence.steps.get(position=0).pk
    response = browser.post(f"/emails/sequences/{sequence.pk}/edit/", editor_post(
        [{"type": "email", "template": str(first.pk)}, {"type": "wait", "amount": "5", "unit": "hours"}],
        name="Renamed", active=""))
    assert response.status_code == 302
    sequence.refresh_from_db()
    assert sequence.name == "Renamed" and not sequence.active
    assert list(sequence.steps.order_by("position").values_list("type", "config")) == [
        ("email", {}), ("wait", {"hours": 5, "business_days": False})]
    assert sequence.steps.get(position=0).pk == kept


def test_add_move_and_remove_rows_without_saving(org, browser):
    template = make_template(org)
    steps = [{"type": "email", "template": str(template.pk)}, {"type": "wait", "amount": "1", "unit": "days"},
             {"type": "branch", "condition": "opened_last", "then": "1", "else": "end"}]
    added = browser.post("/emails/sequences/new/", editor_post(steps, action="add", add_type="update"))
    assert added.status_code == 200
    html = added.content.decode()
    assert 'name="step_count" value="4"' in html and 'name="s3-field"' in html

    # step 1 moves down: the branch that pointed at it follows it to step 2
    moved = browser.post("/emails/sequences/new/", editor_post(steps, action="down-0")).content.decode()
    assert 'name="s0-amount"' in moved and 'name="s1-template"' in moved
    branch = moved.split('id="step-3"', 1)[1].split("</fieldset>", 1)[0]
    then = branch.split('name="s2-then"', 1)[1].split("</select>", 1)[0]
    assert '<option value="2" selected>' in then

    removed = browser.post("/emails/sequences/new/", editor_post(steps, action="remove-1")).content.decode()
    assert 'name="step_count" value="2"' in removed and 'name="s1-condition"' in removed
    assert not Sequence.objects.exists()


def test_editor_escapes_names(org, browser):
    template = make_template(org, name="<script>alert(1)</script>")
    sequence = make_sequence(org, [{"type": "email", "template": str(template.pk)}], name="<i>x</i>")
    html = browser.get(f"/emails/sequences/{sequence.pk}/edit/").content.decode()
    assert "<script>alert(1)</script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<i>x</i>" not in html


# ----------------------------------------------------------------------------------------------- a sequence


def _numbers_fixture(org):
    """Steps email, wait, email. Step 1: 4 sent and 1 `unknown` (1 bounced, 2 opened, 1 clicked, 1 unsubscribed),
    1 skipped; step 3: 1 sent and opened. Four leads wait at step 3, one completed, one left."""
    first, second = make_template(org, "First"), make_template(org, "Second")
    sequence = make_sequence(org, [{"type": "email", "template": str(first.pk)}, {"type": "wait", "days": 2},
                                   {"type": "email", "template": str(second.pk)}])
    leads = [make_lead(org, f"n{n}@example.com") for n in range(6)]
    services.enroll(sequence=sequence, leads=[lead.pk for lead in leads])
    steps = list(sequence.steps.order_by("position"))
    enrollments = {e.lead_id: e for e in Enrollment.objects.filter(sequence=sequence)}
    now = timezone.now()
    hour = timedelta(hours=1)
    plan = [  # step 1 per lead: status, bounced, opened, clicked, unsubscribed
        ("sent", True, False, False, False),
        ("sent", False, True, True, False),
        ("sent", False, True, False, True),
        ("sent", False, False, False, False),
        ("unknown", False, False, False, False),
        ("skipped", False, False, False, False),
    ]
    for lead, (status, bounced, opened, clicked, unsubscribed) in zip(leads, plan, strict=True):
        Message.objects.create(
            organization=org, lead=lead, enrollment=enrollments[lead.pk], step=steps[0], status=status,
            sent_at=now if status == "sent" else None, bounced_at=now + hour if bounced else None,
            opened_at=now + hour if opened else None, clicked_at=now + 2 * hour if clicked else None,
            unsubscribed_at=now + 2 * hour if unsubscribed else None)
    Message.objects.create(organization=org, lead=leads[1], enrollment=enrollments[leads[1].pk], step=steps[2],
                           status="sent", sent_at=now, opened_at=now + hour)
    # leads 0-3 wait at step 3 (position 2); lead 1 finished; lead 5 left
    Enrollment.objects.filter(pk__in=[enrollments[lead.pk].pk for lead in leads[:5]]).update(position=2)
    Enrollment.objects.filter(pk=enrollments[leads[1].pk].pk).update(status="completed", position=3)
    Enrollment.objects.filter(pk=enrollments[leads[5].pk].pk).update(status="exited", exit_reason="bounced")
    return sequence


def test_sequence_page_shows_per_step_numbers_with_rates(org, browser):
    sequence = _numbers_fixture(org)
    response = browser.get(f"/emails/sequences/{sequence.pk}/")
    assert response.status_code == 200
    html = response.content.decode()

    def cells(number):
        row = html.split(f'id="step-stats-{number}"', 1)[1].split("</tr>", 1)[0]
        return {label: re.sub(r"<[^>]+>", " ", body).split()
                for label, body in re.findall(r'<td data-label="([^"]+)">(.*?)</td>', row, re.S)}

    first = cells(1)
    # sent counts `unknown` too (it most likely went out): 5; delivered 4; rates per delivered
    assert (first["sent"], first["delivered"]) == (["5"], ["4"])
    assert first["opened"] == ["2", "50.0%"]
    assert first["clicked"] == ["1", "25.0%"]
    assert first["bounced"] == ["1", "20.0%"]
    assert first["unsubscribed"] == ["1", "25.0%"]
    assert first["skipped"] == ["1"]
    assert first["at step"] == ["0"]
    assert cells(2)["at step"] == ["0"] and "sent" not in cells(2)
    third = cells(3)
    assert third["at step"] == ["4"] and third["sent"] == ["1"] and third["opened"] == ["1", "100.0%"]
    assert "Enrolments: 4 running, 1 completed, 1 left." in html
    step_three = html.split('id="step-stats-3"', 1)[1].split("</tr>", 1)[0]
    assert ">Second</a>" in step_three


def test_sequence_page_query_count_does_not_grow_with_enrolments(org, browser, django_assert_max_num_queries):
    template = make_template(org)
    sequence = make_sequence(org, [{"type": "email", "template": str(template.pk)}])
    services.enroll(sequence=sequence, leads=[make_lead(org, "first@example.com").pk])
    with django_assert_max_num_queries(30) as few:
        browser.get(f"/emails/sequences/{sequence.pk}/")
    services.enroll(sequence=sequence, leads=[make_lead(org, f"more{n}@example.com").pk for n in range(8)])
    with django_assert_max_num_queries(len(few.captured_queries)):
        response = browser.get(f"/emails/sequences/{sequence.pk}/")
    assert response.content.decode().count("Take ") == 9


def test_enrolments_are_paged_by_keyset(org, browser):
    template = make_template(org)
    sequence = make_sequence(org, [{"type": "email", "template": str(template.pk)}])
    leads = [make_lead(org, f"p{n:02d}@example.com") for n in range(55)]
    services.enroll(sequence=sequence, leads=[lead.pk for lead in leads])
    base = timezone.now()
    for index, enrollment in enumerate(Enrollment.objects.filter(sequence=sequence)):
        Enrollment.objects.filter(pk=enrollment.pk).update(enrolled_at=base - timedelta(minutes=index))
    first = browser.get(f"/emails/sequences/{sequence.pk}/").content.decode()
    assert first.count("Take ") == 50
    next_url = first.split('rel="next"', 1)[0].rsplit('href="', 1)[1].split('"', 1)[0].replace("&amp;", "&")
    assert "cursor=" in next_url
    second = browser.get(next_url).content.decode()
    assert second.count("Take ") == 5


def test_enrol_by_segment(org, browser):
    template = make_template(org)
    sequence = make_sequence(org, [{"type": "email", "template": str(template.pk)}])
    inside = [make_lead(org, f"in{n}@example.com", company="Acme Trial") for n in range(3)]
    make_lead(org, "out@example.com", company="Other")
    segment = lead_services.create_segment(organization_id=org.pk, name="Trials", definition={
        "all": [{"field": "company", "op": "contains", "value": "Trial"}]})

    response = browser.post(f"/emails/sequences/{sequence.pk}/enroll/", {"segment": str(segment.pk)}, follow=True)

    assert "3 leads enrolled." in response.content.decode()
    assert set(Enrollment.objects.filter(sequence=sequence).values_list("lead_id", flat=True)) == {
        lead.pk for lead in inside}
    # again: nobody twice
    browser.post(f"/emails/sequences/{sequence.pk}/enroll/", {"segment": str(segment.pk)})
    assert Enrollment.objects.filter(sequence=sequence).count() == 3


def test_enrol_by_emails_and_refusals(org, other_org, browser):
    template = make_template(org)
    sequence = make_sequence(org, [{"type": "email", "template": str(template.pk)}])
    ada = make_lead(org, "ada@example.com")
    lead_services.capture_lead(organization_id=other_org.pk, data={"email": "rival@example.com"})
    unknown = browser.post(f"/emails/sequences/{sequence.pk}/enroll/",
                           {"emails": "ADA@example.com, rival@example.com"})
    assert unknown.status_code == 400 and "No such leads: rival@example.com" in unknown.content.decode()
    neither = browser.post(f"/emails/sequences/{sequence.pk}/enroll/", {"emails": ""})
    assert neither.status_code == 400 and "Give either a segment or email addresses." in neither.content.decode()
    other_segment = lead_services.create_segment(organization_id=other_org.pk, name="Rival", definition={
        "all": [{"field": "company", "op": "contains", "value": "x"}]})
    foreign = browser.post(f"/emails/sequences/{sequence.pk}/enroll/", {"segment": str(other_segment.pk)})
    assert foreign.status_code == 400
    assert not Enrollment.objects.exists()

    ok = browser.post(f"/emails/sequences/{sequence.pk}/enroll/", {"emails": "ADA@example.com"})
    assert ok.status_code == 302
    assert Enrollment.objects.get().lead_id == ada.pk


def test_exit_button_ends_a_running_enrolment(org, browser):
    template = make_template(org)
    sequence = make_sequence(org, [{"type": "email", "template": str(template.pk)}])
    lead = make_lead(org)
    services.enroll(sequence=sequence, leads=[lead.pk])
    enrollment = Enrollment.objects.get()
    page = browser.get(f"/emails/sequences/{sequence.pk}/").content.decode()
    assert f"/emails/sequences/{sequence.pk}/enrollments/{enrollment.pk}/exit/" in page

    response = browser.post(f"/emails/sequences/{sequence.pk}/enrollments/{enrollment.pk}/exit/", follow=True)

    enrollment.refresh_from_db()
    assert (enrollment.status, enrollment.exit_reason) == (EnrollmentStatus.EXITED, "replied")
    assert enrollment.next_run_at is None
    assert "left “Welcome drip”" in response.content.decode()
    again = browser.post(f"/emails/sequences/{sequence.pk}/enrollments/{enrollment.pk}/exit/", follow=True)
    assert "was no longer running" in again.content.decode()


def test_enrolment_list_escapes_lead_names(org, browser):
    template = make_template(org)
    sequence = make_sequence(org, [{"type": "email", "template": str(template.pk)}])
    lead = make_lead(org, first_name="<img src=x onerror=alert(1)>")
    services.enroll(sequence=sequence, leads=[lead.pk])
    html = browser.get(f"/emails/sequences/{sequence.pk}/").content.decode()
    assert "<img src=x" not in html and "&lt;img src=x onerror=alert(1)&gt;" in html


# ----------------------------------------------------------------------------------------------- lead card


def test_lead_card_lists_messages_enrolments_and_enrols(org, browser, django_assert_max_num_queries):
    template = make_template(org)
    sequence = make_sequence(org, [{"type": "email", "template": str(template.pk)}], name="<u>Nurture</u>")
    other = make_sequence(org, [{"type": "email", "template": str(template.pk)}], name="Second drip")
    lead = make_lead(org)
    services.enroll(sequence=sequence, leads=[lead.pk])
    enrollment = Enrollment.objects.get()
    now = timezone.now()
    Message.objects.create(organization=org, lead=lead, enrollment=enrollment, step=sequence.steps.get(),
                           template_version=TemplateVersion.objects.get(template=template),
                           subject="<b>Hello</b> Ada", status="sent", sent_at=now, opened_at=now,
                           clicked_at=now + timedelta(minutes=5))

    with django_assert_max_num_queries(12):
        response = browser.get(f"/emails/leads/{lead.pk}/", HTTP_HX_REQUEST="true")

    html = response.content.decode()
    assert response.status_code == 200 and 'id="emails-card"' in html and "<html" not in html
    assert "&lt;b&gt;Hello&lt;/b&gt; Ada" in html and "<b>Hello</b>" not in html
    assert "opened <time" in html and "clicked <time" in html
    assert "&lt;u&gt;Nurture&lt;/u&gt;" in html and "<u>Nurture</u>" not in html
    assert f"/emails/sequences/{sequence.pk}/enrollments/{enrollment.pk}/exit/" in html
    assert f'<option value="{other.pk}">Second drip</option>' in html

    enrolled = browser.post(f"/emails/leads/{lead.pk}/enroll/", {"sequence": str(other.pk)},
                            HTTP_HX_REQUEST="true")
    assert enrolled.status_code == 200 and 'id="emails-card"' in enrolled.content.decode()
    assert Enrollment.objects.filter(lead=lead, sequence=other, status="active").exists()
    twice = browser.post(f"/emails/leads/{lead.pk}/enroll/", {"sequence": str(other.pk)})
    assert twice.status_code == 302 and Enrollment.objects.filter(lead=lead, sequence=other).count() == 1

    stopped = browser.post(f"/emails/sequences/{sequence.pk}/enrollments/{enrollment.pk}/exit/",
                           {"from": "lead"}, HTTP_HX_REQUEST="true")
    assert stopped.status_code == 200 and 'id="emails-card"' in stopped.content.decode()
    assert Enrollment.objects.get(pk=enrollment.pk).status == EnrollmentStatus.EXITED


def test_lead_card_query_count_does_not_grow_with_messages(org, browser, django_assert_max_num_queries):
    template = make_template(org)
    version = TemplateVersion.objects.get(template=template)
    lead = make_lead(org)
    sequences = [make_sequence(org, [{"type": "email", "template": str(template.pk)}], name=f"S{n}")
                 for n in range(5)]
    services.enroll(sequence=sequences[0], leads=[lead.pk])
    with django_assert_max_num_queries(12) as few:
        browser.get(f"/emails/leads/{lead.pk}/", HTTP_HX_REQUEST="true")
    for sequence in sequences[1:]:
        services.enroll(sequence=sequence, leads=[lead.pk])
    for enrollment in Enrollment.objects.filter(lead=lead):
        Message.objects.create(organization=org, lead=lead, enrollment=enrollment,
                               step=SequenceStep.objects.get(sequence_id=enrollment.sequence_id),
                               template_version=version, subject="Hi", status="sent", sent_at=timezone.now())
    with django_assert_max_num_queries(len(few.captured_queries)):
        response = browser.get(f"/emails/leads/{lead.pk}/", HTTP_HX_REQUEST="true")
    assert response.content.decode().count("Stop “") == 5


def test_lead_card_for_a_rep_is_read_only_and_only_for_their_leads(org, client, member):
    template = make_template(org)
    sequence = make_sequence(org, [{"type": "email", "template": str(template.pk)}])
    rep = member(Role.REP)
    own = make_lead(org, "own@example.com", owner=rep)
    other = make_lead(org, "other@example.com")
    services.enroll(sequence=sequence, leads=[own.pk, other.pk])
    client.force_login(rep)
    card = client.get(f"/emails/leads/{own.pk}/", HTTP_HX_REQUEST="true")
    assert card.status_code == 200 and "Welcome drip" in card.content.decode()
    assert "/exit/" not in card.content.decode() and "Enrol in" not in card.content.decode()
    assert client.get(f"/emails/leads/{other.pk}/").status_code == 404
    assert client.post(f"/emails/leads/{own.pk}/enroll/", {"sequence": str(sequence.pk)}).status_code == 403


def test_lead_page_loads_the_emails_card(org, browser):
    lead = make_lead(org)
    html = browser.get(f"/leads/{lead.pk}/").content.decode()
    assert f'hx-get="/emails/leads/{lead.pk}/"' in html


# ----------------------------------------------------------------------------------------------- templates


def test_template_versions_show_their_numbers(org, browser):
    template = make_template(org)
    services.update_template(template=template, name=template.name, folder=None, subject="Hello again", html=HTML,
                             text="Hi")
    first, second = TemplateVersion.objects.filter(template=template).order_by("number")
    lead = make_lead(org)
    now = timezone.now()
    for index in range(4):
        Message.objects.create(organization=org, lead=lead, template_version=first, status="sent", sent_at=now,
                               opened_at=now if index < 3 else None, clicked_at=now if index == 0 else None)
    response = browser.get(f"/emails/templates/{template.pk}/versions/")
    html = response.content.decode()
    newest, oldest = html.split("<strong>Version 1</strong>", 1)
    assert "<strong>Sent</strong> 0" in newest
    assert "<strong>Sent</strong> 4" in oldest
    assert "<strong>opened</strong> 3 <small class=\"muted\">75.0%</small>" in oldest
    assert "<strong>clicked</strong> 1 <small class=\"muted\">25.0%</small>" in oldest
