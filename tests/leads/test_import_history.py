"""Importing history as a company moving from another CRM does: leads with their real created dates, stages and
stage dates, owners, consent, external ids and won or lost deals; activities at their real times from a second
file; and what that history does (re-scoring) and does not do (webhooks, campaign joins, nurture, routing)."""

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from leadcrm import events
from leadcrm.models import Role
from leads import imports
from leads.models import Account, Activity, Deal, ImportJob, ImportStatus, Lead
from leads.tasks import run_import
from scoring import services as scoring
from scoring.models import ScoringSettings
from tests.leads.test_imports import csv_bytes, import_now, upload
from tests.scoring import behavior, set_rules

pytestmark = pytest.mark.django_db


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC) if "+" not in text else datetime.fromisoformat(text)


def import_activities(api, data, mapping=None):
    payload = {"file": _file(data), "kind": "activities"}
    if mapping is not None:
        payload["mapping"] = json.dumps(mapping)
    response = api.post("/api/v1/imports/", payload, format="multipart")
    assert response.status_code == 202, response.json()
    run_import(response.json()["id"])
    return api.get(f"/api/v1/imports/{response.json()['id']}/").json()


def _file(data):
    from django.core.files.uploadedfile import SimpleUploadedFile

    return SimpleUploadedFile("history.csv", data, content_type="text/csv")


HISTORY_HEADER = ["Record ID", "Email", "First Name", "Company", "Create Date", "Lifecycle Stage", "Stage Date",
                  "Lead Owner", "Opted In", "Unsubscribed", "Do Not Contact", "Tags", "Deal Outcome", "Amount",
                  "Currency", "Close Date", "Lost Reason"]


def test_history_columns_are_guessed_and_loaded_with_their_dates(api, org, member):
    rep = member(Role.REP, email="Rep@Acme.test")
    job = import_now(api, csv_bytes([
        HISTORY_HEADER,
        ["sf-1", "ada@example.com", "Ada", "Engines Ltd", "2024-01-15", "MQL", "2024-02-01 09:30", "rep@acme.test",
         "yes", "no", "", "vip; old crm", "", "", "", "", ""],
        ["sf-2", "", "Grace", "Navy", "2024-03-10T08:00:00Z", "", "", "", "", "yes", "yes", "", "won", "12,500.00",
         "eur", "2024-05-20", ""],
        ["sf-3", "alan@example.com", "Alan", "Bletchley", "15.04.2024", "sql", "", "", "", "", "", "", "Closed Lost",
         "", "", "2024-06-01", "Went with a rival"],
    ]))
    assert job["status"] == "done" and job["failed_count"] == 0, job["errors"]
    assert job["kind"] == "leads" and job["historical"] is True
    assert job["mapping"]["Record ID"] == "external_id" and job["mapping"]["Create Date"] == "created_at"
    assert job["mapping"]["Lead Owner"] == "owner" and job["mapping"]["Close Date"] == "deal_closed_at"

    ada = Lead.objects.get(organization=org, external_id="sf-1")
    assert ada.created_at == at("2024-01-15T00:00:00")
    assert ada.lifecycle_stage == "mql"
    # the stage at its own date; the stages before it in the funnel get no invented dates
    assert ada.stage_entered_at == {"mql": "2024-02-01T09:30:00+00:00"}
    assert (ada.owner_id, ada.consent_opt_in, ada.unsubscribed, ada.tags) == (rep.pk, True, False, ["vip", "old crm"])
    assert ada.first_touch == {} and ada.reached_rank == 3

    grace = Lead.objects.get(organization=org, external_id="sf-2")  # no email, no phone: the external id is enough
    assert (grace.email, grace.phone) == ("", "")
    assert grace.created_at == at("2024-03-10T08:00:00")
    assert (grace.unsubscribed, grace.do_not_contact) == (True, True)
    # a won deal makes the lead a customer from the day it closed; its account is named after the company
    assert grace.lifecycle_stage == "customer"
    assert grace.stage_entered_at == {"customer": "2024-05-20T00:00:00+00:00"}
    deal = Deal.objects.get(lead=grace)
    assert (deal.status, deal.amount, deal.currency, deal.closed_at) == ("won", Decimal("12500.00"), "EUR",
                                                                         at("2024-05-20T00:00:00"))
    assert deal.account.name == "Navy" and grace.account_id == deal.account_id
    won = Activity.objects.get(lead=grace, type="deal_won")
    assert won.occurred_at == deal.closed_at and won.properties["deal_id"] == str(deal.pk)

    alan = Lead.objects.get(organization=org, external_id="sf-3")
    assert alan.created_at == at("2024-04-15T00:00:00")
    assert alan.stage_entered_at == {"sql": "2024-04-15T00:00:00+00:00"}  # no stage date: since it was created
    lost = Deal.objects.get(lead=alan)
    assert (lost.status, lost.lost_reason, lost.amount) == ("lost", "Went with a rival", Decimal("0"))
    assert Activity.objects.get(lead=alan, type="deal_lost").properties["reason"] == "Went with a rival"

    # the import's own record of each lead and its touch are dated by the lead's creation
    touch = ada.touches.get()
    assert touch.occurred_at == ada.created_at


