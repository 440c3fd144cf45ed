"""REST API of tasks (thin: ids resolved against what the caller may see, work in services).

`/api/v1/tasks/` list (`owner`, `due_before`, `due_after`, `status`, `lead`; keyset pages by due time), create
(`Idempotency-Key`), read, `PATCH` (including `{"done": true, "outcome"}`), `DELETE`; `POST …/bulk/` one task per
lead of a selection.
"""

import django_filters
from django.db import transaction
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.decorators import action
from rest_framework.generics import get_object_or_404
from rest_framework.response import Response

from leadcrm import audit, policy
from leadcrm.api import OrgScopedViewSet, idempotent
from leadcrm.errors import Invalid
from leadcrm.pagination import CreatedCursorPagination
from leadcrm.policy import Action

from . import selectors, services
from .models import Task
from .serializers import BulkTaskSerializer, TaskChangeSerializer, TaskInputSerializer, TaskSerializer

IDEMPOTENCY_PARAMETER = OpenApiParameter("Idempotency-Key", str, OpenApiParameter.HEADER)
NOT_YOURS = "No such {kind} in this organization."


class TaskFilter(django_filters.FilterSet):
    owner = django_filters.NumberFilter(field_name="owner_id")
    lead = django_filters.UUIDFilter(field_name="lead_id")
    deal = django_filters.UUIDFilter(field_name="deal_id")
    due_before = django_filters.IsoDateTimeFilter(field_name="due_at", lookup_expr="lt")
    due_after = django_filters.IsoDateTimeFilter(field_name="due_at", lookup_expr="gte")
    status = django_filters.ChoiceFilter(
        choices=[("open", "Open"), ("done", "Done"), ("overdue", "Overdue")], method="by_status"
    )

    class Meta:
        model = Task
        fields = ["owner", "lead", "deal", "due_before", "due_after", "status"]

    def by_status(self, queryset, name, value):
        return selectors.with_status(queryset, status=value)


class DuePagination(CreatedCursorPagination):
    ordering = "due_at"


class TaskViewSet(OrgScopedViewSet):
    """Follow-up tasks on leads, deals and accounts. A rep sees and changes their own tasks and those on their leads;
    a manager also those of the reps of the teams they manage; admins and marketers every task of the org."""

    policy_action = Action.TASKS
    serializer_class = TaskSerializer
    pagination_class = DuePagination
    filterset_class = TaskFilter
    ordering_fields = ["due_at", "created_at"]
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return Task.objects.none()
        return selectors.visible(self.organization.pk, policy.principal_of(self.request)).select_related(
            "owner", "lead", "deal", "account"
        )

    def _principal(self):
        return policy.principal_of(self.request)

    def _owner_id(self, owner_id):
        if owner_id is None:
            return None
        if not selectors.assignable_owners(self.organization.pk, self._principal()).filter(pk=owner_id).exists():
            raise Invalid(errors={"owner": ["Choose a member of the organization you may give tasks to."]})
        return owner_id

    def _target(self, data) -> dict:
        found = {}
        for kind in ("lead", "deal", "account"):
            if data.get(kind) is None:
                continue
            target = selectors.targets(self.organization.pk, self._principal(), kind).filter(pk=data[kind]).first()
            if target is None:
                raise Invalid(errors={kind: [NOT_YOURS.format(kind=kind)]})
            found[kind] = target
        if len(found) != 1:
            raise Invalid(errors={"lead": ["Name one lead, deal or account the task is about."]})
        return found

    def _answer(self, task, status_code=status.HTTP_200_OK):
        task = self.get_queryset().get(pk=task.pk)
        return Response(TaskSerializer(task).data, status=status_code)

    @extend_schema(request=TaskInputSerializer, responses={201: TaskSerializer}, parameters=[IDEMPOTENCY_PARAMETER])
    @idempotent
    def create(self, request, *args, **kwargs):
        serializer = TaskInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        target = self._target(data)
        actor = audit.actor_of(request)
        owner_id = self._owner_id(data.get("owner")) or services.default_owner(**target, actor=actor)
        task = services.create_task(
            organization_id=self.organization.pk,
            type=data["type"],
            note=data.get("note", ""),
            owner_id=owner_id,
            due_at=selectors.localize(self.organization.pk, data["due_at"], owner_id),
            actor=actor,
            **target,
        )
        return self._answer(task, status.HTTP_201_CREATED)

    def list(self, request, *args, **kwargs):
        page = self.paginate_queryset(self.filter_queryset(self.get_queryset()))
        return self.get_paginated_response(TaskSerializer(page, many=True).data)

    def retrieve(self, request, *args, **kwargs):
        return Response(TaskSerializer(self.get_object()).data)

    @extend_schema(request=TaskChangeSerializer, responses=TaskSerializer)
    def partial_update(self, request, *args, **kwargs):
        task = self.get_object()
        serializer = TaskChangeSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = dict(serializer.validated_data)
        done, outcome = data.pop("done", False), data.pop("outcome", "")
        if "owner" in data:
            data["owner_id"] = self._owner_id(data.pop("owner"))
        if "due_at" in data:
            data["due_at"] = selectors.localize(
                self.organization.pk, data["due_at"], data.get("owner_id", task.owner_id)
            )
        if outcome and not done:
            raise Invalid(errors={"outcome": ['An outcome goes with completing the task ("done": true).']})
        with transaction.atomic():  # a change and a completion: both, or neither when one is refused
            if data:
                task = services.update_task(task=task, data=data)
            if done:
                services.complete_task(task=task, outcome=outcome, actor=audit.actor_of(request))
        return self._answer(task)

    def destroy(self, request, *args, **kwargs):
        services.delete_task(task=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)

    def get_object(self):
        return get_object_or_404(self.get_queryset(), pk=self.kwargs["pk"])

    @extend_schema(
        request=BulkTaskSerializer,
        parameters=[IDEMPOTENCY_PARAMETER],
        responses={
            201: inline_serializer(
                "TasksCreated", {"created": serializers.IntegerField(), "tasks": TaskSerializer(many=True)}
            )
        },
    )
    @action(detail=False, methods=["post"], filter_backends=[], pagination_class=None)
    @idempotent
    def bulk(self, request):
        """One task per lead of a selection (≤ 1,000), each owned by `owner` or its lead's owner. A lead of another
        organization, or one the caller may not work, refuses the whole request (400 `unknown_leads`)."""
        serializer = BulkTaskSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        organization_id = self.organization.pk
        wanted = list(dict.fromkeys(data["leads"]))
        leads = list(selectors.targets(organization_id, self._principal(), "lead").filter(pk__in=wanted))
        missing = sorted({str(pk) for pk in wanted} - {str(lead.pk) for lead in leads})
        if missing:
            raise Invalid(
                errors={"leads": [NOT_YOURS.format(kind="lead") + " " + ", ".join(missing[:20])]}, code="unknown_leads"
            )
        owner_id = self._owner_id(data.get("owner"))
        actor = audit.actor_of(request)
        zone_owner = owner_id or getattr(services.person(actor), "pk", None) or leads[0].owner_id
        tasks = services.create_for_leads(
            organization_id=organization_id,
            leads=leads,
            type=data["type"],
            note=data.get("note", ""),
            owner_id=owner_id,
            due_at=selectors.localize(organization_id, data["due_at"], zone_owner),
            actor=actor,
        )
        rows = self.get_queryset().filter(pk__in=[task.pk for task in tasks]).order_by("due_at", "id")
        return Response(
            {"created": len(tasks), "tasks": TaskSerializer(rows, many=True).data}, status=status.HTTP_201_CREATED
        )
