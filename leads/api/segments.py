"""REST API of segments: CRUD, a segment's leads (cursor pages), a count preview of a draft definition, and the
hand-picked members of static lists.

`count` is in every single-segment answer. A list page carries it only with `?with_counts=1` (else null): all
the page's counts then come from one query, and the page holds at most WITH_COUNTS_PAGE_SIZE segments, since
that query's cost grows with the number of segments it counts.
"""

from django.db import transaction
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.filters import OrderingFilter
from rest_framework.generics import get_object_or_404
from rest_framework.response import Response

from leadcrm import replica
from leadcrm.api import CONFLICT_RESPONSE, OrgScopedViewSet, StrictModelSerializer, StrictSerializer, idempotent
from leadcrm.pagination import CreatedCursorPagination
from leadcrm.policy import Action

from .. import selectors, services
from ..conditions import ConditionError
from ..models import Lead, Segment, SegmentKind
from ..segments import definition_q
from ..serializers import LeadSerializer

WITH_COUNTS_PAGE_SIZE = 50
TRUE_WORDS = ("1", "true", "yes", "on")


def definition_errors(exc: ConditionError) -> ConditionError:
    """The same refusal with keys that name the part as the request spells it: `definition.all.2.op`."""
    errors = {}
    for key, messages in exc.errors.items():
        errors[key if key in ("kind", "definition") else f"definition.{key}"] = messages
    return ConditionError(errors)


class SegmentSerializer(StrictModelSerializer):
    definition = serializers.JSONField(required=False, help_text=(
        'Conditions of a dynamic segment: {"all": [...]} or {"any": [...]}; a static list has none ({}).'))
    count = serializers.SerializerMethodField(help_text="Leads in the segment now (null on list pages unless "
                                                        "?with_counts=1).")

    class Meta:
        model = Segment
        fields = ["id", "name", "description", "kind", "definition", "count", "created_by", "created_at",
                  "updated_at"]
        read_only_fields = ["id", "count", "created_by", "created_at", "updated_at"]

    def get_count(self, segment) -> int | None:
        return self.context.get("counts", {}).get(segment.pk)

    def validate_kind(self, value):
        if self.instance is not None and value != self.instance.kind:
            raise serializers.ValidationError("A segment's kind cannot change; create a new segment instead.")
        return value


class PreviewSerializer(StrictSerializer):
    definition = serializers.JSONField()


class MembersSerializer(StrictSerializer):
    add = serializers.ListField(child=serializers.UUIDField(), required=False, default=list,
                                max_length=services.MEMBERS_LIMIT)
    remove = serializers.ListField(child=serializers.UUIDField(), required=False, default=list,
                                   max_length=services.MEMBERS_LIMIT)

    def validate(self, attrs):
        if not attrs["add"] and not attrs["remove"]:
            raise serializers.ValidationError({"add": ["Give lead ids to add or to remove."]})
        both = set(attrs["add"]) & set(attrs["remove"])
        if both:
            raise serializers.ValidationError({"remove": [
                f"Both added and removed: {', '.join(sorted(map(str, both)))}."]})
        return attrs


CountSerializer = inline_serializer("SegmentCount", {"count": serializers.IntegerField()})
MembersResultSerializer = inline_serializer("SegmentMembersResult", {
    "added": serializers.IntegerField(), "removed": serializers.IntegerField(), "count": serializers.IntegerField()})


