"""Bulk operations: up to 1,000 rows a call, each row through the single endpoint's validation and service, each
with its own result; one row's failure never loses another; Idempotency-Key replays; other orgs' rows are 404s."""

import pytest
from rest_framework.test import APIClient

from leadcrm.models import OutboxEvent, Role
from leads import services
from leads.models import Account, Activity, Deal, Lead, LifecycleStage

pytestmark = pytest.mark.django_db


def lead(org, email, **fields):
    return services.capture_lead(organization_id=org.pk, data={"email": email, **fields}).lead


def by_index(response):
    assert response.status_code == 200, response.content[:400]
    return {row["index"]: row for row in response.json()["results"]}


# ----------------------------------------------------------------------------------------------- bulk-update


def test_bulk_update_gives_each_row_the_answer_patch_would_and_keeps_the_good_ones(api, org, other_org):
    ada, bob, erased = lead(org, "ada@example.com"), lead(org, "bob@example.com"), lead(org, "gone@example.com")
    services.erase_lead(lead=erased)
    theirs = lead(other_org, "theirs@example.com")
    response = api.post("/api/v1/leads/bulk-update/", {"leads": [
        {"id": str(ada.pk), "first_name": "Ada", "company": "Analytical"},
        {"id": str(bob.pk), "email": "not an email"},
        {"id": str(bob.pk), "shoe_size": 44},
        {"id": str(theirs.pk), "first_name": "Mallory"},
        {"id": "not-a-uuid", "first_name": "X"},
        {"first_name": "No id"},
        {"id": str(erased.pk), "first_name": "Back"},
        {"id": str(bob.pk), "email": "ADA@example.com"},
        "not an object",
    ]}, format="json")
    rows = by_index(response)
    assert rows[0]["status"] == 200 and rows[0]["id"] == str(ada.pk)
    assert rows[1]["status"] == 400 and "email" in rows[1]["errors"] and rows[1]["code"] == "invalid"
    assert rows[2]["status"] == 400 and rows[2]["errors"] == {"shoe_size": ["Unknown field."]}
    assert rows[3]["status"] == 404 and rows[3]["code"] == "not_found"
    assert rows[4]["status"] == 400 and "id" in rows[4]["errors"]
    assert rows[5]["status"] == 400 and rows[5]["errors"] == {"id": ["This field is required."]}
    assert rows[6]["status"] == 409 and rows[6]["code"] == "lead_erased"
    assert rows[7]["status"] == 400 and "Another lead already has this email" in rows[7]["errors"]["email"][0]
    assert rows[8]["status"] == 400
    assert (response.json()["succeeded"], response.json()["failed"]) == (1, 8)

    ada.refresh_from_db(), bob.refresh_from_db(), theirs.refresh_from_db()
    assert (ada.first_name, ada.company) == ("Ada", "Analytical")
    assert bob.email == "bob@example.com" and theirs.first_name == ""


def test_bulk_update_rescores_the_changed_leads_with_one_set_based_event(api, org):
    leads = [lead(org, f"l{n}@example.com") for n in range(4)]
    OutboxEvent.objects.all().delete()
    response = api.post("/api/v1/leads/bulk-update/", {"leads": [
        {"id": str(leads[0].pk), "industry": "Software"},
        {"id": str(leads[1].pk), "industry": "Software", "job_title": "CTO"},
        {"id": str(leads[2].pk), "first_name": ""},  # no change: not re-scored
        {"id": str(leads[3].pk), "company_size": -1},  # refused
    ]}, format="json")
    assert response.json()["succeeded"] == 3
    [changed] = OutboxEvent.objects.filter(event="leads.changed")
    assert sorted(changed.payload["lead_ids"]) == sorted(str(row.pk) for row in leads[:2])
    assert changed.payload["fields"] == ["industry", "job_title"]
    # Webhooks, routing and nurturing still hear of each lead; scoring waits for the one event above.
    updated = OutboxEvent.objects.filter(event="lead.updated")
    assert sorted(event.payload["lead_id"] for event in updated) == sorted(str(row.pk) for row in leads[:2])
    assert all(event.payload["bulk"] is True for event in updated)


def test_scoring_takes_a_bulk_edits_leads_from_the_one_event(org, monkeypatch):
    from scoring import handlers, tasks

    single, sets = [], []
    monkeypatch.setattr(tasks.score_lead, "delay", lambda *args: single.append(args))
    monkeypatch.setattr(tasks.score_leads, "delay", lambda *args: sets.append(args))
    handlers.score_after_update(organization_id=org.pk, lead_id="x", fields=["industry"], bulk=True)
    handlers.score_after_update(organization_id=org.pk, lead_id="y", fields=["industry"])
    handlers.score_after_bulk_change(organization_id=org.pk, lead_ids=["x", "z"], fields=["industry"])
    assert single == [(str(org.pk), "y")] and sets == [(str(org.pk), ["x", "z"])]


