"""The pipeline board and Settings → Pipelines in the browser (Django's test client; tests/e2e drags for real)."""

from datetime import date

import pytest
from django.test import Client

from leadcrm.models import Role
from leads.models import Deal, Pipeline, Stage
from tests.leads.deals import default_pipeline, make_deal, stage

pytestmark = pytest.mark.django_db


def signed_in(user):
    client = Client()
    client.force_login(user)
    return client


def test_a_rep_sees_only_their_own_deals_on_the_board(org, member):
    rep, other = member(Role.REP, email="r1@acme.test"), member(Role.REP, email="r2@acme.test")
    make_deal(org, owner=rep, name="Mine to close")
    make_deal(org, owner=other, name="Not mine")
    page = signed_in(rep).get("/deals/board/").content.decode()
    assert "Mine to close" in page and "Not mine" not in page


def test_the_board_shows_totals_weighted_totals_and_rotting(org, member, django_assert_max_num_queries):
    Stage.objects.for_org(org).filter(name="Proposal").update(rotting_days=3)
    make_deal(org, stage_name="Proposal", amount="2000.00", currency="EUR", days_in_stage=5, name="Old one")
    for i in range(20):
        make_deal(org, stage_name="Negotiation", amount="10.00", currency="USD", name=f"Many {i}")
    client = signed_in(member(Role.MARKETER))
    client.get("/deals/board/")  # warm the session and the org's lookups
    with django_assert_max_num_queries(14):
        page = client.get("/deals/board/").content.decode()
    assert "2,000.00 EUR" in page and "weighted 1,000.00 EUR" in page  # Proposal: 50 %
    assert "200.00 USD" in page and "weighted 150.00 USD" in page  # Negotiation: 20 × 10 at 75 %
    assert page.count('class="rot-flag"') == 1 + 1  # the legend and the one rotting card


def test_deal_names_from_leads_are_escaped(org, member):
    make_deal(org, name="<script>alert(1)</script>")
    page = signed_in(member(Role.MARKETER)).get("/deals/board/").content.decode()
    assert "<script>alert(1)</script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_filters_by_owner_and_month_and_a_bad_month_is_a_form_error(org, member):
    rep = member(Role.REP)
    make_deal(org, owner=rep, expected_close=date(2027, 3, 15), name="March deal")
    make_deal(org, owner=rep, expected_close=date(2027, 4, 15), name="April deal")
    client = signed_in(member(Role.MARKETER))
    page = client.get("/deals/board/", {"owner": rep.pk, "close_month": "2027-03"}).content.decode()
    assert "March deal" in page and "April deal" not in page
    bad = client.get("/deals/board/", {"close_month": "March"})
    assert bad.status_code == 400 and "Give a month as YYYY-MM" in bad.content.decode()


def test_the_move_form_moves_and_a_late_one_says_where_the_deal_is(org, member):
    rep = member(Role.REP)
    deal = make_deal(org, owner=rep, name="Pilot")
    client = signed_in(rep)
    seen = str(deal.stage_id)
    moved = client.post(
        f"/deals/{deal.pk}/move/",
        {"stage": str(stage(org, "Proposal").pk), "expected_stage": seen, "next": "/deals/board/"},
        follow=True,
    )
    assert "Moved “Pilot” to Proposal." in moved.content.decode()
    late = client.post(
        f"/deals/{deal.pk}/move/",
        {"stage": str(stage(org, "Negotiation").pk), "expected_stage": seen, "next": "/deals/board/"},
        follow=True,
        HTTP_REFERER="/deals/board/",
    )
    assert "Someone moved this deal to Proposal first" in late.content.decode()
    assert Deal.objects.get(pk=deal.pk).stage.name == "Proposal"


def test_losing_from_the_board_without_a_reason_is_refused(org, member):
    deal = make_deal(org, name="Pilot")
    client = signed_in(member(Role.MARKETER))
    answer = client.post(
        f"/deals/{deal.pk}/move/",
        {"stage": str(stage(org, "Lost").pk), "expected_stage": str(deal.stage_id)},
        follow=True,
        HTTP_REFERER="/deals/board/",
    )
    assert "Say why the deal was lost." in answer.content.decode()
    assert Deal.objects.get(pk=deal.pk).status == "open"


def test_another_reps_deal_is_a_404_to_move(org, member):
    deal = make_deal(org, owner=member(Role.REP, email="r1@acme.test"))
    client = signed_in(member(Role.REP, email="r2@acme.test"))
    answer = client.post(
        f"/deals/{deal.pk}/move/", {"stage": str(stage(org, "Proposal").pk), "expected_stage": str(deal.stage_id)}
    )
    assert answer.status_code == 404


