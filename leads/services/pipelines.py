"""Deal pipelines: an org's pipelines and their ordered stages, and a deal entering a stage (its history row).

Moving a deal (which may win, lose or reopen it) is services.conversion.move_deal; this module keeps the shapes it
moves through."""

from django.db import transaction
from django.utils import timezone

from leadcrm import audit
from leadcrm.errors import Conflict, Invalid

from ..models import Deal, DealStageChange, Pipeline, Stage, StageKind

# (name, probability %, kind), in order: what every org starts with.
DEFAULT_PIPELINE = "Sales"
DEFAULT_STAGES = (
    ("Qualification", 10, StageKind.OPEN),
    ("Needs analysis", 25, StageKind.OPEN),
    ("Proposal", 50, StageKind.OPEN),
    ("Negotiation", 75, StageKind.OPEN),
    ("Won", 100, StageKind.WON),
    ("Lost", 0, StageKind.LOST),
)
STAGE_LIMIT = 30


class PipelineInUse(Conflict):
    default_code = "pipeline_in_use"


def set_up_pipelines(*, organization_id) -> Pipeline:
    """The org's default pipeline with the default stages, made once (idempotent)."""
    with transaction.atomic():
        existing = Pipeline.objects.for_org(organization_id).filter(is_default=True).first()
        if existing is not None:
            return existing
        pipeline = Pipeline.objects.create(organization_id=organization_id, name=DEFAULT_PIPELINE, is_default=True)
        Stage.objects.bulk_create(
            [
                Stage(
                    organization_id=organization_id,
                    pipeline=pipeline,
                    name=name,
                    position=position,
                    probability=probability,
                    kind=kind,
                )
                for position, (name, probability, kind) in enumerate(DEFAULT_STAGES)
            ]
        )
    return pipeline


def check_stages(stages: list[dict]) -> list[dict]:
    """The stages as given, checked: names, probabilities 0–100, rotting limits, exactly one won and one lost stage
    and at least one open one. Errors name the row (`stages.2.probability`)."""
    errors: dict[str, list[str]] = {}
    if not stages:
        raise Invalid(errors={"stages": ["A pipeline needs its stages."]})
    if len(stages) > STAGE_LIMIT:
        raise Invalid(errors={"stages": [f"At most {STAGE_LIMIT} stages."]})
    names = set()
    cleaned = []
    for index, stage in enumerate(stages):
        name = str(stage.get("name") or "").strip()
        probability, rotting, kind = stage.get("probability"), stage.get("rotting_days"), stage.get("kind", "open")
        if not name:
            errors[f"stages.{index}.name"] = ["Name the stage."]
        elif len(name) > 100:
            errors[f"stages.{index}.name"] = ["At most 100 characters."]
        elif name.casefold() in names:
            errors[f"stages.{index}.name"] = ["Two stages have this name."]
        names.add(name.casefold())
        if isinstance(probability, bool) or not isinstance(probability, int) or not 0 <= probability <= 100:
            errors[f"stages.{index}.probability"] = ["A whole number of percent from 0 to 100."]
        if rotting is not None and (
            isinstance(rotting, bool) or not isinstance(rotting, int) or not 1 <= rotting <= 3650
        ):
            errors[f"stages.{index}.rotting_days"] = ["A number of days from 1 to 3,650, or none."]
        if kind not in StageKind.values:
            errors[f"stages.{index}.kind"] = [f"One of {', '.join(StageKind.values)}."]
        cleaned.append(
            {"id": stage.get("id"), "name": name, "probability": probability, "rotting_days": rotting, "kind": kind}
        )
    kinds = [stage["kind"] for stage in cleaned]
    if not errors:
        if kinds.count(StageKind.WON) != 1 or kinds.count(StageKind.LOST) != 1:
            errors["stages"] = ["A pipeline has exactly one won stage and one lost stage."]
        elif StageKind.OPEN not in kinds:
            errors["stages"] = ["A pipeline needs at least one open stage."]
    if errors:
        raise Invalid(errors=errors, code="invalid_pipeline")
    return cleaned


