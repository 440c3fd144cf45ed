"""REST API of scoring: rules (CRUD + preview), the org's settings, and a lead's score explained."""

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response
from rest_framework.views import APIView

from leadcrm import audit, policy
from leadcrm.api import OrgScopedViewSet, StrictModelSerializer, StrictSerializer, idempotent
from leadcrm.policy import Action, Allowed
from leads.conditions import ConditionError
from leads.models import Lead

from . import selectors, services
from .calculation import Rule
from .models import ScoringRule, ScoringSettings


def _validation_error(exc: ConditionError) -> serializers.ValidationError:
    return serializers.ValidationError(exc.errors)


class ScoringRuleSerializer(StrictModelSerializer):
    condition = serializers.JSONField()
    points = serializers.IntegerField(min_value=-services.POINTS_LIMIT, max_value=services.POINTS_LIMIT)

    class Meta:
        model = ScoringRule
        fields = ["id", "name", "kind", "points", "condition", "max_occurrences", "window_days", "active",
                  "created_at", "updated_at"]
        read_only_fields = ["id", "created_at", "updated_at"]

    def validate(self, attrs):
        merged = {name: attrs.get(name, getattr(self.instance, name, None))
                  for name in ("kind", "condition", "points", "max_occurrences", "window_days")}
        try:
            attrs["condition"] = services.clean_rule(**merged, organization_id=self.context["organization"].pk)
        except ConditionError as exc:
            raise _validation_error(exc) from None
        return attrs


class RulePreviewSerializer(ScoringRuleSerializer):
    replaces = serializers.UUIDField(required=False, allow_null=True,
                                     help_text="The id of the rule this draft would change, if any.")

    class Meta(ScoringRuleSerializer.Meta):
        fields = [*ScoringRuleSerializer.Meta.fields, "replaces"]


PreviewResultSerializer = inline_serializer("ScoringPreview", {
    "leads": serializers.IntegerField(),
    "score_changes": serializers.IntegerField(),
    "gain_points": serializers.IntegerField(),
    "lose_points": serializers.IntegerField(),
    "grade_changes": serializers.IntegerField(),
    "new_mqls": serializers.IntegerField(),
    "histogram": inline_serializer("ScoringHistogram", {
        "labels": serializers.ListField(child=serializers.CharField()),
        "before": serializers.ListField(child=serializers.IntegerField()),
        "after": serializers.ListField(child=serializers.IntegerField()),
    }),
})


def draft_preview(organization_id, data: dict, replaces=None) -> dict:
    """What saving the (validated) draft rule would do; `replaces` names the rule it changes."""
    draft = Rule(id=replaces, name=data.get("name", ""), kind=data["kind"], points=data["points"],
                 condition=data["condition"], max_occurrences=data.get("max_occurrences"),
                 window_days=data.get("window_days"))
    active = data.get("active", True)
    config = services.load_config(organization_id, draft=draft if active else None, replaces=replaces)
    return selectors.preview(organization_id, config)


class ScoringRuleViewSet(viewsets.ModelViewSet, OrgScopedViewSet):
    policy_action = Action.SCORING
    serializer_class = ScoringRuleSerializer
    ordering_fields = ["created_at", "name", "points"]
    search_fields = ["name"]

    def get_queryset(self):
        return ScoringRule.objects.for_org(self.organization).order_by("kind", "name", "id")

    @idempotent
    def create(self, request, *args, **kwargs):
        return super().create(request, *args, **kwargs)

    def perform_create(self, serializer):
        serializer.instance = services.save_rule(organization_id=self.organization.pk,
                                                 actor=audit.actor_of(self.request), **serializer.validated_data)

    def perform_update(self, serializer):
        serializer.instance = services.save_rule(organization_id=self.organization.pk, rule=serializer.instance,
                                                 actor=audit.actor_of(self.request), **serializer.validated_data)

    def perform_destroy(self, instance):
        services.delete_rule(rule=instance, actor=audit.actor_of(self.request))

    @extend_schema(request=RulePreviewSerializer, responses=PreviewResultSerializer)
    @action(detail=False, methods=["post"])
    def preview(self, request):
        """What saving this draft rule would change (counts and before/after histograms); saves nothing.

        The body is a whole rule, plus `replaces`: the id of the rule it would change, if any."""
        serializer = RulePreviewSerializer(data=request.data, context=self.get_serializer_context())
        serializer.is_valid(raise_exception=True)
        replaces = serializer.validated_data.get("replaces")
        if replaces is not None:
            get_object_or_404(self.get_queryset(), pk=replaces)
        return Response(draft_preview(self.organization.pk, serializer.validated_data, replaces=replaces))


