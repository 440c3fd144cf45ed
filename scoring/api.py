"""REST API of scoring: rules (CRUD + preview), the org's settings, and a lead's score explained."""

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema, extend_schema_field, inline_serializer
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response
from rest_framework.views import APIView

from leadcrm import audit, policy
from leadcrm.api import CONFLICT_RESPONSE, OrgScopedViewSet, StrictModelSerializer, StrictSerializer, idempotent
from leadcrm.policy import Action, Allowed
from leads.conditions import ConditionError
from leads.models import Lead

from . import advice, predictive, selectors, services
from .calculation import Rule
from .models import MqlRule, PredictiveModel, ScoringRule, ScoringSettings


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


class ProbabilityField(serializers.FloatField):
    """A probability as a JSON number; true and false are not numbers here."""

    def to_internal_value(self, data):
        if isinstance(data, bool):
            self.fail("invalid")
        return super().to_internal_value(data)


class ScoringSettingsSerializer(StrictModelSerializer):
    grade_bands = serializers.DictField(child=serializers.IntegerField())
    temperature_bands = serializers.DictField(child=serializers.IntegerField())
    recalculation = serializers.SerializerMethodField()
    mql_probability = ProbabilityField(
        required=False, help_text="With `mql_rule` probability: the conversion probability (0–1) from which a lead "
                                  "becomes an MQL.")
    handoff = serializers.SerializerMethodField(help_text="What hands leads to sales now, and why.")

    class Meta:
        model = ScoringSettings
        fields = ["mql_rule", "mql_score", "mql_min_grade", "mql_probability", "mql_probability_anyway", "handoff",
                  "grade_bands", "temperature_bands", "decay_half_life_days", "sql_counts_as_converted",
                  "recalculation", "updated_at"]
        read_only_fields = ["recalculation", "handoff", "updated_at"]

    @extend_schema_field(inline_serializer("MqlHandoff", {
        "rule": serializers.ChoiceField(choices=MqlRule.choices, help_text="The rule in force now."),
        "reason": serializers.CharField()}))
    def get_handoff(self, settings) -> dict:
        state = services.handoff(settings)
        return {"rule": MqlRule.PROBABILITY if state.by_probability else MqlRule.SCORE, "reason": state.reason}

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


class FactorSerializer(StrictSerializer):
    feature = serializers.CharField()
    value = serializers.JSONField(help_text="The lead's value of the feature (a category, or a number).")
    contribution = serializers.FloatField(help_text="Its signed push on the log-odds of converting.")


class LeadPredictionSerializer(StrictSerializer):
    probability = serializers.FloatField(allow_null=True)
    band = serializers.CharField(allow_blank=True)
    factors = FactorSerializer(many=True)


class LeadScoreSerializer(serializers.ModelSerializer):
    contributions = ContributionSerializer(many=True)
    predictive = LeadPredictionSerializer(allow_null=True,
                                          help_text="The org's conversion model's view of the lead; null "
                                                    "until a model is trained.")
    history = inline_serializer("ScorePoint", {
        "recorded_at": serializers.DateTimeField(), "score": serializers.IntegerField(),
        "fit_score": serializers.IntegerField(), "behavior_score": serializers.IntegerField(),
    }, many=True)

    class Meta:
        model = Lead
        fields = ["id", "score", "fit_score", "behavior_score", "fit_gained", "fit_lost", "behavior_gained",
                  "behavior_lost", "grade", "temperature", "lifecycle_stage", "contributions", "history", "predictive"]


def lead_score(lead) -> dict:
    """The lead's numbers, every rule that contributed, and its score over time."""
    config = services.load_config(lead.organization_id)
    lead.contributions = selectors.score_explanation(lead, config)
    lead.history = selectors.score_history(lead)
    lead.predictive = None
    if config.predictive:
        probability = lead.conversion_probability
        lead.predictive = {"probability": None if probability is None else float(probability),
                           "band": lead.predictive_band, "factors": predictive.explain(lead, config.predictive)}
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



# ----------------------------------------------------------------------------------------------- predictive scoring


class PredictiveVersionSerializer(serializers.ModelSerializer):
    features = serializers.SerializerMethodField()

    class Meta:
        model = PredictiveModel
        fields = ["id", "version", "status", "message", "created_at", "trained_at", "positives", "negatives",
                  "training_size", "holdout_size", "features", "metrics"]

    def get_features(self, version) -> list[str]:
        return [predictive.feature_label(feature) for feature in version.model.get("features", [])]


class PredictiveVersionViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, OrgScopedViewSet):
    """The org's training runs, newest first: counts, features and holdout metrics of each."""

    policy_action = Action.SCORING
    serializer_class = PredictiveVersionSerializer
    ordering_fields = ["created_at", "version"]

    def get_queryset(self):
        return PredictiveModel.objects.for_org(self.organization).order_by("-created_at", "-id")


PredictiveStateSerializer = inline_serializer("PredictiveState", {
    "status": serializers.CharField(help_text="The latest run's status; `untrained` before the first."),
    "message": serializers.CharField(allow_blank=True),
    "outcomes": inline_serializer("PredictiveOutcomes", {"converted": serializers.IntegerField(),
                                                         "lost": serializers.IntegerField()}),
    "active": PredictiveVersionSerializer(allow_null=True, help_text="The version that scores leads now."),
    "latest": PredictiveVersionSerializer(allow_null=True),
})


