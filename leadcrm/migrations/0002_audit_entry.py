import django.core.serializers.json
import django.db.models.deletion
import django.utils.timezone
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("leadcrm", "0001_initial"), migrations.swappable_dependency(settings.AUTH_USER_MODEL)]

    operations = [
        migrations.CreateModel(
            name="AuditEntry",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("actor_label", models.CharField(
                    help_text='The user\'s email, "API key <name>" or "system"', max_length=300)),
                ("action", models.CharField(choices=[
                    ("created", "Created"), ("updated", "Updated"), ("deleted", "Deleted"), ("revoked", "Revoked"),
                    ("erased", "Erased")], max_length=16)),
                ("object_type", models.CharField(help_text="app_label.model_name", max_length=100)),
                ("object_id", models.CharField(max_length=64)),
                ("object_label", models.CharField(blank=True, default="", max_length=300)),
                ("changes", models.JSONField(
                    blank=True, default=dict, encoder=django.core.serializers.json.DjangoJSONEncoder,
                    help_text='{field: [before, after]}; secrets only as "changed"')),
                ("time", models.DateTimeField(default=django.utils.timezone.now)),
                ("actor", models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL,
                                            related_name="+", to=settings.AUTH_USER_MODEL)),
                ("organization", models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.CASCADE,
                                                   related_name="+", to="leadcrm.organization")),
            ],
            options={
                "verbose_name": "audit entry",
                "verbose_name_plural": "audit log",
                "indexes": [models.Index(fields=["organization", "-time"], name="audit_org_time")],
            },
        ),
    ]
