"""Deal pipelines: the default pipeline, moves and their history, the race of two movers, reasons, rotting."""

import threading
from datetime import date
from decimal import Decimal

import pytest
from django.db import connection
from django.utils import timezone

from leadcrm import policy
from leadcrm.errors import Invalid
from leadcrm.models import Role
from leads import selectors, services
from leads.models import Account, Activity, ActivityType, Deal, DealStageChange, Lead, LifecycleStage, Stage
from routing.models import RepProfile
from tests.leads.deals import default_pipeline, make_deal, stage

pytestmark = pytest.mark.django_db


def test_every_new_org_gets_the_default_pipeline(org, other_org):
    for each in (org, other_org):
        stages = list(
            Stage.objects.for_org(each)
            .filter(pipeline=default_pipeline(each))
            .order_by("position")
            .values_list("name", "probability", "kind")
        )
        assert stages == [
            ("Qualification", 10, "open"),
            ("Needs analysis", 25, "open"),
            ("Proposal", 50, "open"),
            ("Negotiation", 75, "open"),
            ("Won", 100, "won"),
            ("Lost", 0, "lost"),
        ]
    assert services.set_up_pipelines(organization_id=org.pk) == default_pipeline(org)  # idempotent


def test_a_deal_made_without_a_stage_lands_in_the_stage_its_status_names(org):
    """Any path that inserts a deal (an import's SQL, a fixture) places it: open in the first stage, won in Won."""
    account = Account.objects.create(organization=org, name="Initech")
    opened = Deal.objects.create(organization=org, account=account, name="Open", amount=1)
    won = Deal.objects.create(
        organization=org, account=account, name="Won", amount=1, status="won", closed_at=timezone.now()
    )
    assert Deal.objects.get(pk=opened.pk).stage == stage(org, "Qualification")
    assert Deal.objects.get(pk=won.pk).stage == stage(org, "Won")
    assert DealStageChange.objects.get(deal=opened).stage_name == "Qualification"


def test_conversion_starts_the_deal_in_the_first_stage_by_whom(org, member):
    rep = member(Role.REP)
    lead = Lead.objects.create(
        organization=org, email="ada@example.test", company="Initech", lifecycle_stage=LifecycleStage.SQL, owner=rep
    )
    _, deal = services.convert_lead(lead=lead, deal={"name": "Pilot", "amount": Decimal("500")}, actor=rep)
    assert deal.stage.name == "Qualification" and deal.pipeline == default_pipeline(org)
    [row] = DealStageChange.objects.filter(deal=deal)
    assert row.entered_by == rep and row.left_at is None


def test_a_move_closes_the_stay_and_opens_the_next_with_who_moved(org, member):
    rep = member(Role.REP)
    deal = make_deal(org, owner=rep, days_in_stage=3)
    qualification, proposal = stage(org, "Qualification"), stage(org, "Proposal")
    moved = services.move_deal(deal=deal, stage_id=proposal.pk, expected_stage_id=qualification.pk, actor=rep)
    assert moved.stage == proposal and moved.status == "open"
    first, second = DealStageChange.objects.filter(deal=deal).order_by("entered_at")
    assert first.stage == qualification and first.left_at == second.entered_at
    assert second.stage == proposal and second.entered_by == rep and second.left_at is None
    assert Deal.objects.get(pk=deal.pk).stage_entered_at == second.entered_at


def test_a_stale_move_is_refused_naming_the_current_stage(org):
    deal = make_deal(org)
    qualification = stage(org, "Qualification")
    services.move_deal(deal=deal, stage_id=stage(org, "Proposal").pk, expected_stage_id=qualification.pk)
    with pytest.raises(services.StageChanged) as refused:
        services.move_deal(deal=deal, stage_id=stage(org, "Negotiation").pk, expected_stage_id=qualification.pk)
    assert refused.value.status == 409
    assert refused.value.extra["current_stage"]["name"] == "Proposal"
    assert Deal.objects.get(pk=deal.pk).stage.name == "Proposal"
    assert DealStageChange.objects.filter(deal=deal).count() == 2