class SegmentViewSet(viewsets.ModelViewSet, OrgScopedViewSet):
    policy_action = Action.SEGMENTS
    serializer_class = SegmentSerializer
    pagination_class = CreatedCursorPagination
    ordering_fields = ["created_at", "updated_at"]
    search_fields = ["name"]

    def get_queryset(self):
        queryset = Segment.objects.for_org(self.organization)
        kind = self.request.query_params.get("kind")
        if self.action == "list" and kind in SegmentKind.values:
            queryset = queryset.filter(kind=kind)
        return queryset

    def _segment(self, pk) -> Segment:
        """The segment in the URL, found without this action's filters (its ?ordering= is for the leads)."""
        segment = get_object_or_404(self.get_queryset(), pk=pk)
        self.check_object_permissions(self.request, segment)
        return segment

    def _answer(self, segment, status_code=status.HTTP_200_OK):
        try:
            with replica.reading():  # a write of this request (create, update) keeps it on the primary
                counts = {segment.pk: selectors.segment_leads(segment).count()}
        except ConditionError:  # stored before the language changed: readable, fixable, not countable
            counts = {}
        serializer = self.get_serializer(segment, context={**self.get_serializer_context(), "counts": counts})
        return Response(serializer.data, status=status_code)

    @extend_schema(parameters=[
        OpenApiParameter("kind", str, enum=SegmentKind.values),
        OpenApiParameter("with_counts", bool, description=f"Fill in `count` (pages of at most "
                                                          f"{WITH_COUNTS_PAGE_SIZE} segments then)."),
    ])
    def list(self, request):
        with_counts = request.query_params.get("with_counts", "").lower() in TRUE_WORDS
        if with_counts:
            self.paginator.max_page_size = WITH_COUNTS_PAGE_SIZE
        page = self.paginate_queryset(self.filter_queryset(self.get_queryset()))
        context = self.get_serializer_context()
        if with_counts:
            with replica.reading():
                context["counts"] = services.segment_counts(self.organization.pk, page)
        return self.get_paginated_response(self.get_serializer(page, many=True, context=context).data)

    def retrieve(self, request, pk=None):
        return self._answer(self.get_object())

    @extend_schema(parameters=[OpenApiParameter("Idempotency-Key", str, OpenApiParameter.HEADER)])
    @idempotent
    def create(self, request):
        """Create a dynamic segment (`definition`) or a static list (`"kind": "static"`, no definition)."""
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        try:
            segment = services.create_segment(
                organization_id=self.organization.pk, name=data["name"], description=data.get("description", ""),
                kind=data.get("kind", SegmentKind.DYNAMIC), definition=data.get("definition"),
                created_by=request.user if request.user.is_authenticated else None)
        except ConditionError as exc:
            raise definition_errors(exc) from None
        return self._answer(segment, status.HTTP_201_CREATED)

    def update(self, request, pk=None, partial=False):
        segment = self.get_object()
        serializer = self.get_serializer(segment, data=request.data, partial=partial)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        try:
            segment = services.update_segment(segment=segment, name=data.get("name"),
                                              description=data.get("description"),
                                              definition=data.get("definition"))
        except ConditionError as exc:
            raise definition_errors(exc) from None
        return self._answer(segment)

    def partial_update(self, request, pk=None):
        return self.update(request, pk, partial=True)

    @extend_schema(responses={204: None, 409: CONFLICT_RESPONSE})
    def destroy(self, request, pk=None):
        """Delete a segment; a static list that other segments test membership of is a 409."""
        services.delete_segment(segment=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(responses=LeadSerializer(many=True))
    @action(detail=True, methods=["get"], filter_backends=[OrderingFilter], search_fields=[],
            ordering_fields=["created_at", "updated_at", "score", "last_activity_at"])
    def leads(self, request, pk=None):
        """The segment's leads, newest first (`?ordering=` changes it), in cursor pages; one SQL query per
        page however the definition nests."""
        segment = self._segment(pk)
        page = self.paginate_queryset(self.filter_queryset(selectors.segment_leads(segment)))
        serializer = LeadSerializer(page, many=True, context=self.get_serializer_context())
        return self.get_paginated_response(serializer.data)

    @extend_schema(request=PreviewSerializer, responses=CountSerializer)
    @action(detail=False, methods=["post"], filter_backends=[], pagination_class=None)
    def preview(self, request):
        """How many leads a draft definition selects, without saving anything."""
        serializer = PreviewSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        try:
            definition = services.clean_definition(self.organization.pk, serializer.validated_data["definition"])
        except ConditionError as exc:
            raise definition_errors(exc) from None
        leads = Lead.objects.for_org(self.organization).filter(definition_q(self.organization.pk, definition))
        with replica.reading(writes_nothing=True):  # the preview only asks: the replica answers it
            count = leads.count()
        return Response({"count": count})

    @extend_schema(request=MembersSerializer, responses=MembersResultSerializer)
    @action(detail=True, methods=["post"], filter_backends=[], pagination_class=None)
    def members(self, request, pk=None):
        """Add leads to and remove leads from a static list, all or nothing: an unknown id refuses the request."""
        segment = self.get_object()
        if segment.kind != SegmentKind.STATIC:  # refused before the members are looked up
            raise services.NotAStaticList(
                "Only a static list has hand-picked members; this segment is defined by its conditions.")
        serializer = MembersSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        organization_id = self.organization.pk
        to_add = services.leads_by_ids(organization_id, data["add"], field="add") if data["add"] else None
        to_remove = services.leads_by_ids(organization_id, data["remove"], field="remove") if data["remove"] else None
        with transaction.atomic():
            added = services.add_to_list(segment=segment, leads=to_add) if to_add is not None else 0
            removed = services.remove_from_list(segment=segment, leads=to_remove) if to_remove is not None else 0
        return Response({"added": added, "removed": removed, "count": selectors.segment_leads(segment).count()})
