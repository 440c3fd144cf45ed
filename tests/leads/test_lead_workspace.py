"""The lead page as a rep's workspace: logging a touch with its outcome in place, editing the contact and company
details in place (the API's checks, never a 500 or half a change), the lead at a glance, and Previous / Next
through the list or queue the page was opened from."""

import re
from datetime import timedelta
from html import unescape
from urllib.parse import quote

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from leadcrm import policy
from leadcrm.models import Role
from leadcrm.paging import neighbours
from leads import services
from leads.models import Activity, Lead, LifecycleStage, Temperature
from routing import selectors as routing_selectors
from routing.models import LeadRouting
from scoring import tasks as scoring_tasks
from tests.routing import make_lead, make_rep, make_rule, make_team, route

pytestmark = pytest.mark.django_db

HTMX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture
def rep_profile(org):
    return make_rep(org, "rita")


@pytest.fixture
def rep(rep_profile):
    return rep_profile.user


@pytest.fixture
def sales(org, rep_profile):
    """Every lead goes to Rita's team with a 15-minute first-touch deadline."""
    team = make_team(org, "Sales", [rep_profile])
    make_rule(org, "everyone", team=team, sla_minutes=15, is_fallback=True)
    return team


@pytest.fixture
def rep_client(client, rep):
    client.force_login(rep)
    return client


def owned(org, owner, **fields):
    fields.setdefault("email", f"{fields.get('first_name', 'x').lower()}.{Lead.objects.count()}@example.com")
    return make_lead(org, owner=owner, **fields)


@pytest.fixture
def scored(monkeypatch):
    """The leads scoring was asked to score (the scoring task is queued by the activity and update events)."""
    asked = []
    monkeypatch.setattr(scoring_tasks.score_lead, "delay", lambda org_id, lead_id: asked.append(lead_id))
    return asked


# ----------------------------------------------------------------------------------------------- log a touch


def test_a_rep_logs_a_call_with_its_outcome_in_place(org, sales, rep, rep_client, scored,
                                                     django_capture_on_commit_callbacks):
    lead = make_lead(org, first_name="Vera")
    route(lead)
    assert LeadRouting.objects.get(lead=lead).sla_due_at is not None
    with django_capture_on_commit_callbacks(execute=True):
        response = rep_client.post(f"/leads/{lead.pk}/log/", {
            "type": "call", "outcome": "left_voicemail", "note": "Call back <Tuesday>", "occurred_at": "",
            "from": "queue"}, **HTMX)

    assert response.status_code == 200
    html = response.content.decode()
    activity = Activity.objects.get(lead=lead, type="call")
    assert activity.properties == {"outcome": "left_voicemail", "note": "Call back <Tuesday>"}
    assert activity.actor == rep
    assert html.lstrip().startswith('<form id="log-activity"') and "Call logged." in html
    timeline = re.search(r'<section id="timeline".*?</section>', html, re.S).group(0)
    assert 'hx-swap-oob="true"' in timeline  # the timeline comes along, the new call at its top
    first = re.search(r"<li[^>]*>(.*?)</li>", timeline, re.S).group(0)
    assert 'class="new"' in first and "Left voicemail" in first and "Call back &lt;Tuesday&gt;" in first
    assert 'name="from" value="queue"' in html  # the fresh form keeps the list the page came from
    assert response["HX-Trigger"] == "touch-logged"
    routing = LeadRouting.objects.get(lead=lead)
    assert routing.first_touch_at is not None and routing.sla_due_at is None  # the SLA clock stopped
    assert str(lead.pk) in scored  # and scoring counts it like any activity


def test_without_scripts_logging_redirects_to_the_page_and_keeps_the_list(org, rep, rep_client):
    lead = owned(org, rep, first_name="Nora")
    response = rep_client.post(f"/leads/{lead.pk}/log/", {"type": "meeting", "outcome": "held", "note": "Demo done",
                                                           "from": "list:grade=A"})
    assert response.status_code == 302
    assert response.url == f"/leads/{lead.pk}/?from=list%3Agrade%3DA"
    assert Activity.objects.get(lead=lead, type="meeting").properties == {"outcome": "held", "note": "Demo done"}
    page = rep_client.get(response.url).content.decode()
    assert "Meeting logged." in page and "Held" in page


