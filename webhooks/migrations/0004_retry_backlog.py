from django.db import migrations

from leadcrm.rls import definer_function


class Migration(migrations.Migration):

    dependencies = [
        ("webhooks", "0003_organization_lookups"),
    ]

    operations = [
        # The metrics' retry backlog: one number across orgs (no org's rows), over the pending rows' partial index.
        definer_function("webhooks_retry_backlog", "", "bigint",
                         "SELECT count(*) FROM webhooks_delivery WHERE status = 'pending' AND attempt_count > 0"),
    ]
