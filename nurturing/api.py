"""REST API of nurturing (thin: checks in the sandbox and services). Sections: templates (and folders) first,
then sequences."""

from types import SimpleNamespace

from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import exceptions, mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from leadcrm import audit, policy, urlids
from leadcrm.api import CONFLICT_RESPONSE, OrgScopedViewSet, idempotent
from leadcrm.errors import Conflict
from leadcrm.pagination import CreatedCursorPagination
from leadcrm.policy import Action, Allowed

from . import rendering, selectors, services
from .models import EmailTemplate, TemplateFolder
from .serializers import (
    RenderedSerializer,
    TemplateFolderSerializer,
    TemplatePreviewSerializer,
    TemplateSerializer,
    TemplateVersionSerializer,
)

IDEMPOTENCY_PARAMETER = OpenApiParameter("Idempotency-Key", str, OpenApiParameter.HEADER)


# ----------------------------------------------------------------------------------------------- templates


class VersionCursorPagination(CreatedCursorPagination):
    ordering = "-number"


def preview_lead(organization, lead_id):
    """The lead to preview with, of this org only; another org's lead is refused like one that does not exist."""
    if lead_id is None:
        return None
    lead = selectors.preview_lead(organization.pk, lead_id)
    if lead is None:
        raise exceptions.ValidationError({"lead": ["No such lead in this organization."]})
    return lead


def render_preview(organization, data: dict, version=None) -> rendering.Rendered:
    """Render posted content (parts not posted come from `version`) for the posted lead, or the sample lead."""
    lead = preview_lead(organization, data.get("lead"))
    parts = {part: data.get(part, getattr(version, part, "")) for part in rendering.PARTS}
    return rendering.preview(parts["subject"], parts["html"], parts["text"], lead=lead, organization=organization)


class TemplateViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, OrgScopedViewSet):
    """Email templates: subject, HTML and text with merge fields (`{{ lead.first_name|default:"there" }}`,
    `{{ owner.signature }}`, `{{ unsubscribe_url }}`…), checked by the sandbox when saved. Each change of content
    saves a new version; `version` is the current one."""

    policy_action = Action.NURTURE
    serializer_class = TemplateSerializer
    pagination_class = CreatedCursorPagination
    search_fields = ["name"]
    ordering_fields = ["created_at", "updated_at", "name"]

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return EmailTemplate.objects.none()
        queryset = selectors.templates_with_content(self.organization.pk)
        folder = self.request.query_params.get("folder")
        if folder is not None:
            queryset = queryset.filter(folder__isnull=True) if folder == "" else queryset.filter(
                folder__name__iexact=folder)
        return queryset

    def _answer(self, template, status_code=status.HTTP_200_OK):
        return Response(self.get_serializer(self.get_queryset().get(pk=template.pk)).data, status=status_code)

    @extend_schema(parameters=[IDEMPOTENCY_PARAMETER,
                               OpenApiParameter("folder", str, description="Only this folder's; empty: no folder.")])
    @idempotent
    def create(self, request, *args, **kwargs):
        """Create a template; its content becomes version 1. A template the sandbox refuses (an unknown merge
        field, a tag or filter that is not allowed, a syntax error) is a 400 naming the part."""
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        template = services.create_template(
            organization_id=self.organization.pk, name=data["name"], subject=data["subject"], html=data["html"],
            text=data["text"], folder=data.get("folder"), actor=audit.actor_of(request))
        return self._answer(template, status.HTTP_201_CREATED)

    def update(self, request, *args, **kwargs):
        """Change the name, folder and/or content; new content saves the next version, the same content none."""
        template = self.get_object()
        serializer = self.get_serializer(data=request.data, partial=kwargs.get("partial", False))
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        content = {part: data.get(part, getattr(template, f"current_{part}") or "") for part in rendering.PARTS}
        services.update_template(template=template, name=data.get("name"),
                                 folder=data["folder"] if "folder" in data else services.UNCHANGED,
                                 actor=audit.actor_of(request), **content)
        return self._answer(template)

    def partial_update(self, request, *args, **kwargs):
        return self.update(request, *args, partial=True, **kwargs)

    @extend_schema(responses={204: None, 409: CONFLICT_RESPONSE})
    def destroy(self, request, *args, **kwargs):
        """Delete a template and its versions; one that a sequence step sends is a 409 naming the sequences."""
        services.delete_template(template=self.get_object(), actor=audit.actor_of(request))
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(responses=TemplateVersionSerializer(many=True))
    @action(detail=True, methods=["get"], pagination_class=VersionCursorPagination, filter_backends=[])
    def versions(self, request, pk=None):
        """Every saved version, newest first."""
        queryset = selectors.versions(self.get_object())
        page = self.paginate_queryset(queryset)
        return self.get_paginated_response(TemplateVersionSerializer(page, many=True).data)

    @extend_schema(request=TemplatePreviewSerializer, responses=RenderedSerializer)
    @action(detail=True, methods=["post"], filter_backends=[])
    def preview(self, request, pk=None):
        """Render the template for a lead of this org (`{"lead": id}`; none: a sample lead). Post `subject`, `html`
        and/or `text` to preview unsaved content; nothing is saved."""
        template = self.get_object()
        serializer = TemplatePreviewSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        version = SimpleNamespace(**{part: getattr(template, f"current_{part}") or "" for part in rendering.PARTS})
        rendered = render_preview(self.organization, serializer.validated_data, version)
        return Response(RenderedSerializer(rendered).data)

    @extend_schema(request=TemplatePreviewSerializer, responses=RenderedSerializer,
                   operation_id="v1_templates_preview_unsaved")
    @action(detail=False, methods=["post"], url_path="preview", url_name="preview-new", filter_backends=[])
    def preview_new(self, request):
        """Render content that is not saved yet (`subject`, `html`, `text`) for a lead, or a sample lead."""
        serializer = TemplatePreviewSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        return Response(RenderedSerializer(render_preview(self.organization, serializer.validated_data)).data)