def test_a_bulk_call_is_replayed_for_the_same_idempotency_key(api, org):
    ada = lead(org, "ada@example.com")
    body = {"leads": [{"id": str(ada.pk), "first_name": "Ada"}]}
    first = api.post("/api/v1/leads/bulk-update/", body, format="json", HTTP_IDEMPOTENCY_KEY="bulk-1")
    Lead.objects.filter(pk=ada.pk).update(first_name="Changed meanwhile")
    again = api.post("/api/v1/leads/bulk-update/", body, format="json", HTTP_IDEMPOTENCY_KEY="bulk-1")
    assert again.status_code == 200 and again["Idempotent-Replayed"] == "true"
    assert again.json() == first.json()
    assert Lead.objects.get(pk=ada.pk).first_name == "Changed meanwhile"  # the replay changed nothing
    other = api.post("/api/v1/leads/bulk-update/", {"leads": []}, format="json", HTTP_IDEMPOTENCY_KEY="bulk-1")
    assert other.status_code == 422 and other.json()["code"] == "idempotency_key_reused"


@pytest.mark.parametrize("path", ["/api/v1/leads/bulk-update/", "/api/v1/leads/bulk-stage/",
                                  "/api/v1/leads/bulk-convert/", "/api/v1/deals/bulk-close/"])
def test_a_bulk_call_takes_at_most_1000_rows_and_a_list(api, path):
    key = "deals" if "deals" in path else "leads"
    too_many = api.post(path, {key: [{"id": "x"}] * 1001}, format="json")
    assert too_many.status_code == 400 and key in too_many.json()["errors"]
    not_a_list = api.post(path, {key: "everything"}, format="json")
    assert not_a_list.status_code == 400
    empty = api.post(path, {key: []}, format="json")
    assert empty.status_code == 200 and empty.json() == {"results": [], "succeeded": 0, "failed": 0}


# ----------------------------------------------------------------------------------------------- bulk-stage


def test_bulk_stage_moves_through_the_lifecycle_service_row_by_row(api, org, other_org):
    fresh, needs_reason, customer = lead(org, "a@example.com"), lead(org, "b@example.com"), lead(org, "c@example.com")
    Lead.objects.filter(pk=customer.pk).update(lifecycle_stage=LifecycleStage.CUSTOMER)
    theirs = lead(other_org, "t@example.com")
    response = api.post("/api/v1/leads/bulk-stage/", {"leads": [
        {"id": str(fresh.pk), "stage": "mql"},
        {"id": str(needs_reason.pk), "stage": "disqualified"},
        {"id": str(needs_reason.pk), "stage": "disqualified", "reason": "Not a fit"},
        {"id": str(customer.pk), "stage": "lead"},
        {"id": str(theirs.pk), "stage": "mql"},
        {"id": str(fresh.pk), "stage": "nowhere"},
    ]}, format="json")
    rows = by_index(response)
    assert (rows[0]["status"], rows[0]["lifecycle_stage"]) == (200, "mql")
    assert rows[1]["status"] == 409 and rows[1]["code"] == "stage_not_allowed" and "reason" in rows[1]["detail"]
    assert (rows[2]["status"], rows[2]["lifecycle_stage"]) == (200, "disqualified")
    assert rows[3]["status"] == 409 and "Allowed moves from customer: none" in rows[3]["detail"]
    assert rows[4]["status"] == 404
    assert rows[5]["status"] == 400 and "stage" in rows[5]["errors"]
    # Each move is recorded as the single endpoint records it: a stage-change activity with the reason.
    moves = Activity.objects.filter(type="stage_change", lead__in=[fresh, needs_reason]).order_by("occurred_at")
    assert [(a.properties["to"], a.properties["reason"]) for a in moves] == [("mql", ""),
                                                                            ("disqualified", "Not a fit")]
    assert Lead.objects.get(pk=theirs.pk).lifecycle_stage == "lead"


def test_a_rep_moves_their_own_leads_and_gets_404_for_the_others(org, member):
    rep = member(Role.REP)
    mine, not_mine = lead(org, "mine@example.com", owner=rep), lead(org, "other@example.com")
    client = APIClient()
    client.force_login(rep)
    rows = by_index(client.post("/api/v1/leads/bulk-stage/", {"leads": [
        {"id": str(mine.pk), "stage": "sal"}, {"id": str(not_mine.pk), "stage": "sal"}]}, format="json"))
    assert (rows[0]["status"], rows[1]["status"]) == (200, 404)
    # bulk-update is org-wide work (as PATCH is): refused for a rep as a whole.
    assert client.post("/api/v1/leads/bulk-update/", {"leads": []}, format="json").status_code == 403