def test_a_touch_may_be_dated_in_the_viewers_timezone_but_not_in_the_future(org, rep, rep_client):
    lead = owned(org, rep, first_name="Theo")
    rep_client.cookies["tz"] = "Asia/Tokyo"
    response = rep_client.post(f"/leads/{lead.pk}/log/", {"type": "email_logged", "outcome": "replied",
                                                           "occurred_at": "2024-03-01T09:30"}, **HTMX)
    assert response.status_code == 200
    stored = Activity.objects.get(lead=lead, type="email_logged").occurred_at
    assert stored.isoformat() == "2024-03-01T00:30:00+00:00"
    future = (timezone.localtime() + timedelta(days=2)).strftime("%Y-%m-%dT%H:%M")
    response = rep_client.post(f"/leads/{lead.pk}/log/", {"type": "call", "occurred_at": future}, **HTMX)
    assert response.status_code == 400
    assert "That is in the future" in response.content.decode()


@pytest.mark.parametrize(("body", "message"), [
    ({"type": "call", "outcome": "held"}, "Choose how a call went"),  # a meeting's outcome on a call
    ({"type": "note", "note": "  "}, "Write the note."),
    ({"type": "note", "note": "x", "outcome": "connected"}, "Note has no outcome"),
    ({"type": "fax"}, "Select a valid choice"),
    ({"type": "call", "outcome": "exploded"}, "Select a valid choice"),
    ({"type": "call", "occurred_at": "yesterday"}, "Enter a valid date/time"),
    ({"type": "call", "note": "x" * 10_001}, "at most 10000 characters"),
    ({}, "This field is required"),
])
@pytest.mark.parametrize("htmx", [True, False], ids=["htmx", "plain"])
def test_a_bad_touch_is_a_form_error_not_a_500_and_logs_nothing(org, rep, rep_client, body, message, htmx):
    lead = owned(org, rep, first_name="Bea")
    response = rep_client.post(f"/leads/{lead.pk}/log/", body, **(HTMX if htmx else {}))
    assert response.status_code == 400
    html = unescape(response.content.decode())
    assert message in html and "Not logged" in html
    assert 'aria-invalid="true"' in response.content.decode()
    assert not Activity.objects.filter(lead=lead, type__in=["call", "note", "meeting", "email_logged"]).exists()
    if not htmx:
        assert "<h1>" in html  # the whole lead page again, with the form as it was sent


def test_the_queue_the_page_and_the_api_share_the_outcomes(org, sales, rep, rep_client, api):
    lead = owned(org, rep, first_name="Una")
    queue_row = rep_client.post(f"/queue/leads/{lead.pk}/touch/", {"type": "call", "outcome": "no_answer"}, **HTMX)
    assert queue_row.status_code == 200
    assert 'data-type="call"' in queue_row.content.decode()  # the queue's Log offers the same outcomes
    refused = rep_client.post(f"/queue/leads/{lead.pk}/touch/", {"type": "email_logged", "outcome": "no_show"},
                              **HTMX)
    assert refused.status_code == 400 and "Choose how an email went" in refused.content.decode()
    by_api = api.post(f"/api/v1/leads/{lead.pk}/touch/", {"type": "meeting", "outcome": "no_show"}, format="json")
    assert by_api.status_code == 201 and by_api.json()["properties"] == {"outcome": "no_show"}
    wrong = api.post(f"/api/v1/leads/{lead.pk}/touch/", {"type": "meeting", "outcome": "busy"}, format="json")
    assert wrong.status_code == 400 and "outcome" in wrong.json()["errors"]
    generic = api.post("/api/v1/activities/", {"lead": str(lead.pk), "type": "call",
                                                "properties": {"outcome": "answered"}}, format="json")
    assert generic.status_code == 400 and "properties" in generic.json()["errors"]
    assert sorted(Activity.objects.filter(lead=lead, type__in=["call", "meeting"]).values_list(
        "properties__outcome", flat=True)) == ["no_answer", "no_show"]


