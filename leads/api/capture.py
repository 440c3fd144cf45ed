"""REST API for leads, activities, forms and imports (thin: validation in serializers, work in services)."""

import json

from django.db import IntegrityError, transaction
from django_filters.rest_framework import DjangoFilterBackend
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import mixins, renderers, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import PermissionDenied, ValidationError
from rest_framework.filters import OrderingFilter
from rest_framework.generics import get_object_or_404
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response

from leadcrm import audit, policy
from leadcrm.api import BULK_LIMIT, CONFLICT_RESPONSE, OrgScopedViewSet, idempotent
from leadcrm.jsonrows import LeanListMixin
from leadcrm.pagination import CreatedCursorPagination
from leadcrm.parsers import JSONParser
from leadcrm.policy import Action

from .. import imports, selectors, services
from ..filters import LeadFilter, LeadSearchFilter
from ..models import Activity, Form, FormSubmission, ImportJob, Touch
from ..serializers import (
    DETAIL_FIELDS,
    LEAD_INPUT_FIELDS,
    ActivityInputSerializer,
    ActivitySerializer,
    FormSerializer,
    FormSubmissionSerializer,
    ImportJobSerializer,
    LeadDetailSerializer,
    LeadSerializer,
    TouchSerializer,
)
from .bulk import LeadBulkActions
from .lifecycle import LifecycleActions
from .sync import FEED_DOC, DeletedActions, LeanFeedPagination


class ActivityCursorPagination(CreatedCursorPagination):
    ordering = "-occurred_at"


class TouchCursorPagination(CreatedCursorPagination):
    ordering = "-occurred_at"


