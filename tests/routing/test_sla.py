"""First-touch deadlines with a controlled clock: touched in time, re-assigned, escalated; working hours."""

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.utils import timezone

from leadcrm import claims
from leadcrm.models import Role
from leads.models import Activity, ActivityType, Lead
from routing import services
from routing.hours import HoursError, add_working_minutes, clean_working_hours, is_working
from routing.models import Assignment, AssignmentReason, LeadRouting, Notification, NotificationKind
from tests.routing import make_lead, make_rep, make_rule, make_team, route

pytestmark = pytest.mark.django_db

NINE_TO_FIVE = {"timezone": "Europe/Berlin", "days": [1, 2, 3, 4, 5], "start": "09:00", "end": "17:00"}
BERLIN = ZoneInfo("Europe/Berlin")


def berlin(*args) -> datetime:
    return datetime(*args, tzinfo=BERLIN)


def test_working_minutes_run_only_inside_the_hours():
    friday_late = berlin(2026, 11, 27, 16, 50)  # a Friday
    assert add_working_minutes(NINE_TO_FIVE, friday_late, 15) == berlin(2026, 11, 30, 9, 5)  # Monday
    assert add_working_minutes(NINE_TO_FIVE, berlin(2026, 11, 28, 12, 0), 15) == berlin(2026, 11, 30, 9, 15)
    assert add_working_minutes(NINE_TO_FIVE, berlin(2026, 11, 30, 10, 0), 15) == berlin(2026, 11, 30, 10, 15)
    assert add_working_minutes({}, friday_late, 15) == friday_late + timedelta(minutes=15)


def test_is_working():
    assert is_working(NINE_TO_FIVE, berlin(2026, 11, 30, 9, 0))
    assert not is_working(NINE_TO_FIVE, berlin(2026, 11, 30, 17, 0))
    assert not is_working(NINE_TO_FIVE, berlin(2026, 11, 29, 12, 0))  # Sunday
    assert is_working({}, berlin(2026, 11, 29, 3, 0))


@pytest.mark.parametrize("hours, key", [
    ({**NINE_TO_FIVE, "start": "18:00"}, "end"),
    ({**NINE_TO_FIVE, "timezone": "Mars/Olympus"}, "timezone"),
    ({**NINE_TO_FIVE, "days": [0]}, "days"),
    ({**NINE_TO_FIVE, "days": []}, "days"),
    ({**NINE_TO_FIVE, "start": "9am"}, "start"),
    ({"timezone": "UTC"}, "days"),
    ({**NINE_TO_FIVE, "lunch": "12:00"}, "lunch"),
])
def test_working_hours_that_make_no_sense_are_refused(hours, key):
    with pytest.raises(HoursError) as refused:
        clean_working_hours(hours)
    assert key in refused.value.errors


def setup_sla(org, member, *, reps=3, max_reassignments=2, **rule):
    manager = member(Role.MANAGER)
    team_reps = [make_rep(org, name=f"sla{i}") for i in range(reps)]
    team = make_team(org, "Sales", team_reps, manager=manager)
    make_rule(org, team=team, sla_minutes=15, max_reassignments=max_reassignments, **rule)
    return manager, team_reps


def test_a_missed_deadline_reassigns_to_the_next_rep(org, member):
    _, reps = setup_sla(org, member)
    start = timezone.now()
    lead = make_lead(org)
    route(lead, now=start)

    assert services.check_deadlines(now=start + timedelta(minutes=14)) == {}
    outcome = services.check_deadlines(now=start + timedelta(minutes=16))

    assert outcome == {"reassigned": 1}
    lead.refresh_from_db()
    assert lead.owner_id == reps[1].user_id
    routing = LeadRouting.objects.get(lead=lead)
    assert routing.reassignments == 1
    assert routing.sla_due_at == start + timedelta(minutes=31)
    assert routing.first_sla_due_at == start + timedelta(minutes=15)  # the first deadline stays, for the reports
    last = Assignment.objects.filter(lead=lead).latest("created_at")
    assert (last.reason, last.previous_rep_id) == (AssignmentReason.SLA, reps[0].user_id)


