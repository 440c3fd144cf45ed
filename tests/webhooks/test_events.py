"""Domain events become deliveries: one per subscribed, active endpoint of the lead's org, with the lead as it is and
what the event is about; imports in a fixed number of statements whatever their size."""

import pytest

from leadcrm.models import Role
from leads.models import Deal, Lead
from nurturing import services as nurturing_services
from nurturing.models import Message
from tests.leads.test_imports import csv_bytes, import_now
from webhooks import handlers, services
from webhooks.models import Delivery, Endpoint, EventType

pytestmark = pytest.mark.django_db


@pytest.fixture
def endpoints(org, other_org):
    """Everything, lead.created only, a disabled one, and another org's endpoint for everything."""
    make = Endpoint.objects.create
    return {
        "all": make(organization=org, url="https://a.example/", events=EventType.values, secret="whsec_YQ=="),
        "created": make(organization=org, url="https://b.example/", events=["lead.created"], secret="whsec_YQ=="),
        "disabled": make(organization=org, url="https://c.example/", events=EventType.values, active=False,
                         secret="whsec_YQ=="),
        "rival": make(organization=other_org, url="https://d.example/", events=EventType.values,
                      secret="whsec_YQ=="),
    }


@pytest.fixture
def commit(django_capture_on_commit_callbacks):
    """Run what a request's commit would (the events), and return the deliveries created meanwhile."""

    class Commit:
        def __init__(self):
            self.seen = set()

        def new(self, action):
            self.seen |= set(Delivery.objects.values_list("pk", flat=True))
            with django_capture_on_commit_callbacks(execute=True):
                self.response = action()
            assert getattr(self.response, "status_code", 200) < 400, self.response.content
            return list(Delivery.objects.exclude(pk__in=self.seen).select_related("endpoint").order_by("created_at"))

    return Commit()


def _kinds(deliveries):
    return sorted((d.event_type, _name(d.endpoint)) for d in deliveries)


def _name(endpoint):
    return {"https://a.example/": "all", "https://b.example/": "created"}.get(endpoint.url, endpoint.url)


def test_each_event_type_becomes_deliveries(org, api, endpoints, commit, member, client):
    created = commit.new(lambda: api.post("/api/v1/leads/", {"email": "ada@example.com", "first_name": "Ada"},
                                          format="json"))
    assert _kinds(created) == [("lead.created", "all"), ("lead.created", "created")]
    lead = Lead.objects.get(email="ada@example.com")
    data = created[0].payload["data"]
    assert created[0].payload["type"] == "lead.created" and data["channel"] == "api"
    assert data["lead"]["first_name"] == "Ada" and data["lead"]["id"] == str(lead.pk)
    assert created[0].organization_id == org.pk and created[0].lead_id == lead.pk

    merged = commit.new(lambda: api.post("/api/v1/leads/", {"email": "ada@example.com", "city": "London"},
                                         format="json"))
    assert _kinds(merged) == [("lead.updated", "all")]

    updated = commit.new(lambda: api.patch(f"/api/v1/leads/{lead.pk}/", {"company": "Engines Ltd"}, format="json"))
    assert _kinds(updated) == [("lead.updated", "all")]
    assert updated[0].payload["data"]["changed_fields"] == ["company"]
    assert updated[0].payload["data"]["lead"]["company"] == "Engines Ltd"

    staged = commit.new(lambda: api.post(f"/api/v1/leads/{lead.pk}/stage/", {"stage": "mql"}, format="json"))
    kinds = _kinds(staged)
    assert ("lead.stage_changed", "all") in kinds and ("lead.mql", "all") in kinds
    change = next(d for d in staged if d.event_type == "lead.stage_changed")
    assert (change.payload["data"]["from_stage"], change.payload["data"]["to_stage"]) == ("lead", "mql")

    rep = member(Role.REP)
    assigned = commit.new(lambda: api.post("/api/v1/leads/reassign/", {"leads": [str(lead.pk)], "rep": rep.pk},
                                           format="json"))
    assignment = next(d for d in assigned if d.event_type == "lead.assigned")
    assert assignment.payload["data"]["owner_id"] == rep.pk
    assert assignment.payload["data"]["lead"]["owner_id"] == rep.pk

    for stage in ("sal", "sql"):
        commit.new(lambda stage=stage: api.post(f"/api/v1/leads/{lead.pk}/stage/", {"stage": stage}, format="json"))
    converted = commit.new(lambda: api.post(f"/api/v1/leads/{lead.pk}/convert/",
                                            {"deal": {"name": "Engines deal", "amount": "10.00"}}, format="json"))
    conversion = next(d for d in converted if d.event_type == "lead.converted")
    deal = Deal.objects.get(lead=lead)
    assert conversion.payload["data"]["deal_id"] == str(deal.pk)

    won = commit.new(lambda: api.patch(f"/api/v1/deals/{deal.pk}/", {"status": "won"}, format="json"))
    win = next(d for d in won if d.event_type == "deal.won")
    assert win.payload["data"]["deal"]["amount"] == "10.00" and win.payload["data"]["lead"]["id"] == str(lead.pk)
    assert ("lead.stage_changed", "all") in _kinds(won)  # it became a customer

    message = Message.objects.create(organization=org, lead=lead, to_email=lead.email, subject="Hi", status="sent")
    token = nurturing_services.make_token(message.pk)
    unsubscribed = commit.new(lambda: client.post(f"/t/u/{token}/", {"confirm": "1"}))
    unsubscribe = next(d for d in unsubscribed if d.event_type == "email.unsubscribed")
    assert unsubscribe.payload["data"]["how"] == "page"
    assert unsubscribe.payload["data"]["message_id"] == str(message.pk)
    assert unsubscribe.payload["data"]["lead"]["unsubscribed"] is True
    assert not [d for d in commit.new(lambda: client.post(f"/t/u/{token}/", {"confirm": "1"}))
                if d.event_type == "email.unsubscribed"]  # once

    # Nothing ever went to the disabled endpoint or to another org's.
    assert not Delivery.objects.filter(endpoint__in=[endpoints["disabled"], endpoints["rival"]]).exists()


