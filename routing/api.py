"""REST API of distribution (thin: ids resolved in serializers, work in services).

Configuration (reps, teams, assignment rules) is for API keys and org-wide members; reps use the queue, claim
leads from their teams' pools and log touches. A rep is named by their user id everywhere.
"""

from django.db import IntegrityError
from django.shortcuts import get_object_or_404
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import exceptions, generics, mixins, serializers, status, viewsets
from rest_framework.response import Response
from rest_framework.views import APIView

from leadcrm import audit, policy, urlids
from leadcrm.api import CONFLICT_RESPONSE, OrgScopedViewSet, idempotent
from leadcrm.errors import Conflict
from leadcrm.pagination import CreatedCursorPagination
from leadcrm.policy import Action, Allowed
from leads import services as lead_services
from leads.models import Lead, LifecycleStage
from leads.serializers import ActivitySerializer

from . import selectors, services
from .models import Assignment, AssignmentReason, AssignmentRule, RepProfile, Team
from .serializers import (
    TOUCH_TYPES,
    AssignmentSerializer,
    QueueItemSerializer,
    QueueSerializer,
    ReassignSerializer,
    RepSerializer,
    RuleSerializer,
    TeamSerializer,
    TouchSerializer,
)

IDEMPOTENCY_PARAMETER = OpenApiParameter("Idempotency-Key", str, OpenApiParameter.HEADER)




# ----------------------------------------------------------------------------------------------- reps


class RepCursorPagination(CreatedCursorPagination):
    ordering = "created_at"


class RepViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.UpdateModelMixin, OrgScopedViewSet):
    """The routing profiles of the org's reps and managers, one per member (made when they join). The id is the
    rep's user id: the one a lead's `owner` and a rule's `action.rep` name."""

    policy_action = Action.ROUTING
    serializer_class = RepSerializer
    pagination_class = RepCursorPagination
    lookup_field = "user_id"
    lookup_url_kwarg = "pk"
    lookup_value_regex = urlids.INT
    search_fields = ["user__email"]
    ordering_fields = ["created_at"]

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return RepProfile.objects.none()
        return selectors.reps_with_load(self.organization)

    def update(self, request, *args, **kwargs):
        """Change a rep's profile; settings that make no sense (a weight below 0, a capacity of 0 with no
        fallback rule, working hours that end before they start…) are refused per field."""
        profile = self.get_object()
        serializer = self.get_serializer(profile, data=request.data, partial=kwargs.get("partial", False))
        serializer.is_valid(raise_exception=True)
        data = dict(serializer.validated_data)
        if "working_hours" in data and data["working_hours"] is None:
            data["working_hours"] = {}
        services.update_rep(profile=profile, data=data, actor=audit.actor_of(request))
        return Response(self.get_serializer(self.get_object()).data)


# ----------------------------------------------------------------------------------------------- teams


class TeamViewSet(viewsets.ModelViewSet, OrgScopedViewSet):
    """Teams of reps with a manager: what round robin, weighted, least-loaded and pool rules share leads in."""

    policy_action = Action.ROUTING
    serializer_class = TeamSerializer
    pagination_class = CreatedCursorPagination
    lookup_value_regex = urlids.INT  # teams have integer ids
    search_fields = ["name"]
    ordering_fields = ["created_at", "name"]

    def get_queryset(self):
        return Team.objects.for_org(self.organization).prefetch_related("members")

    def _save(self, serializer, instance=None):
        try:
            team = services.save_team(organization_id=self.organization.pk, data=dict(serializer.validated_data),
                                      instance=instance, actor=audit.actor_of(self.request))
        except IntegrityError:  # a concurrent request took the name after the check
            raise exceptions.ValidationError({"name": ["Another team has this name."]}) from None
        return self.get_queryset().get(pk=team.pk)

    @extend_schema(parameters=[IDEMPOTENCY_PARAMETER])
    @idempotent
    def create(self, request, *args, **kwargs):
        services.ensure_profiles(self.organization.pk)
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        team = self._save(serializer)
        return Response(self.get_serializer(team).data, status=status.HTTP_201_CREATED)

    def update(self, request, *args, **kwargs):
        team = self.get_object()
        services.ensure_profiles(self.organization.pk)
        serializer = self.get_serializer(team, data=request.data, partial=kwargs.get("partial", False))
        serializer.is_valid(raise_exception=True)
        return Response(self.get_serializer(self._save(serializer, instance=team)).data)

    @extend_schema(responses={204: None, 409: CONFLICT_RESPONSE})
    def destroy(self, request, *args, **kwargs):
        """Delete a team; one that assignment rules still send leads to is a 409 naming them."""
        services.delete_team(team=self.get_object(), actor=audit.actor_of(request))
        return Response(status=status.HTTP_204_NO_CONTENT)


