"""The browser pages of distribution: the rep's queue and its quick actions, the badge and notifications, the pool,
the team page, the lead page's Distribution card and the bulk actions of the lead list."""

from datetime import timedelta

import pytest
from django.utils import timezone

from leadcrm import services as tenancy
from leadcrm.models import Role
from leads.models import Activity, Lead, LifecycleStage, QualificationSettings, Temperature
from routing.models import Assignment, AssignmentReason, LeadRouting, Notification, RepProfile
from tests.routing import make_lead, make_rep, make_rule, make_team, route

pytestmark = pytest.mark.django_db

HTMX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture
def rep(org):
    return make_rep(org, "rita")


@pytest.fixture
def sales(org, rep):
    """A team of one rep with a 15-minute first-touch deadline, taking every lead."""
    team = make_team(org, "Sales", [rep])
    make_rule(org, "everyone", team=team, sla_minutes=15, is_fallback=True)
    return team


@pytest.fixture
def rep_client(client, rep):
    client.force_login(rep.user)
    return client


def routed(org, **fields):
    lead = make_lead(org, **fields)
    route(lead)
    lead.refresh_from_db()
    return lead


def queue_order(content: str, leads) -> list:
    return sorted(leads, key=lambda lead: content.index(f'id="q-{lead.pk}"'))


# --------------------------------------------------------------------------------------------- the queue


def test_queue_shows_own_open_leads_overdue_then_hottest_with_names_escaped(org, sales, rep, rep_client):
    cold = routed(org, first_name="Cold", temperature=Temperature.COLD, company="Frost Ltd")
    hot = routed(org, first_name="<script>x</script>", temperature=Temperature.HOT, score=80)
    late = routed(org, first_name="Late", temperature=Temperature.WARM)
    LeadRouting.objects.filter(lead=late).update(sla_due_at=timezone.now() - timedelta(minutes=5))
    LeadRouting.objects.filter(lead__in=[cold, hot]).update(sla_due_at=None)
    closed = routed(org, first_name="Closed")
    Lead.objects.filter(pk=closed.pk).update(lifecycle_stage=LifecycleStage.CUSTOMER)
    someone_else = make_lead(org, first_name="Notmine")

    response = rep_client.get("/queue/")

    assert response.status_code == 200
    content = response.content.decode()
    assert queue_order(content, [cold, hot, late]) == [late, hot, cold]
    assert "&lt;script&gt;x&lt;/script&gt;" in content and "<script>x</script>" not in content
    assert "Frost Ltd" in content and "overdue by" in content
    assert "Closed" not in content and str(someone_else.pk) not in content


def test_queue_row_shows_time_left_score_grade_and_convert_link(org, sales, rep_client):
    lead = routed(org, first_name="Quinn", score=42, grade="A")
    Lead.objects.filter(pk=lead.pk).update(lifecycle_stage=LifecycleStage.SQL)

    content = rep_client.get("/queue/").content.decode()

    assert "left" in content and ">42<" in content and "grade-A" in content
    assert f"/leads/{lead.pk}/convert/" in content


@pytest.mark.parametrize("htmx", [True, False], ids=["htmx", "plain"])
def test_logging_a_call_records_it_and_stops_the_sla_clock(org, sales, rep, rep_client, htmx,
                                                           django_capture_on_commit_callbacks):
    lead = routed(org, first_name="Callme")
    assert LeadRouting.objects.get(lead=lead).sla_due_at is not None

    with django_capture_on_commit_callbacks(execute=True):
        response = rep_client.post(f"/queue/leads/{lead.pk}/touch/", {"type": "call", "note": "Left a voicemail"},
                                   **(HTMX if htmx else {}))

    activity = Activity.objects.get(lead=lead, type="call")
    assert activity.actor == rep.user and activity.properties == {"note": "Left a voicemail"}
    routing = LeadRouting.objects.get(lead=lead)
    assert routing.first_touch_at is not None and routing.sla_due_at is None
    if htmx:
        assert response.status_code == 200
        assert response.content.decode().startswith(f'<tr id="q-{lead.pk}"')
        assert "Call logged" in response.content.decode()
        assert response["HX-Trigger"] == "queue-changed"
    else:
        assert response.status_code == 302 and response.url == "/queue/"


