from django.db import migrations

from leadcrm.rls import definer_function


class Migration(migrations.Migration):

    dependencies = [
        ("webhooks", "0002_delivery_lead_index"),
    ]

    operations = [
        # A delivery task queued with the delivery's id only.
        definer_function("webhooks_delivery_organization", "delivery uuid", "uuid",
                         "SELECT organization_id FROM webhooks_delivery WHERE id = delivery"),
        # The beat's sweep and the draining tasks, on the whdelivery_due index.
        definer_function("webhooks_organizations_with_due", "due timestamptz", "SETOF uuid",
                         "SELECT DISTINCT d.organization_id FROM webhooks_delivery d "
                         "WHERE d.status = 'pending' AND d.next_attempt_at <= due "
                         "AND EXISTS (SELECT FROM webhooks_endpoint e WHERE e.id = d.endpoint_id AND e.active)"),
        # The daily purge: orgs with an endpoint.
        definer_function("webhooks_organizations_with_endpoints", "", "SETOF uuid",
                         "SELECT DISTINCT organization_id FROM webhooks_endpoint"),
    ]
