"""Routing by the services: rule matching, each strategy, who is skipped, the pool, claims and history."""

from collections import Counter
from datetime import timedelta

import pytest
from django.db.models import Q
from django.utils import timezone

from leadcrm import events
from leadcrm.models import Role
from leads import services as lead_services
from leads.models import Activity, ActivityType, Lead, LifecycleStage
from routing import services
from routing.models import Assignment, AssignmentReason, LeadRouting, Notification, NotificationKind
from tests.routing import make_lead, make_rep, make_rule, make_team, route

pytestmark = pytest.mark.django_db


def owners(leads) -> Counter:
    return Counter(Lead.objects.filter(pk__in=[lead.pk for lead in leads]).values_list("owner_id", flat=True))


def route_many(org, count, **lead_fields):
    leads = [make_lead(org, **lead_fields) for _ in range(count)]
    for lead in leads:
        route(lead)
    return leads


def test_round_robin_gives_each_rep_a_turn_in_order(org):
    reps = [make_rep(org) for _ in range(3)]
    make_rule(org, team=make_team(org, "Sales", reps))

    assignments = [route(make_lead(org)) for _ in range(6)]

    order = [a.rep_id for a in assignments]
    assert order[:3] == [rep.user_id for rep in reps]
    assert order[3:] == order[:3]


@pytest.mark.django_db(transaction=True)  # each lead routed in its own committed transaction, as in production
def test_round_robin_is_fair_over_ten_thousand_leads(org):
    reps = [make_rep(org, capacity=None) for _ in range(7)]
    make_rule(org, team=make_team(org, "Sales", reps))
    Lead.objects.bulk_create([Lead(organization=org, email=f"fair{i}@example.test",
                                   lifecycle_stage=LifecycleStage.MQL) for i in range(10_000)])

    lead_ids = Lead.objects.for_org(org).values_list("pk", flat=True)
    routed = services.route_leads(organization_id=org.pk, lead_ids=lead_ids)

    assert routed == 10_000
    counts = Counter(Lead.objects.for_org(org).values_list("owner_id", flat=True))
    share = 10_000 / 7
    assert set(counts) == {rep.user_id for rep in reps}
    assert all(abs(n - share) <= 1 for n in counts.values()), counts


def test_weighted_round_robin_follows_the_weights(org):
    light, middle, heavy = (make_rep(org, weight=w, capacity=1000) for w in (1, 2, 3))
    make_rule(org, strategy="weighted", team=make_team(org, "Sales", [light, middle, heavy]))

    counts = owners(route_many(org, 60))

    assert counts == {light.user_id: 10, middle.user_id: 20, heavy.user_id: 30}


def test_weighted_spreads_turns_instead_of_bunching_them(org):
    one, three = make_rep(org, weight=1), make_rep(org, weight=3)
    make_rule(org, strategy="weighted", team=make_team(org, "Sales", [one, three]))

    order = [route(make_lead(org)).rep_id for _ in range(8)]

    # Smooth weighting: the light rep's turns fall once in every four, not as a run of three then one.
    assert order.count(one.user_id) == 2
    assert order[:4].count(one.user_id) == 1


def test_weight_zero_gets_nothing_under_weighted(org):
    idle, busy = make_rep(org, weight=0), make_rep(org, weight=1)
    make_rule(org, strategy="weighted", team=make_team(org, "Sales", [idle, busy]))

    assert owners(route_many(org, 4)) == {busy.user_id: 4}


def test_least_loaded_picks_the_fewest_open_leads_for_capacity(org):
    small, large = make_rep(org, capacity=4), make_rep(org, capacity=20)
    for _ in range(2):
        make_lead(org, owner=small.user)  # half full
    for _ in range(4):
        make_lead(org, owner=large.user)  # a fifth full
    make_lead(org, owner=large.user, lifecycle_stage=LifecycleStage.CUSTOMER)  # closed: not load
    make_rule(org, strategy="least_loaded", team=make_team(org, "Sales", [small, large]))

    first = route(make_lead(org))

    assert first.rep_id == large.user_id
    counts = owners(route_many(org, 6))
    # large fills to 10/20, level with small's 2/4; then the tie goes to whoever waited longer
    assert counts == {large.user_id: 5, small.user_id: 1}