def test_reimporting_history_by_external_id_merges_and_records_no_second_deal(api, org):
    existing = Lead.objects.create(organization=org, phone="+14155550123", first_name="", external_id="x-9",
                                   company="Acme Widgets")
    rows = [["External ID", "Email", "First Name", "Created", "Deal Outcome", "Amount", "Currency", "Close Date",
             "Company"],
            ["x-9", "kim@example.com", "Kim", "2023-06-01", "won", "100", "USD", "2023-09-01", "Other Name"]]
    first = import_now(api, csv_bytes(rows))
    assert (first["created_count"], first["merged_count"], first["failed_count"]) == (0, 1, 0), first["errors"]
    existing.refresh_from_db()
    assert (existing.email, existing.first_name) == ("kim@example.com", "Kim")  # empty fields filled
    assert existing.company == "Acme Widgets"  # a filled one kept
    assert existing.created_at == at("2023-06-01T00:00:00")  # the lead existed since the earliest date
    assert existing.lifecycle_stage == "customer"
    assert Deal.objects.get(lead=existing).account.name == "Acme Widgets"  # the lead's company, as conversion does

    again = import_now(api, csv_bytes(rows))
    assert again["merged_count"] == 1
    assert Deal.objects.filter(lead=existing).count() == 1 and Account.objects.for_org(org).count() == 1