class LeadViewSet(LifecycleActions, LeadBulkActions, DeletedActions, mixins.RetrieveModelMixin, LeanListMixin,
                  mixins.ListModelMixin, OrgScopedViewSet):
    """Reps read and work the leads they own (policy.visible); changing leads at large is org-wide work."""

    policy_action = Action.MANAGE_LEADS
    policy_actions = {name: Action.WORK_LEADS for name in ("list", "retrieve", "activities", "touches", "stage",
                                                           "convert", "bulk_stage", "bulk_convert", "deleted")} | {
        "partial_update": Action.EDIT_LEADS, "export": Action.EXPORT, "erase": Action.ERASE}
    serializer_class = LeadSerializer
    filterset_class = LeadFilter
    filter_backends = [DjangoFilterBackend, LeadSearchFilter, OrderingFilter]
    ordering_fields = ["created_at", "updated_at", "score", "last_activity_at"]
    ordering = ["-created_at"]
    pagination_class = LeanFeedPagination

    def get_queryset(self):
        if self.action == "deleted":
            return self.tombstones()
        return policy.visible(policy.principal_of(self.request), selectors.leads_for(self.organization))

    def list(self, request, *args, **kwargs):
        return super().list(request, *args, **kwargs)

    list.__doc__ = "The leads a key or member may see, filtered, searched and ordered, in cursor pages." + FEED_DOC

    def get_serializer_class(self):
        return LeadDetailSerializer if self.action == "retrieve" else super().get_serializer_class()

    @extend_schema(responses={200: LeadSerializer, 201: LeadSerializer},
                   parameters=[OpenApiParameter("Idempotency-Key", str, OpenApiParameter.HEADER)])
    @idempotent
    def create(self, request):
        """Create a lead; a lead with the same email is merged into (200 with the existing id)."""
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        result = services.capture_lead(organization_id=self.organization.pk, data=serializer.validated_data,
                                       channel="api", consent=_api_consent(request))
        serializer.instance = result.lead  # as after save(): .data now represents the stored lead
        return Response(serializer.data, status=status.HTTP_201_CREATED if result.created else status.HTTP_200_OK)

    @extend_schema(responses={200: LeadSerializer, 409: CONFLICT_RESPONSE})
    def partial_update(self, request, pk=None):
        """Change some of the lead's fields. Every role may correct the contact and company details of the leads
        it works (`first_name last_name email phone job_title company industry company_size annual_revenue website
        country region city timezone`); the other fields are for admins, managers and marketers."""
        given = set(request.data) if isinstance(request.data, dict) else set()
        others = sorted(given & set(LEAD_INPUT_FIELDS) - set(DETAIL_FIELDS))  # unknown ones are the serializer's
        if others and not policy.principal_of(request).can(Action.MANAGE_LEADS):
            raise PermissionDenied(f"Your role may change only a lead's contact and company details, not: "
                                   f"{', '.join(others)}.")
        lead = self._update_lead(self.get_object(), request.data, actor=audit.actor_of(request))
        return Response(self.get_serializer(lead).data)

    def _update_lead(self, lead, data, *, actor, bulk=False):
        """A lead's fields changed through the API, one by PATCH or many by bulk-update: the same checks, then
        the same service."""
        if lead.erased_at is not None:  # refused before its input is checked: no change of it could be made
            raise services.LeadErased("This lead was erased on request; it cannot be changed.")
        serializer = LeadSerializer(lead, data=data, partial=True, context=self.get_serializer_context())
        serializer.is_valid(raise_exception=True)
        try:
            return services.update_lead(lead=lead, data=serializer.validated_data, actor=actor, bulk=bulk)
        except IntegrityError:  # another request took the email after validation passed
            raise ValidationError({"email": ["Another lead already has this email address."]}) from None

    def destroy(self, request, pk=None):
        services.delete_lead(lead=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(
        request=inline_serializer("BulkLeads", {"leads": LeadSerializer(many=True)}),
        responses={200: inline_serializer("BulkResult", {"results": serializers.ListField()})},
    )
    @action(detail=False, methods=["post"])
    @idempotent
    def bulk(self, request):
        """Up to 1,000 leads; each row is captured on its own, so one bad row never loses the others."""
        rows = request.data.get("leads") if isinstance(request.data, dict) else request.data
        if not isinstance(rows, list):
            raise ValidationError({"leads": ["Send a list of leads, as {\"leads\": [...]}."]})
        if len(rows) > BULK_LIMIT:
            raise ValidationError({"leads": [f"At most {BULK_LIMIT} leads per request."]})
        results = []
        for index, row in enumerate(rows):
            serializer = self.get_serializer(data=row)
            if not isinstance(row, dict) or not serializer.is_valid():
                errors = serializer.errors if isinstance(row, dict) else {"non_field_errors": ["Expected an object."]}
                results.append({"index": index, "status": 400, "errors": errors})
                continue
            result = services.capture_lead(organization_id=self.organization.pk, data=serializer.validated_data,
                                           channel="api_bulk", consent=_api_consent(request))
            results.append({"index": index, "status": 201 if result.created else 200, "id": str(result.lead.pk)})
        summary = {
            "created": sum(r["status"] == 201 for r in results),
            "merged": sum(r["status"] == 200 for r in results),
            "failed": sum(r["status"] == 400 for r in results),
        }
        return Response({"results": results, **summary})

    @extend_schema(responses={200: OpenApiTypes.OBJECT})
    @action(detail=True, methods=["get"], filter_backends=[], pagination_class=None)
    def export(self, request, pk=None):
        """Everything held about the lead as JSON: its fields, consents, activities, form submissions, deals,
        and each app's part (score history, emails and enrolments, assignments, campaign memberships…).
        Admins and marketers (and keys of those roles)."""
        return Response(services.export_lead(lead=self.get_object()))

    @extend_schema(request=None, responses={200: LeadSerializer})
    @action(detail=True, methods=["post"], filter_backends=[], pagination_class=None)
    def erase(self, request, pk=None):
        """Erase the person's data (lead fields, activity details, form answers, emails and every app's part);
        the anonymous row stays for reports. Erasing again changes nothing. Admins (and admin keys)."""
        lead = self.get_object()
        services.erase_lead(lead=lead, actor=audit.actor_of(request))
        lead.refresh_from_db()
        return Response(LeadSerializer(lead, context=self.get_serializer_context()).data)

    @extend_schema(responses=ActivitySerializer(many=True))
    @action(detail=True, methods=["get"], pagination_class=ActivityCursorPagination, filter_backends=[])
    def activities(self, request, pk=None):
        """The lead's timeline, newest first."""
        lead = self.get_object()
        queryset = Activity.objects.for_org(self.organization).filter(lead=lead).select_related(None)
        page = self.paginate_queryset(self.filter_queryset(queryset))
        return self.get_paginated_response(ActivitySerializer(page, many=True).data)


    @extend_schema(responses=TouchSerializer(many=True))
    @action(detail=True, methods=["get"], pagination_class=TouchCursorPagination, filter_backends=[])
    def touches(self, request, pk=None):
        """Every time the lead came to us (API, form, import) with its source, UTM fields, referrer and landing
        page, newest first. The lead's first_touch and last_touch summarise the earliest and latest."""
        lead = self.get_object()
        page = self.paginate_queryset(Touch.objects.for_org(self.organization).filter(lead=lead))
        return self.get_paginated_response(TouchSerializer(page, many=True).data)


def _user(request):
    return request.user if request.user.is_authenticated else None


def _api_consent(request) -> dict:
    """How an API opt-in was given: through which key (or signed-in user)."""
    return {"channel": "api", "source": audit.actor_label(audit.actor_of(request))}


class ActivityViewSet(mixins.CreateModelMixin, OrgScopedViewSet):
    policy_action = Action.MANAGE_LEADS
    serializer_class = ActivityInputSerializer

    def get_queryset(self):
        return Activity.objects.for_org(self.organization)

    @extend_schema(request=ActivityInputSerializer, responses={201: ActivitySerializer},
                   parameters=[OpenApiParameter("Idempotency-Key", str, OpenApiParameter.HEADER)])
    @idempotent
    def create(self, request):
        """Record an activity for a lead id or an email; an unknown email creates the lead."""
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        activity, lead_created = services.track_activity(
            organization_id=self.organization.pk, type=data["type"], lead=data.get("lead"),
            email=data.get("email", ""), properties=data.get("properties"), occurred_at=data.get("occurred_at"),
            actor=audit.actor_of(request),
        )
        return Response({**ActivitySerializer(activity).data, "lead_created": lead_created},
                        status=status.HTTP_201_CREATED)


class FormViewSet(viewsets.ModelViewSet, OrgScopedViewSet):
    policy_action = Action.FORMS
    serializer_class = FormSerializer
    lookup_field = "pk"
    ordering_fields = ["created_at", "name"]
    search_fields = ["name", "slug"]

    def get_queryset(self):
        return Form.objects.for_org(self.organization)

    @idempotent
    def create(self, request, *args, **kwargs):
        return super().create(request, *args, **kwargs)

    def perform_create(self, serializer):
        _save_form(serializer, organization=self.organization)

    def perform_update(self, serializer):
        _save_form(serializer)

    @extend_schema(responses=FormSubmissionSerializer(many=True))
    @action(detail=True, methods=["get"], filterset_class=None, search_fields=[], ordering_fields=["created_at"])
    def submissions(self, request, pk=None):
        """The form's submissions, newest first."""
        form = self.get_object()
        queryset = FormSubmission.objects.for_org(self.organization).filter(form=form)
        page = self.paginate_queryset(self.filter_queryset(queryset))
        return self.get_paginated_response(FormSubmissionSerializer(page, many=True).data)


def _save_form(serializer, **extra):
    """Save, turning a slug taken by a concurrent request (after validation passed) into a 400."""
    try:
        with transaction.atomic():
            return serializer.save(**extra)
    except IntegrityError:
        raise ValidationError({"slug": ["This slug is taken; choose another."]}) from None


class ImportSerializer(ImportJobSerializer):
    errors_csv = serializers.SerializerMethodField(help_text="Every failed row, with its cells and errors.")

    class Meta(ImportJobSerializer.Meta):
        fields = [*ImportJobSerializer.Meta.fields, "encoding", "delimiter", "errors_csv"]
        read_only_fields = fields

    def get_errors_csv(self, job) -> str:
        path = f"/api/v1/imports/{job.pk}/errors.csv"
        request = self.context.get("request")
        return request.build_absolute_uri(path) if request else path


class CSVRenderer(renderers.BaseRenderer):
    """Lets `Accept: text/csv` reach the error report (which builds its own response)."""

    media_type = "text/csv"
    format = "csv"
    charset = "utf-8"

    def render(self, data, accepted_media_type=None, renderer_context=None):
        return data if isinstance(data, bytes | str) else json.dumps(data)


class ImportViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, OrgScopedViewSet):
    policy_action = Action.IMPORTS
    serializer_class = ImportSerializer
    parser_classes = [MultiPartParser, FormParser, JSONParser]
    filterset_class = None
    ordering_fields = ["created_at"]
    search_fields = ["filename"]

    def get_queryset(self):
        return ImportJob.objects.for_org(self.organization)

    @extend_schema(
        request={"multipart/form-data": inline_serializer(
            "ImportUpload", {"file": serializers.FileField(), "mapping": serializers.CharField(required=False)}
        )},
        responses={202: ImportSerializer},
    )
    @idempotent
    def create(self, request):
        """Upload a CSV and start importing it. `mapping` (JSON: CSV header -> lead field, or "" to skip a
        column) chooses the columns; without it the mapping guessed from the headers is used."""
        upload = request.FILES.get("file")
        if upload is None:
            raise ValidationError({"file": ["Attach a CSV file as 'file' (multipart/form-data)."]})
        with transaction.atomic():
            job = imports.create_import(
                organization_id=self.organization.pk, upload=upload, created_by=_user(request),
                mapping=request.data.get("mapping"),
            )
            imports.start_import(job=job)
        return Response(self.get_serializer(job).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(responses={(200, "text/csv"): OpenApiTypes.STR})
    @action(detail=True, methods=["get"], url_path="errors.csv", renderer_classes=[JSONRenderer, CSVRenderer])
    def errors_csv(self, request, pk=None):
        """The per-row error report as CSV (cells that look like formulas are neutralised)."""
        return imports.error_report_response(get_object_or_404(self.get_queryset(), pk=pk))