def test_whoever_works_the_lead_may_log_on_it(org, rep, member, client):
    lead = owned(org, rep, first_name="Ike")
    client.force_login(member(Role.REP, "other.rep@acme.test"))
    assert client.post(f"/leads/{lead.pk}/log/", {"type": "call"}, **HTMX).status_code == 404
    for role in (Role.MARKETER, Role.MANAGER, Role.ADMIN):
        client.force_login(member(role, f"{role}.x@acme.test"))
        assert client.post(f"/leads/{lead.pk}/log/", {"type": "note", "note": role}, **HTMX).status_code == 200
    assert Activity.objects.filter(lead=lead, type="note").count() == 3


def test_nothing_is_logged_about_an_erased_lead(org, rep, rep_client):
    lead = owned(org, rep, first_name="Gone")
    services.erase_lead(lead=lead)
    assert 'id="log-activity"' not in rep_client.get(f"/leads/{lead.pk}/").content.decode()
    response = rep_client.post(f"/leads/{lead.pk}/log/", {"type": "note", "note": "still here?"})
    assert response.status_code == 302
    assert not Activity.objects.filter(lead=lead, type="note").exists()


# ----------------------------------------------------------------------------------------------- edit in place


DETAILS = {"first_name": "Pia", "last_name": "Lund", "email": "pia@example.com", "phone": "", "job_title": "CTO",
           "company": "Fjord", "website": "", "industry": "", "company_size": "", "annual_revenue": "",
           "country": "SE", "region": "", "city": "Malmö"}


def details_lead(org, owner):
    return make_lead(org, owner=owner, **{k: v for k, v in DETAILS.items() if k not in ("company_size",
                                                                                       "annual_revenue")})


def test_edit_turns_the_card_into_a_form_and_cancel_brings_it_back(org, rep, rep_client):
    lead = details_lead(org, rep)
    page = rep_client.get(f"/leads/{lead.pk}/?from=queue").content.decode()
    card = re.search(r'<section id="lead-details".*?</section>', page, re.S).group(0)
    assert f'hx-get="/leads/{lead.pk}/details/edit/"' in card and ">Edit</button>" in card
    assert 'name="from" value="queue"' in card

    form = rep_client.get(f"/leads/{lead.pk}/details/edit/?from=queue", **HTMX)
    assert form.status_code == 200
    html = form.content.decode()
    assert html.lstrip().startswith('<section id="lead-details"') and 'value="Fjord"' in html
    assert '<option value="SE" selected>Sweden (SE)</option>' in html
    assert re.search(r'<input[^>]*name="first_name"[^>]*autofocus', html)  # the keyboard lands in the form
    assert f'hx-get="/leads/{lead.pk}/details/?from=queue"' in html  # Cancel

    cancel = rep_client.get(f"/leads/{lead.pk}/details/?from=queue", **HTMX)
    assert cancel.status_code == 200 and "Malmö" in cancel.content.decode()
    assert re.search(r"<button[^>]*autofocus[^>]*>Edit</button>", cancel.content.decode())
    assert rep_client.get(f"/leads/{lead.pk}/details/").status_code == 302  # without scripts: the page

    whole_page = rep_client.get(f"/leads/{lead.pk}/details/edit/")  # without scripts: a page of its own
    assert whole_page.status_code == 200
    assert "<html" in whole_page.content.decode() and 'id="lead-details"' in whole_page.content.decode()