def test_named_rep_rule(org):
    rep = make_rep(org)
    make_rule(org, strategy="rep", rep=rep)

    assignment = route(make_lead(org))

    assert assignment.rep_id == rep.user_id
    assert assignment.strategy == "rep"


@pytest.mark.parametrize("state", [
    {"available": False},
    {"away_until": timezone.now() + timedelta(days=2)},
    {"capacity": 1},
])
def test_unavailable_away_and_full_reps_are_skipped(org, state):
    skipped, other = make_rep(org, name="skipped", **state), make_rep(org, name="other")
    if state.get("capacity"):
        make_lead(org, owner=skipped.user)
    make_rule(org, team=make_team(org, "Sales", [skipped, other]))

    assert owners(route_many(org, 3)) == {other.user_id: 3}


def test_an_away_rep_is_back_once_the_date_passed(org):
    back = make_rep(org, away_until=timezone.now() - timedelta(minutes=1))
    make_rule(org, team=make_team(org, "Sales", [back]))

    assert route(make_lead(org)).rep_id == back.user_id


def test_working_hours_are_respected_when_the_rule_says_so(org):
    now = timezone.now()
    closed_day = now.isoweekday() % 7 + 1  # tomorrow's weekday: not today
    off_duty = make_rep(org, working_hours={"timezone": "UTC", "days": [closed_day], "start": "00:00",
                                            "end": "23:59"})
    on_duty = make_rep(org)
    team = make_team(org, "Sales", [off_duty, on_duty])
    strict = make_rule(org, "strict", team=team, respect_working_hours=True)

    assert owners(route_many(org, 2)) == {on_duty.user_id: 2}
    strict.respect_working_hours = False
    strict.save()
    assert len(owners(route_many(org, 2))) == 2


def test_reps_whose_territory_excludes_the_lead_are_skipped(org):
    germany = make_rep(org, territories=["DE", "AT"])
    california = make_rep(org, territories=["US-CA"])
    make_rule(org, team=make_team(org, "Sales", [germany, california]))

    assert route(make_lead(org, country="US", region="CA")).rep_id == california.user_id
    assert route(make_lead(org, country="AT")).rep_id == germany.user_id
    assert route(make_lead(org, country="FR")).rep_id is None  # nobody covers France: the pool


def test_industry_and_language_restrict_too_unless_the_rule_ignores_profiles(org):
    finance = make_rep(org, industries=["Finance"], languages=["de"])
    make_rule(org, team=make_team(org, "Sales", [finance]))

    assert route(make_lead(org, industry="finance", custom_fields={"language": "DE"})).rep_id == finance.user_id
    assert route(make_lead(org, industry="Retail")).rep_id is None
    assert route(make_lead(org, industry="Finance", custom_fields={"language": "fr"})).rep_id is None


def test_nobody_available_sends_the_lead_to_the_pool_and_tells_the_manager(org, member):
    manager = member(Role.MANAGER)
    rep = make_rep(org, available=False)
    team = make_team(org, "Sales", [rep], manager=manager)
    make_rule(org, team=team)
    lead = make_lead(org, first_name="Pat")

    assignment = route(lead)

    assert assignment.rep_id is None and assignment.team == team
    routing = LeadRouting.objects.get(lead=lead)
    assert routing.pooled and routing.team == team and routing.sla_due_at is None
    note = Notification.objects.get(user=manager)
    assert note.kind == NotificationKind.POOLED and "Pat" in note.message and "Sales" in note.message


