"""Every cursor-paged list reaches every row exactly once, whatever the ordering, when thousands of rows tie on
the ordering column — as after an import, where a whole file shares one `created_at`."""

from datetime import timedelta
from urllib.parse import urlsplit

import pytest
from django.utils import timezone

from campaigns.models import Campaign, CampaignMember
from leadcrm.models import AuditEntry
from leads.models import Activity, Lead
from tests.leads.test_leads_api import path_of, walk

TIED = 1_600  # more than the 1,000 rows DRF's cursor would skip by offset
PAGE = 500


def ids(pages):
    return [row["id"] for page in pages for row in page]


@pytest.fixture
def imported(org):
    """1,600 leads created in one instant, scores tied in threes, half of them with no last activity."""
    instant = timezone.now() - timedelta(days=3)
    leads = Lead.objects.bulk_create([
        Lead(organization=org, email=f"imported-{n}@example.com", score=n % 3,
             last_activity_at=None if n % 2 else instant)
        for n in range(TIED)])
    Lead.objects.filter(organization=org).update(created_at=instant, updated_at=instant)
    return leads


@pytest.mark.parametrize("ordering", [
    "", "created_at", "-created_at", "updated_at", "score", "-score", "last_activity_at", "-last_activity_at"])
def test_leads_page_on_a_unique_key_for_every_ordering(api, imported, ordering):
    url = f"/api/v1/leads/?page_size={PAGE}" + (f"&ordering={ordering}" if ordering else "")
    pages = walk(api, url)
    seen = ids(pages)
    assert [len(page) for page in pages] == [500, 500, 500, 100]
    assert len(seen) == len(set(seen)) == TIED
    if ordering.lstrip("-") == "score":
        scores = [row["score"] for page in pages for row in page]
        assert scores == sorted(scores, reverse=ordering.startswith("-"))

    # And back again from the last page with `previous`, the same rows in the same order.
    last = url
    while True:
        body = api.get(last).json()
        if not body["next"]:
            break
        last = path_of(body["next"])
    back = walk(api, last, direction="previous")
    assert ids(reversed(back)) == seen


def test_activities_audit_log_and_campaign_members_page_through_ties(api, org, imported):
    instant = timezone.now() - timedelta(days=1)
    lead = imported[0]
    Activity.objects.bulk_create([
        Activity(organization=org, lead=lead, type="page_view", occurred_at=instant, properties={"n": n})
        for n in range(1_200)])
    activity_pages = walk(api, f"/api/v1/leads/{lead.pk}/activities/?page_size={PAGE}")
    assert len(set(ids(activity_pages))) == sum(len(page) for page in activity_pages) == 1_200

    AuditEntry.objects.bulk_create([
        AuditEntry(organization=org, actor_label="system", action="updated", object_type="scoring.rule",
                   object_id=str(n), time=instant) for n in range(1_100)])
    audit_pages = walk(api, f"/api/v1/audit-log/?page_size={PAGE}")
    assert len(set(ids(audit_pages))) == sum(len(page) for page in audit_pages) >= 1_100

    campaign = Campaign.objects.create(organization=org, name="Fair")
    CampaignMember.objects.bulk_create([
        CampaignMember(organization=org, campaign=campaign, lead=lead, joined_at=instant) for lead in imported])
    member_pages = walk(api, f"/api/v1/campaigns/{campaign.pk}/members/?page_size={PAGE}")
    assert len({row["lead"] if "lead" in row else row["id"] for row in
                (row for page in member_pages for row in page)}) == TIED


def test_a_cursor_edited_or_from_another_ordering_is_404_not_500(api, imported):
    body = api.get(f"/api/v1/leads/?page_size={PAGE}").json()
    cursor = urlsplit(body["next"]).query.split("cursor=")[1].split("&")[0]
    assert api.get(f"/api/v1/leads/?page_size={PAGE}&ordering=score&cursor={cursor}").status_code == 404
    import base64
    import json
    for position in (["not a time", "x"], [1, 2], "x", [{"a": 1}, None], ["2026-01-01T00:00:00", None]):
        token = base64.urlsafe_b64encode(json.dumps({"p": position, "r": 0}).encode()).decode()
        assert api.get(f"/api/v1/leads/?cursor={token}").status_code == 404
    # an offset PostgreSQL refuses is still a time: compared in UTC, never a 500
    token = base64.urlsafe_b64encode(json.dumps({"p": ["2026-01-01T00:00:00+20:00", str(imported[0].pk)],
                                                 "r": 0}).encode()).decode()
    assert api.get(f"/api/v1/leads/?cursor={token}").status_code == 200
