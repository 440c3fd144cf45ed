from django.apps import AppConfig
from django.db.backends.signals import connection_created
from django.db.models.signals import post_migrate


class LeadcrmConfig(AppConfig):
    name = "leadcrm"
    verbose_name = "Organizations and access"

    def ready(self):
        from . import checks, metrics, rls, schema  # noqa: F401 - register the deploy checks and the OpenAPI auth extension
        from .models import OutboxEvent

        metrics.register_gauge("leadcrm_outbox_backlog", "Domain events not yet handed to all their handlers",
                               OutboxEvent.objects.count)

        connection_created.connect(rls.on_connection_created, dispatch_uid="leadcrm.rls.connection")
        # After every migrate (and test database set-up): tables added by any app get the policy without edits.
        post_migrate.connect(rls.apply_policies, sender=self, dispatch_uid="leadcrm.rls.policies")
