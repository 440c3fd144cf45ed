
from decimal import Decimal
from django.db import migrations, models

from leadcrm.rls import definer_function


class Migration(migrations.Migration):

    dependencies = [
        ('scoring', '0005_predictive_model'),
    ]

    operations = [
        migrations.AddField(
            model_name='predictivemodel',
            name='attempts',
            field=models.PositiveSmallIntegerField(default=0),
        ),
        migrations.AddField(
            model_name='predictivemodel',
            name='outcomes_digest',
            field=models.CharField(blank=True, default='', max_length=64),
        ),
        migrations.AddField(
            model_name='predictivemodel',
            name='started_at',
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name='predictivemodel',
            name='swept_until',
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name='scoringsettings',
            name='mql_probability',
            field=models.DecimalField(decimal_places=4, default=Decimal('0.5'), help_text='With the probability rule: a lead this likely to convert (0–1) or more becomes an MQL.', max_digits=5),
        ),
        migrations.AddField(
            model_name='scoringsettings',
            name='mql_probability_anyway',
            field=models.BooleanField(default=False, help_text='Hand off by probability even when the model does not beat the rule score on its holdout.'),
        ),
        migrations.AddField(
            model_name='scoringsettings',
            name='mql_rule',
            field=models.CharField(choices=[('score', 'Score and grade'), ('probability', 'Conversion probability')], default='score', help_text='What hands a lead to sales.', max_length=12),
        ),
        # The beat's sweep: orgs with a training run queued or training since before `since` (the worker may be gone).
        definer_function(
            "scoring_organizations_with_stale_training", "since timestamptz", "SETOF uuid",
            "SELECT DISTINCT organization_id FROM scoring_predictivemodel WHERE status IN ('queued', 'training') "
            "AND coalesce(started_at, created_at) < since"),
        # The nightly retraining: orgs that have trained a model (the others never asked for one).
        definer_function(
            "scoring_organizations_with_models", "", "SETOF uuid",
            "SELECT DISTINCT organization_id FROM scoring_predictivemodel WHERE status = 'ready'"),
    ]
