from django.db import migrations

from leadcrm.rls import definer_function

# The app role sees one org at a time (leadcrm/rls.py); these find which org a request acts for, and nothing else.

API_KEY_ORGANIZATION = """
SELECT organization_id FROM leadcrm_apikey WHERE prefix = key_prefix AND NOT revoked
"""

# A user's memberships (the org switcher); a superuser may also pick any other org, without a membership.
ORGANIZATIONS_OF = """
SELECT o.id, o.slug::text, o.name::text, m.id, m.role::text
FROM leadcrm_membership m JOIN leadcrm_organization o ON o.id = m.organization_id
WHERE m.user_id = member
UNION ALL
SELECT o.id, o.slug::text, o.name::text, NULL::bigint, NULL::text FROM leadcrm_organization o
WHERE EXISTS (SELECT FROM auth_user u WHERE u.id = member AND u.is_superuser AND u.is_active)
  AND NOT EXISTS (SELECT FROM leadcrm_membership m WHERE m.organization_id = o.id AND m.user_id = member)
ORDER BY 3, 1
"""

ORGANIZATION_IDS = "SELECT id FROM leadcrm_organization"


class Migration(migrations.Migration):

    dependencies = [
        ("auth", "0012_alter_user_first_name_max_length"),
        ("leadcrm", "0004_apikey_role"),
    ]

    operations = [
        definer_function("leadcrm_api_key_organization", "key_prefix text", "uuid", API_KEY_ORGANIZATION),
        definer_function(
            "leadcrm_organizations_of", "member integer",
            "TABLE (organization_id uuid, slug text, name text, membership_id bigint, role text)", ORGANIZATIONS_OF),
        definer_function("leadcrm_organization_ids", "", "SETOF uuid", ORGANIZATION_IDS),
    ]
