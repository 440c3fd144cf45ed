"""Import files live in Django's file storage, not in the database: any worker host reads them through the storage
API; a file goes once every row is in, and with its job."""

import subprocess
import sys
from pathlib import Path

import pytest
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection

from leads import import_files
from leads.models import ImportJob, Lead
from leads.tasks import run_import

pytestmark = pytest.mark.django_db

DATA = b"email,first_name\nada@example.com,Ada\ngrace@example.com,Grace\n"


@pytest.fixture
def media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    return tmp_path


def upload(api, data=DATA):
    response = api.post(
        "/api/v1/imports/",
        {"file": SimpleUploadedFile("../../etc/people.csv", data, content_type="text/csv")},
        format="multipart",
    )
    assert response.status_code == 202, response.json()
    return ImportJob.objects.get(pk=response.json()["id"])


def test_an_uploaded_file_is_in_the_storage_under_the_jobs_name_not_in_the_database(api, org, media):
    job = upload(api)

    assert job.file.name == f"imports/{org.pk}/{job.pk}.csv"  # the uploader's name plays no part in the path
    assert (media / job.file.name).read_bytes() == DATA
    assert default_storage.open(job.file.name).read() == DATA
    with connection.cursor() as cursor:
        cursor.execute("SELECT column_name FROM information_schema.columns WHERE table_name = 'leads_importjob'")
        assert "content" not in {row[0] for row in cursor.fetchall()}


def test_the_worker_reads_the_file_from_storage_and_removes_it_when_done(
    api, org, media, django_capture_on_commit_callbacks
):
    job = upload(api)
    stored = media / job.file.name

    with django_capture_on_commit_callbacks(execute=True):
        run_import(str(job.pk))

    job.refresh_from_db()
    assert (job.status, job.created_count) == ("done", 2)
    assert set(Lead.objects.for_org(org).values_list("email", flat=True)) == {"ada@example.com", "grace@example.com"}
    assert job.file.name == "" and not stored.exists()


def test_a_file_only_the_storage_has_is_imported(api, org, media, django_capture_on_commit_callbacks):
    """What another host sees: a job row naming a file, the bytes only in the shared storage."""
    job = upload(api)
    name = job.file.name
    (media / name).write_bytes(b"email,first_name\nlinus@example.com,Linus\n")

    with django_capture_on_commit_callbacks(execute=True):
        run_import(str(job.pk))

    assert list(Lead.objects.for_org(org).values_list("email", flat=True)) == ["linus@example.com"]


def test_deleting_a_job_or_its_organization_deletes_its_file(
    api, org, other_org, media, django_capture_on_commit_callbacks
):
    job = upload(api)
    other = ImportJob.objects.create(organization=other_org, filename="x.csv", file=import_files.upload(b"email\n"))
    assert (media / job.file.name).exists() and (media / other.file.name).exists()

    with django_capture_on_commit_callbacks(execute=True):
        job.delete()
    assert not (media / job.file.name).exists()

    with django_capture_on_commit_callbacks(execute=True):
        other_org.delete()
    assert not (media / other.file.name).exists()


def test_a_rolled_back_delete_keeps_the_file(api, org, media, django_capture_on_commit_callbacks):
    job = upload(api)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        job.delete()
    assert callbacks and (media / job.file.name).exists()  # nothing removed before the commit


def test_s3_storage_is_configured_from_the_environment():
    code = (
        "from django.conf import settings; s = settings.STORAGES['default']; "
        "print(s['BACKEND'], s['OPTIONS']['bucket_name'], s['OPTIONS']['endpoint_url'])"
    )
    env = {
        "PATH": "/usr/bin:/bin",
        "DJANGO_SETTINGS_MODULE": "leadcrm.settings",
        "STORAGE_S3_BUCKET": "leadcrm-files",
        "STORAGE_S3_ENDPOINT_URL": "http://minio:9000",
    }
    out = subprocess.run(
        [sys.executable, "-c", "import django; django.setup(); " + code],
        env=env,
        text=True,
        capture_output=True,
        cwd=Path(__file__).resolve().parents[2],
        check=True,
    ).stdout.split()
    assert out == ["storages.backends.s3.S3Storage", "leadcrm-files", "http://minio:9000"]


def test_without_s3_settings_files_go_to_media_root(settings):
    assert settings.STORAGES["default"]["BACKEND"] == "django.core.files.storage.FileSystemStorage"
    assert default_storage.path("imports/x.csv") == str(Path(settings.MEDIA_ROOT) / "imports" / "x.csv")