@pytest.mark.parametrize("cells, column, message", [
    ({"Created": "31/12/2023"}, "Created", "is not a date we can read"),
    ({"Created": "yesterday"}, "Created", "2024-03-15"),
    ({"Created": "2999-01-01"}, "Created", "is in the future"),
    ({"Created": "1850-01-01"}, "Created", "before 1900"),
    ({"Owner": "nobody@elsewhere.test"}, "Owner", "No member of this organization has the email"),
    ({"Stage": "hot prospect"}, "Stage", "is not a lifecycle stage"),
    ({"Stage": "", "Stage Date": "2024-01-01"}, "Stage Date", "needs the lifecycle stage"),
    ({"Stage Date": "2023-01-01"}, "Stage Date", "before the created date"),
    ({"Outcome": "won", "Amount": "-5", "Currency": "USD", "Closed": "2024-03-01"}, "Amount", "cannot be negative"),
    ({"Outcome": "won", "Amount": "(5.00)", "Currency": "USD", "Closed": "2024-03-01"}, "Amount", "cannot be negative"),
    ({"Outcome": "won", "Amount": "5", "Closed": "2024-03-01"}, "Outcome", "amount, currency and close date"),
    ({"Outcome": "won", "Amount": "5e13", "Currency": "USD", "Closed": "2024-03-01"}, "Amount", "at most"),
    ({"Outcome": "won", "Amount": "5", "Currency": "XYZ", "Closed": "2024-03-01"}, "Currency", "ISO 4217"),
    ({"Outcome": "lost", "Closed": "2024-03-01"}, "Outcome", "reason it was lost"),
    ({"Outcome": "maybe"}, "Outcome", "Use won or lost"),
    ({"Amount": "10"}, "Amount", "won or lost"),
    ({"Outcome": "won", "Amount": "5", "Currency": "USD", "Closed": "2023-12-01"}, "Closed", "before the lead was"),
    ({"Country": "Narnia"}, "Country", "is not a country we know"),
    ({"Opted In": "perhaps"}, "Opted In", "Use yes or no"),
])
def test_bad_history_cells_are_row_errors_with_clear_messages(api, org, member, cells, column, message):
    member(Role.REP, email="rep@acme.test")
    header = ["Email", "Company", "Created", "Stage", "Stage Date", "Owner", "Outcome", "Amount", "Currency",
              "Closed", "Lost Reason", "Country", "Opted In"]
    good = {"Email": "good@example.com", "Company": "Good Co", "Created": "2024-01-01", "Stage": "lead",
            "Stage Date": "2024-01-02", "Owner": "rep@acme.test", "Country": "Germany"}
    bad = {**good, "Email": "bad@example.com", **cells}
    job = import_now(api, csv_bytes([header, [good.get(h, "") for h in header], [bad.get(h, "") for h in header]]),
                     mapping={"Email": "email", "Company": "company", "Created": "created_at",
                              "Stage": "lifecycle_stage", "Stage Date": "stage_date", "Owner": "owner",
                              "Outcome": "deal_status", "Amount": "deal_amount", "Currency": "deal_currency",
                              "Closed": "deal_closed_at", "Lost Reason": "deal_lost_reason", "Country": "country",
                              "Opted In": "consent_opt_in"})
    assert job["status"] == "done"
    assert (job["created_count"], job["failed_count"]) == (1, 1), job["errors"]
    assert job["errors"][0]["row"] == 3
    assert message in " ".join(job["errors"][0]["errors"][column]), job["errors"]
    assert not Lead.objects.filter(organization=org, email="bad@example.com").exists()
    assert Lead.objects.get(organization=org, email="good@example.com").country == "DE"


def test_a_repeated_external_id_in_the_file_is_a_row_error(api, org):
    job = import_now(api, csv_bytes([["Id", "Email"], ["a-1", "one@example.com"], ["a-1", "two@example.com"],
                                     ["a-2", "one@example.com"]]))
    assert (job["created_count"], job["failed_count"]) == (1, 2), job["errors"]
    assert job["errors"][0] == {"row": 3, "errors": {"Id": [
        "The external id “a-1” is also in row 2 of this file; each lead's must be its own."]}}
    assert "with another external id" in job["errors"][1]["errors"]["Email"][0]


def test_a_file_without_email_but_with_phone_or_external_id(api, org):
    job = import_now(api, csv_bytes([["Legacy Id", "Phone", "Name"], ["L1", "", "Only Id"],
                                     ["", "+44 20 7946 0958", "Only Phone"], ["", "", "Nothing"]]),
                     mapping={"Legacy Id": "external_id", "Phone": "phone", "Name": "full_name"})
    assert (job["created_count"], job["failed_count"]) == (2, 1)
    assert job["errors"][0]["errors"] == {"non_field_errors": [
        "A lead needs an email address, a phone number or an external id."]}
    assert Lead.objects.get(organization=org, external_id="L1").first_name == "Only"
    only_id = upload(api, csv_bytes([["Legacy Id"], ["L2"]]), mapping={"Legacy Id": "external_id"})
    assert only_id.status_code == 202


@pytest.mark.parametrize("given, code", [("Germany", "DE"), ("germany", "DE"), ("Deutschland", "DE"), ("DEU", "DE"),
                                         ("de", "DE"), ("United Kingdom", "GB"), ("UK", "GB"),
                                         ("Korea, Republic of", "KR"), ("Côte d'Ivoire", "CI"),
                                         ("United States of America", "US")])
def test_countries_by_name_or_code(api, org, given, code):
    job = import_now(api, csv_bytes([["Email", "Country"], ["c@example.com", given]]))
    assert job["failed_count"] == 0, job["errors"]
    assert Lead.objects.get(organization=org, email="c@example.com").country == code