class FolderCursorPagination(CreatedCursorPagination):
    ordering = "name"


class TemplateFolderViewSet(viewsets.ModelViewSet, OrgScopedViewSet):
    """Folders that group templates. Deleting one keeps its templates, outside any folder."""

    policy_action = Action.NURTURE
    serializer_class = TemplateFolderSerializer
    pagination_class = FolderCursorPagination
    lookup_value_regex = urlids.INT  # folders have integer ids
    search_fields = ["name"]
    ordering_fields = ["name"]

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return TemplateFolder.objects.none()
        return selectors.folders(self.organization.pk)

    @extend_schema(parameters=[IDEMPOTENCY_PARAMETER])
    @idempotent
    def create(self, request, *args, **kwargs):
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        folder = services.create_folder(organization_id=self.organization.pk,
                                        name=serializer.validated_data["name"], actor=audit.actor_of(request))
        return Response(self.get_serializer(self.get_queryset().get(pk=folder.pk)).data,
                        status=status.HTTP_201_CREATED)

    def update(self, request, *args, **kwargs):
        folder = self.get_object()
        serializer = self.get_serializer(data=request.data, partial=kwargs.get("partial", False))
        serializer.is_valid(raise_exception=True)
        if "name" in serializer.validated_data:
            services.rename_folder(folder=folder, name=serializer.validated_data["name"],
                                   actor=audit.actor_of(request))
        return Response(self.get_serializer(self.get_queryset().get(pk=folder.pk)).data)

    def perform_destroy(self, instance):
        services.delete_folder(folder=instance, actor=audit.actor_of(self.request))


# ----------------------------------------------------------------------------------------------- sequences

import uuid  # noqa: E402

from django.shortcuts import get_object_or_404  # noqa: E402
from rest_framework import generics  # noqa: E402
from rest_framework.views import APIView  # noqa: E402

from leads.models import Lead, Segment  # noqa: E402
from leads.services import leads_by_ids  # noqa: E402

