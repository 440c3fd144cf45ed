"""The request's PostgreSQL connection dropped mid-request (its backend terminated, as a failover or a restart
does): the request fails cleanly with a 503, nothing of it is written, and a retry works."""

import pytest
from django.db import connection

from leadcrm.models import IdempotencyRecord, OutboxEvent
from leads import imports
from leads.models import Activity, ImportJob, Lead
from tests.leads.test_imports import csv_bytes, upload

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def terminate_on(transactional_db):
    """terminate_on(condition): the backend that inserts an activity for which the SQL `condition` holds (over
    NEW, the activity, and `lead`, its lead) is terminated on the spot, inside its transaction."""
    created = []

    def install(condition: str, *, once: bool = False):
        with connection.cursor() as cursor:
            cursor.execute("CREATE SEQUENCE IF NOT EXISTS faults_terminations")
            cursor.execute(f"""
                CREATE OR REPLACE FUNCTION faults_terminate() RETURNS trigger AS $$
                DECLARE lead leads_lead%ROWTYPE;
                BEGIN
                    SELECT * INTO lead FROM leads_lead WHERE id = NEW.lead_id;
                    IF ({condition}) AND ({'nextval(' + "'faults_terminations'" + ') = 1' if once else 'true'}) THEN
                        PERFORM pg_terminate_backend(pg_backend_pid());
                    END IF;
                    RETURN NEW;
                END $$ LANGUAGE plpgsql SECURITY DEFINER""")  # requests run as the app role (leadcrm.rls)
            cursor.execute("CREATE TRIGGER faults_terminate BEFORE INSERT ON leads_activity FOR EACH ROW "
                           "EXECUTE FUNCTION faults_terminate()")
        created.append(True)

    yield install
    if created:
        connection.close()  # the test's own connection may be the terminated one
        with connection.cursor() as cursor:
            cursor.execute("DROP TRIGGER IF EXISTS faults_terminate ON leads_activity")
            cursor.execute("DROP FUNCTION IF EXISTS faults_terminate()")
            cursor.execute("DROP SEQUENCE IF EXISTS faults_terminations")


def test_capture_whose_connection_drops_answers_503_and_writes_nothing(org, api, terminate_on):
    terminate_on("lead.email = 'boom@example.com'")
    response = api.post("/api/v1/leads/", {"email": "boom@example.com", "first_name": "Ada"}, format="json")
    assert response.status_code == 503
    assert response["Retry-After"] and "database" in response.json()["detail"]
    assert not Lead.objects.filter(email="boom@example.com").exists()
    assert not OutboxEvent.objects.exists()
    response = api.post("/api/v1/leads/", {"email": "fine@example.com"}, format="json")
    assert response.status_code == 201  # the next request gets a new connection


def test_browser_form_whose_connection_drops_shows_an_error_page(org, client, terminate_on):
    from leads.models import Form

    form = Form.objects.create(organization=org, name="Contact", slug="contact",
                               fields=["email"], required_fields=["email"])
    terminate_on("lead.email = 'boom@example.com'")
    response = client.post(f"/f/{form.slug}/", {"email": "boom@example.com"})
    assert response.status_code == 503
    assert b"Try again" in response.content and b"Traceback" not in response.content
    assert not Lead.objects.filter(email="boom@example.com").exists()


def test_bulk_capture_with_idempotency_key_is_all_or_nothing(org, api, terminate_on):
    terminate_on("lead.email = 'c@example.com'", once=True)
    rows = {"leads": [{"email": f"{name}@example.com"} for name in "abcd"]}
    response = api.post("/api/v1/leads/bulk/", rows, format="json", HTTP_IDEMPOTENCY_KEY="batch-1")
    assert response.status_code == 503
    assert not Lead.objects.exists() and not Activity.objects.exists()
    assert not IdempotencyRecord.objects.exists()  # so the same request may be sent again
    response = api.post("/api/v1/leads/bulk/", rows, format="json", HTTP_IDEMPOTENCY_KEY="batch-1")
    assert response.status_code == 200 and response.json()["created"] == 4
    assert Lead.objects.count() == 4 and Activity.objects.count() == 4


def test_bulk_capture_without_a_key_keeps_whole_rows_only(org, api, terminate_on):
    """Without Idempotency-Key each row is captured on its own (the documented contract): the rows before the drop
    are whole (lead, activity, event), the dropped one and those after it are not there at all."""
    terminate_on("lead.email = 'c@example.com'", once=True)
    rows = {"leads": [{"email": f"{name}@example.com"} for name in "abcd"]}
    assert api.post("/api/v1/leads/bulk/", rows, format="json").status_code == 503
    assert sorted(Lead.objects.values_list("email", flat=True)) == ["a@example.com", "b@example.com"]
    assert Activity.objects.count() == 2
    response = api.post("/api/v1/leads/bulk/", rows, format="json")  # sent again: the first two merge
    assert [row["status"] for row in response.json()["results"]] == [200, 200, 201, 201]
    assert Lead.objects.count() == 4


def test_import_whose_connection_drops_resumes_and_loads_each_row_once(org, api, terminate_on):
    """The worker's connection is terminated in the second chunk: the task fails (and is retried); the retry
    resumes after the first chunk, committed, and the second chunk's half-done work was rolled back."""
    rows = [["Email"]] + [[f"row{n}@example.com"] for n in range(1, 6001)]
    job_id = upload(api, csv_bytes(rows), mapping={"Email": "email"}).json()["id"]
    terminate_on("lead.email = 'row5001@example.com'", once=True)
    with pytest.raises(Exception) as caught:
        imports.run_import(import_id=job_id)
    assert "terminat" in str(caught.value) or "closed" in str(caught.value)
    connection.close()
    job = ImportJob.objects.get(pk=job_id)
    assert (job.status, job.processed_rows) == ("running", 5000)
    assert Lead.objects.count() == 5000
    imports.run_import(import_id=job_id)  # the task's retry
    job.refresh_from_db()
    assert (job.status, job.processed_rows, job.created_count) == ("done", 6000, 6000)
    assert Lead.objects.count() == 6000 and Activity.objects.filter(type="imported").count() == 6000