def test_after_the_last_reassignment_the_manager_gets_it(org, member):
    manager, reps = setup_sla(org, member, max_reassignments=2)
    start = timezone.now()
    lead = make_lead(org)
    route(lead, now=start)

    outcomes = [services.check_deadlines(now=start + timedelta(minutes=16 * n)) for n in (1, 2, 3, 4)]

    assert outcomes == [{"reassigned": 1}, {"reassigned": 1}, {"escalated": 1}, {}]
    lead.refresh_from_db()
    assert lead.owner_id == manager.pk
    owners = list(Assignment.objects.filter(lead=lead).order_by("created_at").values_list("rep_id", flat=True))
    assert owners == [reps[0].user_id, reps[1].user_id, reps[2].user_id, manager.pk]  # no rep twice
    routing = LeadRouting.objects.get(lead=lead)
    assert routing.escalated_at is not None and routing.sla_due_at is None
    assert Notification.objects.filter(user=manager, kind=NotificationKind.ESCALATED, lead=lead).exists()


def test_a_deadline_claimed_by_a_tick_that_died_is_handled_once_its_lease_ends(org, member, settings):
    _, reps = setup_sla(org, member)
    start = timezone.now()
    lead = make_lead(org)
    route(lead, now=start)
    missed = start + timedelta(minutes=16)
    lease = timedelta(seconds=settings.ROUTING_SLA_LEASE_SECONDS)
    claims.claim(LeadRouting.objects.for_org(org), due="sla_due_at", limit=10, now=missed, lease=lease)  # then died

    assert services.check_deadlines(now=missed + lease - timedelta(seconds=1)) == {}  # another tick keeps off
    assert services.check_deadlines(now=missed + lease) == {"reassigned": 1}
    assert Lead.objects.get(pk=lead.pk).owner_id == reps[1].user_id
    assert services.check_deadlines(now=missed + 2 * lease) == {}


def test_escalates_when_no_other_rep_can_take_it(org, member):
    manager, reps = setup_sla(org, member, reps=1, max_reassignments=5)
    start = timezone.now()
    lead = make_lead(org)
    route(lead, now=start)

    assert services.check_deadlines(now=start + timedelta(minutes=16)) == {"escalated": 1}
    assert Lead.objects.get(pk=lead.pk).owner_id == manager.pk


def test_a_touch_logged_before_the_deadline_is_found_even_without_the_handler(org, member):
    _, reps = setup_sla(org, member)
    start = timezone.now()
    lead = make_lead(org)
    route(lead, now=start)
    # written straight to the table: the beat still sees it when the on-commit handler never ran
    Activity.objects.create(organization=org, lead=lead, type=ActivityType.CALL,
                            occurred_at=start + timedelta(minutes=5))

    assert services.check_deadlines(now=start + timedelta(minutes=16)) == {"touched": 1}
    assert Lead.objects.get(pk=lead.pk).owner_id == reps[0].user_id
    assert LeadRouting.objects.get(lead=lead).first_touch_at == start + timedelta(minutes=5)


def test_the_deadline_counts_working_hours_of_the_rep(org, member):
    manager = member(Role.MANAGER)
    rep = make_rep(org, working_hours=NINE_TO_FIVE)
    make_rule(org, team=make_team(org, "Sales", [rep], manager=manager), sla_minutes=15)
    lead = make_lead(org)

    route(lead, now=berlin(2026, 11, 27, 16, 50))

    assert LeadRouting.objects.get(lead=lead).sla_due_at == berlin(2026, 11, 30, 9, 5)


def test_leads_without_sla_never_come_due(org, member):
    make_rule(org, team=make_team(org, "Sales", [make_rep(org)]))
    lead = make_lead(org)
    route(lead)

    assert LeadRouting.objects.get(lead=lead).sla_due_at is None
    assert services.check_deadlines(now=timezone.now() + timedelta(days=30)) == {}
