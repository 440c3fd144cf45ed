"""Routing many new MQLs at once: batches take the same turns as one lead at a time, within capacity, with a
statement count that does not grow with the batch."""

from collections import Counter
from datetime import timedelta

import pytest
from django.db.models import Count, Q
from django.utils import timezone

from leadcrm import services as core
from leadcrm.models import Role
from leads.models import Lead, LifecycleStage
from routing import services, tasks
from routing.models import Assignment, LeadRouting, Notification
from routing.services.assign import ROUTE_BATCH
from tests.routing import make_lead, make_rep, make_rule, make_team
from tests.routing.test_concurrency import run_at_once

pytestmark = pytest.mark.django_db

BURST = 10_000
# Statements one batch may take, whatever its size: locks, rule tests, reps, and the set-based writes.
BATCH_STATEMENTS = 20


def new_mqls(org, count, prefix="burst", **fields) -> list:
    """`count` new MQLs created set-based, in creation order."""
    Lead.objects.bulk_create([Lead(organization=org, email=f"{prefix}{i}@example.test",
                                   lifecycle_stage=LifecycleStage.MQL, **fields) for i in range(count)])
    return list(Lead.objects.for_org(org).filter(email__startswith=prefix).order_by("email")
                .values_list("pk", flat=True))


def open_leads_per_rep(org) -> Counter:
    return Counter(dict(Lead.objects.for_org(org).filter(owner__isnull=False)
                        .values("owner_id").annotate(n=Count("pk")).values_list("owner_id", "n")))


def test_a_burst_of_ten_thousand_mqls_is_routed_fairly(org):
    reps = [make_rep(org, capacity=None) for _ in range(7)]
    make_rule(org, team=make_team(org, "Sales", reps))
    lead_ids = new_mqls(org, BURST)

    routed = services.route_leads(organization_id=org.pk, lead_ids=lead_ids, only_unowned=True)

    assert routed == BURST
    assert not Lead.objects.for_org(org).filter(owner__isnull=True).exists()
    counts = open_leads_per_rep(org)
    assert set(counts) == {rep.user_id for rep in reps}
    assert max(counts.values()) - min(counts.values()) <= 1, counts
    assert Assignment.objects.for_org(org).count() == BURST
    assert Notification.objects.for_org(org).count() == BURST


def test_a_burst_larger_than_the_teams_capacity_fills_every_rep_and_pools_the_rest(org, member):
    manager = member(Role.MANAGER)
    reps = [make_rep(org, capacity=1000) for _ in range(6)]
    for _ in range(400):
        make_lead(org, owner=reps[0].user)  # already working 400 leads: room for 600 more
    team = make_team(org, "Sales", reps, manager=manager)
    make_rule(org, team=team)
    lead_ids = new_mqls(org, BURST)

    routed = services.route_leads(organization_id=org.pk, lead_ids=lead_ids, only_unowned=True)

    assert routed == BURST
    assert open_leads_per_rep(org) == {rep.user_id: 1000 for rep in reps}  # nobody over, everybody full
    pooled = LeadRouting.objects.for_org(org).filter(pooled=True, team=team)
    assert pooled.count() == BURST - 5 * 1000 - 600
    assert Notification.objects.for_org(org).filter(user=manager, kind="pooled").count() == pooled.count()
    # routing the burst again (a repeated task) changes nothing
    assert services.route_leads(organization_id=org.pk, lead_ids=lead_ids, only_unowned=True) == 0
    assert Assignment.objects.for_org(org).count() == BURST