from .models import Message, Sequence  # noqa: E402
from .serializers import (  # noqa: E402
    EmailEventSerializer,
    EnrollmentSerializer,
    EnrollResultSerializer,
    EnrollSerializer,
    ExitSerializer,
    MessageSerializer,
    SequenceSerializer,
    SequenceStatsSerializer,
)


class EnrollmentCursorPagination(CreatedCursorPagination):
    ordering = "-enrolled_at"


class SequenceViewSet(viewsets.ModelViewSet, OrgScopedViewSet):
    """Drip sequences: ordered steps (email, wait, branch, update, notify the owner), how leads enter (a segment,
    a form, a stage, or by hand) and leave (stages, a condition; unsubscribing and bouncing always)."""

    policy_action = Action.NURTURE
    serializer_class = SequenceSerializer
    pagination_class = CreatedCursorPagination
    search_fields = ["name"]
    ordering_fields = ["created_at", "name"]

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return Sequence.objects.none()
        return selectors.sequences(self.organization.pk)

    def _save(self, request, instance=None, partial=False):
        serializer = self.get_serializer(data=request.data, partial=partial)
        serializer.is_valid(raise_exception=True)
        data = {key: value for key, value in request.data.items() if key in serializer.validated_data}
        data.update({key: serializer.validated_data[key] for key in ("name", "active", "allow_reenrollment")
                     if key in serializer.validated_data})
        sequence = services.save_sequence(organization_id=self.organization.pk, data=data, instance=instance,
                                          actor=audit.actor_of(request))
        return self.get_serializer(self.get_queryset().get(pk=sequence.pk)).data

    @extend_schema(parameters=[IDEMPOTENCY_PARAMETER])
    @idempotent
    def create(self, request, *args, **kwargs):
        """Create a sequence. Refused per field (`steps.2.then`): templates, segments or forms of another org,
        branch targets out of range, a loop without a wait of at least an hour, steps that cannot reach the end."""
        return Response(self._save(request), status=status.HTTP_201_CREATED)

    def update(self, request, *args, **kwargs):
        """Change a sequence. Steps are kept by position: running enrolments continue at their position."""
        sequence = self.get_object()
        return Response(self._save(request, instance=sequence, partial=kwargs.get("partial", False)))

    def partial_update(self, request, *args, **kwargs):
        return self.update(request, *args, partial=True, **kwargs)

    @extend_schema(responses={204: None, 409: CONFLICT_RESPONSE})
    def destroy(self, request, *args, **kwargs):
        """Delete a sequence that never sent email; one that did is a 409 (deactivate it: its history stays)."""
        sequence = self.get_object()
        if Message.objects.for_org(self.organization).filter(enrollment__sequence=sequence).exists():
            raise Conflict("This sequence has sent email; deactivate it instead so its results stay.",
                           code="sequence_has_sent")
        services.delete_sequence(sequence=sequence, actor=audit.actor_of(request))
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(request=EnrollSerializer, responses=EnrollResultSerializer, parameters=[IDEMPOTENCY_PARAMETER])
    @action(detail=True, methods=["post"], filter_backends=[], pagination_class=None)
    @idempotent
    def enroll(self, request, pk=None):
        """Enrol leads (`{"leads": [IDS]}`, up to 10,000) or a segment's leads (`{"segment": ID}`). Leads running
        the sequence already are left alone; leads that ran it before only with `allow_reenrollment`. An unknown
        lead or segment refuses the whole request."""
        sequence = self.get_object()
        serializer = EnrollSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        by = "api" if request.auth is not None else "manual"
        if "segment" in data:
            segment = Segment.objects.for_org(self.organization).filter(pk=data["segment"]).first()
            if segment is None:
                raise exceptions.ValidationError({"segment": ["No such segment in this organization."]})
            enrolled = services.enroll(sequence=sequence, segment=segment, enrolled_by=by)
        else:
            leads = leads_by_ids(self.organization.pk, data["leads"])
            enrolled = services.enroll(sequence=sequence, leads=leads, enrolled_by=by)
        return Response({"enrolled": enrolled})

    @extend_schema(responses=EnrollmentSerializer(many=True), parameters=[
        OpenApiParameter("status", str, enum=["active", "completed", "exited"])])
    @action(detail=True, methods=["get"], pagination_class=EnrollmentCursorPagination, filter_backends=[])
    def enrollments(self, request, pk=None):
        """The sequence's enrolments, newest first (`?status=` to filter)."""
        queryset = selectors.enrollments(self.get_object())
        wanted = request.query_params.get("status")
        if wanted is not None:
            if wanted not in ("active", "completed", "exited"):
                raise exceptions.ValidationError({"status": ["One of active, completed, exited."]})
            queryset = queryset.filter(status=wanted)
        page = self.paginate_queryset(queryset)
        return self.get_paginated_response(EnrollmentSerializer(page, many=True).data)

    @extend_schema(request=ExitSerializer, responses={200: EnrollmentSerializer, 409: CONFLICT_RESPONSE})
    @action(detail=True, methods=["post"], url_path=rf"enrollments/(?P<enrollment_id>{urlids.UUID})/exit",
            url_name="enrollment-exit", filter_backends=[], pagination_class=None)
    def exit_enrollment(self, request, pk=None, enrollment_id=None):
        """Take one lead out of the sequence by hand, e.g. because they replied (`reason`, default "replied")."""
        sequence = self.get_object()
        enrollment = get_object_or_404(selectors.enrollments(sequence), pk=enrollment_id)
        serializer = ExitSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        if not services.exit_enrollment(enrollment=enrollment, reason=serializer.validated_data["reason"]):
            raise Conflict(f"This enrolment already ended ({enrollment.status}).", code="enrollment_ended")
        enrollment.refresh_from_db()
        return Response(EnrollmentSerializer(enrollment).data)

    @extend_schema(responses=SequenceStatsSerializer)
    @action(detail=True, methods=["get"], filter_backends=[], pagination_class=None)
    def stats(self, request, pk=None):
        """Per step: how many enrolments wait there, and sent, delivered, opened, clicked, bounced, unsubscribed
        with rates."""
        return Response(selectors.sequence_stats(self.get_object()))


