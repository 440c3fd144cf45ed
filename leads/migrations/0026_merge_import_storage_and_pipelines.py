# Joins two migrations written side by side: import files in storage, and deal pipelines.

from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ('leads', '0025_importfile_storage'),
        ('leads', '0025_pipelines'),
    ]

    operations = [
    ]
