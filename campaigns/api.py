"""REST API of campaigns (thin: ids resolved in serializers, work in services, numbers in selectors).

`/api/v1/campaigns/` CRUD with each campaign's numbers and attribution; `…/{id}/members/` to list, add (lead
ids, emails or a segment) and remove members; `…/{id}/costs/` for the cost entries.
"""

from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.generics import get_object_or_404
from rest_framework.response import Response

from leadcrm import urlids
from leadcrm.api import OrgScopedViewSet, idempotent
from leadcrm.pagination import CreatedCursorPagination
from leadcrm.policy import Action
from leads import selectors as lead_selectors
from leads import services as lead_services
from leads.models import Lead

from . import selectors, services
from .models import Campaign, CampaignCost, MemberSource
from .serializers import (
    CampaignSerializer,
    CostSerializer,
    MemberSerializer,
    MembersInputSerializer,
    RemoveMembersSerializer,
)

IDEMPOTENCY_PARAMETER = OpenApiParameter("Idempotency-Key", str, OpenApiParameter.HEADER)
MembersResult = inline_serializer("CampaignMembersResult", {
    "added": serializers.IntegerField(help_text="Leads that joined, or whose status moved forward."),
    "members": serializers.IntegerField()})
RemovedResult = inline_serializer("CampaignMembersRemoved", {
    "removed": serializers.IntegerField(), "members": serializers.IntegerField()})


class MemberCursorPagination(CreatedCursorPagination):
    ordering = "-joined_at"


class CostCursorPagination(CreatedCursorPagination):
    ordering = "-date"