def save_pipeline(
    *,
    organization_id,
    name: str,
    stages: list[dict],
    pipeline: Pipeline | None = None,
    is_default: bool | None = None,
    actor=None,
) -> Pipeline:
    """Create a pipeline, or change one: its name and its whole stage list, in order (a stage with the `id` of one
    of its stages changes that stage; one without is new; a stage left out is deleted, unless deals are in it: 409).
    Making a pipeline the default takes it from the former default."""
    name = (name or "").strip()
    if not name or len(name) > 100:
        raise Invalid(errors={"name": ["Name the pipeline (at most 100 characters)."]}, code="invalid_pipeline")
    cleaned = check_stages(stages)
    with transaction.atomic():
        pipelines = Pipeline.objects.for_org(organization_id)
        same_name = pipelines.filter(name__iexact=name)
        if pipeline is not None and not pipeline._state.adding:
            same_name = same_name.exclude(pk=pipeline.pk)
        if same_name.exists():
            raise Invalid(errors={"name": ["Another pipeline has this name."]}, code="invalid_pipeline")
        new = pipeline is None or pipeline._state.adding  # Django admin hands over its unsaved instance
        before = None if new else audit.stored(pipeline)
        if new:
            pipeline = pipeline or Pipeline()
            pipeline.organization_id, pipeline.is_default = organization_id, False
            is_default = bool(is_default) or not pipelines.filter(is_default=True).exists()
        else:
            pipeline = pipelines.select_for_update().get(pk=pipeline.pk)
        if is_default and not pipeline.is_default:
            pipelines.filter(is_default=True).update(is_default=False)
            pipeline.is_default = True
        elif is_default is False and pipeline.is_default:
            raise Invalid(
                errors={"is_default": ["Make another pipeline the default instead."]}, code="invalid_pipeline"
            )
        pipeline.name = name
        pipeline.save()
        current = {str(stage.pk): stage for stage in Stage.objects.for_org(organization_id).filter(pipeline=pipeline)}
        unknown = [
            f"stages.{i}.id" for i, stage in enumerate(cleaned) if stage["id"] and str(stage["id"]) not in current
        ]
        if unknown:
            raise Invalid(
                errors={field: ["No such stage in this pipeline."] for field in unknown}, code="invalid_pipeline"
            )
        kept = {str(stage["id"]) for stage in cleaned if stage["id"]}
        dropped = [stage for key, stage in current.items() if key not in kept]
        busy = Deal.objects.for_org(organization_id).filter(stage__in=dropped).values_list("stage__name", flat=True)
        busy = sorted(set(busy))
        if busy:
            raise PipelineInUse(f"Deals are still in {', '.join(busy)}: move them before removing the stage.")
        Stage.objects.for_org(organization_id).filter(pk__in=[stage.pk for stage in dropped]).delete()
        for position, data in enumerate(cleaned):
            stage = current.get(str(data["id"])) if data["id"] else None
            if stage is None:
                stage = Stage(organization_id=organization_id, pipeline=pipeline)
            elif stage.kind != data["kind"] and stage.deals.exists():
                raise PipelineInUse(f"Deals are in {stage.name}: it stays {stage.get_kind_display().lower()}.")
            stage.name, stage.probability, stage.rotting_days, stage.kind = (
                data["name"],
                data["probability"],
                data["rotting_days"],
                data["kind"],
            )
            stage.position = position
            stage.save()
        audit.record_save(organization=organization_id, actor=actor, obj=pipeline, before=before)
    return pipeline


def delete_pipeline(*, pipeline: Pipeline, actor=None) -> None:
    """Delete a pipeline without deals; the default one stays (make another the default first)."""
    with transaction.atomic():
        pipeline = Pipeline.objects.for_org(pipeline.organization_id).select_for_update().get(pk=pipeline.pk)
        if pipeline.is_default:
            raise PipelineInUse("New deals start in the default pipeline: make another the default first.")
        if Deal.objects.for_org(pipeline.organization_id).filter(pipeline=pipeline).exists():
            raise PipelineInUse("Deals are in this pipeline: move them first.")
        with audit.Deletion(pipeline, organization=pipeline.organization_id, actor=actor):
            pipeline.delete()


def stage_of_kind(pipeline_id, organization_id, kind: str) -> Stage:
    """The pipeline's won or lost stage, or its first open one."""
    return (
        Stage.objects.for_org(organization_id).filter(pipeline_id=pipeline_id, kind=kind).order_by("position").first()
    )


def enter_stage(*, deal: Deal, stage: Stage, actor=None, reason: str = "", at=None) -> Deal:
    """Put a (locked) deal in `stage`: the current history row is closed, a new one opened, the deal stamped.
    Callers check the move; this only records it, inside their transaction."""
    at = at or timezone.now()
    history = DealStageChange.objects.for_org(deal.organization_id)
    history.filter(deal=deal, left_at__isnull=True).update(left_at=at)
    history.create(
        organization_id=deal.organization_id,
        deal=deal,
        stage=stage,
        stage_name=stage.name,
        entered_at=at,
        entered_by=audit.user_of(actor),
        reason=reason,
    )
    deal.pipeline_id, deal.stage, deal.stage_entered_at = stage.pipeline_id, stage, at
    deal.save(update_fields=["pipeline", "stage", "stage_entered_at", "updated_at"])
    return deal


def stages_in_words(pipeline) -> list[str]:
    """A pipeline's stages as the audit log shows them: "Proposal 50 % (rots after 14 d)"."""
    return [
        f"{stage.name} {stage.probability} %"
        + (f" (rots after {stage.rotting_days} d)" if stage.rotting_days else "")
        + ("" if stage.kind == StageKind.OPEN else f" [{stage.kind}]")
        for stage in Stage.objects.for_org(pipeline.organization_id).filter(pipeline=pipeline)
    ]
