"""Privacy: consent recorded at capture (form, API, import), a lead's data exported from every app, and erasure
that leaves no personal string anywhere in the org's rows while reports count the same."""

import csv
import io
import json
from datetime import timedelta

import pytest
from django.apps import apps
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.utils import timezone

from campaigns import services as campaign_services
from leadcrm.models import AuditEntry, Membership, Role
from leads import services
from leads.models import Account, Activity, ConsentRecord, Deal, Form, Lead
from leads.tasks import run_import
from nurturing import services as nurturing_services
from nurturing.models import Message
from routing.models import Notification
from scoring.models import ScoreSnapshot
from tests.routing import make_rep, make_rule, make_team, route

pytestmark = pytest.mark.django_db

EMAIL, FIRST, LAST, PHONE = "ada.lovelace@example.com", "Augusta", "Lovelace", "+14155550188"
PERSONAL = [EMAIL, FIRST, LAST, PHONE, "Countess of numbers", "Marylebone", "ada.example.org", "203.0.113.9",
            "secret-referrer.example"]


@pytest.fixture
def contact_form(org):
    return Form.objects.create(organization=org, name="Contact", slug="contact",
                               fields=["email", "first_name", "last_name", "phone"],
                               consent_text="Yes, email me about Acme products.")


def submit(form, **data):
    client = Client(REMOTE_ADDR="203.0.113.9")
    return client.post(f"/f/{form.slug}/", data, HTTP_REFERER="https://secret-referrer.example/page")


# ----------------------------------------------------------------------------------------------- consent


def test_consent_from_a_form_keeps_the_words_shown_the_form_and_the_ip(org, contact_form, browser):
    assert submit(contact_form, email=EMAIL, first_name=FIRST, consent_opt_in="on").status_code == 200
    lead = Lead.objects.get(email=EMAIL)
    consent = ConsentRecord.objects.get(lead=lead)
    assert (consent.channel, consent.source, consent.text, consent.ip_address) == (
        "form", "contact", "Yes, email me about Acme products.", "203.0.113.9")
    assert abs(consent.given_at - lead.consent_at) < timedelta(seconds=5)
    page = browser.get(f"/leads/{lead.pk}/").content.decode()
    assert "Yes, email me about Acme products." in page and "203.0.113.9" in page
    submit(contact_form, email="no.consent@example.com")
    assert not ConsentRecord.objects.filter(lead__email="no.consent@example.com").exists()


def test_consent_from_the_api_names_the_key_and_shows_in_the_lead(org, api):
    created = api.post("/api/v1/leads/", {"email": EMAIL, "consent_opt_in": True}, format="json")
    assert created.status_code == 201
    body = api.get(f"/api/v1/leads/{created.json()['id']}/").json()
    assert [(c["channel"], c["source"]) for c in body["consents"]] == [("api", "API key test")]
    bulk = api.post("/api/v1/leads/bulk/", {"leads": [{"email": "b@example.com", "consent_opt_in": True},
                                                      {"email": "c@example.com"}]}, format="json")
    assert bulk.status_code == 200
    assert ConsentRecord.objects.filter(lead__email="b@example.com", channel="api").count() == 1
    assert not ConsentRecord.objects.filter(lead__email="c@example.com").exists()


def test_consent_from_an_import_column(org, api):
    rows = [["Email", "Opt-in"], ["one@example.com", "yes"], ["two@example.com", "no"], ["three@example.com", "maybe"]]
    buffer = io.StringIO()
    csv.writer(buffer).writerows(rows)
    response = api.post("/api/v1/imports/", {"file": SimpleUploadedFile("people.csv", buffer.getvalue().encode(),
                                                                        content_type="text/csv")},
                        format="multipart")
    assert response.status_code == 202, response.json()
    job_id = response.json()["id"]
    run_import(job_id)
    job = api.get(f"/api/v1/imports/{job_id}/").json()
    assert job["created_count"] == 2 and job["failed_count"] == 1  # "maybe" is not an answer
    one, two = Lead.objects.get(email="one@example.com"), Lead.objects.get(email="two@example.com")
    assert one.consent_opt_in and one.consent_at is not None and not two.consent_opt_in
    consent = ConsentRecord.objects.get(lead=one)
    assert (consent.channel, consent.source) == ("import", job_id)
    assert not ConsentRecord.objects.filter(lead=two).exists()


# ----------------------------------------------------------------------------------------------- a full lead