def test_saving_goes_through_the_update_service_and_refreshes_the_header(org, rep, rep_client, scored,
                                                                         django_capture_on_commit_callbacks):
    lead = details_lead(org, rep)
    with django_capture_on_commit_callbacks(execute=True):
        response = rep_client.post(f"/leads/{lead.pk}/details/edit/", {
            **DETAILS, "phone": "(415) 555-0123", "country": "US", "job_title": "VP <Ops>", "company_size": "250",
            "from": "queue"}, **HTMX)

    assert response.status_code == 200
    html = response.content.decode()
    lead.refresh_from_db()
    assert (lead.phone, lead.country, lead.job_title, lead.company_size) == ("+14155550123", "US", "VP <Ops>", 250)
    assert "Details saved." in html and 'href="tel:+14155550123"' in html
    header = re.search(r'<header id="lead-header".*?</header>', html, re.S).group(0)
    assert 'hx-swap-oob="true"' in header and "VP &lt;Ops&gt; at Fjord" in header
    assert "+1 415-555-0123" in header and 'href="mailto:pia@example.com"' in header
    assert str(lead.pk) in scored  # re-scored, as after the API's PATCH

    plain = rep_client.post(f"/leads/{lead.pk}/details/edit/", {**DETAILS, "phone": "+14155550123",
                                                                "country": "US", "from": "list:grade=A"})
    assert plain.status_code == 302 and plain.url == f"/leads/{lead.pk}/?from=list%3Agrade%3DA"
    lead.refresh_from_db()
    assert lead.job_title == "CTO"


@pytest.mark.parametrize(("changes", "field", "message"), [
    ({"phone": "12"}, "phone", "Enter a valid phone number"),
    ({"email": "not-an-email"}, "email", "Enter a valid email address."),
    ({"email": "taken@example.com"}, "email", "Another lead already has this email address."),
    ({"email": "", "phone": ""}, "email", "A lead needs an email address or a phone number."),
    ({"company_size": "lots"}, "company_size", "A valid integer is required."),
    ({"annual_revenue": "a lot"}, "annual_revenue", "A valid number is required."),
    ({"company_size": "-1"}, "company_size", "greater than or equal to 0"),
    ({"country": "XX"}, "country", "Select a valid choice."),
    ({"first_name": "x" * 101}, "first_name", "no more than 100 characters"),
])
@pytest.mark.parametrize("htmx", [True, False], ids=["htmx", "plain"])
def test_a_bad_value_is_a_field_error_and_nothing_is_half_saved(org, rep, rep_client, changes, field, message,
                                                                 htmx):
    make_lead(org, email="taken@example.com")
    lead = details_lead(org, rep)
    before = Lead.objects.filter(pk=lead.pk).values().get()
    response = rep_client.post(f"/leads/{lead.pk}/details/edit/", {**DETAILS, "last_name": "Changed", **changes},
                               **(HTMX if htmx else {}))
    assert response.status_code == 400
    html = unescape(response.content.decode())
    assert "Not saved" in html
    assert re.search(rf'<input[^>]*name="{field}"[^>]*aria-invalid="true"', html) or \
        re.search(rf'<select[^>]*name="{field}"[^>]*aria-invalid="true"', html)
    assert message in html
    assert 'value="Changed"' in html  # what was typed stays in the form
    assert Lead.objects.filter(pk=lead.pk).values().get() == before  # not even the valid last name


def test_the_form_and_the_api_refuse_the_same_values(org, rep, rep_client, api):
    lead = details_lead(org, rep)
    for changes in ({"phone": "12"}, {"email": "nope"}, {"website": "x" * 301}):
        form = rep_client.post(f"/leads/{lead.pk}/details/edit/", {**DETAILS, **changes}, **HTMX)
        patch = api.patch(f"/api/v1/leads/{lead.pk}/", changes, format="json")
        assert form.status_code == patch.status_code == 400, changes
        field = next(iter(changes))
        for message in patch.json()["errors"][field]:
            assert message in unescape(form.content.decode())


