"""Import files move from the `content` bytea column into the file storage (STORAGES["default"]), so a worker on
another host reads them through the same storage API; the column goes."""

from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import migrations, models

import leads.models


def move_to_storage(apps, schema_editor):
    ImportJob = apps.get_model("leads", "ImportJob")
    waiting = ImportJob.objects.exclude(content=b"").values_list("pk", "organization_id")
    for pk, organization_id in waiting.iterator(chunk_size=100):
        # One file at a time: the bytes of every job at once could be larger than memory.
        content = ImportJob.objects.filter(pk=pk).values_list("content", flat=True).get()
        name = default_storage.save(f"imports/{organization_id}/{pk}.csv", ContentFile(bytes(content)))
        ImportJob.objects.filter(pk=pk).update(file=name, content=b"")


def move_back(apps, schema_editor):
    ImportJob = apps.get_model("leads", "ImportJob")
    for pk, name in ImportJob.objects.exclude(file="").values_list("pk", "file").iterator(chunk_size=100):
        with default_storage.open(name, "rb") as stored:
            ImportJob.objects.filter(pk=pk).update(content=stored.read())


class Migration(migrations.Migration):

    dependencies = [
        ("leads", "0024_lead_conversion_probability"),
    ]

    operations = [
        migrations.AddField(
            model_name="importjob",
            name="file",
            field=models.FileField(blank=True, default="", help_text="The uploaded CSV; removed once every row is in",
                                   max_length=255, upload_to=leads.models.import_file_name),
            preserve_default=False,
        ),
        migrations.RunPython(move_to_storage, move_back, elidable=False),
        # A default, so that going back re-creates the column on existing rows before move_back fills it.
        migrations.AlterField(model_name="importjob", name="content", field=models.BinaryField(default=b"")),
        migrations.RemoveField(model_name="importjob", name="content"),
    ]