def test_a_complaint_through_the_email_events_api_is_an_unsubscribe(org, api, endpoints, commit):
    lead = Lead.objects.create(organization=org, email="eve@example.com")
    Message.objects.create(organization=org, lead=lead, to_email=lead.email, subject="Hi", status="sent")
    new = commit.new(lambda: api.post("/api/v1/email-events/", {"email": lead.email, "event": "complaint"},
                                      format="json"))
    unsubscribe = [d for d in new if d.event_type == "email.unsubscribed"]
    assert len(unsubscribe) == 1 and unsubscribe[0].payload["data"]["how"] == "complaint"


def test_an_import_creates_its_deliveries_set_based(org, api, endpoints, commit, django_assert_max_num_queries):
    Lead.objects.create(organization=org, email="known@example.com")
    rows = [["Email", "First name"], ["known@example.com", "Known"]]
    rows += [[f"person{i}@example.com", f"P{i}"] for i in range(300)]
    new = commit.new(lambda: import_now(api, csv_bytes(rows)))
    assert sum(d.event_type == "lead.created" and _name(d.endpoint) == "all" for d in new) == 300
    assert sum(d.event_type == "lead.created" and _name(d.endpoint) == "created" for d in new) == 300
    assert [Lead.objects.get(pk=d.lead_id).email for d in new
            if d.event_type == "lead.updated"] == ["known@example.com"]
    job_id = new[0].payload["data"]["import_id"]

    # The statements do not depend on the number of leads; a repeat of the event adds nothing.
    Delivery.objects.all().delete()
    with django_assert_max_num_queries(8):
        handlers.leads_imported(organization_id=org.pk, import_id=job_id)
    assert Delivery.objects.count() == 601
    handlers.leads_imported(organization_id=org.pk, import_id=job_id)
    assert Delivery.objects.count() == 601


def test_lists_of_leads_are_one_statement(org, endpoints, django_assert_max_num_queries):
    leads = Lead.objects.bulk_create([Lead(organization=org, email=f"m{i}@example.com") for i in range(250)])
    with django_assert_max_num_queries(4):
        services.deliveries_for_leads(organization_id=org.pk, event_type="lead.mql", lead_ids=[x.pk for x in leads])
    assert Delivery.objects.filter(event_type="lead.mql").count() == 250


def test_an_event_no_active_endpoint_takes_costs_only_a_probe(org, other_org, api, commit):
    """Most orgs have no endpoint: a capture then spends one indexed probe on webhooks, never the delivery INSERT.
    An endpoint that takes other events, a disabled one, or another org's does not count."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    make = Endpoint.objects.create
    make(organization=org, url="https://mql.example/", events=["lead.mql"], secret="whsec_YQ==")
    make(organization=org, url="https://off.example/", events=["lead.created"], active=False, secret="whsec_YQ==")
    make(organization=other_org, url="https://rival.example/", events=["lead.created"], secret="whsec_YQ==")
    with CaptureQueriesContext(connection) as queries:
        assert commit.new(lambda: api.post("/api/v1/leads/", {"email": "quiet@example.com"}, format="json")) == []
    statements = [q["sql"] for q in queries]
    assert sum(sql.startswith("SELECT EXISTS (SELECT FROM webhooks_endpoint") for sql in statements) == 1
    assert not [sql for sql in statements if sql.startswith("INSERT INTO webhooks_delivery")]

    taker = make(organization=org, url="https://b.example/", events=["lead.created"], secret="whsec_YQ==")
    made = commit.new(lambda: api.post("/api/v1/leads/", {"email": "heard@example.com"}, format="json"))
    assert [(d.endpoint_id, d.event_type) for d in made] == [(taker.pk, "lead.created")]