@pytest.fixture
def person(org, contact_form):
    """One lead with something in every app: timeline, form answers, consent, score history, an email and an
    enrolment, an assignment with its notification, a campaign membership and a deal."""
    submit(contact_form, email=EMAIL, first_name=FIRST, last_name=LAST, phone=PHONE, consent_opt_in="on")
    lead = Lead.objects.get(email=EMAIL)
    Lead.objects.filter(pk=lead.pk).update(job_title="Countess of numbers", city="Marylebone",
                                           website="ada.example.org", custom_fields={"nickname": FIRST},
                                           bant_need=f"{FIRST} needs engines", lifecycle_stage="mql")
    lead.refresh_from_db()
    services.record_activity(organization_id=org.pk, lead=lead, type="note",
                             properties={"text": f"Called {FIRST} {LAST} on {PHONE}"})
    services.record_activity(organization_id=org.pk, lead=lead, type="page_view",
                             properties={"url": f"https://acme.test/?email={EMAIL}"})
    ScoreSnapshot.objects.create(organization=org, lead=lead, recorded_at=timezone.now(), score=42, fit_score=20,
                                 behavior_score=22)
    template = nurturing_services.create_template(organization_id=org.pk, name="Hello", subject="Hi",
                                                  html="<p>Hi</p>", text="Hi")
    sequence = nurturing_services.save_sequence(organization_id=org.pk, data={
        "name": "Welcome drip", "steps": [{"type": "email", "template": str(template.pk)}]})
    nurturing_services.enroll(sequence=sequence, leads=[lead.pk])
    Message.objects.create(organization=org, lead=lead, to_email=EMAIL, subject=f"Hi {FIRST}", status="sent",
                           links=[f"https://acme.test/u?e={EMAIL}"])
    rep = make_rep(org, name="rita")
    make_rule(org, "Everyone", team=make_team(org, "Sales", [rep]))
    assert route(lead) is not None
    campaign = campaign_services.save_campaign(organization_id=org.pk, data={"name": "Spring fair"})
    campaign_services.add_members(campaign=campaign, leads=Lead.objects.filter(pk=lead.pk))
    account = Account.objects.create(organization=org, name="Analytical Engines")
    Deal.objects.create(organization=org, account=account, lead=lead, name="Engine order", amount="1250.00")
    lead.refresh_from_db()
    return lead


def test_export_holds_what_every_app_keeps(org, api, person):
    response = api.get(f"/api/v1/leads/{person.pk}/export/")
    assert response.status_code == 200
    data = response.json()
    assert data["lead"]["email"] == EMAIL and data["lead"]["job_title"] == "Countess of numbers"
    assert "search_text" not in data["lead"]  # derived by PostgreSQL from the exported fields
    assert data["consents"][0]["text"] == "Yes, email me about Acme products."
    assert {a["type"] for a in data["activities"]} >= {"form_submission", "note", "page_view"}
    assert data["form_submissions"][0]["data"]["first_name"] == FIRST
    assert data["form_submissions"][0]["ip_address"] == "203.0.113.9"
    assert data["score_history"][0]["score"] == 42
    assert data["nurturing"]["messages"][0]["to_email"] == EMAIL
    assert data["nurturing"]["enrollments"][0]["sequence__name"] == "Welcome drip"
    assert data["routing"]["assignments"][0]["rep__email"] == "rita@acme.test"
    assert data["campaign_memberships"][0]["campaign__name"] == "Spring fair"
    assert data["deals"][0]["amount"] == "1250.00" and data["deals"][0]["account"] == "Analytical Engines"


def test_export_download_on_the_lead_page(org, client, member, person):
    client.force_login(member(Role.MARKETER))
    page = client.get(f"/leads/{person.pk}/").content.decode()
    assert f"/leads/{person.pk}/export/" in page and f"/leads/{person.pk}/erase/" not in page  # admins erase
    response = client.get(f"/leads/{person.pk}/export/")
    assert response.status_code == 200 and "attachment" in response["Content-Disposition"]
    assert json.loads(response.content)["lead"]["email"] == EMAIL


@pytest.mark.parametrize("role", [Role.MANAGER, Role.REP])
def test_other_roles_cannot_export(org, client, member, person, role):
    user = member(role)
    if role == Role.REP:
        Lead.objects.filter(pk=person.pk).update(owner=user)  # even their own lead
    client.force_login(user)
    assert client.get(f"/leads/{person.pk}/export/").status_code == 403
    assert client.get(f"/api/v1/leads/{person.pk}/export/").status_code == 403


# ----------------------------------------------------------------------------------------------- erase


def org_dump(org) -> str:
    """Every row of every table that belongs to the org, as text (file contents included)."""
    rows = []
    for model in apps.get_models():
        if not any(field.name == "organization" for field in model._meta.get_fields()):
            continue
        for row in model.objects.filter(organization=org).values():
            rows.append(repr({k: bytes(v).decode("utf-8", "replace") if isinstance(v, memoryview) else v
                              for k, v in row.items()}))
    return "\n".join(rows).lower()


def funnel(api) -> dict:
    body = api.get("/api/v1/reports/funnel/").json()
    return {key: value for key, value in body.items() if key not in ("start", "end")}


