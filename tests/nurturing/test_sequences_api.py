"""The sequences API contract: CRUD, enrol, enrolments, exit, stats; a lead's messages; template version stats."""

import pytest

from leads import services as lead_services
from nurturing import selectors, services
from nurturing.models import Enrollment, Message, Sequence
from tests.nurturing.test_sequences import make_lead, make_sequence, make_template, run

pytestmark = pytest.mark.django_db


def _body(template, **extra):
    return {"name": "Welcome drip", "active": True, "steps": [
        {"type": "email", "template": str(template.pk)},
        {"type": "wait", "days": 2, "business_days": True},
        {"type": "branch", "condition": {"opened_last": True}, "then": 4, "else": 3},
        {"type": "update", "field": "temperature", "value": "cold"},
        {"type": "notify_owner"},
    ], **extra}


def test_create_read_update_delete(api, org):
    template = make_template(org)
    created = api.post("/api/v1/sequences/", _body(template, entry={"stage": "recycled"},
                                                   sending_hours={"start": "09:00", "end": "17:00"}), format="json")
    assert created.status_code == 201, created.content
    data = created.json()
    assert data["steps"][0] == {"type": "email", "template": str(template.pk)}
    assert data["steps"][1] == {"type": "wait", "days": 2, "business_days": True}
    assert data["steps"][2] == {"type": "branch", "condition": {"opened_last": True}, "then": 4, "else": 3}
    assert data["entry"] == {"stage": "recycled"}
    assert data["exit"] == {"stages": ["sql", "opportunity", "customer"], "condition": {}}
    assert data["sending_hours"] == {"start": "09:00", "end": "17:00"}
    url = f"/api/v1/sequences/{data['id']}/"
    assert api.get(url).json() == data
    patched = api.patch(url, {"active": False, "exit": {"stages": ["customer"]}}, format="json")
    assert patched.status_code == 200
    assert patched.json()["active"] is False and patched.json()["exit"]["stages"] == ["customer"]
    assert len(patched.json()["steps"]) == 5
    listed = api.get("/api/v1/sequences/").json()
    assert [row["name"] for row in listed["results"]] == ["Welcome drip"]
    assert api.delete(url).status_code == 204
    assert not Sequence.objects.exists()


def test_list_query_count_does_not_grow(api, org, django_assert_max_num_queries):
    template = make_template(org)
    for index in range(8):
        make_sequence(org, [{"type": "email", "template": str(template.pk)}, {"type": "wait", "hours": 3}],
                      name=f"S{index}")
    with django_assert_max_num_queries(8):
        response = api.get("/api/v1/sequences/")
    assert len(response.json()["results"]) == 8


@pytest.mark.parametrize(("steps", "field"), [
    ([{"type": "wait", "hours": 0}, {"type": "branch", "condition": {"score_gte": 1}, "then": 2, "else": 0}],
     "steps.1.else"),
    ([{"type": "branch", "condition": {"clicked_last": True}, "then": 9, "else": 1}], "steps.0.then"),
    ([{"type": "wait", "days": 1}, {"type": "branch", "condition": {"score_gte": 1}, "then": 0, "else": 0}],
     "steps.0"),
    ([{"type": "email"}], "steps.0.template"),
    ([{"type": "email", "template": "\x00"}], "steps"),
])
def test_bad_sequences_are_400_with_field_messages(api, org, steps, field):
    response = api.post("/api/v1/sequences/", {"name": "Bad", "steps": steps, "exit": {"stages": []}},
                        format="json")
    assert response.status_code == 400, response.content
    assert field in response.json()["errors"], response.json()
    assert not Sequence.objects.exists()


@pytest.mark.parametrize("body", [
    {"name": "", "steps": []},
    {"name": "X", "steps": [], "entry": {"stage": "king"}},
    {"name": "X", "steps": [], "entry": {"segment": "nope"}},
    {"name": "X", "steps": [], "entry": "manual"},
    {"name": "X", "steps": [], "exit": {"stages": ["sql"], "condition": {"all": [{"field": "nope", "op": "eq"}]}}},
    {"name": "X", "steps": [], "sending_hours": {"start": "25:00", "end": "26:00"}},
    {"name": "X", "steps": [], "active": "yes please"},
    {"name": "X", "steps": [], "score": 5},
    {"name": "X", "steps": {"type": "wait"}},
    ["not", "an", "object"],
])
def test_malformed_bodies_are_400_never_500(api, body):
    response = api.post("/api/v1/sequences/", body, format="json")
    assert response.status_code == 400, response.content
    assert "errors" in response.json()


def test_enroll_by_ids_and_by_segment(api, org):
    sequence = make_sequence(org, [{"type": "wait", "days": 1}])
    first = make_lead(org, "a@example.com")
    make_lead(org, "b@example.com")
    url = f"/api/v1/sequences/{sequence.pk}/enroll/"
    assert api.post(url, {"leads": [str(first.pk)]}, format="json").json() == {"enrolled": 1}
    segment = lead_services.create_segment(organization_id=org.pk, name="All", definition={
        "all": [{"field": "email", "op": "contains", "value": "@example.com"}]})
    assert api.post(url, {"segment": str(segment.pk)}, format="json").json() == {"enrolled": 1}
    assert Enrollment.objects.filter(sequence=sequence).count() == 2
    assert set(Enrollment.objects.values_list("enrolled_by", flat=True)) == {"api"}