@pytest.mark.django_db(transaction=True)
def test_two_people_moving_one_deal_at_once_one_wins_the_other_gets_409(org):
    deal = make_deal(org)
    seen = stage(org, "Qualification").pk
    targets = [stage(org, "Proposal"), stage(org, "Negotiation")]
    barrier = threading.Barrier(2)
    results = [None, None]

    def move(index):
        try:
            barrier.wait()
            services.move_deal(deal=deal, stage_id=targets[index].pk, expected_stage_id=seen)
            results[index] = "moved"
        except services.StageChanged as exc:
            results[index] = exc.extra["current_stage"]["name"]
        finally:
            connection.close()

    threads = [threading.Thread(target=move, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(results, key=str) == sorted(["moved", targets[results.index("moved")].name], key=str)
    winner = targets[results.index("moved")]
    assert Deal.objects.get(pk=deal.pk).stage == winner
    assert DealStageChange.objects.filter(deal=deal).count() == 2  # one move recorded, not two


def test_winning_by_a_move_closes_the_deal_and_makes_the_lead_a_customer(org):
    lead = Lead.objects.create(organization=org, email="w@example.test", lifecycle_stage=LifecycleStage.OPPORTUNITY)
    deal = make_deal(org, stage_name="Negotiation")
    Deal.objects.filter(pk=deal.pk).update(lead=lead)
    deal.refresh_from_db()
    won = services.move_deal(deal=deal, stage_id=stage(org, "Won").pk, expected_stage_id=deal.stage_id)
    assert won.status == "won" and won.closed_at is not None and won.stage.name == "Won"
    assert Lead.objects.get(pk=lead.pk).lifecycle_stage == LifecycleStage.CUSTOMER
    assert Activity.objects.filter(lead=lead, type=ActivityType.DEAL_WON).exists()


def test_losing_needs_a_reason_and_keeps_it(org):
    deal = make_deal(org, stage_name="Proposal")
    lost = stage(org, "Lost")
    with pytest.raises(Invalid) as refused:
        services.move_deal(deal=deal, stage_id=lost.pk, expected_stage_id=deal.stage_id, reason="  ")
    assert "reason" in refused.value.errors
    assert Deal.objects.get(pk=deal.pk).status == "open"
    closed = services.move_deal(deal=deal, stage_id=lost.pk, expected_stage_id=deal.stage_id, reason="Too dear")
    assert closed.status == "lost" and closed.lost_reason == "Too dear"
    assert DealStageChange.objects.get(deal=deal, left_at__isnull=True).reason == "Too dear"


def test_the_close_services_move_the_deal_to_won_or_lost(org):
    deal = make_deal(org, stage_name="Proposal")
    services.win_deal(deal=deal)
    assert Deal.objects.get(pk=deal.pk).stage.name == "Won"
    other = make_deal(org)
    services.lose_deal(deal=other, reason="Budget")
    assert Deal.objects.get(pk=other.pk).stage.name == "Lost"


def test_reopening_a_won_deal_needs_a_reason(org):
    deal = make_deal(org, stage_name="Won")
    negotiation = stage(org, "Negotiation")
    with pytest.raises(Invalid) as refused:
        services.move_deal(deal=deal, stage_id=negotiation.pk, expected_stage_id=deal.stage_id)
    assert "reason" in refused.value.errors and Deal.objects.get(pk=deal.pk).status == "won"
    reopened = services.move_deal(
        deal=deal, stage_id=negotiation.pk, expected_stage_id=deal.stage_id, reason="Signed the wrong contract"
    )
    assert reopened.status == "open" and reopened.closed_at is None and reopened.stage == negotiation
    with pytest.raises(services.DealClosed):  # won straight to lost: reopen first
        won = services.move_deal(deal=reopened, stage_id=stage(org, "Won").pk, expected_stage_id=negotiation.pk)
        services.move_deal(deal=won, stage_id=stage(org, "Lost").pk, expected_stage_id=won.stage_id, reason="x")


def test_a_stage_of_another_pipeline_or_org_is_refused(org, other_org):
    deal = make_deal(org)
    second = services.save_pipeline(
        organization_id=org.pk,
        name="Renewals",
        stages=[
            {"name": "Due", "probability": 50},
            {"name": "Renewed", "probability": 100, "kind": "won"},
            {"name": "Churned", "probability": 0, "kind": "lost"},
        ],
    )
    for foreign in (stage(org, "Due", second), stage(other_org, "Proposal"), "not-a-uuid"):
        with pytest.raises(Invalid) as refused:
            services.move_deal(deal=deal, stage_id=getattr(foreign, "pk", foreign), expected_stage_id=deal.stage_id)
        assert "stage" in refused.value.errors
    assert Deal.objects.get(pk=deal.pk).stage.name == "Qualification"


def test_saving_a_pipeline_checks_every_stage(org):
    with pytest.raises(Invalid) as refused:
        services.save_pipeline(
            organization_id=org.pk,
            name="Bad",
            stages=[
                {"name": "A", "probability": 101},
                {"name": "", "probability": 5},
                {"name": "W", "probability": 100, "kind": "won"},
                {"name": "L", "probability": -1, "kind": "lost"},
                {"name": "R", "probability": 5, "rotting_days": 0},
            ],
        )
    assert set(refused.value.errors) == {
        "stages.0.probability",
        "stages.1.name",
        "stages.3.probability",
        "stages.4.rotting_days",
    }
    with pytest.raises(Invalid) as refused:
        services.save_pipeline(
            organization_id=org.pk,
            name="No lost",
            stages=[{"name": "A", "probability": 5}, {"name": "W", "probability": 100, "kind": "won"}],
        )
    assert "won stage and one lost" in refused.value.errors["stages"][0]


def test_a_stage_with_deals_is_not_removed_and_stages_reorder(org):
    make_deal(org, stage_name="Proposal")
    pipeline = default_pipeline(org)
    stages = [
        {"id": s.pk, "name": s.name, "probability": s.probability, "kind": s.kind}
        for s in Stage.objects.for_org(org).filter(pipeline=pipeline).order_by("position")
    ]
    without_proposal = [s for s in stages if s["name"] != "Proposal"]
    with pytest.raises(services.PipelineInUse):
        services.save_pipeline(organization_id=org.pk, pipeline=pipeline, name="Sales", stages=without_proposal)
    swapped = [stages[1], stages[0], *stages[2:]]
    swapped[0] = {**swapped[0], "rotting_days": 14}
    services.save_pipeline(organization_id=org.pk, pipeline=pipeline, name="Sales", stages=swapped)
    assert list(
        Stage.objects.for_org(org).filter(pipeline=pipeline).order_by("position").values_list("name", "rotting_days")
    )[:2] == [("Needs analysis", 14), ("Qualification", None)]


def test_rotting_deals_are_the_owners_open_deals_idle_past_their_stage_limit(org, member):
    rep, other = member(Role.REP, email="r1@acme.test"), member(Role.REP, email="r2@acme.test")
    Stage.objects.for_org(org).filter(name="Proposal").update(rotting_days=7)
    stale = make_deal(org, stage_name="Proposal", owner=rep, days_in_stage=8, name="Stale")
    make_deal(org, stage_name="Proposal", owner=rep, days_in_stage=6, name="Fresh")
    make_deal(org, stage_name="Qualification", owner=rep, days_in_stage=80, name="No limit")
    make_deal(org, stage_name="Proposal", owner=other, days_in_stage=30, name="Someone else's")
    found = selectors.rotting_deals(organization=org, owner_ids=[rep.pk])
    assert list(found) == [rep.pk] and [deal.name for deal in found[rep.pk]] == [stale.name]


def test_board_totals_weighted_per_currency_and_flags_rot(org, member, django_assert_max_num_queries):
    Stage.objects.for_org(org).filter(name="Proposal").update(rotting_days=5)
    for amount, currency, days in (("1000.00", "EUR", 1), ("500.00", "EUR", 9), ("300.00", "USD", 0)):
        make_deal(org, stage_name="Proposal", amount=amount, currency=currency, days_in_stage=days)
    for _ in range(5):
        make_deal(org, stage_name="Qualification")
    admin = policy.Principal(role=Role.ADMIN, user=org.memberships.get(role=Role.ADMIN).user)
    pipeline = default_pipeline(org)
    with django_assert_max_num_queries(3):  # stages, totals, cards: not one more per column or card
        columns = selectors.board(organization_id=org.pk, principal=admin, pipeline=pipeline)
    proposal = columns[2]
    assert proposal["stage"].name == "Proposal" and proposal["count"] == 3
    assert [(t["currency"], t["total"], t["weighted"]) for t in proposal["totals"]] == [
        ("EUR", Decimal("1500.00"), Decimal("750.00")),
        ("USD", Decimal("300.00"), Decimal("150.00")),
    ]
    assert [deal.rotting for deal in proposal["deals"]] == [True, False, False]  # longest in the stage first
    assert columns[0]["count"] == 5


def test_board_filters_by_owner_and_close_month(org, member):
    rep = member(Role.REP)
    make_deal(org, owner=rep, expected_close=date(2027, 3, 31), name="March")
    make_deal(org, owner=rep, expected_close=date(2027, 4, 1), name="April")
    make_deal(org, expected_close=date(2027, 3, 2), name="Nobody's")
    admin = policy.Principal(role=Role.ADMIN, user=org.memberships.get(role=Role.ADMIN).user)
    columns = selectors.board(
        organization_id=org.pk,
        principal=admin,
        pipeline=default_pipeline(org),
        owner_id=rep.pk,
        close_month=date(2027, 3, 1),
    )
    assert [deal.name for deal in columns[0]["deals"]] == ["March"]


def test_reps_see_their_own_deals_managers_their_teams_marketers_all(org, member):
    from routing import services as routing_services

    rep, rep2, outsider = (member(Role.REP, email=f"{n}@acme.test") for n in ("rep1", "rep2", "rep3"))
    manager = member(Role.MANAGER, email="boss@acme.test")
    profiles = list(RepProfile.objects.filter(organization=org, user__in=[rep, rep2]))
    routing_services.save_team(organization_id=org.pk, data={"name": "East", "manager": manager, "members": profiles})
    for owner in (rep, rep2, outsider, manager):
        make_deal(org, owner=owner, name=f"of {owner.email}")

    def seen(user, role):
        principal = policy.Principal(role=role, user=user)
        columns = selectors.board(organization_id=org.pk, principal=principal, pipeline=default_pipeline(org))
        return sorted(deal.name for column in columns for deal in column["deals"])

    assert seen(rep, Role.REP) == ["of rep1@acme.test"]
    assert seen(manager, Role.MANAGER) == ["of boss@acme.test", "of rep1@acme.test", "of rep2@acme.test"]
    assert len(seen(member(Role.MARKETER), Role.MARKETER)) == 4


def test_existing_deals_were_placed_by_the_migration_sql(org):
    """The migration's placement of existing deals, run again on deals that lost their stage."""
    from importlib import import_module

    migration = import_module("leads.migrations.0025_pipelines")
    deal = make_deal(org, stage_name="Proposal")
    won = make_deal(org, stage_name="Won")
    DealStageChange.objects.filter(deal__in=[deal, won]).delete()
    Deal.objects.filter(pk__in=[deal.pk, won.pk]).update(stage=None, pipeline=None, stage_entered_at=None)
    with connection.cursor() as cursor:
        cursor.execute(migration.PLACE_EXISTING_DEALS)
    assert Deal.objects.get(pk=deal.pk).stage.name == "Qualification"  # an open deal: the first stage
    assert Deal.objects.get(pk=won.pk).stage.name == "Won"
    assert DealStageChange.objects.filter(deal__in=[deal, won], left_at__isnull=True).count() == 2
    assert Deal.objects.get(pk=won.pk).stage_entered_at == Deal.objects.get(pk=won.pk).closed_at
