from django.db import migrations

from leadcrm.rls import definer_function


class Migration(migrations.Migration):

    dependencies = [
        ("routing", "0003_assignment_actor_label"),
    ]

    operations = [
        # A notification email queued with its id only (by an older release).
        definer_function("routing_notification_organization", "notification bigint", "uuid",
                         "SELECT organization_id FROM routing_notification WHERE id = notification"),
        # The beat's deadline check, on the routing_sla_due index.
        definer_function("routing_organizations_with_missed_deadlines", "due timestamptz", "SETOF uuid",
                         "SELECT DISTINCT organization_id FROM routing_leadrouting WHERE sla_due_at <= due"),
    ]