@pytest.mark.parametrize("body", [
    {}, {"leads": []}, {"leads": ["nope"]}, {"segment": "nope"}, {"leads": ["x"], "segment": "y"},
    {"segment": "00000000-0000-0000-0000-000000000000"},
])
def test_bad_enrol_requests_are_400(api, org, body):
    sequence = make_sequence(org, [])
    response = api.post(f"/api/v1/sequences/{sequence.pk}/enroll/", body, format="json")
    assert response.status_code == 400 and "errors" in response.json()
    assert not Enrollment.objects.exists()


def test_enrollments_list_and_exit_by_hand(api, org, django_assert_max_num_queries):
    sequence = make_sequence(org, [{"type": "wait", "days": 1}])
    leads = [make_lead(org, f"l{i}@example.com") for i in range(6)]
    services.enroll(sequence=sequence, leads=[lead.pk for lead in leads])
    with django_assert_max_num_queries(6):
        page = api.get(f"/api/v1/sequences/{sequence.pk}/enrollments/?page_size=4")
    assert page.status_code == 200 and len(page.json()["results"]) == 4 and page.json()["next"]
    enrollment = Enrollment.objects.get(lead=leads[0])
    exit_url = f"/api/v1/sequences/{sequence.pk}/enrollments/{enrollment.pk}/exit/"
    response = api.post(exit_url, {}, format="json")
    assert response.status_code == 200 and response.json()["status"] == "exited"
    assert response.json()["exit_reason"] == "replied"
    assert api.post(exit_url, {}, format="json").status_code == 409
    exited = api.get(f"/api/v1/sequences/{sequence.pk}/enrollments/?status=exited").json()["results"]
    assert [row["email"] for row in exited] == ["l0@example.com"]
    assert api.get(f"/api/v1/sequences/{sequence.pk}/enrollments/?status=nope").status_code == 400
    other = make_sequence(org, [], name="Other")
    assert api.post(f"/api/v1/sequences/{other.pk}/enrollments/{enrollment.pk}/exit/", {},
                    format="json").status_code == 404


def test_stats_per_step_with_rates(api, org):
    template = make_template(org)
    sequence = make_sequence(org, [{"type": "email", "template": str(template.pk)}, {"type": "wait", "days": 3},
                                   {"type": "email", "template": str(template.pk)}])
    leads = [make_lead(org, f"l{i}@example.com") for i in range(4)]
    services.enroll(sequence=sequence, leads=[lead.pk for lead in leads])
    run()
    messages = list(Message.objects.order_by("to_email"))
    services.record_open(messages[0])
    services.record_click(messages[1], 0)
    services.record_email_event(organization_id=org.pk, event="bounce", message_id=messages[2].pk)
    stats = api.get(f"/api/v1/sequences/{sequence.pk}/stats/").json()
    first, wait, last = stats["steps"]
    assert (first["sent"], first["delivered"], first["opened"], first["clicked"], first["bounced"]) == (4, 3, 2, 1,
                                                                                                     1)
    assert first["open_rate"] == round(2 / 3, 4) and first["bounce_rate"] == 0.25
    assert last["at_step"] == 3 and last["sent"] == 0 and last["open_rate"] is None  # waiting after the wait
    assert stats["enrollments"] == {"active": 3, "completed": 0, "exited": 1}


def test_version_stats_for_the_templates_pages(org):
    template = make_template(org)
    sequence = make_sequence(org, [{"type": "email", "template": str(template.pk)}])
    lead = make_lead(org)
    services.enroll(sequence=sequence, leads=[lead.pk])
    run()
    services.record_open(Message.objects.get())
    [row] = selectors.template_stats(template)
    assert (row["version"], row["sent"], row["opened"], row["open_rate"]) == (1, 1, 1, 1.0)


def test_a_leads_messages_with_status_and_tracking_times(api, org, django_assert_max_num_queries):
    template = make_template(org)
    sequences = [make_sequence(org, [{"type": "email", "template": str(template.pk)}], name=f"S{i}")
                 for i in range(5)]
    lead = make_lead(org)
    for sequence in sequences:
        services.enroll(sequence=sequence, leads=[lead.pk])
    run()
    services.record_open(Message.objects.first())
    with django_assert_max_num_queries(6):
        response = api.get(f"/api/v1/leads/{lead.pk}/messages/")
    rows = response.json()["results"]
    assert len(rows) == 5 and {row["status"] for row in rows} == {"sent"}
    assert sum(row["opened_at"] is not None for row in rows) == 1
    assert rows[0]["template"] == {"id": str(template.pk), "name": "Welcome"} and rows[0]["template_version"] == 1
    assert api.get("/api/v1/leads/00000000-0000-0000-0000-000000000000/messages/").status_code == 404


def test_a_sequence_that_sent_email_cannot_be_deleted(api, org):
    template = make_template(org)
    sequence = make_sequence(org, [{"type": "email", "template": str(template.pk)}])
    services.enroll(sequence=sequence, leads=[make_lead(org).pk])
    run()
    response = api.delete(f"/api/v1/sequences/{sequence.pk}/")
    assert response.status_code == 409 and "deactivate" in response.json()["detail"]


def test_reps_cannot_manage_sequences(client, org, member):
    client.force_login(member("rep"))
    assert client.get("/api/v1/sequences/").status_code == 403


def test_the_schema_describes_the_sequence_api(api):
    paths = api.get("/api/schema/?format=json").json()["paths"]
    for path in ("/api/v1/sequences/", "/api/v1/sequences/{id}/enroll/", "/api/v1/sequences/{id}/enrollments/",
                 "/api/v1/sequences/{id}/stats/", "/api/v1/sequences/{id}/enrollments/{enrollment_id}/exit/",
                 "/api/v1/leads/{id}/messages/", "/api/v1/email-events/"):
        assert path in paths, path
