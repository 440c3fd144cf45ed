"""Qualification and conversion over the API: the stage machine, BANT, conversion, deals, merge, duplicates, tags."""

import pytest

from leadcrm import events
from leads import services
from leads.models import (
    ALLOWED_MOVES,
    Account,
    Activity,
    Deal,
    FormSubmission,
    Lead,
    LifecycleStage,
    QualificationSettings,
    Reason,
)

pytestmark = pytest.mark.django_db


def _lead(org, **data):
    return services.capture_lead(organization_id=org.pk, data={"email": "lee@example.com", **data}).lead


def _at(lead, stage):
    Lead.objects.filter(pk=lead.pk).update(lifecycle_stage=stage)
    lead.refresh_from_db()
    return lead


def _reason(org, stage):
    return Reason.objects.for_org(org).filter(kind=stage).values_list("label", flat=True).first()


@pytest.mark.parametrize(("start", "target"), [
    (start, target) for start in LifecycleStage.values for target in LifecycleStage.values if start != target
])
def test_every_move_is_allowed_or_refused_by_the_one_table(api, org, start, target):
    lead = _at(_lead(org), start)
    reason = _reason(org, target) or ""
    response = api.post(f"/api/v1/leads/{lead.pk}/stage/", {"stage": target, "reason": reason}, format="json")
    lead.refresh_from_db()
    if target in ALLOWED_MOVES[start]:
        assert response.status_code == 200, response.content
        assert response.json()["lifecycle_stage"] == target == lead.lifecycle_stage
        assert target in lead.stage_entered_at
        move = Activity.objects.filter(lead=lead, type="stage_change").latest("occurred_at")
        assert move.properties["from"] == start and move.properties["to"] == target
    else:
        assert response.status_code == 409
        message = response.json()["detail"]
        assert f"from {start} to {target}" in message
        assert all(allowed in message for allowed in ALLOWED_MOVES[start])
        assert lead.lifecycle_stage == start


def test_a_move_records_who_when_why_and_fires_the_event(client, member, org, django_capture_on_commit_callbacks):
    client.force_login(member("manager"))
    lead = _at(_lead(org), "mql")
    reason = _reason(org, "recycled")
    seen = []

    def handler(*, event_id, **payload):
        assert isinstance(event_id, int)  # the event's outbox row, for consumers that tell repeats apart
        seen.append(payload)

    events.subscribe(events.LEAD_STAGE_CHANGED, handler)
    try:
        with django_capture_on_commit_callbacks(execute=True):
            response = client.post(f"/api/v1/leads/{lead.pk}/stage/", {"stage": "recycled", "reason": reason},
                                   content_type="application/json")
    finally:
        events._handlers[events.LEAD_STAGE_CHANGED].remove(handler)
    assert response.status_code == 200
    lead.refresh_from_db()
    assert (lead.lifecycle_stage, lead.stage_reason) == ("recycled", reason)
    move = Activity.objects.filter(lead=lead, type="stage_change").latest("occurred_at")
    assert move.actor.email == "manager@acme.test" and move.properties["reason"] == reason
    assert seen == [{"organization_id": org.pk, "lead_id": lead.pk, "from_stage": "mql", "to_stage": "recycled"}]


def test_disqualifying_needs_a_reason_from_the_orgs_list(api, org):
    lead = _lead(org)
    for reason in ("", "Because I said so"):
        response = api.post(f"/api/v1/leads/{lead.pk}/stage/", {"stage": "disqualified", "reason": reason},
                            format="json")
        assert response.status_code == 409 and "needs a reason" in response.json()["detail"]
    Reason.objects.create(organization=org, kind="disqualified", label="Because I said so")
    response = api.post(f"/api/v1/leads/{lead.pk}/stage/", {"stage": "disqualified", "reason": "Because I said so"},
                        format="json")
    assert response.status_code == 200


def test_sql_needs_the_bant_fields_the_org_requires(api, org):
    QualificationSettings.objects.filter(organization=org).update(bant_required_for_sql=["bant_budget", "bant_need"])
    lead = _at(_lead(org), "sal")
    response = api.post(f"/api/v1/leads/{lead.pk}/stage/", {"stage": "sql"}, format="json")
    assert response.status_code == 409 and "budget, need" in response.json()["detail"]
    assert api.patch(f"/api/v1/leads/{lead.pk}/", {"bant_budget": "50k approved", "bant_need": "CRM"},
                     format="json").status_code == 200
    assert api.post(f"/api/v1/leads/{lead.pk}/stage/", {"stage": "sql"}, format="json").status_code == 200


def test_unknown_stage_is_a_400(api, org):
    lead = _lead(org)
    response = api.post(f"/api/v1/leads/{lead.pk}/stage/", {"stage": "vip"}, format="json")
    assert response.status_code == 400 and "stage" in response.json()["errors"]