def test_custom_field_columns_get_safe_keys_segments_can_use(api, org):
    from leads.segments import definition_q

    data = csv_bytes([["Email", "Favourite Colour!", "Plan (2024)", "Notes"], ["p@example.com", "Teal", "Pro", "n"]])
    response = upload(api, data)  # guessed: the unguessed columns are left out, and the answer says so
    body = response.json()
    assert body["unmapped_columns"] == [
        {"column": "Favourite Colour!", "suggested_target": "custom_fields.favourite_colour"},
        {"column": "Plan (2024)", "suggested_target": "custom_fields.plan_2024"},
        {"column": "Notes", "suggested_target": "custom_fields.notes"}]

    job = import_now(api, data, mapping={"Email": "email", "Favourite Colour!": "custom",
                                         "Plan (2024)": "custom_fields.plan", "Notes": ""})
    assert job["mapping"]["Favourite Colour!"] == "custom_fields.favourite_colour"
    assert job["unmapped_columns"] == [{"column": "Notes", "suggested_target": "custom_fields.notes"}]
    lead = Lead.objects.get(organization=org, email="p@example.com")
    assert lead.custom_fields == {"favourite_colour": "Teal", "plan": "Pro"}
    q = definition_q(org.pk, {"all": [{"field": "custom_fields.plan", "op": "eq", "value": "Pro"}]})
    assert list(Lead.objects.for_org(org).filter(q)) == [lead]

    bad = upload(api, data, mapping={"Email": "email", "Notes": "custom_fields.Not Safe"})
    assert bad.status_code == 400 and "lowercase letters, digits and _" in bad.json()["errors"]["mapping"][0]
    clash = upload(api, data, mapping={"Email": "email", "Notes": "custom_fields.x", "Plan (2024)": "custom_fields.x"})
    assert clash.status_code == 400 and "choose one" in clash.json()["errors"]["mapping"][0]


# --- activities -------------------------------------------------------------------------------------------------


def test_activities_file_records_each_at_its_time_with_properties(api, org):
    ada = Lead.objects.create(organization=org, email="ada@example.com")
    grace = Lead.objects.create(organization=org, phone="+14155550100", external_id="sf-2")
    job = import_activities(api, csv_bytes([
        ["Email", "Contact ID", "Activity Type", "Date", "Subject", "Duration (min)"],
        ["ADA@example.com", "", "Meeting", "2024-02-03 10:00", "Kick-off", "45"],
        ["", "sf-2", "call", "2024-02-05T16:30:00+01:00", "", "5"],
        ["ghost@example.com", "", "call", "2024-02-05", "", ""],
        ["", "nope-1", "note", "2024-02-05", "", ""],
        ["ada@example.com", "", "tweet", "2024-02-05", "", ""],
        ["ada@example.com", "", "Page view", "next year", "", ""],
        ["ada@example.com", "", "deal_won", "2024-02-05", "", ""],
    ]))
    assert job["kind"] == "activities" and job["historical"] is True
    assert job["mapping"] == {"Email": "email", "Contact ID": "external_id", "Activity Type": "type",
                              "Date": "occurred_at", "Subject": "properties.subject",
                              "Duration (min)": "properties.duration_min"}
    assert (job["created_count"], job["failed_count"]) == (2, 5), job["errors"]
    errors = {e["row"]: e["errors"] for e in job["errors"]}
    assert errors[4] == {"Email": ["No lead has the email ghost@example.com. Import the lead first, or correct the "
                                   "row."]}
    assert errors[5] == {"Contact ID": ["No lead has the external id “nope-1”. Import the lead first, or correct "
                                        "the row."]}
    assert "“tweet” is not an activity type; use one of: " in errors[6]["Activity Type"][0]
    assert "call" in errors[6]["Activity Type"][0] and "imported" not in errors[6]["Activity Type"][0]
    assert "is not a date we can read" in errors[7]["Date"][0]
    assert "“deal_won” is not an activity type" in errors[8]["Activity Type"][0]  # only the app records those

    meeting = Activity.objects.get(lead=ada, type="meeting")
    assert meeting.occurred_at == at("2024-02-03T10:00:00")
    assert meeting.properties == {"subject": "Kick-off", "duration_min": "45", "import_id": job["id"]}
    call = Activity.objects.get(lead=grace, type="call")
    assert call.occurred_at == at("2024-02-05T15:30:00")
    grace.refresh_from_db()
    assert grace.last_activity_at == call.occurred_at

    again = import_activities(api, csv_bytes([["Email", "Type", "Time"], ["ada@example.com", "meeting",
                                                                          "2024-02-03 10:00"]]))
    assert (again["created_count"], again["merged_count"]) == (0, 1)  # already on the timeline
    assert Activity.objects.filter(lead=ada, type="meeting").count() == 1