def test_a_note_needs_its_text(org, sales, rep_client):
    lead = routed(org)
    response = rep_client.post(f"/queue/leads/{lead.pk}/touch/", {"type": "note", "note": ""}, **HTMX)
    assert response.status_code == 400
    assert "Write the note." in response.content.decode()
    assert not Activity.objects.filter(lead=lead, type="note").exists()


@pytest.mark.parametrize("htmx", [True, False], ids=["htmx", "plain"])
def test_accept_moves_the_lead_to_sal(org, sales, rep_client, htmx):
    lead = routed(org, first_name="Ada")
    response = rep_client.post(f"/queue/leads/{lead.pk}/stage/", {"stage": "sal"}, **(HTMX if htmx else {}))
    lead.refresh_from_db()
    assert lead.lifecycle_stage == LifecycleStage.SAL
    if htmx:
        assert response.status_code == 200
        assert f"Ada moved to {LifecycleStage.SAL.label}." in response.content.decode()
        assert 'value="sql"' in response.content.decode()  # the row now offers the next step
    else:
        assert response.status_code == 302


@pytest.mark.parametrize("htmx", [True, False], ids=["htmx", "plain"])
def test_qualify_without_bant_answers_shows_the_refusal_in_the_row(org, sales, rep_client, htmx):
    QualificationSettings.objects.filter(organization=org).update(bant_required_for_sql=["bant_budget"])
    lead = routed(org, first_name="Bant")
    Lead.objects.filter(pk=lead.pk).update(lifecycle_stage=LifecycleStage.SAL)

    response = rep_client.post(f"/queue/leads/{lead.pk}/stage/", {"stage": "sql"}, **(HTMX if htmx else {}))

    assert response.status_code == 400
    content = response.content.decode()
    assert "budget" in content.lower() and 'role="alert"' in content
    if htmx:
        assert content.startswith(f'<tr id="q-{lead.pk}"')
    else:
        assert "My queue" in content
    assert Lead.objects.get(pk=lead.pk).lifecycle_stage == LifecycleStage.SAL


@pytest.mark.parametrize(("stage", "reason"), [("disqualified", "Not a fit"), ("recycled", "Not ready to buy yet")])
def test_disqualify_and_recycle_take_a_reason_and_the_lead_leaves_the_queue(org, sales, rep_client, stage, reason):
    lead = routed(org, first_name="Gone")

    refused = rep_client.post(f"/queue/leads/{lead.pk}/stage/", {"stage": stage, "reason": "made up"}, **HTMX)
    assert refused.status_code == 400 and Lead.objects.get(pk=lead.pk).lifecycle_stage == LifecycleStage.MQL

    response = rep_client.post(f"/queue/leads/{lead.pk}/stage/", {"stage": stage, "reason": reason}, **HTMX)

    assert response.status_code == 200
    assert "left this queue" in response.content.decode()
    lead.refresh_from_db()
    assert (lead.lifecycle_stage, lead.stage_reason) == (stage, reason)
    assert str(lead.pk) not in rep_client.get("/queue/").content.decode()


def test_queue_offers_the_orgs_reasons(org, sales, rep_client):
    routed(org)
    content = rep_client.get("/queue/").content.decode()
    assert "Not a fit" in content and "Timing: ask again later" in content


def test_bad_stage_is_a_400_not_a_500(org, sales, rep_client):
    lead = routed(org)
    response = rep_client.post(f"/queue/leads/{lead.pk}/stage/", {"stage": "customer"})
    assert response.status_code == 400


