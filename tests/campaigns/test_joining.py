"""How leads join campaigns: by utm_campaign on capture, by a form tied to the campaign, by import, by segment and
by hand; and how membership status moves."""

import csv
import io

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.test.utils import CaptureQueriesContext

from campaigns import services
from campaigns.models import CampaignMember
from leads import services as lead_services
from leads.models import Form, Lead
from leads.tasks import run_import

from . import make_campaign, make_deal, make_lead

pytestmark = pytest.mark.django_db


def members_of(campaign):
    return {(m.lead.email, m.status, m.source)
            for m in CampaignMember.objects.filter(campaign=campaign).select_related("lead")}


def test_a_lead_captured_with_a_campaigns_utm_joins_it_as_responded(org, other_org,
                                                                    django_capture_on_commit_callbacks):
    spring = make_campaign(org, "Spring sale", utm_campaign="Spring-Sale")
    make_campaign(org, "Autumn", utm_campaign="autumn")
    rival = make_campaign(other_org, "Rival spring", utm_campaign="spring-sale")

    with django_capture_on_commit_callbacks(execute=True):
        lead_services.capture_lead(organization_id=org.pk,
                                   data={"email": "ann@example.test", "utm_campaign": "spring-sale"})
        lead_services.capture_lead(organization_id=org.pk, data={"email": "bob@example.test"})

    assert members_of(spring) == {("ann@example.test", "responded", "utm")}
    assert not CampaignMember.objects.filter(campaign=rival).exists()  # the same utm in another org
    assert CampaignMember.objects.count() == 1


def test_a_capture_naming_no_campaign_spends_no_statement_on_campaigns(org, django_capture_on_commit_callbacks):
    spring = make_campaign(org, "Spring sale", utm_campaign="spring")
    with CaptureQueriesContext(connection) as queries, django_capture_on_commit_callbacks(execute=True):
        lead_services.capture_lead(organization_id=org.pk, data={"email": "dee@example.test"})
    assert not [query for query in queries if CampaignMember._meta.db_table in query["sql"]]

    with django_capture_on_commit_callbacks(execute=True):  # the lead keeps the tag a later capture gives it
        lead_services.capture_lead(organization_id=org.pk, data={"email": "dee@example.test", "utm_campaign": "spring"})
        lead_services.capture_lead(organization_id=org.pk, data={"email": "dee@example.test"})
    assert members_of(spring) == {("dee@example.test", "responded", "utm")}


def test_capturing_again_keeps_the_first_join_and_upgrades_a_target_to_responded(
        org, django_capture_on_commit_callbacks):
    campaign = make_campaign(org, utm_campaign="webinar")
    lead = make_lead(org, email="cy@example.test")
    services.add_members(campaign=campaign, leads=Lead.objects.filter(pk=lead.pk))
    first = CampaignMember.objects.get(campaign=campaign)

    with django_capture_on_commit_callbacks(execute=True):
        lead_services.capture_lead(organization_id=org.pk, data={"email": "cy@example.test",
                                                                 "utm_campaign": "WEBINAR"})
        lead_services.capture_lead(organization_id=org.pk, data={"email": "cy@example.test",
                                                                 "utm_campaign": "webinar"})

    member = CampaignMember.objects.get(campaign=campaign)
    assert (member.status, member.joined_at) == ("responded", first.joined_at)


def test_a_form_tied_to_a_campaign_by_its_hidden_utm_campaign_joins_its_submitters(
        org, django_capture_on_commit_callbacks):
    campaign = make_campaign(org, utm_campaign="launch-webinar")
    form = Form.objects.create(organization=org, name="Webinar sign-up", slug="webinar-signup", fields=["email"],
                               hidden_values={"utm_campaign": "launch-webinar"})

    with django_capture_on_commit_callbacks(execute=True):
        lead_services.submit_form(form=form, values={"email": "dee@example.test", **form.hidden_values},
                                  data={"email": "dee@example.test"}, touch={}, ip_address=None, referrer="")

    assert members_of(campaign) == {("dee@example.test", "responded", "form")}


def test_an_import_joins_its_leads_by_utm_campaign_in_one_statement(org, api, django_capture_on_commit_callbacks,
                                                                     django_assert_max_num_queries):
    campaign = make_campaign(org, utm_campaign="trade-show")
    make_lead(org, email="old@example.test", utm_campaign="trade-show")  # not in the import: stays out
    buffer = io.StringIO()
    rows = [["email", "utm_campaign"]] + [[f"visitor{n}@example.test", "Trade-Show"] for n in range(30)]
    rows.append(["other@example.test", "something-else"])
    csv.writer(buffer).writerows(rows)
    upload = SimpleUploadedFile("show.csv", buffer.getvalue().encode(), content_type="text/csv")
    response = api.post("/api/v1/imports/", {"file": upload}, format="multipart")
    assert response.status_code == 202, response.json()

    with django_capture_on_commit_callbacks(execute=True):
        run_import(response.json()["id"])

    members = members_of(campaign)
    assert len(members) == 30
    assert ("visitor7@example.test", "responded", "import") in members
    assert not {email for email, _, _ in members} & {"old@example.test", "other@example.test"}
    with django_assert_max_num_queries(1):  # set-based: one statement however many rows
        services.join_imported(organization_id=org.pk, import_id=response.json()["id"])


