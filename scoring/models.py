"""Scoring rules, the org's scoring settings (bands, MQL threshold, decay) and each lead's score history."""

import uuid
from decimal import Decimal

from django.db import models

from leadcrm.models import Organization, OrgQuerySet
from leads.models import Grade, Lead


class RuleKind(models.TextChoices):
    FIT = "fit", "Fit (lead fields)"
    BEHAVIOR = "behavior", "Behaviour (activities)"


class ScoringRule(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="scoring_rules",
                                     db_index=False)
    name = models.CharField(max_length=200)
    kind = models.CharField(max_length=8, choices=RuleKind.choices)
    points = models.IntegerField(help_text="Positive or negative, -1000 to 1000.")
    condition = models.JSONField(
        help_text='Fit: {"field": "industry", "op": "in", "value": ["Software"]}. '
                  'Behaviour: {"activity_type": "page_view", "property": "url", "op": "contains", "value": "/pricing"}.'
    )
    max_occurrences = models.PositiveIntegerField(null=True, blank=True,
                                                  help_text="Behaviour: count at most this many (empty: no cap).")
    window_days = models.PositiveIntegerField(null=True, blank=True,
                                              help_text="Behaviour: only the last N days (empty: all time).")
    active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = OrgQuerySet.as_manager()

    class Meta:
        ordering = ["kind", "name"]
        indexes = [models.Index(fields=["organization", "kind", "name"], name="scoringrule_org_kind")]
        constraints = [
            models.CheckConstraint(condition=models.Q(points__gte=-1000, points__lte=1000), name="scoringrule_points"),
        ]

    def __str__(self) -> str:
        return self.name


class RecalculationStatus(models.TextChoices):
    IDLE = "idle", "Up to date"
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    FAILED = "failed", "Failed"


def default_grade_bands():
    return {"A": 80, "B": 60, "C": 40, "D": 20}


def default_temperature_bands():
    return {"warm": 30, "hot": 70}


class MqlRule(models.TextChoices):
    SCORE = "score", "Score and grade"
    PROBABILITY = "probability", "Conversion probability"


class ScoringSettings(models.Model):
    """One row per org. `config_version` counts configuration changes; `scored_version` is the one the
    stored scores reflect, so a recalculation that started before an edit knows to run again."""

    organization = models.OneToOneField(Organization, on_delete=models.CASCADE, primary_key=True,
                                        related_name="scoring_settings")
    mql_score = models.IntegerField(default=50, help_text="A lead at or above this score…")
    mql_min_grade = models.CharField(max_length=1, choices=Grade.choices, default=Grade.C,
                                     help_text="…and with this grade or better becomes an MQL.")
    grade_bands = models.JSONField(default=default_grade_bands,
                                   help_text="Lowest fit score for each grade A–D; below D is F.")
    temperature_bands = models.JSONField(default=default_temperature_bands,
                                         help_text="Lowest score for warm and for hot; below warm is cold.")
    decay_half_life_days = models.PositiveIntegerField(
        null=True, blank=True, help_text="Behaviour points halve after this many days (empty: no decay)."
    )
    config_version = models.PositiveIntegerField(default=0)
    scored_version = models.PositiveIntegerField(default=0)
    recalc_status = models.CharField(max_length=8, choices=RecalculationStatus.choices,
                                     default=RecalculationStatus.IDLE)
    recalc_done = models.PositiveIntegerField(default=0)
    recalc_total = models.PositiveIntegerField(default=0)
    recalc_error = models.TextField(blank=True, default="")
    recalc_started_at = models.DateTimeField(null=True, blank=True)
    recalc_finished_at = models.DateTimeField(null=True, blank=True)
    # Until then a requested re-scoring is left to its queued task; after it the sweeper enqueues it again.
    recalc_swept_until = models.DateTimeField(null=True, blank=True)
    windows_expired_through = models.DateTimeField(
        null=True, blank=True, help_text="Points of windowed rules that ran out before this were taken away.")
    # predictive scoring: whether reaching SQL counts as a conversion, and the model that writes probabilities
    sql_counts_as_converted = models.BooleanField(
        default=False, help_text="Train the predictive model on reaching SQL, not only on becoming a customer.")
    predictive_model = models.ForeignKey("PredictiveModel", null=True, blank=True, on_delete=models.SET_NULL,
                                         related_name="+", help_text="The version that scores leads now.")
    # the MQL rule: score and grade (above), or the model's conversion probability at or over a threshold
    mql_rule = models.CharField(max_length=12, choices=MqlRule.choices, default=MqlRule.SCORE,
                                help_text="What hands a lead to sales.")
    mql_probability = models.DecimalField(
        max_digits=5, decimal_places=4, default=Decimal("0.5"),
        help_text="With the probability rule: a lead this likely to convert (0–1) or more becomes an MQL.")
    mql_probability_anyway = models.BooleanField(
        default=False, help_text="Hand off by probability even when the model does not beat the rule score on "
                                 "its holdout.")
    updated_at = models.DateTimeField(auto_now=True)

    objects = OrgQuerySet.as_manager()

    class Meta:
        verbose_name = verbose_name_plural = "scoring settings"

    def __str__(self) -> str:
        return f"Scoring settings of {self.organization}"

    @property
    def recalc_percent(self) -> int:
        if self.recalc_status == RecalculationStatus.IDLE:
            return 100
        return min(100, round(100 * self.recalc_done / self.recalc_total)) if self.recalc_total else 0