def test_activities_mapping_needs_a_lead_a_type_and_a_time(api):
    response = api.post("/api/v1/imports/", {"file": _file(csv_bytes([["Subject"], ["x"]])), "kind": "activities"},
                        format="multipart")
    assert response.status_code == 400
    problems = " ".join(response.json()["errors"]["mapping"])
    assert "email or external id" in problems and "activity type" in problems and "when it happened" in problems
    wrong = api.post("/api/v1/imports/", {"file": _file(csv_bytes([["Email"], ["a@b.co"]])), "kind": "deals"},
                     format="multipart")
    assert wrong.status_code == 400 and "kind" in wrong.json()["errors"]


# --- what history starts, and what it does not ------------------------------------------------------------------


@pytest.fixture
def listeners():
    received = []

    def imported(**payload):
        received.append(("imported", payload))

    def history(**payload):
        received.append(("history", payload))

    events.subscribe(events.LEADS_IMPORTED, imported)
    events.subscribe(events.LEADS_HISTORY_IMPORTED, history)
    yield received
    events._handlers[events.LEADS_IMPORTED].remove(imported)
    events._handlers[events.LEADS_HISTORY_IMPORTED].remove(history)


def test_history_starts_no_webhooks_or_campaign_joins_but_is_rescored(api, org, listeners,
                                                                       django_capture_on_commit_callbacks):
    from campaigns.models import CampaignMember
    from tests.campaigns import make_campaign
    from webhooks.models import Delivery, Endpoint, EventType

    Endpoint.objects.create(organization=org, url="https://hooks.example/", events=EventType.values,
                            secret="whsec_YQ==")
    make_campaign(org, "Spring", utm_campaign="spring")
    version = scoring.get_settings(org.pk).config_version
    rows = [["Email", "UTM Campaign", "Created"], ["old@example.com", "spring", "2023-03-01"]]
    with django_capture_on_commit_callbacks(execute=True):
        history = upload(api, csv_bytes(rows)).json()
        run_import(history["id"])
    assert [kind for kind, _ in listeners] == ["history"]
    assert Delivery.objects.count() == 0 and CampaignMember.objects.count() == 0
    assert ScoringSettings.objects.get(organization=org).config_version == version + 1  # re-scoring asked for

    listeners.clear()
    with django_capture_on_commit_callbacks(execute=True):  # the same file without its dates: an ordinary import
        today = upload(api, csv_bytes([row[:2] for row in rows]).replace(b"old@", b"new@")).json()
        run_import(today["id"])
    assert [kind for kind, _ in listeners] == ["imported"]
    assert Delivery.objects.count() > 0 and CampaignMember.objects.count() == 1


def test_imported_activities_count_at_their_real_times_when_rescored(api, org, django_capture_on_commit_callbacks):
    set_rules(org, behavior(10, {"activity_type": "meeting"}, window_days=30))
    scoring.recalculate_organization(organization_id=org.pk)
    recent = Lead.objects.create(organization=org, email="recent@example.com")
    old = Lead.objects.create(organization=org, email="old@example.com")
    now = timezone.now()
    with django_capture_on_commit_callbacks(execute=True):  # the history event asks scoring for a recalculation
        import_activities(api, csv_bytes([
            ["Email", "Type", "When"],
            ["recent@example.com", "meeting", (now - timedelta(days=3)).isoformat()],
            ["old@example.com", "meeting", (now - timedelta(days=90)).isoformat()],
        ]))
    assert ScoringSettings.objects.get(organization=org).recalc_status == "queued"
    scoring.recalculate_organization(organization_id=org.pk)  # what the queued task runs
    recent.refresh_from_db(), old.refresh_from_db()
    assert (recent.behavior_score, old.behavior_score) == (10, 0)  # the old meeting left the rule's window