class PredictiveView(APIView):
    """`GET /api/v1/predictive/`: the org's conversion model: which version scores leads, how accurate it is on
    the outcomes it never saw (beside the rule score), and how many outcomes there are to learn from."""

    permission_classes = [Allowed]
    policy_action = Action.SCORING

    @extend_schema(responses=PredictiveStateSerializer)
    def get(self, request):
        organization_id = request.organization.pk
        converted, lost = predictive.outcome_counts(organization_id)
        active = predictive.active_model(organization_id)
        latest = PredictiveModel.objects.for_org(organization_id).order_by("-version").first()
        message = predictive.shortfall(converted, lost) or (latest.message if latest else "")
        serialize = lambda version: version and PredictiveVersionSerializer(version).data  # noqa: E731
        return Response({"status": latest.status if latest else "untrained", "message": message,
                         "outcomes": {"converted": converted, "lost": lost},
                         "active": serialize(active), "latest": serialize(latest)})


class PredictiveTrainView(APIView):
    """`POST /api/v1/predictive/train/`: train a new version in the background (202). 409 `not_enough_outcomes`
    while there are fewer than 50 converted or 50 lost leads, saying how many more are needed."""

    permission_classes = [Allowed]
    policy_action = Action.SCORING

    @extend_schema(request=None, responses={202: PredictiveVersionSerializer, 409: CONFLICT_RESPONSE})
    @idempotent
    def post(self, request):
        version = predictive.request_training(organization_id=request.organization.pk)
        return Response(PredictiveVersionSerializer(version).data, status=status.HTTP_202_ACCEPTED)


_THRESHOLD_ROW = {"handed_off": serializers.FloatField(), "precision": serializers.FloatField(allow_null=True),
                  "recall": serializers.FloatField(allow_null=True)}
PredictiveThresholdsSerializer = inline_serializer("PredictiveThresholds", {
    "version": serializers.IntegerField(allow_null=True),
    "mql_score": serializers.IntegerField(help_text="The org's MQL score threshold now."),
    "holdout_size": serializers.IntegerField(required=False),
    "results": inline_serializer("PredictiveThreshold", {"threshold": serializers.FloatField(), **_THRESHOLD_ROW},
                                 many=True, help_text="By probability threshold."),
    "score_results": inline_serializer("ScoreThreshold", {"threshold": serializers.IntegerField(), **_THRESHOLD_ROW},
                                       many=True, help_text="By rule score threshold (what the MQL score reads)."),
})


class PredictiveThresholdsView(APIView):
    """`GET /api/v1/predictive/thresholds/`: on the active version's holdout, for each threshold of the probability
    (`results`) and of the rule score (`score_results`): the share of leads at or above it, how many of them
    converted (precision), the share of converters caught (recall). Set the MQL score from a row with
    `PATCH /api/v1/scoring-settings/`."""

    permission_classes = [Allowed]
    policy_action = Action.SCORING

    @extend_schema(responses=PredictiveThresholdsSerializer)
    def get(self, request):
        found = advice.threshold_advice(request.organization.pk)
        body = {"version": found["version"], "mql_score": found["mql_score"], "results": found["probability"],
                "score_results": found["score"]}
        if "holdout_size" in found:
            body["holdout_size"] = found["holdout_size"]
        return Response(body)


class SuggestedRuleSerializer(StrictSerializer):
    name = serializers.CharField(max_length=200)
    kind = serializers.ChoiceField(choices=ScoringRule._meta.get_field("kind").choices)
    points = serializers.IntegerField(min_value=-services.POINTS_LIMIT, max_value=services.POINTS_LIMIT)
    condition = serializers.JSONField()
    max_occurrences = serializers.IntegerField(allow_null=True, required=False)
    window_days = serializers.IntegerField(allow_null=True, required=False)


SuggestionSerializer = inline_serializer("SuggestedRules", {
    "version": serializers.IntegerField(help_text="The model version the rules were learnt from."),
    "rules": SuggestedRuleSerializer(many=True),
    "auc": inline_serializer("SuggestedRulesAuc", {
        "draft": serializers.FloatField(allow_null=True), "rules": serializers.FloatField(allow_null=True),
        "model": serializers.FloatField(allow_null=True)}),
    "holdout_size": serializers.IntegerField(),
    "preview": PreviewResultSerializer,
})


class PredictiveSuggestRulesView(APIView):
    """`POST /api/v1/predictive/suggest-rules/`: a draft rule set with integer points learnt from the org's
    outcomes (a handful of rules on its own fields and activities), its holdout AUC beside the current rules' and
    the model's, and what saving it would change. Saves nothing: send the rules to `apply-rules/` to use them.
    409 `no_predictive_model` before a model is trained."""

    permission_classes = [Allowed]
    policy_action = Action.SCORING

    @extend_schema(request=None, responses={200: SuggestionSerializer, 409: CONFLICT_RESPONSE})
    def post(self, request):
        return Response(advice.suggest_rules(request.organization.pk))


class ApplyRulesSerializer(StrictSerializer):
    rules = SuggestedRuleSerializer(many=True, allow_empty=False)


class PredictiveApplyRulesView(APIView):
    """`POST /api/v1/predictive/apply-rules/`: put these rules (a suggestion, edited or not) in place of the active
    ones, which are switched off and kept; the org is re-scored. All or nothing; 201 with the saved rules."""

    permission_classes = [Allowed]
    policy_action = Action.SCORING

    @extend_schema(request=ApplyRulesSerializer, responses={201: ScoringRuleSerializer(many=True)})
    @idempotent
    def post(self, request):
        serializer = ApplyRulesSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        saved = advice.apply_rules(organization_id=request.organization.pk, actor=audit.actor_of(request),
                                   rules=serializer.validated_data["rules"])
        return Response({"results": ScoringRuleSerializer(saved, many=True).data}, status=status.HTTP_201_CREATED)
