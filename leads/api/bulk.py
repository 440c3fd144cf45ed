"""Bulk operations for integrations: up to 1,000 rows per call, each through the single-item endpoint's own
validation and service (so the same checks, events and audit), each in a savepoint of its own with a result of its
own; another org's or an invisible lead or deal is that row's 404."""

from django.db import transaction
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import exceptions, serializers
from rest_framework.decorators import action
from rest_framework.response import Response

from leadcrm import audit
from leadcrm.api import StrictSerializer, bulk_result_schema, bulk_results, bulk_rows, idempotent, row_id

from .. import services
from ..models import DealStatus, LifecycleStage
from ..serializers import LeadSerializer

IDEMPOTENCY = [OpenApiParameter("Idempotency-Key", str, OpenApiParameter.HEADER,
                                description="A repeat with the same key returns the first answer and changes nothing.")]


def _by_id(queryset, rows) -> dict:
    """The rows' objects the caller may see, in one query: {id: object}."""
    ids = set()
    for row in rows:
        try:
            ids.add(row_id(row))
        except exceptions.ValidationError:
            continue  # that row answers its own 400
    return {str(obj.pk): obj for obj in queryset.filter(pk__in=ids)} if ids else {}


def _found(objects: dict, row):
    obj = objects.get(row_id(row))
    if obj is None:
        raise exceptions.NotFound()
    return obj


def _fields(row) -> dict:
    return {key: value for key, value in row.items() if key != "id"}


class BulkUpdateRow(LeadSerializer):
    """(For the API docs.) A lead's id and any of the fields PATCH /api/v1/leads/{id}/ takes."""

    id = serializers.UUIDField()

    class Meta(LeadSerializer.Meta):
        read_only_fields = [name for name in LeadSerializer.Meta.read_only_fields if name != "id"]


class BulkStageRow(StrictSerializer):
    id = serializers.UUIDField()
    stage = serializers.ChoiceField(choices=LifecycleStage.choices)
    reason = serializers.CharField(required=False, allow_blank=True)


class BulkConvertRow(StrictSerializer):
    id = serializers.UUIDField()
    account = serializers.DictField(required=False)
    account_id = serializers.UUIDField(required=False)
    deal = serializers.DictField()


class BulkCloseRow(StrictSerializer):
    id = serializers.UUIDField()
    status = serializers.ChoiceField(choices=[DealStatus.WON, DealStatus.LOST])
    lost_reason = serializers.CharField(required=False, allow_blank=True)


class LeadBulkActions:
    """bulk-update, bulk-stage and bulk-convert, mixed into the LeadViewSet (which gives `_update_lead`,
    `_move_stage` and `_convert`: the single endpoints' own paths)."""

    @extend_schema(
        request=inline_serializer("BulkUpdate", {"leads": BulkUpdateRow(many=True)}),
        responses=bulk_result_schema("BulkUpdateResult"), parameters=IDEMPOTENCY)
    @action(detail=False, methods=["post"], url_path="bulk-update")
    @idempotent
    def bulk_update(self, request):
        """Change fields of up to 1,000 leads: `{"leads": [{"id": …, "first_name": …}, …]}`. Each row is checked and
        saved as `PATCH /api/v1/leads/{id}/` would (its `status`: 200, or that endpoint's 400/404/409 with
        `errors` or `detail` and `code`); one row's failure never loses another's. The changed leads are re-scored
        together, once."""
        rows = bulk_rows(request.data, "leads")
        leads = _by_id(self.get_queryset(), rows)
        actor = audit.actor_of(request)
        changed, fields = [], set()

        def update(row):
            lead = _found(leads, row)
            before = lead.updated_at
            self._update_lead(lead, _fields(row), actor=actor, bulk=True)
            if lead.updated_at != before:
                changed.append(lead.pk)
                fields.update(_fields(row))
            return 200, {}

        with transaction.atomic():  # the rows and the one event that re-scores them commit together
            body = bulk_results(rows, update)
            services.emit_leads_changed(organization_id=self.organization.pk, lead_ids=changed,
                                        fields=sorted(fields))
        return Response(body)

    @extend_schema(request=inline_serializer("BulkStage", {"leads": BulkStageRow(many=True)}),
                   responses=bulk_result_schema("BulkStageResult", lifecycle_stage=serializers.CharField(
                       required=False)), parameters=IDEMPOTENCY)
    @action(detail=False, methods=["post"], url_path="bulk-stage")
    @idempotent
    def bulk_stage(self, request):
        """Move up to 1,000 leads along the lifecycle: `{"leads": [{"id", "stage", "reason"}, …]}` (a reason from
        the org's list where the stage needs one). Each row as `POST /api/v1/leads/{id}/stage/`: 200 with the new
        `lifecycle_stage`, or its 409 naming the allowed moves, 400 or 404."""
        rows = bulk_rows(request.data, "leads")
        leads = _by_id(self.get_queryset(), rows)
        actor = audit.actor_of(request)

        def move(row):
            lead = self._move_stage(_found(leads, row), _fields(row), actor=actor)
            return 200, {"lifecycle_stage": lead.lifecycle_stage}

        return Response(bulk_results(rows, move))

    @extend_schema(request=inline_serializer("BulkConvert", {"leads": BulkConvertRow(many=True)}),
                   responses=bulk_result_schema("BulkConvertResult", account=serializers.UUIDField(required=False),
                                                deal=serializers.UUIDField(required=False)),
                   parameters=IDEMPOTENCY)
    @action(detail=False, methods=["post"], url_path="bulk-convert")
    @idempotent
    def bulk_convert(self, request):
        """Convert up to 1,000 qualified leads: `{"leads": [{"id", "deal": {…}, "account" or "account_id"}, …]}`.
        Each row as `POST /api/v1/leads/{id}/convert/`: 201 with the `account` and `deal` ids, or its 400, 404
        or 409."""
        rows = bulk_rows(request.data, "leads")
        leads = _by_id(self.get_queryset(), rows)
        actor = audit.actor_of(request)

        def convert(row):
            account, deal = self._convert(_found(leads, row), _fields(row), actor=actor)
            return 201, {"account": str(account.pk), "deal": str(deal.pk)}

        return Response(bulk_results(rows, convert))


class DealBulkActions:
    """bulk-close, mixed into the DealViewSet (which gives `_change_deal`, the PATCH's own path)."""

    @extend_schema(request=inline_serializer("BulkClose", {"deals": BulkCloseRow(many=True)}),
                   responses=bulk_result_schema("BulkCloseResult", deal_status=serializers.CharField(
                       required=False)), parameters=IDEMPOTENCY)
    @action(detail=False, methods=["post"], url_path="bulk-close")
    @idempotent
    def bulk_close(self, request):
        """Win or lose up to 1,000 open deals: `{"deals": [{"id", "status": "won"}, {"id", "status": "lost",
        "lost_reason": …}, …]}`. Each row as `PATCH /api/v1/deals/{id}/`: 200 with `deal_status`, or 400 (a lost
        deal needs a reason), 404, or 409 `deal_closed` for a deal already won or lost."""
        rows = bulk_rows(request.data, "deals")
        deals = _by_id(self.get_queryset(), rows)
        actor = audit.actor_of(request)

        def close(row):
            deal = _found(deals, row)
            checked = BulkCloseRow(data=row)
            checked.is_valid(raise_exception=True)
            deal = self._change_deal(deal, _fields(row), actor=actor)
            return 200, {"deal_status": deal.status}

        return Response(bulk_results(rows, close))