# ----------------------------------------------------------------------------------------------- rules


class RuleCursorPagination(CreatedCursorPagination):
    ordering = "order"


class AssignmentRuleViewSet(viewsets.ModelViewSet, OrgScopedViewSet):
    """Assignment rules, tried in `order` (the fallback last) when a lead is routed: the first whose condition or
    segment matches places the lead by its action."""

    policy_action = Action.ROUTING
    serializer_class = RuleSerializer
    pagination_class = RuleCursorPagination
    lookup_value_regex = urlids.INT  # rules have integer ids
    search_fields = ["name"]
    ordering_fields = ["order", "created_at", "name"]

    def get_queryset(self):
        return AssignmentRule.objects.for_org(self.organization).select_related("rep")

    def _save(self, serializer, instance=None):
        rule = services.save_rule(organization_id=self.organization.pk, data=dict(serializer.validated_data),
                                  instance=instance, actor=audit.actor_of(self.request))
        return self.get_queryset().get(pk=rule.pk)

    @extend_schema(parameters=[IDEMPOTENCY_PARAMETER])
    @idempotent
    def create(self, request, *args, **kwargs):
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        return Response(self.get_serializer(self._save(serializer)).data, status=status.HTTP_201_CREATED)

    def update(self, request, *args, **kwargs):
        rule = self.get_object()
        serializer = self.get_serializer(rule, data=request.data, partial=kwargs.get("partial", False))
        serializer.is_valid(raise_exception=True)
        return Response(self.get_serializer(self._save(serializer, instance=rule)).data)

    def perform_destroy(self, instance):
        services.delete_rule(rule=instance, actor=audit.actor_of(self.request))


# ----------------------------------------------------------------------------------------------- leads


def _lead(request, pk, queryset=None) -> Lead:
    """A lead the request's principal may see (policy.visible), of `queryset` (default: the org's)."""
    leads = queryset if queryset is not None else Lead.objects.for_org(request.organization)
    return get_object_or_404(policy.visible(policy.principal_of(request), leads), pk=pk)


class LeadRouteView(APIView):
    """`POST /api/v1/leads/{id}/route/`: route the lead now by the org's rules."""

    permission_classes = [Allowed]
    policy_action = Action.ROUTE_LEADS

    @extend_schema(request=None, responses={200: AssignmentSerializer, 409: CONFLICT_RESPONSE})
    def post(self, request, pk):
        """Route the lead now: the first matching rule gives it to a rep (who becomes its `owner`) or to a team's
        pool. A 409 when no rule can place it, or when the lead is past the open stages."""
        lead = _lead(request, pk)
        assignment = services.route_lead(organization_id=request.organization.pk, lead_id=lead.pk,
                                         reason=AssignmentReason.ROUTE_NOW, actor=audit.actor_of(request))
        if assignment is None:
            lead.refresh_from_db(fields=["lifecycle_stage"])
            if lead.lifecycle_stage not in services.OPEN_STAGES:
                stage = LifecycleStage(lead.lifecycle_stage).label
                raise Conflict(f"This lead is {stage}: only open leads (subscriber to SQL) are routed.",
                               code="lead_not_open")
            raise Conflict("No active assignment rule places this lead: add a rule that matches it, or a fallback.",
                           code="no_matching_rule")
        return Response(AssignmentSerializer(assignment).data)


class LeadAssignmentsView(generics.ListAPIView):
    """`GET /api/v1/leads/{id}/assignments/`: every assignment, re-assignment, pooling and claim, newest first."""

    permission_classes = [Allowed]
    policy_action = Action.WORK_LEADS
    serializer_class = AssignmentSerializer
    pagination_class = CreatedCursorPagination
    filter_backends = []

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return Assignment.objects.none()
        return selectors.history(self.request.organization.pk, _lead(self.request, self.kwargs["pk"]))


class LeadClaimView(APIView):
    """`POST /api/v1/leads/{id}/claim/`: a rep takes a lead waiting in one of their teams' pools."""

    permission_classes = [Allowed]
    policy_action = Action.CLAIM  # a person's act: claiming makes the lead theirs, which a key has no self to be

    @extend_schema(request=None, responses={200: AssignmentSerializer, 409: CONFLICT_RESPONSE})
    def post(self, request, pk):
        """Claim the lead for yourself. Of two reps claiming at once one wins; the other gets a 409 saying who
        has it. A lead outside your teams' pools is a 404."""
        organization = request.organization
        your_teams = selectors.pool_teams(organization.pk, policy.principal_of(request))
        lead = get_object_or_404(Lead.objects.for_org(organization).filter(routing__team__in=your_teams), pk=pk)
        assignment = services.claim(organization_id=organization.pk, lead_id=lead.pk, user=request.user,
                                    teams=your_teams)
        return Response(AssignmentSerializer(assignment).data)