def test_rep_cannot_act_on_another_reps_lead(org, sales, client):
    lead = routed(org)
    client.force_login(make_rep(org, "other").user)
    assert client.post(f"/queue/leads/{lead.pk}/stage/", {"stage": "sal"}).status_code == 404
    assert client.post(f"/queue/leads/{lead.pk}/touch/", {"type": "call"}).status_code == 404
    assert Lead.objects.get(pk=lead.pk).lifecycle_stage == LifecycleStage.MQL


def test_queue_query_count_does_not_grow_with_leads(org, sales, rep_client, django_assert_max_num_queries):
    for _ in range(3):
        routed(org)
    with django_assert_max_num_queries(12) as few:
        rep_client.get("/queue/")
    for _ in range(12):
        routed(org)
    with django_assert_max_num_queries(len(few.captured_queries)):
        response = rep_client.get("/queue/")
    assert response.content.decode().count('id="q-') == 15


# --------------------------------------------------------------------------------------------- badge, notifications


def test_badge_counts_open_leads_and_unread_notifications_and_changes_after_routing(org, sales, rep_client):
    response = rep_client.get("/queue/badge/", **HTMX)
    assert 'title="Open leads in your queue">0<' in response.content.decode()
    assert "new" not in response.content.decode()

    lead = routed(org, first_name="Fresh")

    content = rep_client.get("/queue/badge/", **HTMX).content.decode()
    assert 'title="Open leads in your queue">1<' in content
    assert "1 new" in content

    page = rep_client.get("/queue/notifications/").content.decode()
    assert "New lead for you" in page and f"/leads/{lead.pk}/" in page and "badge unread" in page
    assert not Notification.objects.filter(user=sales.members.get().user, read_at__isnull=True).exists()
    assert "new" not in rep_client.get("/queue/badge/", **HTMX).content.decode()


def test_nav_has_queue_badge_for_reps_and_team_for_managers(org, rep_client, client, member):
    content = rep_client.get("/leads/").content.decode()
    assert 'hx-get="/queue/badge/"' in content and 'hx-trigger="load, every 5s' in content
    assert 'href="/team/"' not in content

    client.force_login(member(Role.MANAGER))
    assert 'href="/team/"' in client.get("/leads/").content.decode()


def test_badge_of_a_signed_out_browser_stops_polling(client):
    assert client.get("/queue/badge/", **HTMX).status_code == 286


def test_notification_message_is_escaped(org, sales, rep_client):
    routed(org, first_name="<b>bold</b>")
    content = rep_client.get("/queue/notifications/").content.decode()
    assert "&lt;b&gt;bold&lt;/b&gt;" in content and "<b>bold</b>" not in content


# --------------------------------------------------------------------------------------------- pool


@pytest.fixture
def pool_team(org):
    team = make_team(org, "Pool team", [make_rep(org, "ann"), make_rep(org, "ben")])
    make_rule(org, "to the pool", strategy="pool", team=team, is_fallback=True)
    return team


def test_pool_lists_unclaimed_leads_and_the_race_loser_is_told_who_won(org, pool_team, client):
    ann, ben = (RepProfile.objects.get(organization=org, user__email=f"{n}@acme.test").user for n in ("ann", "ben"))
    lead = routed(org, first_name="Pooled")
    outsider_lead = routed(org, first_name="Elsewhere")
    LeadRouting.objects.filter(lead=outsider_lead).update(team=make_team(org, "Other", [make_rep(org)]))

    client.force_login(ann)
    page = client.get("/queue/pool/").content.decode()
    assert "Pooled" in page and "Elsewhere" not in page and f"/queue/pool/{lead.pk}/claim/" in page

    won = client.post(f"/queue/pool/{lead.pk}/claim/", **HTMX)
    assert won.status_code == 200 and "is yours" in won.content.decode()
    assert Lead.objects.get(pk=lead.pk).owner == ann

    client.force_login(ben)
    lost = client.post(f"/queue/pool/{lead.pk}/claim/", **HTMX)
    assert lost.status_code == 409
    assert "Already claimed by ann@acme.test" in lost.content.decode()

    plain = client.post(f"/queue/pool/{lead.pk}/claim/", follow=True)
    assert "Already claimed by ann@acme.test" in plain.content.decode()
    assert Lead.objects.get(pk=lead.pk).owner == ann


