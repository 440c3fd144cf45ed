from django.db import migrations

# Imports refresh the lead table's statistics when they outgrow them (leads.imports); ANALYZE needs the table's
# owner, and requests and tasks run as the app role, so the owner lends it through this function.
CREATE = """
CREATE OR REPLACE FUNCTION leads_analyze_lead() RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT AS $$
BEGIN
    ANALYZE leads_lead;
END
$$
"""


class Migration(migrations.Migration):

    dependencies = [
        ('leads', '0012_lead_search_text'),
    ]

    operations = [
        migrations.RunSQL(CREATE, "DROP FUNCTION IF EXISTS leads_analyze_lead()"),
    ]