def test_who_may_edit_follows_the_policy_of_the_apis_patch(org, rep, member, client):
    from leads.api.capture import LeadViewSet

    assert policy.action_of_view(LeadViewSet, "partial_update") == policy.Action.EDIT_LEADS
    lead = details_lead(org, rep)
    client.force_login(member(Role.REP, "other.rep@acme.test"))
    assert client.get(f"/leads/{lead.pk}/details/edit/", **HTMX).status_code == 404
    assert client.post(f"/leads/{lead.pk}/details/edit/", {**DETAILS, "city": "Oslo"}).status_code == 404
    for role in (Role.REP, Role.MARKETER, Role.MANAGER, Role.ADMIN):
        user = rep if role == Role.REP else member(role, f"{role}.e@acme.test")
        client.force_login(user)
        page = client.get(f"/leads/{lead.pk}/").content.decode()
        assert (">Edit</button>" in page) is policy.allows(role, policy.Action.EDIT_LEADS)
        response = client.post(f"/leads/{lead.pk}/details/edit/", {**DETAILS, "city": f"City of {role}"})
        assert response.status_code == 302
        assert Lead.objects.get(pk=lead.pk).city == f"City of {role}"


def test_an_erased_lead_offers_no_edit_and_refuses_one(org, rep, rep_client):
    lead = details_lead(org, rep)
    services.erase_lead(lead=lead)
    assert ">Edit</button>" not in rep_client.get(f"/leads/{lead.pk}/").content.decode()
    assert rep_client.get(f"/leads/{lead.pk}/details/edit/").status_code == 409
    response = rep_client.post(f"/leads/{lead.pk}/details/edit/", {**DETAILS, "city": "Back"}, **HTMX)
    assert response.status_code == 409
    assert Lead.objects.get(pk=lead.pk).city != "Back"


# ----------------------------------------------------------------------------------------------- at a glance


def test_the_top_of_the_page_has_mailto_tel_owner_stage_score_and_grade(org, rep, rep_client):
    lead = make_lead(org, owner=rep, first_name="Ola", email="ola+crm@example.com", phone="+442071838750",
                     lifecycle_stage=LifecycleStage.SQL, score=73, grade="B", temperature=Temperature.HOT)
    html = rep_client.get(f"/leads/{lead.pk}/").content.decode()
    header = re.search(r'<header id="lead-header".*?</header>', html, re.S).group(0)
    assert 'href="mailto:ola%2Bcrm@example.com"' in header and ">ola+crm@example.com<" in header
    assert 'href="tel:+442071838750"' in header and "+44 20 7183 8750" in header
    for text in ("Sales qualified", "rita@acme.test", "<strong>73</strong>", "grade-B", "Hot"):
        assert text in header, text


def test_a_lead_that_must_not_be_contacted_says_so_at_the_top(org, rep, rep_client):
    lead = make_lead(org, owner=rep, first_name="Dina", phone="+14155550100", do_not_contact=True)
    header = re.search(r'<header id="lead-header".*?</header>',
                       rep_client.get(f"/leads/{lead.pk}/").content.decode(), re.S).group(0)
    assert "Do not contact" in header


# ----------------------------------------------------------------------------------------------- previous / next


def steps_of(client, lead, origin):
    html = client.get(f"/leads/{lead.pk}/?from={quote(origin, safe='')}").content.decode()
    nav = re.search(r'<nav class="lead-steps".*?</nav>', html, re.S)
    if nav is None:
        return None
    links = dict((rel, unescape(url)) for url, rel in re.findall(r'<a href="([^"]+)" rel="(prev|next)"', nav.group(0)))
    back = unescape(re.search(r'<a href="([^"]+)" class="back">', nav.group(0)).group(1))
    return links.get("prev"), links.get("next"), back


def lead_of(url):
    return Lead.objects.get(pk=re.search(r"/leads/([0-9a-f-]{36})/", url).group(1)) if url else None


def walk(client, first, origin):
    """Follow Next from `first` to the end of the list, checking Previous steps back each time."""
    seen, lead = [first], first
    while True:
        previous, following, _ = steps_of(client, lead, origin)
        if following is None:
            return seen
        nxt = lead_of(following)
        assert "from=" in following
        assert lead_of(steps_of(client, nxt, origin)[0]) == lead
        seen.append(nxt)
        lead = nxt
        assert len(seen) < 50