def _routing_fixture(org, manager):
    """Reps of every kind (limited, restricted, paused, away, weighted) in teams of every strategy, one rule
    each, and 90 leads of varied countries and industries. Returns the reps and the leads' ids in order."""
    plain = make_rep(org, name=f"plain-{org.slug}", capacity=None)
    limited = make_rep(org, name=f"limited-{org.slug}", capacity=6)
    german = make_rep(org, name=f"german-{org.slug}", territories=["DE"], capacity=None)
    paused = make_rep(org, name=f"paused-{org.slug}", available=False)
    heavy = make_rep(org, name=f"heavy-{org.slug}", weight=3, capacity=None)
    away = make_rep(org, name=f"away-{org.slug}", away_until=timezone.now() + timedelta(days=1))
    reps = [plain, limited, german, paused, heavy, away]
    for _ in range(2):
        make_lead(org, owner=limited.user)  # two of its six already taken
    country = {"field": "country", "op": "eq"}
    make_rule(org, "finance", order=1, strategy="rep", rep=away,
              condition={"all": [{"field": "industry", "op": "eq", "value": "Finance"}]})
    make_rule(org, "germany", order=2, strategy="least_loaded",
              team=make_team(org, "Germany", [plain, german, limited]), condition={"all": [{**country, "value": "DE"}]})
    make_rule(org, "america", order=3, strategy="weighted",
              team=make_team(org, "America", [limited, heavy]), condition={"all": [{**country, "value": "US"}]})
    make_rule(org, "rest", order=4, team=make_team(org, "Sales", [plain, limited, german, paused]),
              condition={"any": [{**country, "value": "FR"}, {**country, "value": "DE"}, {**country, "value": ""}]})
    make_rule(org, "pool", strategy="pool", team=make_team(org, "Pool", [plain], manager=manager), is_fallback=True)
    countries, industries = ["US", "DE", "FR", "", "US", "IT"], ["Finance", "Retail", "", "Finance", ""]
    for index in range(90):
        make_lead(org, email=f"mixed{index:03}-{org.slug}@example.test", country=countries[index % 6],
                  industry=industries[index % 5])
    lead_ids = list(Lead.objects.for_org(org).filter(email__startswith="mixed").order_by("email")
                    .values_list("pk", flat=True))
    return reps, lead_ids


def _outcome(org, reps, lead_ids) -> list:
    """Per lead in order: the index of its rep (None: no owner), the rule that placed it, and whether it waits."""
    index = {rep.user_id: number for number, rep in enumerate(reps)}
    leads = dict(Lead.objects.for_org(org).filter(pk__in=lead_ids).values_list("pk", "owner_id"))
    states = {state.lead_id: (state.rule.name, state.pooled)
              for state in LeadRouting.objects.for_org(org).select_related("rule")}
    return [(index.get(leads[pk]), *states.get(pk, (None, None))) for pk in lead_ids]


def test_one_batch_gives_the_same_owners_as_routing_one_lead_at_a_time(org, other_org):
    one_by_one, batched = org, other_org
    results = []
    for organization, route in ((one_by_one, "each"), (batched, "batch")):
        manager = core.add_member(organization=organization, email=f"manager@{organization.slug}.test",
                                  password=None, role=Role.MANAGER).user
        reps, lead_ids = _routing_fixture(organization, manager)
        if route == "each":
            for lead_id in lead_ids:
                services.route_lead(organization_id=organization.pk, lead_id=lead_id, only_unowned=True)
        else:
            services.route_leads(organization_id=organization.pk, lead_ids=lead_ids, only_unowned=True)
        results.append(_outcome(organization, reps, lead_ids))

    assert results[0] == results[1]
    owners = Counter(rep for rep, _, _ in results[0])
    assert owners[1] == 6 - 2 and owners[3] == 0 and owners[5] == 0  # the limit held; paused and away got none
    assert {rule for _, rule, _ in results[0]} == {"germany", "america", "rest", "pool"}


def test_a_batch_takes_the_same_number_of_statements_whatever_its_size(org, member,
                                                                        django_assert_max_num_queries):
    manager = member(Role.MANAGER)
    reps = [make_rep(org, capacity=500) for _ in range(4)]
    make_rule(org, "vip", order=1, strategy="rep", rep=make_rep(org, available=False),
              condition={"all": [{"field": "country", "op": "eq", "value": "US"}]})
    make_rule(org, "sales", order=2, team=make_team(org, "Sales", reps, manager=manager), sla_minutes=30)
    make_rule(org, "pool", strategy="pool", team=make_team(org, "Pool", reps[:1], manager=manager),
              is_fallback=True)
    small, large = new_mqls(org, 3, prefix="small", country="US"), new_mqls(org, ROUTE_BATCH, prefix="large",
                                                                               country="US")

    with django_assert_max_num_queries(BATCH_STATEMENTS) as small_batch:
        assert services.route_leads(organization_id=org.pk, lead_ids=small) == 3
    with django_assert_max_num_queries(BATCH_STATEMENTS) as large_batch:
        assert services.route_leads(organization_id=org.pk, lead_ids=large) == ROUTE_BATCH

    assert len(large_batch.captured_queries) == len(small_batch.captured_queries)
    assert open_leads_per_rep(org) == {rep.user_id: 251 if number < 3 else 250 for number, rep in enumerate(reps)}