def test_the_first_matching_rule_wins_and_the_fallback_takes_the_rest(org):
    us_rep, de_rep, anyone = make_rep(org), make_rep(org), make_rep(org)
    make_rule(org, "germany", order=2, strategy="rep", rep=de_rep,
              condition={"all": [{"field": "country", "op": "eq", "value": "DE"}]})
    make_rule(org, "america", order=1, strategy="rep", rep=us_rep,
              condition={"any": [{"field": "country", "op": "eq", "value": "US"},
                                 {"field": "country", "op": "eq", "value": "DE"}]})
    make_rule(org, "everyone else", strategy="rep", rep=anyone, is_fallback=True, order=0)

    assert route(make_lead(org, country="DE")).rep_id == us_rep.user_id  # order 1 comes first
    other = route(make_lead(org, country="FR"))
    assert other.rep_id == anyone.user_id and other.reason == AssignmentReason.FALLBACK


def test_a_rule_can_route_by_segment(org):
    rep, other = make_rep(org), make_rep(org)
    segment = lead_services.create_segment(organization_id=org.pk, name="Big", definition={
        "all": [{"field": "company_size", "op": "gte", "value": 1000}]})
    make_rule(org, "big", strategy="rep", rep=rep, segment=segment, order=1)
    make_rule(org, "rest", strategy="rep", rep=other, is_fallback=True)

    assert route(make_lead(org, company_size=5000)).rep_id == rep.user_id
    assert route(make_lead(org, company_size=10)).rep_id == other.user_id


def test_inactive_rules_do_not_route(org):
    make_rule(org, strategy="rep", rep=make_rep(org), active=False)
    assert route(make_lead(org)) is None


def test_a_named_rep_who_cannot_take_the_lead_hands_it_to_the_fallback(org):
    paused, backup = make_rep(org, available=False), make_rep(org)
    make_rule(org, "vip", strategy="rep", rep=paused, order=1)
    make_rule(org, "rest", team=make_team(org, "Backup", [backup]), is_fallback=True)

    assert route(make_lead(org)).rep_id == backup.user_id


def test_a_removed_member_gets_no_more_leads(org):
    leaving, staying = make_rep(org), make_rep(org)
    make_rule(org, team=make_team(org, "Sales", [leaving, staying]))
    leaving.user.memberships.filter(organization=org).delete()

    assert owners(route_many(org, 3)) == {staying.user_id: 3}


def test_closed_leads_are_not_routed_and_owned_ones_not_automatically(org):
    rep, owner = make_rep(org), make_rep(org)
    make_rule(org, strategy="rep", rep=rep)

    assert route(make_lead(org, lifecycle_stage=LifecycleStage.CUSTOMER)) is None
    owned = make_lead(org, owner=owner.user)
    assert route(owned, only_unowned=True) is None
    assert route(owned, reason=AssignmentReason.ROUTE_NOW).rep_id == rep.user_id  # by hand it is re-routed


def test_an_assignment_is_recorded_everywhere_a_user_looks(org, member, monkeypatch,
                                                           django_capture_on_commit_callbacks):
    manager = member(Role.MANAGER)
    rep = make_rep(org, name="alex")
    make_rule(org, "Inbound", team=make_team(org, "Sales", [rep]), sla_minutes=15)
    lead = make_lead(org)
    delivered = []
    monkeypatch.setitem(events._handlers, events.LEAD_ASSIGNED, [lambda **payload: delivered.append(payload)])

    with django_capture_on_commit_callbacks(execute=True):
        assignment = route(lead, actor=manager, reason=AssignmentReason.ROUTE_NOW)

    lead.refresh_from_db()
    assert lead.owner_id == rep.user_id
    assert (assignment.rule_name, assignment.strategy, assignment.reason) == ("Inbound", "round_robin", "route_now")
    timeline = Activity.objects.get(lead=lead, type=ActivityType.OWNER_CHANGE)
    assert timeline.properties["owner"] == "alex@acme.test"
    assert timeline.properties["rule"] == "Inbound" and timeline.properties["team"] == "Sales"
    assert timeline.actor == manager
    routing = LeadRouting.objects.get(lead=lead)
    assert routing.first_assigned_at == routing.assigned_at
    assert timedelta(minutes=14) < routing.sla_due_at - routing.assigned_at <= timedelta(minutes=15)
    assert Notification.objects.get(user=rep.user).kind == NotificationKind.ASSIGNED
    assert any(p["lead_id"] == lead.pk and p["owner_id"] == rep.user_id for p in delivered)


