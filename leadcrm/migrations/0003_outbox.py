import django.core.serializers.json
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("leadcrm", "0002_audit_entry")]

    operations = [
        migrations.CreateModel(
            name="OutboxEvent",
            fields=[
                ("id", models.BigAutoField(primary_key=True, serialize=False)),
                ("event", models.CharField(max_length=64)),
                ("payload", models.JSONField(encoder=django.core.serializers.json.DjangoJSONEncoder)),
                ("pending", models.JSONField(blank=True, help_text="Handlers still to run; null: all of them",
                                             null=True)),
                ("attempts", models.PositiveIntegerField(default=0)),
                ("last_error", models.TextField(blank=True, default="")),
                ("created_at", models.DateTimeField()),
                ("next_attempt_at", models.DateTimeField(help_text="When the beat may (re)deliver it")),
            ],
            options={"indexes": [models.Index(fields=["next_attempt_at"], name="outbox_due")]},
        ),
    ]