def test_claim_without_htmx_goes_to_the_queue(org, pool_team, client):
    lead = routed(org, first_name="Plainclaim")
    client.force_login(RepProfile.objects.get(organization=org, user__email="ann@acme.test").user)
    response = client.post(f"/queue/pool/{lead.pk}/claim/")
    assert response.status_code == 302 and response.url == "/queue/"
    assert Assignment.objects.filter(lead=lead, reason=AssignmentReason.CLAIM).count() == 1


# --------------------------------------------------------------------------------------------- team


@pytest.fixture
def manager(org, member):
    return member(Role.MANAGER, "boss@acme.test")


@pytest.fixture
def managed(org, manager):
    reps = [make_rep(org, "tom", capacity=5), make_rep(org, "uma", capacity=10)]
    team = make_team(org, "Closers", reps, manager=manager)
    make_rule(org, "closers", team=team, sla_minutes=15, is_fallback=True)
    return team, reps


def test_team_page_shows_load_and_pause_resume(org, managed, manager, client):
    team, (tom, uma) = managed
    routed(org)
    late = routed(org)
    routed(org)
    LeadRouting.objects.filter(lead=late).update(sla_due_at=timezone.now() - timedelta(minutes=1))
    late_owner = Lead.objects.get(pk=late.pk).owner
    client.force_login(manager)

    content = client.get("/team/").content.decode()

    assert "Closers" in content
    opens = {rep.user.email: Lead.objects.filter(owner=rep.user).count() for rep in (tom, uma)}
    assert f"{opens['tom@acme.test']} / 5" in content and f"{opens['uma@acme.test']} / 10" in content
    assert 'class="sla-overdue">1<' in content
    assert f"/queue/?rep={late_owner.pk}" in content

    response = client.post(f"/team/reps/{tom.user_id}/availability/", {"available": "0"}, **HTMX)
    assert response.status_code == 200 and "is paused" in response.content.decode()
    assert RepProfile.objects.get(pk=tom.pk).available is False
    assert "Resume" in response.content.decode()
    client.post(f"/team/reps/{tom.user_id}/availability/", {"available": "1"})
    assert RepProfile.objects.get(pk=tom.pk).available is True


def test_manager_cannot_pause_a_rep_outside_their_teams(org, managed, manager, client, rep):
    client.force_login(manager)
    assert client.post(f"/team/reps/{rep.user_id}/availability/", {"available": "0"}).status_code == 404
    assert RepProfile.objects.get(pk=rep.pk).available is True


def test_team_page_query_count_does_not_grow_with_reps(org, managed, manager, client,
                                                       django_assert_max_num_queries):
    team, reps = managed
    client.force_login(manager)
    with django_assert_max_num_queries(12) as few:
        client.get("/team/")
    from routing import services

    services.save_team(organization_id=org.pk, instance=team,
                       data={"members": [*reps, *(make_rep(org) for _ in range(8))]})
    for _ in range(10):
        routed(org)
    with django_assert_max_num_queries(len(few.captured_queries)):
        response = client.get("/team/")
    assert response.content.decode().count("Pause") >= 10


def test_reps_get_404_on_team_and_on_another_reps_queue(org, managed, rep_client):
    team, (tom, _) = managed
    assert rep_client.get("/team/").status_code == 403
    assert rep_client.get(f"/queue/?rep={tom.user_id}").status_code == 404
    assert rep_client.get("/queue/?rep=nonsense").status_code == 404
    assert rep_client.post(f"/team/reps/{tom.user_id}/availability/", {"available": "0"}).status_code == 403


