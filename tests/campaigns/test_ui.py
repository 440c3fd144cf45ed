"""Campaign pages in the browser: list, page, form, cost entries, members, and the lead page's card."""

import pytest

from campaigns.models import Campaign, CampaignCost, CampaignMember

from . import join, make_campaign, make_deal, make_lead

pytestmark = pytest.mark.django_db

EVIL = "<script>alert(1)</script>"


def test_list_and_page_escape_names_and_show_numbers(browser, org):
    campaign = make_campaign(org, f"Expo {EVIL}", utm_campaign="expo")
    lead = make_lead(org, first_name=EVIL, lifecycle_stage="customer")
    join(campaign, lead, 1)
    make_deal(org, lead, 3000, created=2, won=3)
    CampaignCost.objects.create(organization=org, campaign=campaign, date="2025-01-01", amount=1000, note=EVIL)

    listing = browser.get("/campaigns/").content.decode()
    assert EVIL not in listing and "Expo &lt;script&gt;" in listing
    assert "3000.00 USD" in listing and "200%" in listing

    page = browser.get(f"/campaigns/{campaign.pk}/").content.decode()
    assert EVIL not in page
    assert "Attribution of won revenue" in page and "3000.00 USD" in page and "200%" in page


def test_create_edit_and_refusals(browser, org):
    response = browser.post("/campaigns/new/", {"name": "Fair", "channel": "event", "status": "planned",
                                                "start": "2025-05-10", "end": "2025-05-01", "currency": "USD"})
    assert response.status_code == 400 and "The end date is before the start date." in response.content.decode()
    response = browser.post("/campaigns/new/", {"name": "Fair", "channel": "event", "status": "planned",
                                                "currency": "USD", "utm_campaign": "fair"})
    campaign = Campaign.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/campaigns/{campaign.pk}/"
    browser.post(f"/campaigns/{campaign.pk}/edit/", {"name": "Fair 2", "channel": "event", "status": "active",
                                                     "currency": "USD", "utm_campaign": "fair"})
    assert Campaign.objects.get().name == "Fair 2"


def test_costs_and_members_from_the_page(browser, org):
    campaign = make_campaign(org)
    make_lead(org, email="ann@example.test")
    assert browser.post(f"/campaigns/{campaign.pk}/costs/", {"date": "2025-01-01", "amount": "-3"}).status_code == 400
    assert browser.post(f"/campaigns/{campaign.pk}/costs/", {"date": "2025-01-01", "amount": "30"}).status_code == 302
    response = browser.post(f"/campaigns/{campaign.pk}/members/", {"emails": "ann@example.test nobody@example.test",
                                                                   "status": "targeted"})
    assert response.status_code == 400 and "nobody@example.test" in response.content.decode()
    browser.post(f"/campaigns/{campaign.pk}/members/", {"emails": "ANN@example.test", "status": "responded"})
    member = CampaignMember.objects.get()
    assert member.status == "responded"
    browser.post(f"/campaigns/{campaign.pk}/members/{member.lead_id}/remove/")
    assert not CampaignMember.objects.exists()
    assert CampaignCost.objects.get().amount == 30


def test_page_queries_do_not_grow_with_members_and_costs(browser, org, django_assert_max_num_queries):
    campaign = make_campaign(org)
    join(campaign, make_lead(org), 1)
    with django_assert_max_num_queries(30) as few:
        assert browser.get(f"/campaigns/{campaign.pk}/").status_code == 200
    for n in range(20):
        join(campaign, make_lead(org), n)
        CampaignCost.objects.create(organization=org, campaign=campaign, date="2025-01-01", amount=n)
        make_campaign(org)
    with django_assert_max_num_queries(len(few.captured_queries)):
        assert browser.get(f"/campaigns/{campaign.pk}/").status_code == 200
    with django_assert_max_num_queries(len(few.captured_queries)):
        assert browser.get("/campaigns/").status_code == 200


def test_lead_page_card_lists_the_leads_campaigns(browser, org):
    lead = make_lead(org)
    join(make_campaign(org, f"Webinar {EVIL}"), lead, 1, status="responded", source="utm")
    assert "campaigns-heading" in browser.get(f"/leads/{lead.pk}/").content.decode()
    card = browser.get(f"/leads/{lead.pk}/campaigns/", HTTP_HX_REQUEST="true").content.decode()
    assert "Webinar &lt;script&gt;" in card and EVIL not in card and "Responded" in card


def test_reps_get_no_campaign_pages(client, member, org):
    campaign = make_campaign(org)
    client.force_login(member("rep"))
    assert client.get("/campaigns/").status_code == 403
    assert client.get(f"/campaigns/{campaign.pk}/").status_code == 403
    assert "Campaigns</a>" not in client.get("/leads/").content.decode()
