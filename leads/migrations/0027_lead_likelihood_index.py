from decimal import Decimal

from django.contrib.postgres.operations import AddIndexConcurrently
from django.db import migrations, models
from django.db.models.functions import Coalesce


class Migration(migrations.Migration):
    # Built without locking the lead table's writes: on a big org the build takes a while.
    atomic = False

    dependencies = [
        ("leads", "0026_merge_import_storage_and_pipelines"),
    ]

    operations = [
        AddIndexConcurrently(
            model_name="lead",
            index=models.Index(
                models.F("organization"),
                models.OrderBy(Coalesce("conversion_probability", models.Value(Decimal("-1")),
                                        output_field=models.DecimalField(decimal_places=4, max_digits=5)),
                               descending=True),
                models.OrderBy(models.F("id"), descending=True),
                name="lead_org_likelihood"),
        ),
    ]
