from django.db import migrations

from leadcrm.rls import definer_function


class Migration(migrations.Migration):

    dependencies = [
        ("leads", "0014_activity_actor_label"),
    ]

    operations = [
        # A public form: its slug (unique across orgs) picks the org.
        definer_function("leads_form_organization", "form_slug text", "uuid",
                         "SELECT organization_id FROM leads_form WHERE slug = form_slug AND is_active"),
        # An import task queued with its id only (by an older release).
        definer_function("leads_import_organization", "job uuid", "uuid",
                         "SELECT organization_id FROM leads_importjob WHERE id = job"),
        # The beat's sweep: orgs with an import queued or running since before `since`.
        definer_function(
            "leads_organizations_with_stale_imports", "since timestamptz", "SETOF uuid",
            "SELECT DISTINCT organization_id FROM leads_importjob WHERE status IN ('queued', 'running') "
            "AND (started_at < since OR (started_at IS NULL AND created_at < since))"),
    ]