def test_a_rep_handed_many_leads_by_one_batch_gets_one_email_listing_them(org, smtp_server, monkeypatch,
                                                                          django_capture_on_commit_callbacks):
    monkeypatch.setattr(tasks.email_notifications, "delay",
                        lambda *args, **kwargs: tasks.email_notifications.apply(args=args, kwargs=kwargs))
    rep = make_rep(org, name="dana", capacity=None)
    make_rule(org, strategy="rep", rep=rep)
    lead_ids = new_mqls(org, 300)

    with django_capture_on_commit_callbacks(execute=True):
        services.route_leads(organization_id=org.pk, lead_ids=lead_ids, only_unowned=True)

    [message] = smtp_server.messages
    assert message["To"] == "dana@acme.test" and message["Subject"] == "300 new leads for you"
    body = message.get_content()
    assert all(f"/leads/{lead_id}/" in body for lead_id in lead_ids)
    assert not Notification.objects.for_org(org).filter(emailed_at__isnull=True).exists()


@pytest.mark.django_db(transaction=True)
def test_two_workers_routing_overlapping_batches_at_once_never_exceed_capacity(org):
    reps = [make_rep(org, capacity=40) for _ in range(3)]
    make_rule(org, team=make_team(org, "Sales", reps))
    lead_ids = new_mqls(org, 300)
    batches = [lead_ids[:200], list(reversed(lead_ids[100:]))]  # a hundred leads in both, in opposite orders

    run_at_once(2, lambda index: services.route_leads(organization_id=org.pk, lead_ids=batches[index],
                                                      only_unowned=True))

    assert open_leads_per_rep(org) == {rep.user_id: 40 for rep in reps}
    per_lead = Counter(Assignment.objects.filter(lead_id__in=lead_ids).values_list("lead_id", flat=True))
    assert len(per_lead) == 300 and set(per_lead.values()) == {1}  # each lead routed (or pooled) once
    assert LeadRouting.objects.filter(Q(pooled=True), lead_id__in=lead_ids).count() == 300 - 120


def test_a_batch_emails_each_rep_once_and_a_retry_after_one_failed_mail_sends_only_the_rest(
        org, smtp_server, monkeypatch, django_capture_on_commit_callbacks):
    queued = []
    monkeypatch.setattr(tasks.email_notifications, "delay", lambda *args, **kwargs: queued.append((args, kwargs)))
    reps = [make_rep(org, name=name, capacity=None) for name in ("ann", "bob", "cy")]
    make_rule(org, team=make_team(org, "Sales", reps))
    with django_capture_on_commit_callbacks(execute=True):
        services.route_leads(organization_id=org.pk, lead_ids=new_mqls(org, 9), only_unowned=True)
    [(args, kwargs)] = queued  # one task for the whole batch

    real_send = tasks.send_mail

    def bob_unreachable(**message):
        if message["recipient_list"] == ["bob@acme.test"]:
            raise ConnectionRefusedError("mail server hung up")
        return real_send(**message)

    monkeypatch.setattr(tasks, "send_mail", bob_unreachable)
    with pytest.raises(ConnectionRefusedError):
        tasks.email_notifications.run(*args, **kwargs)
    monkeypatch.setattr(tasks, "send_mail", real_send)
    assert tasks.email_notifications.run(*args, **kwargs) == 6  # bob's three, then cy's: ann's were sent before

    assert sorted(message["To"] for message in smtp_server.messages) == ["ann@acme.test", "bob@acme.test",
                                                                           "cy@acme.test"]
    assert all(message["Subject"] == "3 new leads for you" for message in smtp_server.messages)
