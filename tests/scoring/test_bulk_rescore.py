"""Every way of changing many leads at once re-scores the leads it touched, set-based (issue: bulk tagging left
the score while the explanation listed the tag rule)."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from leadcrm.models import OutboxEvent
from leads import services as leads_services
from leads.models import Lead
from scoring import services, tasks

pytestmark = pytest.mark.django_db

VIP = {"name": "VIP", "kind": "fit", "points": 30, "condition": {"field": "tags", "op": "contains", "value": "vip"}}


@pytest.fixture
def tagged_rule(org):
    services.save_rule(organization_id=org.pk, **VIP)
    services.recalculate_organization(organization_id=org.pk)


def _leads(org, count):
    return [leads_services.capture_lead(organization_id=org.pk, data={"email": f"b{n}@example.com",
                                                                      "company": "Firm"}).lead for n in range(count)]


def test_bulk_tags_over_the_api_name_the_changed_leads_and_rescoring_them_counts_the_rule(api, org, tagged_rule):
    leads = _leads(org, 3)
    before = {lead.pk: Lead.objects.get(pk=lead.pk).score for lead in leads}
    OutboxEvent.objects.all().delete()
    response = api.post("/api/v1/leads/tags/", {"leads": [str(lead.pk) for lead in leads[:2]], "add": ["vip"]},
                        format="json")
    assert response.status_code == 200 and response.json() == {"changed": 2}

    [event] = OutboxEvent.objects.filter(event="leads.changed")
    assert sorted(event.payload["lead_ids"]) == sorted(str(lead.pk) for lead in leads[:2])
    assert event.payload["fields"] == ["tags"]

    tasks.score_leads(str(org.pk), event.payload["lead_ids"])  # what the worker runs for the event
    after = {lead.pk: Lead.objects.get(pk=lead.pk).score for lead in leads}
    assert [after[lead.pk] - before[lead.pk] for lead in leads] == [30, 30, 0]
    explained = api.get(f"/api/v1/leads/{leads[0].pk}/score/").json()
    assert ("VIP", 30) in {(row["name"], row["points"]) for row in explained["contributions"]}

    # Removing the tag takes the points away again.
    api.post("/api/v1/leads/tags/", {"leads": [str(leads[0].pk)], "remove": ["vip"]}, format="json")
    tasks.score_leads(str(org.pk), [str(leads[0].pk)])
    assert Lead.objects.get(pk=leads[0].pk).score == before[leads[0].pk]


def test_retagging_leads_that_already_have_the_tag_changes_and_announces_nothing(api, org, tagged_rule):
    leads = _leads(org, 2)
    api.post("/api/v1/leads/tags/", {"leads": [str(lead.pk) for lead in leads], "add": ["vip"]}, format="json")
    OutboxEvent.objects.all().delete()
    response = api.post("/api/v1/leads/tags/", {"leads": [str(lead.pk) for lead in leads], "add": ["vip"]},
                        format="json")
    assert response.json() == {"changed": 0}
    assert not OutboxEvent.objects.filter(event="leads.changed").exists()


def test_rescoring_a_set_is_one_statement_whatever_its_size(org, tagged_rule):
    def statements(count):
        ids = [str(lead.pk) for lead in Lead.objects.filter(organization=org)[:count]]
        with CaptureQueriesContext(connection) as queries:
            services.score_lead_set(organization_id=org.pk, lead_ids=ids)
        return len(queries)

    _leads(org, 40)
    assert statements(2) == statements(40)
