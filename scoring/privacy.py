"""Scoring's part of a privacy request: the lead's score history (numbers only, nothing to erase)."""

from leadcrm import privacy

from .models import ScoreSnapshot


def export(organization_id, lead_id) -> list:
    return list(ScoreSnapshot.objects.for_org(organization_id).filter(lead_id=lead_id).order_by("recorded_at")
                .values("recorded_at", "score", "fit_score", "behavior_score"))


def register() -> None:
    privacy.register("score_history", exporter=export)