def test_next_and_previous_walk_the_leads_list_in_its_own_order_with_its_filters(org, browser):
    leads = [make_lead(org, first_name=name, grade=grade, score=score, lifecycle_stage="lead")
             for name, grade, score in [("Ann", "A", 50), ("Ben", "A", 90), ("Cal", "B", 70), ("Dot", "A", 50),
                                        ("Eve", "A", 50), ("Fay", "A", 10)]]
    origin = "list:grade=A&ordering=-score"
    listed = [lead for lead in Lead.objects.filter(grade="A").order_by("-score", "-pk")]
    shown_on_the_list = re.findall(r'href="/leads/([0-9a-f-]{36})/\?from=([^"]+)"',
                                   browser.get("/leads/?grade=A&ordering=-score").content.decode())
    assert [pk for pk, _ in shown_on_the_list] == [str(lead.pk) for lead in listed]  # ties (score 50) by id
    # the list's filters, sort and the columns it shows travel with each link
    [origin_param] = {unescape(origin_param) for _, origin_param in shown_on_the_list}
    assert origin_param.startswith("list:grade%3DA%26ordering%3D-score%26columns%3Dname")

    assert walk(browser, listed[0], origin) == listed
    previous, following, back = steps_of(browser, listed[0], origin)
    assert previous is None and back == "/leads/?grade=A&ordering=-score"
    assert leads[2] not in walk(browser, listed[0], origin)  # grade B is filtered out


def test_a_lead_that_left_the_list_still_has_its_neighbours(org, browser):
    a, b, c = (make_lead(org, first_name=name, lifecycle_stage="mql", score=score)
               for name, score in [("A", 30), ("B", 20), ("C", 10)])
    Lead.objects.filter(pk=b.pk).update(lifecycle_stage="sal")  # moved on after the list was opened
    previous, following, _ = steps_of(browser, b, "list:lifecycle_stage=mql&ordering=-score")
    assert (lead_of(previous), lead_of(following)) == (a, c)


def test_next_and_previous_walk_the_queue_in_its_order(org, sales, rep, rep_client):
    now = timezone.now()
    leads = {}
    for name, temperature, score, due in [("Cold", Temperature.COLD, 10, None), ("Hot", Temperature.HOT, 80, 30),
                                          ("Late", Temperature.WARM, 5, -5), ("Later", Temperature.WARM, 5, -50),
                                          ("Warm", Temperature.WARM, 40, None), ("Twin", Temperature.WARM, 40, None)]:
        lead = make_lead(org, first_name=name, temperature=temperature, score=score)
        route(lead)
        LeadRouting.objects.filter(lead=lead).update(sla_due_at=None if due is None else now + timedelta(minutes=due))
        leads[name] = lead
    make_lead(org, first_name="Notmine")
    in_queue = list(routing_selectors.queue(org.pk, rep))
    assert [lead.first_name for lead in in_queue][:3] == ["Later", "Late", "Hot"]

    assert walk(rep_client, in_queue[0], "queue") == in_queue
    previous, _, back = steps_of(rep_client, in_queue[0], "queue")
    assert previous is None and back == "/queue/"
    queue_page = rep_client.get("/queue/").content.decode()
    assert f'href="/leads/{in_queue[0].pk}/?from=queue"' in queue_page


def test_a_manager_steps_through_a_reps_queue_a_rep_only_their_own(org, sales, rep, member, client):
    first, second = make_lead(org, first_name="One", score=9), make_lead(org, first_name="Two", score=1)
    route(first), route(second)
    manager = member(Role.MANAGER, "boss@acme.test")
    sales.manager = manager
    sales.save()
    client.force_login(manager)
    previous, following, back = steps_of(client, first, f"queue:{rep.pk}")
    assert lead_of(following) == second and back == f"/queue/?rep={rep.pk}"
    other = make_rep(org, "olga").user
    mine = make_lead(org, owner=other, first_name="Olga's")
    client.force_login(other)
    assert steps_of(client, mine, f"queue:{rep.pk}") is None  # not a queue Olga may read: no steps, no leak
    assert steps_of(client, mine, "queue") is not None