class ScoringSettingsSerializer(StrictModelSerializer):
    grade_bands = serializers.DictField(child=serializers.IntegerField())
    temperature_bands = serializers.DictField(child=serializers.IntegerField())
    recalculation = serializers.SerializerMethodField()

    class Meta:
        model = ScoringSettings
        fields = ["mql_score", "mql_min_grade", "grade_bands", "temperature_bands", "decay_half_life_days",
                  "recalculation", "updated_at"]
        read_only_fields = ["recalculation", "updated_at"]

    def get_recalculation(self, settings) -> dict:
        return {"status": settings.recalc_status, "progress": settings.recalc_percent,
                "done": settings.recalc_done, "total": settings.recalc_total,
                "error": settings.recalc_error or None}

    def validate(self, attrs):
        try:
            return services.clean_settings(attrs)
        except ConditionError as exc:
            raise _validation_error(exc) from None


class ScoringSettingsView(APIView):
    """The org's bands, MQL threshold and decay. Changing them re-scores every lead in the background."""

    permission_classes = [Allowed]
    policy_action = Action.SCORING

    @extend_schema(responses=ScoringSettingsSerializer)
    def get(self, request):
        return Response(ScoringSettingsSerializer(services.get_settings(request.organization.pk)).data)

    @extend_schema(request=ScoringSettingsSerializer, responses=ScoringSettingsSerializer)
    def patch(self, request):
        settings = services.get_settings(request.organization.pk)
        serializer = ScoringSettingsSerializer(settings, data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        settings = services.update_settings(organization_id=request.organization.pk, actor=audit.actor_of(request),
                                           **serializer.validated_data)
        return Response(ScoringSettingsSerializer(settings).data)


class ContributionSerializer(StrictSerializer):
    rule = serializers.UUIDField()
    name = serializers.CharField()
    kind = serializers.CharField()
    points = serializers.IntegerField()
    count = serializers.IntegerField()


class LeadScoreSerializer(serializers.ModelSerializer):
    contributions = ContributionSerializer(many=True)
    history = inline_serializer("ScorePoint", {
        "recorded_at": serializers.DateTimeField(), "score": serializers.IntegerField(),
        "fit_score": serializers.IntegerField(), "behavior_score": serializers.IntegerField(),
    }, many=True)

    class Meta:
        model = Lead
        fields = ["id", "score", "fit_score", "behavior_score", "fit_gained", "fit_lost", "behavior_gained",
                  "behavior_lost", "grade", "temperature", "lifecycle_stage", "contributions", "history"]


def lead_score(lead) -> dict:
    """The lead's numbers, every rule that contributed, and its score over time."""
    config = services.load_config(lead.organization_id)
    lead.contributions = selectors.score_explanation(lead, config)
    lead.history = selectors.score_history(lead)
    return LeadScoreSerializer(lead).data


class LeadScoreView(APIView):
    """`GET /api/v1/leads/{id}/score/`: why this lead has its score."""

    permission_classes = [Allowed]
    policy_action = Action.WORK_LEADS

    @extend_schema(responses=LeadScoreSerializer)
    def get(self, request, pk):
        lead = get_object_or_404(
            policy.visible(policy.principal_of(request), Lead.objects.for_org(request.organization)), pk=pk)
        return Response(lead_score(lead))