# --- the capture API merges by external id ----------------------------------------------------------------------


def test_capture_api_accepts_and_merges_by_external_id(api, org):
    first = api.post("/api/v1/leads/", {"external_id": "crm-7", "first_name": "Lin"}, format="json")
    assert first.status_code == 201, first.json()
    assert first.json()["external_id"] == "crm-7" and first.json()["email"] == ""
    again = api.post("/api/v1/leads/", {"external_id": "crm-7", "email": "lin@example.com", "first_name": "X",
                                        "company": "Lin Co"}, format="json")
    assert again.status_code == 200 and again.json()["id"] == first.json()["id"]
    lead = Lead.objects.get(pk=first.json()["id"])
    assert (lead.first_name, lead.email, lead.company) == ("Lin", "lin@example.com", "Lin Co")

    by_email = api.post("/api/v1/leads/", {"email": "LIN@example.com", "external_id": "other-1"}, format="json")
    assert by_email.status_code == 200 and by_email.json()["id"] == str(lead.pk)
    lead.refresh_from_db()
    assert lead.external_id == "crm-7"  # a filled one is never replaced

    nothing = api.post("/api/v1/leads/", {"first_name": "Nobody"}, format="json")
    assert nothing.status_code == 400
    assert nothing.json()["errors"]["email"] == ["A lead needs an email address, a phone number or an external id."]

    other = api.post("/api/v1/leads/", {"email": "b@example.com"}, format="json").json()
    taken = api.patch(f"/api/v1/leads/{other['id']}/", {"external_id": "crm-7"}, format="json")
    assert taken.status_code == 400 and "Another lead already has this external id." in taken.json()["errors"][
        "external_id"]


# --- set-based: the number of queries does not grow with the rows ---------------------------------------------