def test_a_segment_joins_as_a_whole_and_status_never_moves_back(org, django_assert_max_num_queries):
    campaign = make_campaign(org)
    for n in range(12):
        make_lead(org, email=f"vip{n}@example.test", company="Bigco")
    make_lead(org, email="small@example.test", company="Tiny")
    segment = lead_services.create_segment(organization_id=org.pk, name="Bigco", definition={
        "all": [{"field": "company", "op": "eq", "value": "Bigco"}]})
    responder = Lead.objects.get(email="vip0@example.test")
    services.add_members(campaign=campaign, leads=Lead.objects.filter(pk=responder.pk), status="responded")

    from leads.selectors import segment_leads
    with django_assert_max_num_queries(1):
        added = services.add_members(campaign=campaign, leads=segment_leads(segment), source="segment")

    assert added == 11  # vip0 was already a responder: it stays one
    members = members_of(campaign)
    assert len(members) == 12
    assert ("vip0@example.test", "responded", "manual") in members
    assert ("vip5@example.test", "targeted", "segment") in members


def test_converting_or_winning_marks_the_leads_memberships_converted(org, django_capture_on_commit_callbacks):
    first, second = make_campaign(org), make_campaign(org)
    lead = make_lead(org, lifecycle_stage="sql", company="Bigco")
    winner = make_lead(org, lifecycle_stage="mql")
    bystander = make_lead(org)
    for campaign in (first, second):
        services.add_members(campaign=campaign, leads=Lead.objects.filter(pk__in=[lead.pk, bystander.pk]))
    services.add_members(campaign=first, leads=Lead.objects.filter(pk=winner.pk), status="responded")
    open_deal = make_deal(org, winner, 50)

    with django_capture_on_commit_callbacks(execute=True):
        lead_services.convert_lead(lead=lead, deal={"name": "Big", "amount": 100})
        lead_services.win_deal(deal=open_deal)

    assert set(CampaignMember.objects.filter(lead=lead).values_list("status", flat=True)) == {"converted"}
    assert CampaignMember.objects.get(lead=winner).status == "converted"
    assert set(CampaignMember.objects.filter(lead=bystander).values_list("status", flat=True)) == {"targeted"}


def test_a_returning_lead_joins_the_later_campaign_its_touch_names_and_last_touch_credits_it(
        org, api, django_capture_on_commit_callbacks):
    """The lead's own utm_campaign stays its first; each capture is a touch, and the campaign of that touch is the
    one it joins — so last-touch and linear attribution can credit a later campaign."""
    from campaigns.selectors import attribution
    from leads.models import Touch

    spring = make_campaign(org, "Spring", utm_campaign="spring")
    autumn = make_campaign(org, "Autumn", utm_campaign="autumn")
    with django_capture_on_commit_callbacks(execute=True):
        lead = lead_services.capture_lead(organization_id=org.pk, data={
            "email": "eve@example.test", "utm_campaign": "spring", "utm_source": "newsletter"}).lead
    with django_capture_on_commit_callbacks(execute=True):
        lead_services.capture_lead(organization_id=org.pk, data={
            "email": "eve@example.test", "utm_campaign": "autumn", "utm_source": "linkedin"})

    lead.refresh_from_db()
    assert lead.utm_campaign == "spring"  # a filled field is never overwritten by a later capture
    assert (lead.first_touch["utm_campaign"], lead.last_touch["utm_campaign"]) == ("spring", "autumn")
    assert members_of(spring) == members_of(autumn) == {("eve@example.test", "responded", "utm")}
    assert list(Touch.objects.filter(lead=lead).order_by("occurred_at").values_list("utm_campaign", "utm_source")) \
        == [("spring", "newsletter"), ("autumn", "linkedin")]

    touches = api.get(f"/api/v1/leads/{lead.pk}/touches/").json()["results"]
    assert [(t["channel"], t["utm_campaign"]) for t in touches] == [("api", "autumn"), ("api", "spring")]

    make_deal(org, lead, "1000.00", created=40, won=41)
    shares = attribution(org.pk, [spring.pk, autumn.pk])
    assert shares[str(autumn.pk)]["last_touch"] == shares[str(spring.pk)]["first_touch"] == 1000
    assert shares[str(autumn.pk)]["linear"] == shares[str(spring.pk)]["linear"] == 500


def test_an_import_keeps_a_touch_per_row_and_merging_moves_them(org, api, django_capture_on_commit_callbacks):
    from leads.models import Touch

    make_campaign(org, utm_campaign="fair")
    existing = lead_services.capture_lead(organization_id=org.pk, data={"email": "a@example.test"}).lead
    upload = SimpleUploadedFile("fair.csv", b"email,utm_campaign,utm_source\na@example.test,fair,badge\n"
                                            b"b@example.test,fair,badge\n", content_type="text/csv")
    job = api.post("/api/v1/imports/", {"file": upload}, format="multipart").json()["id"]
    with django_capture_on_commit_callbacks(execute=True):
        run_import(job)
    imported = Touch.objects.filter(import_id=job)
    assert sorted(imported.values_list("lead__email", "channel", "utm_campaign")) == [
        ("a@example.test", "import", "fair"), ("b@example.test", "import", "fair")]
    assert Touch.objects.filter(lead=existing).count() == 2  # its capture, then the import

    other = Lead.objects.get(email="b@example.test")
    lead_services.merge_leads(organization_id=org.pk, keep_id=existing.pk, merge_ids=[other.pk])
    assert Touch.objects.filter(lead=existing).count() == 3