def test_an_admin_builds_a_pipeline_in_settings_and_errors_show_at_their_row(org):
    admin = org.memberships.get(role=Role.ADMIN).user
    client = signed_in(admin)
    assert client.get("/settings/pipelines/new/").status_code == 200
    rows = [("Due", "40", "", "open"), ("Renewed", "100", "", "won"), ("Churned", "150", "", "lost")]
    data = {"name": "Renewals", "stages-TOTAL_FORMS": "4", "stages-INITIAL_FORMS": "0"}
    for i, (name, probability, rotting, kind) in enumerate(rows):
        data.update(
            {
                f"stages-{i}-name": name,
                f"stages-{i}-probability": probability,
                f"stages-{i}-rotting_days": rotting,
                f"stages-{i}-kind": kind,
            }
        )
    data.update({"stages-3-name": "", "stages-3-probability": "", "stages-3-kind": "open"})
    refused = client.post("/settings/pipelines/new/", data)
    assert refused.status_code == 400 and "Ensure this value is less than or equal to 100." in refused.content.decode()
    data["stages-2-probability"] = "0"
    data["stages-0-rotting_days"] = "10"
    assert client.post("/settings/pipelines/new/", data).status_code == 302
    renewals = Pipeline.objects.for_org(org).get(name="Renewals")
    assert list(renewals.stages.values_list("name", "probability", "rotting_days")) == [
        ("Due", 40, 10),
        ("Renewed", 100, None),
        ("Churned", 0, None),
    ]
    assert "Renewals" in client.get("/settings/pipelines/").content.decode()


def test_two_won_stages_are_refused_at_the_form(org):
    client = signed_in(org.memberships.get(role=Role.ADMIN).user)
    data = {
        "name": "Odd",
        "stages-TOTAL_FORMS": "2",
        "stages-INITIAL_FORMS": "0",
        "stages-0-name": "Won A",
        "stages-0-probability": "100",
        "stages-0-kind": "won",
        "stages-1-name": "Won B",
        "stages-1-probability": "100",
        "stages-1-kind": "won",
    }
    refused = client.post("/settings/pipelines/new/", data)
    assert refused.status_code == 400 and "exactly one won stage and one lost stage" in refused.content.decode()
    assert not Pipeline.objects.for_org(org).filter(name="Odd").exists()


def test_settings_are_for_admins_and_the_menu_says_so(org, member):
    manager = signed_in(member(Role.MANAGER))
    assert manager.get("/settings/pipelines/").status_code == 403
    assert 'href="/settings/pipelines/"' not in manager.get("/deals/board/").content.decode()
    admin = signed_in(org.memberships.get(role=Role.ADMIN).user)
    assert 'href="/settings/pipelines/"' in admin.get("/deals/board/").content.decode()
    pipeline = default_pipeline(org)
    form = admin.get(f"/settings/pipelines/{pipeline.pk}/").content.decode()
    assert 'name="stages-2-position" value="3"' in form and 'name="stages-2-name" value="Proposal"' in form


def _admin_stages(rows, initial=0):
    data = {
        "stages-TOTAL_FORMS": str(len(rows)),
        "stages-INITIAL_FORMS": str(initial),
        "stages-MIN_NUM_FORMS": "0",
        "stages-MAX_NUM_FORMS": "1000",
    }
    for i, (position, name, probability, kind) in enumerate(rows):
        data.update(
            {
                f"stages-{i}-position": position,
                f"stages-{i}-name": name,
                f"stages-{i}-probability": probability,
                f"stages-{i}-rotting_days": "",
                f"stages-{i}-kind": kind,
            }
        )
    return data


def test_django_admin_saves_pipelines_through_the_service_scoped_to_the_org(org, other_org):
    client = signed_in(org.memberships.get(role=Role.ADMIN).user)
    rows = [("0", "Due", "40", "open"), ("1", "Renewed", "100", "won"), ("2", "Churned", "0", "open")]
    refused = client.post("/admin/leads/pipeline/add/", {"name": "Renewals", **_admin_stages(rows)})
    assert refused.status_code == 200 and "exactly one won stage and one lost stage" in refused.content.decode()
    rows[2] = ("2", "Churned", "0", "lost")
    saved = client.post("/admin/leads/pipeline/add/", {"name": "Renewals", **_admin_stages(rows)})
    assert saved.status_code == 302
    renewals = Pipeline.objects.get(name="Renewals")
    assert renewals.organization_id == org.pk and not renewals.is_default
    assert list(renewals.stages.values_list("name", "kind")) == [
        ("Due", "open"),
        ("Renewed", "won"),
        ("Churned", "lost"),
    ]
    listing = client.get("/admin/leads/pipeline/").content.decode()
    assert "Renewals" in listing
    theirs = default_pipeline(other_org)
    assert client.get(f"/admin/leads/pipeline/{theirs.pk}/change/").status_code in (302, 404)


def test_positions_reorder_the_stages(org):
    client = signed_in(org.memberships.get(role=Role.ADMIN).user)
    pipeline = default_pipeline(org)
    stages = list(Stage.objects.for_org(org).filter(pipeline=pipeline).order_by("position"))
    data = {"name": "Sales", "is_default": "on", "stages-TOTAL_FORMS": str(len(stages)), "stages-INITIAL_FORMS": "0"}
    for i, each in enumerate(stages):
        data.update(
            {
                f"stages-{i}-id": str(each.pk),
                f"stages-{i}-position": str(i + 1),
                f"stages-{i}-name": each.name,
                f"stages-{i}-probability": str(each.probability),
                f"stages-{i}-kind": each.kind,
            }
        )
    data["stages-0-position"], data["stages-1-position"] = "2", "1"
    assert client.post(f"/settings/pipelines/{pipeline.pk}/", data).status_code == 302
    assert list(
        Stage.objects.for_org(org).filter(pipeline=pipeline).order_by("position").values_list("name", flat=True)
    )[:2] == ["Needs analysis", "Qualification"]