def _history_rows(n, org):
    Lead.objects.bulk_create([Lead(organization=org, email=f"old{i}-{n}@example.com", external_id=f"old-{i}-{n}")
                              for i in range(n // 10)])
    rows = [["Id", "Email", "Company", "Created", "Stage", "Stage Date", "Owner", "Outcome", "Amount", "Currency",
             "Close Date", "Lost Reason"]]
    for i in range(n):
        if i % 10 == 0:
            rows.append([f"old-{i // 10}-{n}", "", "Old Co", "2023-01-01", "", "", "", "", "", "", "", ""])
        elif i % 10 == 1:
            rows.append([f"x-{i}-{n}", "", "Won Co", "2023-02-01", "sql", "2023-02-10", "rep@acme.test", "won", "90",
                         "USD", "2023-03-01", ""])
        elif i % 10 == 2:
            rows.append([f"x-{i}-{n}", f"l{i}-{n}@example.com", f"Lost {i}", "2023-02-01", "", "", "", "lost", "", "",
                         "2023-03-01", "Price"])
        elif i % 10 == 3:
            rows.append([f"x-{i}-{n}", "", "", "not a date", "", "", "", "", "", "", "", ""])
        else:
            rows.append([f"x-{i}-{n}", f"u{i}-{n}@example.com", "", "2023-04-01", "lead", "", "", "", "", "", "", ""])
    return csv_bytes(rows)


def test_history_import_queries_do_not_grow_with_rows(api, org, member):
    member(Role.REP, email="rep@acme.test")
    counts = {}
    for n in (50, 500):
        job_id = upload(api, _history_rows(n, org)).json()["id"]
        with CaptureQueriesContext(connection) as queries:
            run_import(job_id)
        counts[n] = len(queries)
        job = ImportJob.objects.get(pk=job_id)
        assert job.status == ImportStatus.DONE and job.failed_count == n // 10, (job.error_message, job.errors[:3])
        assert job.merged_count == n // 10
    assert counts[50] == counts[500], counts
    assert Deal.objects.for_org(org).count() == 2 * (50 + 500) // 10


def test_activity_import_queries_do_not_grow_with_rows(api, org):
    counts = {}
    for n in (50, 500):
        Lead.objects.bulk_create([Lead(organization=org, email=f"a{i}-{n}@example.com", external_id=f"e{i}-{n}")
                                  for i in range(n)])
        rows = [["Email", "Id", "Type", "When", "Note"]]
        rows += [[f"a{i}-{n}@example.com" if i % 2 else "", "" if i % 2 else f"e{i}-{n}", "call", "2024-01-02", "x"]
                 for i in range(n)]
        rows += [["ghost@example.com", "", "call", "2024-01-02", ""], ["", "", "call", "2024-01-02", ""]]
        response = api.post("/api/v1/imports/", {"file": _file(csv_bytes(rows)), "kind": "activities"},
                            format="multipart")
        with CaptureQueriesContext(connection) as queries:
            run_import(response.json()["id"])
        counts[n] = len(queries)
        assert ImportJob.objects.get(pk=response.json()["id"]).created_count == n
    assert counts[50] == counts[500], counts


def test_an_unknown_import_kind_from_the_mapping_step_is_refused_not_a_500(browser, org):
    page = browser.post("/imports/new/", {"file": _file(csv_bytes([["Email"], ["a@example.com"]])), "kind": "x"})
    assert page.status_code == 400 and ImportJob.objects.count() == 0
    assert imports.KEY_PATTERN.match(imports.custom_key("Ünïcode Spaß & more!")) and \
        imports.custom_key("Ünïcode Spaß & more!") == "unicode_spass_more"


# --- reports count imported history on its own dates ------------------------------------------------------------


def test_reports_bucket_imported_history_by_its_dates(api, org):
    job = import_now(api, csv_bytes([
        ["Id", "Email", "Company", "Created", "Stage", "Stage Date", "Deal Outcome", "Amount", "Currency",
         "Close Date", "Lost Reason"],
        ["h1", "jan1@example.com", "Jan One", "2024-01-10", "mql", "2024-02-14", "", "", "", "", ""],
        ["h2", "jan2@example.com", "Jan Two", "2024-01-12", "sql", "2024-01-20", "won", "5000", "EUR", "2024-03-12",
         ""],
        ["h3", "jan3@example.com", "Jan Three", "2024-01-20", "subscriber", "", "", "", "", "", ""],
        ["h4", "mar1@example.com", "Mar One", "2024-03-05", "lead", "", "lost", "", "", "2024-04-16", "Budget"],
        ["h5", "mar2@example.com", "Mar Two", "2024-03-18", "opportunity", "2024-03-28", "", "", "", "", ""],
    ]))
    assert (job["created_count"], job["failed_count"]) == (5, 0), job["errors"]

    def report(name, start, end):
        response = api.get(f"/api/v1/reports/{name}/", {"start": start, "end": end})
        assert response.status_code == 200, response.json()
        return response.json()["rows"]

    january = report("funnel", "2024-01-01", "2024-01-31")[0]
    assert (january["leads"], january["mql"], january["sql"], january["customer"]) == (3, 2, 1, 1)
    march = report("funnel", "2024-03-01", "2024-03-31")[0]
    assert (march["leads"], march["mql"], march["opportunity"]) == (2, 1, 1)
    assert report("funnel", "2024-02-01", "2024-02-29")[0]["leads"] == 0
    assert report("funnel", "2025-01-01", "2025-12-31")[0]["leads"] == 0  # nothing lands on the day of the import

    won = report("sales-cycle", "2024-03-01", "2024-03-31")[0]
    assert (won["won"], won["lost"]) == (1, 0)
    assert won["created_to_won_days_median"] == 60.0  # 2024-01-12 to 2024-03-12
    lost = report("sales-cycle", "2024-04-01", "2024-04-30")[0]
    assert (lost["won"], lost["lost"]) == (0, 1)
    by_reason = report("sales-cycle", "2024-01-01", "2024-12-31")
    assert by_reason[0]["won"] + by_reason[0]["lost"] == 2


# --- the mapping step in the browser ------------------------------------------------------------------------------


def test_mapping_page_lists_unmapped_columns_and_keeps_one_under_a_renamed_key(browser, org):
    from django.urls import reverse

    data = csv_bytes([["Email", "Favourite Colour", "<i>Shoe size</i>", "Created"],
                      ["z@example.com", "Teal", "42", "2024-02-02"]])
    response = browser.post(reverse("leads:import-upload"), {"file": _file(data), "kind": "leads"})
    job = ImportJob.objects.for_org(org).get()
    page = browser.get(response["Location"]).content.decode()
    assert "2 columns not imported yet" in page
    assert "custom_fields.favourite_colour" in page and "custom_fields.i_shoe_size_i" in page
    assert "&lt;i&gt;Shoe size&lt;/i&gt;" in page and "<i>Shoe size" not in page
    assert '<option value="custom" >Custom field (keep this column)</option>' in page.replace("\n", "")
    assert 'name="key-1" value="favourite_colour"' in page

    started = browser.post(response["Location"], {
        "column-0": "email", "column-1": "custom", "key-1": "Colour Name", "column-2": "", "column-3": "created_at"})
    assert started.status_code == 302, started.content.decode()
    job.refresh_from_db()
    assert job.mapping == {"Email": "email", "Favourite Colour": "custom_fields.colour_name",
                           "<i>Shoe size</i>": "", "Created": "created_at"}
    run_import(job.pk)
    lead = Lead.objects.get(organization=org, email="z@example.com")
    assert lead.custom_fields == {"colour_name": "Teal"} and lead.created_at == at("2024-02-02T00:00:00")
    detail = browser.get(reverse("leads:import-detail", args=[job.pk])).content.decode()
    assert "Custom field: custom_fields.colour_name" in detail
    assert "Not imported: &lt;i&gt;Shoe size&lt;/i&gt;" in detail
    assert "An import of history" in detail


def test_mapping_page_refuses_a_key_that_clashes_and_keeps_what_was_typed(browser, org):
    from django.urls import reverse

    data = csv_bytes([["Email", "A", "B"], ["a@b.co", "1", "2"]])
    browser.post(reverse("leads:import-upload"), {"file": _file(data)})
    job = ImportJob.objects.for_org(org).get()
    url = reverse("leads:import-detail", args=[job.pk])
    page = browser.post(url, {"column-0": "email", "column-1": "custom", "key-1": "same", "column-2": "custom",
                              "key-2": "Same!"})
    assert page.status_code == 400
    body = page.content.decode()
    assert "Both “A” and “B” are mapped to custom_fields.same; choose one." in body
    assert 'name="key-2" value="Same!"' in body  # what the user typed stays in the box


def test_activities_upload_by_page_guesses_properties(browser, org):
    from django.urls import reverse

    data = csv_bytes([["Email", "Type", "Date", "Topic"], ["a@example.com", "call", "2024-01-01", "pricing"]])
    response = browser.post(reverse("leads:import-upload"), {"file": _file(data), "kind": "activities"})
    job = ImportJob.objects.for_org(org).get()
    assert job.kind == "activities" and job.mapping["Topic"] == "properties.topic"
    page = browser.get(response["Location"]).content.decode()
    assert "Each row is one activity of a lead already here" in page and "Property (keep this column)" in page


def test_an_activities_file_takes_the_orgs_own_types(api, org):
    from leads import activity_types

    activity_types.create(organization_id=org.pk, key="sms_sent", label="SMS sent")
    Lead.objects.create(organization=org, email="ada@example.com")
    job = import_activities(api, csv_bytes([
        ["Email", "Activity Type", "Date"],
        ["ada@example.com", "SMS sent", "2024-02-03 10:00"],
        ["ada@example.com", "sms_sent", "2024-02-04 10:00"],
    ]))
    assert (job["created_count"], job["failed_count"]) == (2, 0), job["errors"]
    assert Activity.objects.filter(lead__email="ada@example.com", type="sms_sent").count() == 2
