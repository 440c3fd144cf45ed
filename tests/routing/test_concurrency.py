"""Routing, claims and SLA checks from several threads at once, each with its own database connection."""

import threading
from collections import Counter
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from leadcrm.models import Role
from leads.models import Lead, LifecycleStage
from routing import services
from routing.models import Assignment, Notification, NotificationKind
from tests.routing import make_lead, make_rep, make_rule, make_team, route

pytestmark = pytest.mark.django_db(transaction=True)


def run_at_once(count, target):
    """Start `count` threads together; each runs target(index) and closes its connection."""
    barrier = threading.Barrier(count)
    results, errors = [None] * count, []

    def run(index):
        try:
            barrier.wait()
            results[index] = target(index)
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors
    return results


def test_eight_concurrent_routers_assign_each_lead_once_and_keep_turns(org):
    reps = [make_rep(org, capacity=None) for _ in range(7)]
    make_rule(org, team=make_team(org, "Sales", reps))
    Lead.objects.bulk_create([Lead(organization=org, email=f"c{i}@example.test", lifecycle_stage=LifecycleStage.MQL)
                              for i in range(140)])
    lead_ids = list(Lead.objects.for_org(org).values_list("pk", flat=True))

    # every router tries every lead, each in its own order: the automatic path must route each exactly once
    run_at_once(8, lambda i: services.route_leads(organization_id=org.pk, lead_ids=lead_ids[i:] + lead_ids[:i],
                                                  only_unowned=True))

    per_lead = Counter(Assignment.objects.filter(lead_id__in=lead_ids).values_list("lead_id", flat=True))
    assert len(per_lead) == 140 and set(per_lead.values()) == {1}
    per_rep = Counter(Lead.objects.for_org(org).values_list("owner_id", flat=True))
    assert sorted(per_rep.values()) == [20] * 7  # no turn skipped or doubled


def test_two_reps_claiming_at_once_one_wins(org):
    first, second = make_rep(org, name="first"), make_rep(org, name="second")
    make_rule(org, strategy="pool", team=make_team(org, "Pool", [first, second]))
    lead = make_lead(org)
    route(lead)
    users = [first.user, second.user]

    def claim(index):
        try:
            services.claim(organization_id=org.pk, lead_id=lead.pk, user=users[index])
            return "won"
        except services.ClaimRefused as exc:
            return str(exc)

    results = run_at_once(2, claim)

    assert results.count("won") == 1
    loser = results[1 - results.index("won")]
    winner = users[results.index("won")]
    assert loser == f"Already claimed by {winner.email}."
    assert Lead.objects.get(pk=lead.pk).owner_id == winner.pk
    assert Assignment.objects.filter(lead=lead, reason="claim").count() == 1


def test_four_concurrent_sla_ticks_escalate_each_missed_lead_once(org, member):
    manager = member(Role.MANAGER)
    rep = make_rep(org, name="only")
    make_rule(org, team=make_team(org, "Sales", [rep], manager=manager), sla_minutes=15)
    start = timezone.now()
    leads = [make_lead(org) for _ in range(12)]
    for lead in leads:
        route(lead, now=start)

    results = run_at_once(4, lambda _: services.check_deadlines(now=start + timedelta(minutes=16)))

    assert sum(result.get("escalated", 0) for result in results) == len(leads)
    assert Notification.objects.filter(kind=NotificationKind.ESCALATED, user=manager).count() == len(leads)
    assert Counter(Assignment.objects.filter(lead__in=leads).values_list("lead_id", flat=True)) == {
        lead.pk: 2 for lead in leads}  # the rep's, then the manager's: never a second escalation