def test_manager_reads_a_reps_queue_and_reassigns_many(org, managed, manager, client):
    team, (tom, uma) = managed
    make_rule(org, "only tom", strategy="rep", rep=tom, order=1)
    leads = [routed(org, first_name=f"Lead{i}") for i in range(3)]
    assert {lead.owner_id for lead in leads} == {tom.user_id}
    client.force_login(manager)

    page = client.get(f"/queue/?rep={tom.user_id}").content.decode()
    assert "Queue of tom@acme.test" in page and 'form="queue-bulk"' in page and "Lead0" in page

    response = client.post("/leads/routing/bulk/", {
        "action": "reassign", "rep": uma.user_id, "lead": [str(leads[0].pk), str(leads[1].pk)],
        "next": f"/queue/?rep={tom.user_id}"})

    assert response.status_code == 302 and response.url == f"/queue/?rep={tom.user_id}"
    owners = dict(Lead.objects.filter(pk__in=[lead.pk for lead in leads]).values_list("pk", "owner_id"))
    assert owners == {leads[0].pk: uma.user_id, leads[1].pk: uma.user_id, leads[2].pk: tom.user_id}
    assert Assignment.objects.filter(reason=AssignmentReason.MANUAL, actor=manager).count() == 2


def test_manager_cannot_read_a_queue_outside_their_teams(org, managed, manager, client, rep):
    client.force_login(manager)
    assert client.get(f"/queue/?rep={rep.user_id}").status_code == 404


# --------------------------------------------------------------------------------------------- lead page card


def test_lead_page_loads_the_card_which_shows_owner_speed_and_history(org, sales, rep, client, member):
    lead = routed(org, first_name="Carded")
    client.force_login(member(Role.ADMIN, "chief@acme.test"))
    assert f'hx-get="/leads/{lead.pk}/routing/"' in client.get(f"/leads/{lead.pk}/").content.decode()

    card = client.get(f"/leads/{lead.pk}/routing/", **HTMX).content.decode()

    assert "rita@acme.test" in card and "Sales" in card and "Speed to lead" in card
    assert "Assignment rule" in card or "Fallback rule" in card
    assert "everyone" in card and "Round robin" in card
    assert "Route now" in card and "Re-assign to" in card


def test_route_now_from_the_card_records_who_did_it(org, sales, rep, client, member):
    lead = make_lead(org, first_name="Unrouted")
    marketer = member(Role.MARKETER)
    client.force_login(marketer)
    before = client.get(f"/leads/{lead.pk}/routing/", **HTMX).content.decode()
    assert "Never routed" in before and "Route now" in before and "Re-assign to" not in before

    response = client.post(f"/leads/{lead.pk}/routing/route/", **HTMX)

    assert response.status_code == 200
    content = response.content.decode()
    assert "goes to rita@acme.test" in content and "Routed by hand" in content and marketer.email in content
    assignment = Assignment.objects.get(lead=lead)
    assert (assignment.reason, assignment.actor, assignment.rep) == (AssignmentReason.ROUTE_NOW, marketer, rep.user)


def test_route_now_without_a_rule_says_so(org, client, member):
    lead = make_lead(org)
    client.force_login(member(Role.ADMIN, "chief@acme.test"))
    response = client.post(f"/leads/{lead.pk}/routing/route/", **HTMX)
    assert response.status_code == 409 and "Not routed" in response.content.decode()
    plain = client.post(f"/leads/{lead.pk}/routing/route/", follow=True)
    assert "Not routed" in plain.content.decode()


def test_reassign_from_the_card(org, managed, manager, client):
    team, (tom, uma) = managed
    lead = routed(org)
    other = uma if lead.owner_id == tom.user_id else tom
    client.force_login(manager)

    bad = client.post(f"/leads/{lead.pk}/routing/reassign/", {"rep": "999999"}, **HTMX)
    assert bad.status_code == 400

    response = client.post(f"/leads/{lead.pk}/routing/reassign/", {"rep": other.user_id})
    assert response.status_code == 302 and response.url == f"/leads/{lead.pk}/"
    assert Lead.objects.get(pk=lead.pk).owner_id == other.user_id


