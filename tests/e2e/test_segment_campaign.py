"""A marketer builds a segment on campaign membership by clicks: + Campaign membership, the campaign, the status;
the live count follows, and the saved segment says it in words."""

import re

import pytest

from campaigns import services as campaign_services
from campaigns.models import MemberStatus
from leadcrm.models import Role
from leads import services
from leads.models import Lead, Segment

try:
    from playwright.sync_api import expect
except ImportError:  # without Playwright the browser fixtures skip these tests (or fail them in CI) and say why
    expect = None

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def test_a_segment_of_a_campaigns_responders_built_by_clicks(org, member, page, login, shot):
    member(Role.MARKETER, "marketer@acme.test")
    fair = campaign_services.save_campaign(organization_id=org.pk, data={"name": "Spring <fair>"})
    campaign_services.save_campaign(organization_id=org.pk, data={"name": "Autumn webinar"})
    leads = [services.capture_lead(organization_id=org.pk, data={"email": f"p{n}@example.com"}).lead for n in range(3)]
    campaign_services.add_members(campaign=fair, leads=Lead.objects.filter(pk=leads[0].pk),
                                  status=MemberStatus.RESPONDED)
    campaign_services.add_members(campaign=fair, leads=Lead.objects.filter(pk=leads[1].pk))

    login("marketer@acme.test", "pw-member-123")
    page.get_by_role("button", name="Marketing").or_(page.locator("summary", has_text="Marketing")).first.click()
    page.get_by_role("link", name="Segments").first.click()
    page.get_by_role("button", name="New segment").click()
    page.get_by_label("Name").first.fill("Fair responders")
    builder = page.locator("[data-segment-builder]")
    builder.get_by_role("button", name="+ Campaign membership").first.click()
    row = builder.locator("li.seg-row[data-kind=campaign]")
    row.locator("[data-key=value]").select_option(label="Spring <fair>")
    expect(page.locator("#segment-count")).to_contain_text("2 leads match")
    row.locator("[data-key=status]").select_option("responded")
    expect(page.locator("#segment-count")).to_contain_text("1 lead matches")
    shot("campaign-condition")
    page.locator("#segment-form button[type=submit]:not([name])").click()
    page.wait_for_url(re.compile(r".*/segments/[0-9a-f-]{36}/$"))
    expect(page.locator("main")).to_contain_text("Is in the campaign “Spring <fair>” as responded")
    shot("saved")
    assert Segment.objects.get(name="Fair responders").definition == {
        "all": [{"campaign": str(fair.pk), "member": True, "status": "responded"}]}
