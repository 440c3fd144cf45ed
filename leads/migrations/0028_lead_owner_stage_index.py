from django.contrib.postgres.operations import AddIndexConcurrently, RemoveIndexConcurrently
from django.db import migrations, models


class Migration(migrations.Migration):
    # Built, then the old one dropped, without locking the lead table's writes.
    atomic = False

    dependencies = [
        ("leads", "0027_lead_likelihood_index"),
    ]

    operations = [
        AddIndexConcurrently(
            model_name="lead",
            index=models.Index(fields=["organization", "owner", "lifecycle_stage"], name="lead_org_owner_stage"),
        ),
        RemoveIndexConcurrently(model_name="lead", name="lead_org_owner"),
    ]
