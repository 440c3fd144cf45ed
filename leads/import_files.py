"""The uploaded file of an import, kept in Django's file storage (STORAGES["default"]): a directory every web and
worker host mounts, or an S3-compatible bucket (README "Running in production"). Nothing is read from a local path
that only the uploading host has.

Retention: a file is kept while its job may still need it (waiting for its mapping, queued, running, failed) and
removed once every row is in, and with its job. Removal waits for the commit that made the file unneeded, so a
rolled-back transaction never loses a file its job still names."""

import logging

from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import transaction

logger = logging.getLogger(__name__)


def upload(data: bytes) -> ContentFile:
    """The value to give ImportJob.file when creating a job: stored under the job's own name (import_file_name)."""
    return ContentFile(data, name="import.csv")


def read(name: str) -> bytes:
    with default_storage.open(name, "rb") as stored:
        return stored.read()


def rewrite(job, data: bytes) -> None:
    """Replace the stored bytes of `job` (erasure takes a person's lines out); the job row is saved by the caller."""
    old = job.file.name
    job.file.save(old.rsplit("/", 1)[-1], ContentFile(data), save=False)
    if job.file.name != old:
        discard_on_commit(old)


def discard_on_commit(name: str) -> None:
    if name:
        transaction.on_commit(lambda: _delete(name))


def _delete(name: str) -> None:
    try:
        default_storage.delete(name)
    except OSError:  # gone already, or the storage is down: an orphan file is harmless, a failed commit is not
        logger.warning("could not delete import file %s", name, exc_info=True)


def discard_with_job(sender, instance, **_) -> None:
    """post_delete of ImportJob (an org deleted, a job removed in the admin): its file goes too."""
    discard_on_commit(instance.file.name)