def test_mql_time_is_kept_for_speed_to_lead(org):
    make_rule(org, strategy="rep", rep=make_rep(org))
    lead = make_lead(org, lifecycle_stage=LifecycleStage.LEAD)
    lead_services.promote_to_mql(organization_id=org.pk, leads=Q(pk=lead.pk), reason="test")

    route(lead)

    assert LeadRouting.objects.get(lead=lead).mql_at is not None


def test_claim_gives_the_pool_lead_to_one_rep_only(org):
    first, second, outsider = make_rep(org, name="first"), make_rep(org, name="second"), make_rep(org)
    team = make_team(org, "Pool team", [first, second])
    make_team(org, "Elsewhere", [outsider])
    make_rule(org, strategy="pool", team=team, sla_minutes=30)
    lead = make_lead(org)
    route(lead)

    with pytest.raises(services.ClaimRefused, match="not in"):
        services.claim(organization_id=org.pk, lead_id=lead.pk, user=outsider.user)
    claimed = services.claim(organization_id=org.pk, lead_id=lead.pk, user=first.user)
    with pytest.raises(services.ClaimRefused, match="Already claimed by first@acme.test"):
        services.claim(organization_id=org.pk, lead_id=lead.pk, user=second.user)

    assert claimed.reason == AssignmentReason.CLAIM
    routing = LeadRouting.objects.get(lead=lead)
    assert not routing.pooled and routing.sla_due_at is not None  # the claim starts the rule's SLA clock
    assert Lead.objects.get(pk=lead.pk).owner_id == first.user_id


def test_manual_reassignment_and_owner_edits_keep_the_history(org, member, django_capture_on_commit_callbacks):
    manager = member(Role.MANAGER)
    a, b, c = make_rep(org), make_rep(org), make_rep(org)
    make_rule(org, strategy="rep", rep=a)
    lead = make_lead(org)
    route(lead)

    services.reassign(organization_id=org.pk, lead_id=lead.pk, rep_id=b.user_id, actor=manager)
    lead.refresh_from_db()
    with django_capture_on_commit_callbacks(execute=True):
        lead_services.update_lead(lead=lead, data={"owner": c.user}, actor=manager)  # an edit of the owner field

    history = list(Assignment.objects.filter(lead=lead).order_by("created_at").values_list("reason", "rep_id",
                                                                                             "previous_rep_id"))
    assert history == [("rule", a.user_id, None), ("manual", b.user_id, a.user_id), ("manual", c.user_id, b.user_id)]
    assert Notification.objects.filter(user=c.user, kind=NotificationKind.ASSIGNED).exists()


def test_a_touch_stops_the_sla_clock(org, django_capture_on_commit_callbacks):
    make_rule(org, strategy="rep", rep=make_rep(org), sla_minutes=15)
    lead = make_lead(org)
    route(lead)

    with django_capture_on_commit_callbacks(execute=True):
        lead_services.record_activity(organization_id=org.pk, lead=lead, type=ActivityType.CALL)

    routing = LeadRouting.objects.get(lead=lead)
    assert routing.sla_due_at is None and routing.first_touch_at is not None


def test_accepting_the_lead_counts_as_a_touch_but_a_page_view_does_not(org, django_capture_on_commit_callbacks):
    make_rule(org, strategy="rep", rep=make_rep(org), sla_minutes=15)
    lead = make_lead(org)
    route(lead)

    with django_capture_on_commit_callbacks(execute=True):
        lead_services.record_activity(organization_id=org.pk, lead=lead, type=ActivityType.PAGE_VIEW)
    assert LeadRouting.objects.get(lead=lead).sla_due_at is not None
    with django_capture_on_commit_callbacks(execute=True):
        lead_services.move_stage(lead=lead, to_stage=LifecycleStage.SAL)
    assert LeadRouting.objects.get(lead=lead).first_touch_at is not None