def test_erase_removes_every_personal_string_and_keeps_report_counts(org, api, person):
    # The same person also came in through an import file and an idempotent API call.
    buffer = io.StringIO()
    csv.writer(buffer).writerows([["email", "first_name", "last_name"], [EMAIL.upper(), FIRST, LAST],
                                  ["other@example.com", "Olga", "Other"]])
    upload = api.post("/api/v1/imports/", {"file": SimpleUploadedFile("list.csv", buffer.getvalue().encode(),
                                                                      content_type="text/csv")}, format="multipart")
    run_import(upload.json()["id"])
    waiting = api.post("/api/v1/imports/", {"file": SimpleUploadedFile("later.csv", buffer.getvalue().encode(),
                                                                       content_type="text/csv")}, format="multipart")
    assert waiting.status_code == 202  # not run: the file is still stored
    api.post("/api/v1/leads/", {"email": EMAIL}, format="json", HTTP_IDEMPOTENCY_KEY="again-1")
    dump = org_dump(org)
    assert all(value.lower() in dump for value in PERSONAL)  # the test would notice them
    before = funnel(api)

    response = api.post(f"/api/v1/leads/{person.pk}/erase/")

    assert response.status_code == 200
    assert response.json()["erased_at"] and response.json()["email"] == ""
    dump = org_dump(org)
    left = [value for value in PERSONAL if value.lower() in dump]
    assert not left, f"still in the database after erasing: {left}"
    assert "other@example.com" in dump  # only this person's data goes
    assert funnel(api) == before
    lead = Lead.objects.get(pk=person.pk)
    assert (lead.lifecycle_stage, lead.company, lead.source_type) == ("mql", person.company, "")
    assert Deal.objects.filter(lead=lead, amount="1250.00").exists()
    assert Message.objects.filter(lead=lead).count() == 1 and Notification.objects.filter(lead=lead).exists()
    entry = AuditEntry.objects.get(organization=org, action="erased")
    assert (entry.object_id, entry.actor_label) == (str(lead.pk), "API key test")
    assert not any(value.lower() in repr(entry.changes).lower() + entry.object_label.lower() for value in PERSONAL)


def test_erase_also_forgets_the_person_in_another_leads_merge_record(org, api):
    """A duplicate with the person's email was merged into another lead, and the person came back later."""
    kept = Lead.objects.create(organization=org, email="kept@example.com", stage_entered_at={})
    duplicate = Lead.objects.create(organization=org, email=EMAIL, phone=PHONE, first_name=FIRST, last_name=LAST,
                                    stage_entered_at={})
    bystander = Lead.objects.create(organization=org, email="bystander@example.com", stage_entered_at={})
    services.merge_leads(organization_id=org.pk, keep_id=kept.pk, merge_ids=[duplicate.pk, bystander.pk])
    back = api.post("/api/v1/leads/", {"email": EMAIL}, format="json")
    assert back.status_code == 201  # the kept lead kept its own email: the person is a new lead again
    returned = back.json()["id"]

    assert api.post(f"/api/v1/leads/{returned}/erase/").status_code == 200

    merged = Activity.objects.get(lead=kept, type="merge").properties["merged"]
    assert {"id": str(duplicate.pk)} in merged  # still counted, no longer named
    assert not any(value in json.dumps(merged) for value in (EMAIL, PHONE, FIRST, LAST))
    assert "bystander@example.com" in json.dumps(merged)


def test_erasing_twice_is_fine_and_an_erased_lead_stays_erased(org, api, person):
    assert api.post(f"/api/v1/leads/{person.pk}/erase/").status_code == 200
    assert api.post(f"/api/v1/leads/{person.pk}/erase/").status_code == 200
    assert AuditEntry.objects.filter(organization=org, action="erased").count() == 1
    assert api.patch(f"/api/v1/leads/{person.pk}/", {"first_name": "Back"}, format="json").status_code == 409
    again = api.post("/api/v1/leads/", {"email": EMAIL, "first_name": FIRST}, format="json")
    assert again.status_code == 201 and again.json()["id"] != str(person.pk)  # a new lead, not a merge
    merge = api.post("/api/v1/leads/merge/", {"keep": again.json()["id"], "merge": [str(person.pk)]}, format="json")
    assert merge.status_code in (400, 409)
    assert Lead.objects.get(pk=person.pk).erased_at is not None


def test_erase_in_the_browser_asks_first_and_only_admins_may(org, client, member, person):
    client.force_login(member(Role.MARKETER))
    assert client.get(f"/leads/{person.pk}/erase/").status_code == 403
    assert client.post(f"/leads/{person.pk}/erase/", {"confirm": "erase"}).status_code == 403
    assert client.post(f"/api/v1/leads/{person.pk}/erase/").status_code == 403
    assert Lead.objects.get(pk=person.pk).erased_at is None

    client.force_login(Membership.objects.get(organization=org, role=Role.ADMIN).user)
    assert f"/leads/{person.pk}/erase/" in client.get(f"/leads/{person.pk}/").content.decode()
    assert "cannot be undone" in client.get(f"/leads/{person.pk}/erase/").content.decode()
    assert client.post(f"/leads/{person.pk}/erase/", {"confirm": "no"}).status_code == 400
    assert Lead.objects.get(pk=person.pk).erased_at is None
    response = client.post(f"/leads/{person.pk}/erase/", {"confirm": "erase"})
    assert response.status_code == 302
    page = client.get(response["Location"]).content.decode()
    assert "Erased lead" in page and FIRST not in page and EMAIL not in page
    entry = AuditEntry.objects.get(organization=org, action="erased")
    assert entry.actor_label == "owner@acme.test"