def test_reps_cannot_route_or_reassign(org, sales, rep_client):
    lead = routed(org)
    assert rep_client.post(f"/leads/{lead.pk}/routing/route/").status_code == 403
    assert rep_client.post(f"/leads/{lead.pk}/routing/reassign/", {"rep": lead.owner_id}).status_code == 403
    card = rep_client.get(f"/leads/{lead.pk}/routing/").content.decode()
    assert "Route now" not in card and "rita@acme.test" in card


# --------------------------------------------------------------------------------------------- lead list bulk


def test_lead_list_bulk_route_now_and_reassign(org, managed, manager, client):
    team, (tom, uma) = managed
    leads = [make_lead(org, first_name=f"Bulk{i}") for i in range(2)]
    client.force_login(manager)
    page = client.get("/leads/").content.decode()
    assert 'form="bulk"' in page and 'formaction="/leads/routing/bulk/"' in page  # the list's bulk bar

    response = client.post("/leads/routing/bulk/", {"action": "route", "lead": [str(lead.pk) for lead in leads],
                                                    "next": "/leads/"}, follow=True)

    assert "Routed 2 of 2 leads." in response.content.decode()
    assert Assignment.objects.filter(lead__in=leads, reason=AssignmentReason.ROUTE_NOW, actor=manager).count() == 2

    asked = client.post("/leads/routing/bulk/", {"action": "reassign", "lead": [str(leads[0].pk)]})
    assert asked.status_code == 200 and "Re-assign 1 lead" in asked.content.decode()
    assert "uma@acme.test" in asked.content.decode()
    client.post("/leads/routing/bulk/", {"action": "reassign", "lead": [str(leads[0].pk)], "rep": uma.user_id})
    assert Lead.objects.get(pk=leads[0].pk).owner_id == uma.user_id


def test_bulk_refuses_nothing_selected_and_reps(org, managed, manager, rep_client):
    lead = make_lead(org)
    assert rep_client.post("/leads/routing/bulk/", {"action": "route", "lead": [str(lead.pk)]}).status_code == 403
    rep_client.force_login(manager)
    assert rep_client.post("/leads/routing/bulk/", {"action": "route"}).status_code == 400
    assert rep_client.post("/leads/routing/bulk/", {"action": "route", "lead": ["not-an-id"]}).status_code == 400
    assert not Assignment.objects.filter(lead=lead).exists()


# --------------------------------------------------------------------------------------------- other orgs


def test_another_orgs_leads_teams_and_reps_are_404(org, other_org, sales, rep, client):
    lead = routed(org, first_name="Victim")
    outsider = tenancy.add_member(organization=other_org, email="boss@rival.test", password=None,
                                  role=Role.ADMIN).user
    client.force_login(outsider)
    assert client.get(f"/leads/{lead.pk}/routing/").status_code == 404
    assert client.post(f"/leads/{lead.pk}/routing/route/").status_code == 404
    assert client.post(f"/leads/{lead.pk}/routing/reassign/", {"rep": rep.user_id}).status_code == 404
    assert client.post(f"/queue/leads/{lead.pk}/stage/", {"stage": "sal"}).status_code == 404
    assert client.post(f"/queue/leads/{lead.pk}/touch/", {"type": "call"}).status_code == 404
    assert client.post(f"/queue/pool/{lead.pk}/claim/").status_code == 404
    assert client.get(f"/queue/?rep={rep.user_id}").status_code == 404
    assert client.post(f"/team/reps/{rep.user_id}/availability/", {"available": "0"}).status_code == 404
    assert client.post("/leads/routing/bulk/", {"action": "route", "lead": [str(lead.pk)]}).status_code == 404
    team_page = client.get("/team/").content.decode()
    assert "Sales" not in team_page and "rita@acme.test" not in team_page
    assert Lead.objects.get(pk=lead.pk).lifecycle_stage == LifecycleStage.MQL
    assert RepProfile.objects.get(pk=rep.pk).available is True