def test_new_reps_and_managers_get_a_profile(org, member):
    from routing.models import RepProfile

    member(Role.REP)
    member(Role.MANAGER)
    member(Role.MARKETER)

    assert sorted(RepProfile.objects.for_org(org).values_list("user__email", flat=True)) == [
        "manager@acme.test", "rep@acme.test"]


@pytest.mark.parametrize("how", ["scored", "by hand"])
def test_a_new_mql_is_routed_by_the_routing_task(org, monkeypatch, django_capture_on_commit_callbacks, how):
    from routing import tasks
    from scoring import services as scoring
    from tests.scoring import fit, set_rules

    monkeypatch.setattr(tasks.route_leads, "delay", lambda *args: tasks.route_leads.apply(args=args))  # run inline
    rep = make_rep(org)
    make_rule(org, strategy="rep", rep=rep)
    set_rules(org, fit(60, {"field": "job_title", "op": "contains", "value": "VP"}), mql_score=50,
              mql_min_grade="F")
    lead = make_lead(org, lifecycle_stage=LifecycleStage.LEAD, job_title="VP Sales" if how == "scored" else "")

    with django_capture_on_commit_callbacks(execute=True):
        if how == "scored":
            scoring.score_lead(organization_id=org.pk, lead_id=lead.pk)
        else:
            lead_services.move_stage(lead=lead, to_stage=LifecycleStage.MQL)

    lead.refresh_from_db()
    assert lead.lifecycle_stage == LifecycleStage.MQL and lead.owner_id == rep.user_id
    assert Assignment.objects.filter(lead=lead).count() == 1


def test_the_queue_puts_overdue_first_then_the_hottest(org):
    from routing import selectors

    rep = make_rep(org)
    make_rule(org, strategy="rep", rep=rep, sla_minutes=15)
    start = timezone.now()
    cold_due_sooner = make_lead(org, temperature="cold", score=5)
    hot_due_later = make_lead(org, temperature="hot", score=80)
    overdue = make_lead(org, temperature="cold", score=1)
    route(overdue, now=start - timedelta(minutes=30))
    route(cold_due_sooner, now=start - timedelta(minutes=5))
    route(hot_due_later, now=start)

    order = [lead.pk for lead in selectors.queue(org.pk, rep.user, now=start)]

    assert order == [overdue.pk, hot_due_later.pk, cold_due_sooner.pk]


def test_a_reps_open_leads_are_counted_without_visiting_their_closed_ones(org):
    """Routing counts each capped rep's open leads for every batch, and the queue's badge on every page: the count
    walks the open part of one index, so it stays as cheap after years of closed leads as on the first day."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from routing.services.assign import open_lead_counts

    rep = make_rep(org, capacity=10)
    stages = ["disqualified"] * 40 + ["customer"] * 40 + ["mql"] * 3 + ["sal"] * 2
    Lead.objects.bulk_create([Lead(organization=org, email=f"c{number}@example.com", owner_id=rep.user_id,
                                   lifecycle_stage=stage) for number, stage in enumerate(stages)])
    with CaptureQueriesContext(connection) as queries:
        assert open_lead_counts(org.pk, [rep.user_id]) == {rep.user_id: 5}
    [count_sql] = [query["sql"] for query in queries.captured_queries if "COUNT" in query["sql"]]
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE leads_lead")  # the planner then knows most of the rep's leads are closed
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute("SET LOCAL enable_bitmapscan = off")
        cursor.execute(f"EXPLAIN {count_sql}")
        plan = "\n".join(row[0] for row in cursor.fetchall())
    index_condition = plan[plan.index("Index Cond"):].splitlines()[0]
    assert "lead_org_owner_stage" in plan and "lifecycle_stage" in index_condition, plan
