from django.db import migrations

from leadcrm.rls import definer_function


class Migration(migrations.Migration):

    dependencies = [
        ("scoring", "0001_initial"),
    ]

    operations = [
        # The beat's sweeps: orgs whose stored scores are behind their rules, and orgs with decay on.
        definer_function("scoring_organizations_behind", "", "SETOF uuid",
                         "SELECT organization_id FROM scoring_scoringsettings WHERE scored_version < config_version"),
        definer_function("scoring_organizations_with_decay", "", "SETOF uuid",
                         "SELECT organization_id FROM scoring_scoringsettings WHERE decay_half_life_days IS NOT NULL"),
    ]