class CampaignViewSet(viewsets.ModelViewSet, OrgScopedViewSet):
    """Campaigns with their cost, members, MQLs, SQLs, deals, won revenue, ROI and the attribution of won revenue
    (first touch, last touch, linear)."""

    policy_action = Action.CAMPAIGNS
    serializer_class = CampaignSerializer
    pagination_class = CreatedCursorPagination
    search_fields = ["name", "utm_campaign"]
    ordering_fields = ["created_at", "name", "start"]

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return Campaign.objects.none()
        return selectors.with_metrics(self.organization.pk)

    def _campaign(self, pk) -> Campaign:
        return get_object_or_404(Campaign.objects.for_org(self.organization), pk=pk)

    def _answer(self, campaign_id, status_code=status.HTTP_200_OK):
        campaign = self.get_queryset().get(pk=campaign_id)
        context = {**self.get_serializer_context(),
                   "attribution": selectors.attribution(self.organization.pk, [campaign.pk])}
        return Response(CampaignSerializer(campaign, context=context).data, status=status_code)

    def list(self, request, *args, **kwargs):
        page = self.paginate_queryset(self.filter_queryset(self.get_queryset()))
        context = {**self.get_serializer_context(),
                   "attribution": selectors.attribution(self.organization.pk, [c.pk for c in page])}
        return self.get_paginated_response(CampaignSerializer(page, many=True, context=context).data)

    def retrieve(self, request, *args, **kwargs):
        return self._answer(self.get_object().pk)

    def _save(self, serializer, instance=None):
        return services.save_campaign(organization_id=self.organization.pk,
                                      data=dict(serializer.validated_data), instance=instance)

    @extend_schema(parameters=[IDEMPOTENCY_PARAMETER])
    @idempotent
    def create(self, request, *args, **kwargs):
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        return self._answer(self._save(serializer).pk, status.HTTP_201_CREATED)

    def update(self, request, *args, **kwargs):
        campaign = self._campaign(kwargs["pk"])
        serializer = self.get_serializer(campaign, data=request.data, partial=kwargs.get("partial", False))
        serializer.is_valid(raise_exception=True)
        return self._answer(self._save(serializer, instance=campaign).pk)

    def destroy(self, request, *args, **kwargs):
        services.delete_campaign(campaign=self._campaign(kwargs["pk"]))
        return Response(status=status.HTTP_204_NO_CONTENT)

    # --------------------------------------------------------------------------------------- members

    @extend_schema(methods=["get"], responses=MemberSerializer(many=True))
    @extend_schema(methods=["post"], request=MembersInputSerializer, responses=MembersResult)
    @action(detail=True, methods=["get", "post"], filter_backends=[], pagination_class=MemberCursorPagination)
    def members(self, request, pk=None):
        """GET: the members, latest joined first, in cursor pages. POST: add leads by `leads` (ids), `emails` or
        `segment` (all its leads, in one statement) with a `status` (targeted by default). An id, email or
        segment the organization does not have refuses the whole request."""
        campaign = self._campaign(pk)
        if request.method == "GET":
            page = self.paginate_queryset(selectors.members(campaign))
            return self.get_paginated_response(MemberSerializer(page, many=True).data)
        serializer = MembersInputSerializer(data=request.data, context=self.get_serializer_context())
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        organization_id = self.organization.pk
        source = MemberSource.MANUAL
        if "leads" in data:
            leads = lead_services.leads_by_ids(organization_id, data["leads"])
        elif "emails" in data:
            leads = lead_services.leads_by_emails(organization_id, data["emails"])
        else:
            leads, source = lead_selectors.segment_leads(data["segment"]), MemberSource.SEGMENT
        added = services.add_members(campaign=campaign, leads=leads, status=data["status"], source=source)
        return Response({"added": added, "members": selectors.members(campaign).count()})

    @extend_schema(request=RemoveMembersSerializer, responses=RemovedResult)
    @action(detail=True, methods=["post"], url_path="members/remove", filter_backends=[], pagination_class=None)
    def remove_members(self, request, pk=None):
        """Remove members by `leads` (ids) or `emails`; an id or email the organization does not have refuses the
        request."""
        campaign = self._campaign(pk)
        serializer = RemoveMembersSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        if "leads" in data:
            leads = lead_services.leads_by_ids(self.organization.pk, data["leads"])
        else:
            leads = lead_services.leads_by_emails(self.organization.pk, data["emails"])
        removed = services.remove_members(campaign=campaign, leads=leads)
        return Response({"removed": removed, "members": selectors.members(campaign).count()})

    @extend_schema(request=None, responses={204: None})
    @action(detail=True, methods=["delete"], url_path=rf"members/(?P<lead_id>{urlids.UUID})", filter_backends=[],
            pagination_class=None)
    def remove_member(self, request, pk=None, lead_id=None):
        """Remove one member; a lead that is not a member is a 404."""
        campaign = self._campaign(pk)
        member = get_object_or_404(selectors.members(campaign), lead_id=lead_id)
        services.remove_members(campaign=campaign, leads=Lead.objects.for_org(self.organization).filter(
            pk=member.lead_id))
        return Response(status=status.HTTP_204_NO_CONTENT)

    # --------------------------------------------------------------------------------------- costs

    @extend_schema(methods=["get"], responses=CostSerializer(many=True))
    @extend_schema(methods=["post"], request=CostSerializer, responses={201: CostSerializer},
                   parameters=[IDEMPOTENCY_PARAMETER])
    @action(detail=True, methods=["get", "post"], filter_backends=[], pagination_class=CostCursorPagination)
    def costs(self, request, pk=None):
        """GET: the cost entries, latest first. POST: record money spent (`date`, `amount`, `note`); the
        campaign's cost is their sum."""
        campaign = self._campaign(pk)
        if request.method == "GET":
            page = self.paginate_queryset(selectors.costs(campaign))
            return self.get_paginated_response(CostSerializer(page, many=True).data)
        return self._add_cost(request, campaign)

    @idempotent
    def _add_cost(self, request, campaign):
        serializer = CostSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        cost = services.add_cost(campaign=campaign, **serializer.validated_data)
        return Response(CostSerializer(cost).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=None, responses={204: None})
    @action(detail=True, methods=["delete"], url_path=rf"costs/(?P<cost_id>{urlids.UUID})", filter_backends=[],
            pagination_class=None)
    def delete_cost(self, request, pk=None, cost_id=None):
        campaign = self._campaign(pk)
        cost = get_object_or_404(CampaignCost.objects.for_org(self.organization).filter(campaign=campaign),
                                 pk=cost_id)
        services.delete_cost(cost=cost)
        return Response(status=status.HTTP_204_NO_CONTENT)

