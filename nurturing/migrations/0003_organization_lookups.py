from django.db import migrations

from leadcrm.rls import definer_function


class Migration(migrations.Migration):

    dependencies = [
        ("nurturing", "0002_message_queued"),
    ]

    operations = [
        # A tracking link: its signed token names the message, and so its org.
        definer_function("nurturing_message_organization", "message uuid", "uuid",
                         "SELECT organization_id FROM nurturing_message WHERE id = message"),
        # The beat's tick, on the message_unsent and enrollment_due indexes.
        definer_function("nurturing_organizations_with_unsent", "before timestamptz", "SETOF uuid",
                         "SELECT DISTINCT organization_id FROM nurturing_message "
                         "WHERE status IN ('queued', 'sending') AND created_at < before"),
        definer_function("nurturing_organizations_with_due_steps", "due timestamptz", "SETOF uuid",
                         "SELECT DISTINCT e.organization_id FROM nurturing_enrollment e "
                         "JOIN nurturing_sequence s ON s.id = e.sequence_id "
                         "WHERE e.status = 'active' AND e.next_run_at <= due AND s.active"),
        definer_function("nurturing_organizations_with_segment_entry", "", "SETOF uuid",
                         "SELECT DISTINCT organization_id FROM nurturing_sequence "
                         "WHERE active AND entry_type = 'segment' AND entry_segment_id IS NOT NULL"),
    ]
