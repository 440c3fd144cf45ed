"""REST API of deal pipelines: the pipelines with their stages, and what a deal's move takes (the move itself is
`POST /api/v1/deals/{id}/move/`, on the DealViewSet)."""

from drf_spectacular.utils import OpenApiResponse, extend_schema, inline_serializer
from rest_framework import mixins, serializers, status
from rest_framework.response import Response

from leadcrm import audit
from leadcrm.api import OrgScopedViewSet, StrictSerializer, idempotent
from leadcrm.policy import Action

from .. import selectors, services
from ..models import StageKind


class StageSerializer(StrictSerializer):
    id = serializers.UUIDField(required=False, help_text="An existing stage of this pipeline (leave out for a new one)")
    name = serializers.CharField(max_length=100)
    probability = serializers.IntegerField(min_value=0, max_value=100, help_text="Chance of winning, 0–100 %")
    rotting_days = serializers.IntegerField(
        min_value=1,
        max_value=3650,
        required=False,
        allow_null=True,
        default=None,
        help_text="A deal idle in the stage longer than this many days is rotting (null: never)",
    )
    kind = serializers.ChoiceField(choices=StageKind.choices, default=StageKind.OPEN)
    position = serializers.IntegerField(required=False, help_text="Answered; on input the list's order counts")


class PipelineSerializer(StrictSerializer):
    id = serializers.UUIDField(read_only=True)
    name = serializers.CharField(max_length=100)
    is_default = serializers.BooleanField(required=False, help_text="New deals start in the default pipeline")
    stages = StageSerializer(many=True, help_text="Every stage, in order: the list replaces the stages there are")
    created_at = serializers.DateTimeField(read_only=True)

    def to_representation(self, pipeline):
        return {
            "id": str(pipeline.pk),
            "name": pipeline.name,
            "is_default": pipeline.is_default,
            "stages": [
                {
                    "id": str(stage.pk),
                    "name": stage.name,
                    "probability": stage.probability,
                    "rotting_days": stage.rotting_days,
                    "kind": stage.kind,
                    "position": stage.position,
                }
                for stage in pipeline.stages.all()
            ],
            "created_at": serializers.DateTimeField().to_representation(pipeline.created_at),
        }


class PipelineViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, OrgScopedViewSet):
    """Every member reads the pipelines (the board needs them); admins change them."""

    policy_action = Action.WORK_DEALS
    policy_actions = {
        "create": Action.PIPELINES,
        "update": Action.PIPELINES,
        "partial_update": Action.PIPELINES,
        "destroy": Action.PIPELINES,
    }
    serializer_class = PipelineSerializer
    pagination_class = None  # an org has a handful

    def get_queryset(self):
        return selectors.pipelines_of(self.organization)

    def _save(self, request, pipeline=None, partial=False):
        serializer = PipelineSerializer(data=request.data, partial=partial)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        if partial and "stages" not in data:
            data["stages"] = [
                {
                    "id": stage.pk,
                    "name": stage.name,
                    "probability": stage.probability,
                    "rotting_days": stage.rotting_days,
                    "kind": stage.kind,
                }
                for stage in pipeline.stages.all()
            ]
        saved = services.save_pipeline(
            organization_id=self.organization.pk,
            pipeline=pipeline,
            name=data.get("name", getattr(pipeline, "name", "")),
            stages=[{key: value for key, value in stage.items() if key != "position"} for stage in data["stages"]],
            is_default=data.get("is_default"),
            actor=audit.actor_of(request),
        )
        return selectors.pipelines_of(self.organization).get(pk=saved.pk)

    @extend_schema(request=PipelineSerializer, responses={201: PipelineSerializer})
    @idempotent
    def create(self, request):
        """A new pipeline with its stages, in order: exactly one `won` and one `lost` stage, at least one `open`."""
        return Response(PipelineSerializer(self._save(request)).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=PipelineSerializer, responses={200: PipelineSerializer})
    def update(self, request, pk=None):
        """Rename, make default, and set the stages: the list replaces them (a stage with deals is not removed)."""
        return Response(PipelineSerializer(self._save(request, self.get_object())).data)

    @extend_schema(request=PipelineSerializer, responses={200: PipelineSerializer})
    def partial_update(self, request, pk=None):
        """As PUT; without `stages`, the stages stay."""
        return Response(PipelineSerializer(self._save(request, self.get_object(), partial=True)).data)

    def destroy(self, request, pk=None):
        """Delete a pipeline without deals (never the default one: 409 `pipeline_in_use`)."""
        services.delete_pipeline(pipeline=self.get_object(), actor=audit.actor_of(request))
        return Response(status=status.HTTP_204_NO_CONTENT)


class MoveSerializer(StrictSerializer):
    stage = serializers.UUIDField(help_text="The stage to move to, of the deal's pipeline")
    expected_stage = serializers.UUIDField(help_text="The stage the mover saw the deal in (a 409 if it moved since)")
    reason = serializers.CharField(
        required=False,
        allow_blank=True,
        max_length=200,
        default="",
        help_text="Needed to lose a deal, and to reopen a won or lost one",
    )


MOVE_CONFLICT = OpenApiResponse(
    inline_serializer(
        "StageChanged",
        {
            "detail": serializers.CharField(),
            "code": serializers.CharField(),
            "current_stage": inline_serializer(
                "CurrentStage", {"id": serializers.UUIDField(), "name": serializers.CharField()}
            ),
        },
    ),
    description="`stage_changed`: someone moved the deal first (`current_stage` is where it is now); "
    "`deal_closed`: from won straight to lost or back.",
)