class MessageCursorPagination(CreatedCursorPagination):
    ordering = "-created_at"


class LeadMessagesView(generics.ListAPIView):
    """`GET /api/v1/leads/{id}/messages/`: the emails of a lead with their status and tracking times."""

    policy_action = Action.WORK_LEADS
    serializer_class = MessageSerializer
    pagination_class = MessageCursorPagination
    filter_backends = []
    permission_classes = [Allowed]

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return Message.objects.none()
        leads = policy.visible(policy.principal_of(self.request), Lead.objects.for_org(self.request.organization))
        lead = get_object_or_404(leads, pk=self.kwargs["pk"])
        return selectors.lead_messages(self.request.organization.pk, lead)


class EmailEventView(APIView):
    """`POST /api/v1/email-events/`: the mail provider reports a bounce or a complaint."""

    policy_action = Action.NURTURE
    permission_classes = [Allowed]

    @extend_schema(request=EmailEventSerializer, responses={200: inline_serializer("EmailEventResult", {
        "lead": serializers.UUIDField(), "event": serializers.CharField()})})
    def post(self, request):
        """A bounce marks the lead bounced; a complaint unsubscribes it and marks it do-not-contact. Either takes
        it out of every sequence and lands on its timeline. An unknown message or address is a 404."""
        serializer = EmailEventSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        message_id = None
        if "message_id" in data:
            message_id = _message_id(data["message_id"])
            if message_id is None:
                raise exceptions.NotFound("No such message.")
        lead = services.record_email_event(organization_id=request.organization.pk, event=data["event"],
                                           message_id=message_id, email=data.get("email", ""))
        return Response({"lead": str(lead.pk), "event": data["event"]})


def _message_id(value: str):
    """Our message id, alone or as the Message-ID header `<id@domain>`."""
    value = value.strip().strip("<>").partition("@")[0]
    try:
        return uuid.UUID(value)
    except ValueError:
        return None