class ScoreSnapshot(models.Model):
    """A lead's score after each change, for the score-over-time chart."""

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+", db_index=False)
    lead = models.ForeignKey(Lead, on_delete=models.CASCADE, related_name="score_snapshots", db_index=False)
    recorded_at = models.DateTimeField()
    score = models.IntegerField()
    fit_score = models.IntegerField()
    behavior_score = models.IntegerField()

    objects = OrgQuerySet.as_manager()

    class Meta:
        indexes = [models.Index(fields=["organization", "lead", "recorded_at"], name="scoresnap_org_lead_time")]

    def __str__(self) -> str:
        return f"{self.score} at {self.recorded_at:%Y-%m-%d %H:%M}"




class PredictiveStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    TRAINING = "training", "Training"
    READY = "ready", "Ready"
    INSUFFICIENT = "insufficient", "Not enough outcomes"
    FAILED = "failed", "Failed"


class PredictiveModel(models.Model):
    """One training run of an org's conversion model. The fitted model is plain JSON (feature definitions,
    vocabularies, scaling, coefficients), evaluated in SQL: nothing stored here is ever executed or unpickled."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+", db_index=False)
    version = models.PositiveIntegerField()
    status = models.CharField(max_length=12, choices=PredictiveStatus.choices, default=PredictiveStatus.QUEUED)
    message = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    trained_at = models.DateTimeField(null=True, blank=True)
    positives = models.PositiveIntegerField(default=0)
    negatives = models.PositiveIntegerField(default=0)
    training_size = models.PositiveIntegerField(default=0)
    holdout_size = models.PositiveIntegerField(default=0)
    model = models.JSONField(default=dict, blank=True)
    metrics = models.JSONField(default=dict, blank=True)
    thresholds = models.JSONField(default=list, blank=True)
    # what the outcomes were when the run read them (count, converted, a checksum of who and which way), so the
    # nightly retraining can tell whether anything changed since
    outcomes_digest = models.CharField(max_length=64, blank=True, default="")
    started_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    # until then a queued or training run is left to its task; after it the sweeper enqueues it again
    swept_until = models.DateTimeField(null=True, blank=True)

    objects = OrgQuerySet.as_manager()

    class Meta:
        ordering = ["-version"]
        constraints = [models.UniqueConstraint(fields=["organization", "version"], name="predictive_org_version")]

    def __str__(self) -> str:
        return f"Predictive model v{self.version} ({self.get_status_display()})"