def test_a_replayed_bulk_stage_moves_nothing_twice(api, org):
    one = lead(org, "one@example.com")
    body = {"leads": [{"id": str(one.pk), "stage": "mql"}]}
    first = api.post("/api/v1/leads/bulk-stage/", body, format="json", HTTP_IDEMPOTENCY_KEY="stage-1")
    again = api.post("/api/v1/leads/bulk-stage/", body, format="json", HTTP_IDEMPOTENCY_KEY="stage-1")
    assert first.json() == again.json() and again["Idempotent-Replayed"] == "true"
    assert Activity.objects.filter(lead=one, type="stage_change").count() == 1


# ----------------------------------------------------------------------------------------------- bulk-convert


def test_bulk_convert_makes_accounts_and_deals_for_qualified_leads(api, org, other_org):
    sql = lead(org, "sql@example.com", company="Qualified Inc")
    Lead.objects.filter(pk=sql.pk).update(lifecycle_stage=LifecycleStage.SQL)
    early, theirs = lead(org, "early@example.com", company="Early"), lead(other_org, "x@example.com", company="X")
    Lead.objects.filter(pk=theirs.pk).update(lifecycle_stage=LifecycleStage.SQL)
    deal = {"name": "First order", "amount": "1200.00", "currency": "EUR"}
    rows = by_index(api.post("/api/v1/leads/bulk-convert/", {"leads": [
        {"id": str(sql.pk), "deal": deal},
        {"id": str(early.pk), "deal": deal},
        {"id": str(theirs.pk), "deal": deal},
        {"id": str(sql.pk), "deal": {"name": "No amount"}},
    ]}, format="json"))
    assert rows[0]["status"] == 201
    made = Deal.objects.get(pk=rows[0]["deal"])
    assert (made.lead_id, made.amount, made.currency, str(made.account_id)) == (sql.pk, 1200, "EUR", rows[0]["account"])
    assert Account.objects.get(pk=rows[0]["account"]).name == "Qualified Inc"
    assert Lead.objects.get(pk=sql.pk).lifecycle_stage == "opportunity"
    assert rows[1]["status"] == 409 and rows[1]["code"] == "stage_not_allowed"
    assert rows[2]["status"] == 404
    assert rows[3]["status"] == 400 and "deal" in rows[3]["errors"]
    assert not Deal.objects.filter(organization=other_org).exists()


# ----------------------------------------------------------------------------------------------- bulk-close


def test_bulk_close_wins_and_loses_deals_as_patch_does(api, org, other_org):
    account = Account.objects.create(organization=org, name="Firm")
    buyer = lead(org, "buyer@example.com")
    win, lose, no_reason, closed = (Deal.objects.create(organization=org, account=account, lead=buyer, name=name,
                                                        amount=10) for name in ("Win", "Lose", "Why", "Done"))
    Deal.objects.filter(pk=closed.pk).update(status="won", closed_at="2026-01-01T00:00:00Z")
    their_account = Account.objects.create(organization=other_org, name="Theirs")
    theirs = Deal.objects.create(organization=other_org, account=their_account, name="Theirs", amount=5)
    rows = by_index(api.post("/api/v1/deals/bulk-close/", {"deals": [
        {"id": str(win.pk), "status": "won"},
        {"id": str(lose.pk), "status": "lost", "lost_reason": "Price"},
        {"id": str(no_reason.pk), "status": "lost"},
        {"id": str(closed.pk), "status": "lost", "lost_reason": "Price"},
        {"id": str(theirs.pk), "status": "won"},
        {"id": str(win.pk), "status": "open"},
    ]}, format="json"))
    assert (rows[0]["status"], rows[0]["deal_status"]) == (200, "won")
    assert (rows[1]["status"], rows[1]["deal_status"]) == (200, "lost")
    assert rows[2]["status"] == 400 and "lost_reason" in rows[2]["errors"]
    assert rows[3]["status"] == 409 and rows[3]["code"] == "deal_closed"
    assert rows[4]["status"] == 404
    assert rows[5]["status"] == 400 and "status" in rows[5]["errors"]
    assert Deal.objects.get(pk=lose.pk).lost_reason == "Price"
    assert Lead.objects.get(pk=buyer.pk).lifecycle_stage == "customer"  # winning made the lead a customer
    assert Deal.objects.get(pk=theirs.pk).status == "open"
    assert Deal.objects.get(pk=no_reason.pk).status == "open"