@pytest.mark.parametrize("origin", ["nonsense", "list:" + "a=1&" * 600, "queue:abc", "list:grade=Z"])
def test_an_odd_list_in_the_link_is_no_error(org, browser, origin):
    lead = make_lead(org, first_name="Odd")
    response = browser.get(f"/leads/{lead.pk}/?from={quote(origin, safe='')}")
    assert response.status_code == 200
    if origin == "list:grade=Z":  # an invalid filter lists nothing: nothing to step to, but the way back
        assert steps_of(browser, lead, origin)[:2] == (None, None)


def test_neighbours_handle_nulls_and_ties_both_ways(org):
    from django.db.models import F

    rows = []
    for score, active in [(5, None), (5, 1), (7, None), (7, 2), (7, 2), (3, None)]:
        lead = make_lead(org, score=score)
        if active is not None:
            Lead.objects.filter(pk=lead.pk).update(last_activity_at=timezone.now() - timedelta(days=active))
        rows.append(lead)
    for ordering in [(F("last_activity_at").desc(nulls_last=True), "score", "id"),
                     (F("last_activity_at").asc(nulls_first=True), "-score", "-id"),
                     ("-last_activity_at", "score", "-id"), ("last_activity_at", "-score", "id")]:
        ordered = list(Lead.objects.for_org(org).order_by(*ordering))
        for index, lead in enumerate(ordered):
            previous, following = neighbours(Lead.objects.for_org(org).order_by(*ordering), lead.pk)
            assert previous == (ordered[index - 1] if index else None), (ordering, index)
            assert following == (ordered[index + 1] if index + 1 < len(ordered) else None), (ordering, index)


# ----------------------------------------------------------------------------------------------- query counts


def _queries(client, url):
    with CaptureQueriesContext(connection) as ctx:
        response = client.get(url)
    assert response.status_code == 200
    return len(ctx.captured_queries)


@pytest.mark.parametrize("origin", ["", "list:grade=A&ordering=-score", "queue"])
def test_the_lead_page_costs_the_same_however_long_the_list_and_timeline(org, sales, rep, rep_client, origin):
    def add(count):
        for i in range(count):
            lead = make_lead(org, first_name=f"L{Lead.objects.count()}", grade="A", score=i)
            route(lead)
            services.log_touch(organization_id=org.pk, lead=lead, type="call", outcome="connected", actor=rep)

    add(3)
    lead = Lead.objects.filter(owner=rep).order_by("score", "pk")[1]
    url = f"/leads/{lead.pk}/" + (f"?from={quote(origin, safe='')}" if origin else "")
    few = _queries(rep_client, url)
    add(30)
    for i in range(20):
        services.log_touch(organization_id=org.pk, lead=lead, type="note", note=f"n{i}", actor=rep)
    assert _queries(rep_client, url) == few


def test_a_stage_move_or_bant_answer_keeps_the_list_the_page_came_from(org, rep, rep_client):
    lead = owned(org, rep, first_name="Sal")
    page = rep_client.get(f"/leads/{lead.pk}/?from=queue").content.decode()
    stage_form = re.search(r'<form method="post" action="/leads/[^"]+/stage/".*?</form>', page, re.S).group(0)
    assert '<input type="hidden" name="from" value="queue">' in stage_form
    moved = rep_client.post(f"/leads/{lead.pk}/stage/", {"stage": "sal", "from": "queue"})
    assert moved.status_code == 302 and moved.url == f"/leads/{lead.pk}/?from=queue"
    answered = rep_client.post(f"/leads/{lead.pk}/qualification/", {"bant_need": "A CRM", "from": "list:grade=A"})
    assert answered.status_code == 302 and answered.url == f"/leads/{lead.pk}/?from=list%3Agrade%3DA"
    assert rep_client.post(f"/leads/{lead.pk}/stage/", {"stage": "sql", "from": "https://evil.test/"}).url == \
        f"/leads/{lead.pk}/"  # anything but one of our lists is dropped