def test_conversion_creates_account_and_deal_and_winning_makes_a_customer(api, org):
    lead = _at(_lead(org, company="Initech", industry="Software", company_size=200), "sql")
    response = api.post(f"/api/v1/leads/{lead.pk}/convert/", {"deal": {
        "name": "Initech CRM", "amount": "12000.00", "currency": "eur", "expected_close": "2027-01-31"}},
        format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["account"]["name"] == "Initech" and body["account"]["industry"] == "Software"
    assert (body["deal"]["status"], body["deal"]["currency"], body["deal"]["amount"]) == ("open", "EUR", "12000.00")
    lead.refresh_from_db()
    assert lead.lifecycle_stage == "opportunity" and str(lead.account_id) == body["account"]["id"]

    # a second lead of the same company links the same account
    other = _at(services.capture_lead(organization_id=org.pk, data={"email": "b@initech.test",
                                                                     "company": "INITECH"}).lead, "sql")
    second = api.post(f"/api/v1/leads/{other.pk}/convert/", {"deal": {"name": "Seats", "amount": "10"}},
                      format="json").json()
    assert second["account"]["id"] == body["account"]["id"]
    assert Account.objects.for_org(org).count() == 1

    deal_id = body["deal"]["id"]
    response = api.patch(f"/api/v1/deals/{deal_id}/", {"status": "won"}, format="json")
    assert response.status_code == 200 and response.json()["closed_at"]
    lead.refresh_from_db()
    assert lead.lifecycle_stage == "customer" and "customer" in lead.stage_entered_at
    assert Activity.objects.filter(lead=lead, type="deal_won").exists()
    assert api.patch(f"/api/v1/deals/{deal_id}/", {"status": "lost", "lost_reason": "Price"},
                     format="json").status_code == 409


def test_losing_a_deal_needs_a_reason_and_keeps_the_lead(api, org):
    lead = _at(_lead(org, company="Hooli"), "opportunity")
    deal = api.post(f"/api/v1/leads/{lead.pk}/convert/", {"deal": {"name": "Hooli", "amount": "5"}},
                    format="json").json()["deal"]
    assert api.patch(f"/api/v1/deals/{deal['id']}/", {"status": "lost"}, format="json").status_code == 400
    response = api.patch(f"/api/v1/deals/{deal['id']}/", {"status": "lost", "lost_reason": "Price"}, format="json")
    assert response.status_code == 200 and response.json()["lost_reason"] == "Price"
    lead.refresh_from_db()
    assert lead.lifecycle_stage == "opportunity"


@pytest.mark.parametrize(("stage", "body", "status"), [
    ("lead", {"deal": {"name": "x", "amount": "1"}}, 409),
    ("sql", {"deal": {"name": "x", "amount": "-1"}}, 400),
    ("sql", {"deal": {"name": "x", "amount": "1", "currency": "euro"}}, 400),
    ("sql", {"deal": {"amount": "1"}}, 400),
    ("sql", {"deal": {"name": "x", "amount": "1", "status": "won"}}, 400),
    ("sql", {"account_id": "00000000-0000-0000-0000-000000000000", "deal": {"name": "x", "amount": "1"}}, 400),
])
def test_bad_conversions_are_refused_and_write_nothing(api, org, stage, body, status):
    lead = _at(_lead(org, company="Acme"), stage)
    response = api.post(f"/api/v1/leads/{lead.pk}/convert/", body, format="json")
    assert response.status_code == status, response.content
    assert not Deal.objects.for_org(org).exists() and not Account.objects.for_org(org).exists()
    lead.refresh_from_db()
    assert lead.lifecycle_stage == stage


def test_merge_keeps_everything(api, org):
    keep = services.capture_lead(organization_id=org.pk, data={
        "email": "ann@gmail.com", "first_name": "Ann", "tags": ["vip"], "custom_fields": {"plan": "pro"}}).lead
    dupe = services.capture_lead(organization_id=org.pk, data={
        "email": "a.n.n@gmail.com", "last_name": "Lee", "company": "Acme", "phone": "+14155550101",
        "tags": ["webinar"], "custom_fields": {"plan": "free", "seats": 5}, "unsubscribed": True}).lead
    services.record_activity(organization_id=org.pk, lead=dupe, type="page_view", properties={"url": "/x"})
    _at(dupe, "sql")
    activities = Activity.objects.filter(lead__in=[keep, dupe]).count()

    groups = api.get("/api/v1/leads/duplicates/").json()["results"]
    assert [(g["reason"], sorted(lead["id"] for lead in g["leads"])) for g in groups] == [
        ("email", sorted([str(keep.pk), str(dupe.pk)]))]

    response = api.post("/api/v1/leads/merge/", {"keep": str(keep.pk), "merge": [str(dupe.pk)]}, format="json")
    assert response.status_code == 200, response.content
    merged = Lead.objects.get(pk=keep.pk)
    assert not Lead.objects.filter(pk=dupe.pk).exists()
    assert (merged.email, merged.first_name, merged.last_name, merged.company, merged.phone) == (
        "ann@gmail.com", "Ann", "Lee", "Acme", "+14155550101")
    assert merged.tags == ["vip", "webinar"]
    assert merged.custom_fields == {"plan": "pro", "seats": 5}
    assert merged.unsubscribed is True  # an opt-out is never lost
    assert merged.lifecycle_stage == "sql"  # the furthest stage
    assert Activity.objects.filter(lead=merged).count() == activities + 1
    record = Activity.objects.get(lead=merged, type="merge")
    assert record.properties["merged"][0]["email"] == "a.n.n@gmail.com"
    assert api.get("/api/v1/leads/duplicates/").json()["results"] == []


def test_merge_moves_form_submissions_and_deals(api, org):
    from leads.models import Form

    keep, dupe = _lead(org), services.capture_lead(organization_id=org.pk, data={"email": "z@example.com"}).lead
    form = Form.objects.create(organization=org, name="F", slug="f-merge", fields=["email"])
    FormSubmission.objects.create(organization=org, form=form, lead=dupe, data={})
    account = Account.objects.create(organization=org, name="A")
    Deal.objects.create(organization=org, account=account, lead=dupe, name="D", amount=1)
    api.post("/api/v1/leads/merge/", {"keep": str(keep.pk), "merge": [str(dupe.pk)]}, format="json")
    assert FormSubmission.objects.get().lead_id == keep.pk and Deal.objects.get().lead_id == keep.pk


@pytest.mark.parametrize("body", [
    {"keep": "{keep}", "merge": []},
    {"keep": "{keep}", "merge": ["{keep}"]},
    {"keep": "{keep}"},
    {"keep": "nope", "merge": ["{dupe}"]},
])
def test_bad_merges_are_refused(api, org, body):
    keep, dupe = _lead(org), services.capture_lead(organization_id=org.pk, data={"email": "q@example.com"}).lead
    filled = {k: ([v.format(keep=keep.pk, dupe=dupe.pk) for v in v] if isinstance(v, list) else
                  v.format(keep=keep.pk, dupe=dupe.pk)) for k, v in body.items()}
    response = api.post("/api/v1/leads/merge/", filled, format="json")
    assert response.status_code == 400
    assert Lead.objects.for_org(org).count() == 2


def test_duplicates_by_phone_and_by_name_and_company(api, org):
    for i, data in enumerate([{"phone": "+14155550199"}, {"phone": "+1 415 555 0199"},
                              {"first_name": "Bo", "last_name": "Li", "company": "Acme"},
                              {"first_name": "bo", "last_name": "LI", "company": "acme"},
                              {"first_name": "Bo", "last_name": "Li", "company": "Other"}]):
        services.capture_lead(organization_id=org.pk, data={"email": f"d{i}@example.com", **data})
    Lead.objects.filter(email="d1@example.com").update(phone="+14155550199")
    groups = api.get("/api/v1/leads/duplicates/").json()
    assert [(g["reason"], len(g["leads"])) for g in groups["results"]] == [("name_company", 2), ("phone", 2)]
    second_page = api.get("/api/v1/leads/duplicates/", {"after": groups["results"][0]["reason"] + ":" +
                                                        groups["results"][0]["key"]}).json()
    assert [g["reason"] for g in second_page["results"]] == ["phone"]


def test_bulk_tags_from_a_list(api, org):
    first = _lead(org, tags=["old"])
    second = services.capture_lead(organization_id=org.pk, data={"email": "t2@example.com"}).lead
    untouched = services.capture_lead(organization_id=org.pk, data={"email": "t3@example.com"}).lead
    response = api.post("/api/v1/leads/tags/", {"add": ["webinar", "vip"], "remove": ["old"],
                                                "leads": [str(first.pk), str(second.pk)]}, format="json")
    assert response.status_code == 200 and response.json()["changed"] == 2
    assert Lead.objects.get(pk=first.pk).tags == ["webinar", "vip"]
    assert Lead.objects.get(pk=second.pk).tags == ["webinar", "vip"]
    assert Lead.objects.get(pk=untouched.pk).tags == []
    again = api.post("/api/v1/leads/tags/", {"add": ["vip"], "leads": [str(first.pk)]}, format="json")
    assert again.json()["changed"] == 0


@pytest.mark.parametrize("body", [
    {"add": ["x"]},
    {"leads": []},
    {"add": ["x"], "leads": ["00000000-0000-0000-0000-000000000000"]},
    {"add": ["x"], "segment": "00000000-0000-0000-0000-000000000000"},
    {"add": ["x" * 65], "leads": []},
])
def test_bad_tag_requests_are_refused(api, org, body):
    assert api.post("/api/v1/leads/tags/", body, format="json").status_code == 400