class LeadTouchView(APIView):
    """`POST /api/v1/leads/{id}/touch/`: log a call, email, meeting or note; the first one stops the SLA clock."""

    permission_classes = [Allowed]
    policy_action = Action.WORK_LEADS

    @extend_schema(request=TouchSerializer, responses={201: ActivitySerializer}, parameters=[IDEMPOTENCY_PARAMETER])
    @idempotent
    def post(self, request, pk):
        """Log what was done with the lead, on its timeline. Reps may log only on leads they own."""
        lead = _lead(request, pk)
        serializer = TouchSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        activity = lead_services.log_touch(
            organization_id=request.organization.pk, lead=lead, type=TOUCH_TYPES[data["type"]],
            outcome=data["outcome"], note=data["note"], occurred_at=data["occurred_at"], actor=audit.actor_of(request))
        return Response(ActivitySerializer(activity).data, status=status.HTTP_201_CREATED)


ReassignResultSerializer = inline_serializer("ReassignResult", {
    "results": inline_serializer("ReassignedLead", {
        "lead": serializers.UUIDField(), "status": serializers.IntegerField(),
        "assignment": AssignmentSerializer(required=False), "detail": serializers.CharField(required=False),
    }, many=True),
    "reassigned": serializers.IntegerField(),
})


class ReassignView(APIView):
    """`POST /api/v1/leads/reassign/`: hand leads to another rep (or to nobody) by hand."""

    permission_classes = [Allowed]
    policy_action = Action.REASSIGN

    @extend_schema(request=ReassignSerializer, responses=ReassignResultSerializer)
    def post(self, request):
        """Give up to 500 leads to the rep (`null`: to nobody). An unknown lead id refuses the whole request;
        each lead is then re-assigned on its own, with its result."""
        organization = request.organization
        serializer = ReassignSerializer(data=request.data, context={"organization": organization})
        serializer.is_valid(raise_exception=True)
        lead_ids = list(dict.fromkeys(serializer.validated_data["leads"]))
        rep = serializer.validated_data["rep"]
        found = set(Lead.objects.for_org(organization).filter(pk__in=lead_ids).values_list("pk", flat=True))
        unknown = [str(lead_id) for lead_id in lead_ids if lead_id not in found]
        if unknown:
            raise exceptions.ValidationError({"leads": [f"No such leads: {', '.join(unknown)}."]})
        results = []
        for lead_id in lead_ids:
            try:
                assignment = services.reassign(organization_id=organization.pk, lead_id=lead_id,
                                               rep_id=rep.user_id if rep else None, actor=audit.actor_of(request))
            except Lead.DoesNotExist:  # deleted meanwhile
                results.append({"lead": lead_id, "status": 404, "detail": "No such lead."})
                continue
            if rep is not None:
                assignment.rep = rep.user
            results.append({"lead": lead_id, "status": 200, "assignment": AssignmentSerializer(assignment).data})
        return Response({"results": results, "reassigned": sum(r["status"] == 200 for r in results)})


# ----------------------------------------------------------------------------------------------- queue


def _queue_owner(request):
    """Whose queue the request reads: one's own, or `?rep=` as selectors.queue_owner allows (as in the browser)."""
    raw = request.query_params.get("rep", "").strip()
    if not raw:
        if request.auth is not None:
            raise exceptions.ValidationError({"rep": ["Name the rep whose queue to read: ?rep=<user id>."]})
        return request.user
    if not raw.isdigit() or len(raw) > 18:
        raise exceptions.ValidationError({"rep": ["A rep's user id (a number)."]})
    user = selectors.queue_owner(request.organization.pk, policy.principal_of(request), int(raw))
    if user is None:
        raise exceptions.NotFound()
    return user


class QueueView(APIView):
    """`GET /api/v1/queue/`: a rep's open leads, most overdue first, then hottest."""

    permission_classes = [Allowed]
    policy_action = Action.WORK_LEADS

    @extend_schema(responses={200: QueueSerializer}, parameters=[OpenApiParameter(
        "rep", OpenApiTypes.INT, description="The rep's user id. Required with an API key; a rep signed in always "
                                             "reads their own queue.")])
    def get(self, request):
        """The rep's queue in priority order: overdue first-touch deadlines, then by deadline, heat and score.
        At most QUEUE_LIMIT leads; `count` is how many there are in all."""
        user = _queue_owner(request)
        now = timezone.now()
        leads = selectors.queue(request.organization.pk, user, now=now)
        rows = list(leads[:selectors.QUEUE_LIMIT])
        count = len(rows) if len(rows) < selectors.QUEUE_LIMIT else leads.count()
        return Response({"rep": user.pk, "count": count,
                         "results": QueueItemSerializer(rows, many=True, context={"now": now}).data})
