"""REST API of qualification and conversion: stage moves, merges, duplicates, bulk tags, accounts and deals."""

from django.contrib.auth import get_user_model
from django.db import transaction
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import exceptions, mixins, serializers, status
from rest_framework.decorators import action
from rest_framework.response import Response

from leadcrm import audit, currency
from leadcrm.api import CONFLICT_RESPONSE, OrgScopedViewSet, StrictModelSerializer, StrictSerializer
from leadcrm.jsonrows import LeanListMixin
from leadcrm.policy import Action, principal_of, visible_deals

from .. import selectors, services
from ..filters import AccountFilter, DealFilter
from ..models import Account, Deal, DealStatus, Lead, LifecycleStage, Segment
from ..serializers import LeadSerializer
from .bulk import DealBulkActions
from .pipelines import MOVE_CONFLICT, MoveSerializer
from .sync import FEED_DOC, LeanFeedPagination


class OrgMemberField(serializers.PrimaryKeyRelatedField):
    """A user id; only members of the request's organization are accepted."""

    def get_queryset(self):
        return get_user_model().objects.filter(memberships__organization=self.context["organization"])


class StageMoveSerializer(StrictSerializer):
    stage = serializers.ChoiceField(choices=LifecycleStage.choices)
    reason = serializers.CharField(required=False, allow_blank=True, max_length=200, default="")


class AccountSerializer(StrictModelSerializer):
    owner = OrgMemberField(required=False, allow_null=True)

    class Meta:
        model = Account
        fields = ["id", "name", "website", "industry", "company_size", "country", "owner", "created_at",
                  "updated_at"]
        read_only_fields = ["id", "created_at", "updated_at"]


class DealSerializer(StrictModelSerializer):
    owner = OrgMemberField(required=False, allow_null=True)
    amount = serializers.DecimalField(max_digits=14, decimal_places=2, min_value=0)
    currency = serializers.CharField(required=False, max_length=3, help_text="ISO 4217, such as EUR")

    class Meta:
        model = Deal
        fields = ["id", "name", "amount", "currency", "expected_close", "status", "lost_reason", "owner", "account",
                  "lead", "pipeline", "stage", "stage_entered_at", "created_at", "updated_at", "closed_at"]
        read_only_fields = ["id", "account", "lead", "pipeline", "stage", "stage_entered_at", "created_at",
                            "updated_at", "closed_at"]

    def validate_currency(self, value):
        code = currency.normalise(value)
        if code is None:
            raise serializers.ValidationError(currency.MESSAGE)
        return code


class ConvertSerializer(StrictSerializer):
    account = AccountSerializer(required=False, help_text="A new account's fields (default: the lead's company).")
    account_id = serializers.UUIDField(required=False, help_text="An existing account to link instead.")
    deal = DealSerializer()

    def validate_deal(self, value):
        if value.get("status", DealStatus.OPEN) != DealStatus.OPEN or value.get("lost_reason"):
            raise serializers.ValidationError("A new deal starts open.")
        return value


class MergeSerializer(StrictSerializer):
    keep = serializers.UUIDField()
    merge = serializers.ListField(child=serializers.UUIDField(), min_length=1, max_length=services.merge.MERGE_LIMIT)


class TagSerializer(StrictSerializer):
    add = serializers.ListField(child=serializers.CharField(max_length=64), required=False, default=list)
    remove = serializers.ListField(child=serializers.CharField(max_length=64), required=False, default=list)
    leads = serializers.ListField(child=serializers.UUIDField(), required=False, max_length=10_000)
    segment = serializers.UUIDField(required=False)

    def validate(self, attrs):
        if not attrs["add"] and not attrs["remove"]:
            raise serializers.ValidationError({"add": ["Give tags to add or to remove."]})
        if ("leads" in attrs) == ("segment" in attrs):
            raise serializers.ValidationError({"leads": ["Give either a list of lead ids or a segment."]})
        attrs["add"] = [tag.strip() for tag in attrs["add"] if tag.strip()]
        attrs["remove"] = [tag.strip() for tag in attrs["remove"] if tag.strip()]
        return attrs


DuplicatesSerializer = inline_serializer("Duplicates", {
    "results": inline_serializer("DuplicateGroup", {
        "reason": serializers.ChoiceField(choices=["email", "phone", "name_company"]),
        "key": serializers.CharField(),
        "leads": LeadSerializer(many=True),
    }, many=True),
    "next_after": serializers.CharField(allow_null=True),
})


class LifecycleActions:
    """Lead actions of qualification and conversion, mixed into the LeadViewSet."""

    @extend_schema(request=StageMoveSerializer, responses={200: LeadSerializer, 409: CONFLICT_RESPONSE})
    @action(detail=True, methods=["post"])
    def stage(self, request, pk=None):
        """Move the lead to another lifecycle stage; an illegal move is a 409 naming the allowed ones."""
        lead = self._move_stage(self.get_object(), request.data, actor=audit.actor_of(request))
        return Response(self.get_serializer(lead).data)

    def _move_stage(self, lead, data, *, actor):
        """A stage move through the API, one or a bulk-stage row: the same checks and service."""
        serializer = StageMoveSerializer(data=data)
        serializer.is_valid(raise_exception=True)
        return services.move_stage(lead=lead, to_stage=serializer.validated_data["stage"],
                                   reason=serializer.validated_data["reason"], actor=actor)

    @extend_schema(request=ConvertSerializer, responses={201: inline_serializer("Conversion", {
        "account": AccountSerializer(), "deal": DealSerializer()})})
    @action(detail=True, methods=["post"])
    def convert(self, request, pk=None):
        """Turn a qualified lead into an account with an open deal (the lead becomes an opportunity)."""
        account, deal = self._convert(self.get_object(), request.data, actor=audit.actor_of(request))
        return Response({"account": AccountSerializer(account).data, "deal": DealSerializer(deal).data},
                        status=status.HTTP_201_CREATED)

    def _convert(self, lead, data, *, actor):
        """A conversion through the API, one or a bulk-convert row: the same checks and service."""
        serializer = ConvertSerializer(data=data, context=self.get_serializer_context())
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        try:
            return services.convert_lead(lead=lead, deal=data["deal"], account=data.get("account"),
                                         account_id=data.get("account_id"), actor=actor)
        except Account.DoesNotExist:
            raise exceptions.ValidationError({"account_id": ["No such account."]}) from None

    @extend_schema(request=MergeSerializer, responses=LeadSerializer)
    @action(detail=False, methods=["post"])
    def merge(self, request):
        """Merge leads into the one to keep: activities, tags, lists and deals move; each field keeps its best
        value; the merged leads are deleted and a merge activity records them."""
        serializer = MergeSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        try:
            lead = services.merge_leads(organization_id=self.organization.pk, actor=audit.actor_of(request),
                                        keep_id=serializer.validated_data["keep"],
                                        merge_ids=serializer.validated_data["merge"])
        except Lead.DoesNotExist as exc:
            raise exceptions.NotFound(str(exc)) from None
        return Response(self.get_serializer(lead).data)

    @extend_schema(responses=DuplicatesSerializer)
    @action(detail=False, methods=["get"], filter_backends=[], pagination_class=None)
    def duplicates(self, request):
        """Groups of likely duplicates (same Gmail address ignoring dots and +tags, same phone, same name and
        company); `?after=<reason>:<key>` pages on from the last group."""
        after = request.query_params.get("after", "")
        groups = selectors.duplicate_groups(self.organization.pk, after=after)
        context = self.get_serializer_context()
        results = [{**group, "leads": LeadSerializer(group["leads"], many=True, context=context).data}
                   for group in groups]
        return Response({"results": results,
                         "next_after": f"{groups[-1]['reason']}:{groups[-1]['key']}" if groups else None})

    @extend_schema(request=TagSerializer,
                   responses=inline_serializer("Tagged", {"changed": serializers.IntegerField()}))
    @action(detail=False, methods=["post"])
    def tags(self, request):
        """Add and remove tags on many leads: a list of ids or every lead of a segment."""
        serializer = TagSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        if "segment" in data:
            segment = Segment.objects.for_org(self.organization).filter(pk=data["segment"]).first()
            if segment is None:
                raise exceptions.ValidationError({"segment": ["No such segment."]})
            leads = selectors.segment_leads(segment)
        else:
            leads = Lead.objects.for_org(self.organization).filter(pk__in=data["leads"])
            unknown = set(data["leads"]) - set(leads.values_list("pk", flat=True))
            if unknown:
                raise exceptions.ValidationError({"leads": [f"No such leads: {', '.join(map(str, unknown))}."]})
        changed = services.tag_leads(organization_id=self.organization.pk, leads=leads, add=data["add"],
                                     remove=data["remove"])
        return Response({"changed": changed})


class AccountViewSet(LeanListMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.UpdateModelMixin,
                     OrgScopedViewSet):
    policy_action = Action.MANAGE_LEADS
    serializer_class = AccountSerializer
    search_fields = ["name"]
    ordering_fields = ["created_at", "updated_at", "name"]
    filterset_class = AccountFilter
    pagination_class = LeanFeedPagination

    def get_queryset(self):
        return Account.objects.for_org(self.organization)

    def list(self, request, *args, **kwargs):
        return super().list(request, *args, **kwargs)

    list.__doc__ = "The organization's accounts, in cursor pages." + FEED_DOC


class DealViewSet(DealBulkActions, LeanListMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin,
                  OrgScopedViewSet):
    policy_action = Action.MANAGE_LEADS
    policy_actions = {"move": Action.WORK_DEALS}
    serializer_class = DealSerializer
    pagination_class = LeanFeedPagination
    ordering_fields = ["created_at", "updated_at", "closed_at", "amount"]
    filterset_class = DealFilter

    def get_queryset(self):
        if self.action == "move":  # every member moves the deals they may see on the board
            return visible_deals(principal_of(self.request), self.organization.pk,
                                 Deal.objects.for_org(self.organization))
        queryset = Deal.objects.for_org(self.organization).select_related(None)
        status_filter = self.request.query_params.get("status")
        if status_filter in DealStatus.values:
            queryset = queryset.filter(status=status_filter)
        return queryset

    def list(self, request, *args, **kwargs):
        return super().list(request, *args, **kwargs)

    list.__doc__ = "The organization's deals (`?status=open|won|lost`), in cursor pages." + FEED_DOC

    @extend_schema(request=DealSerializer, responses={200: DealSerializer, 409: CONFLICT_RESPONSE})
    def partial_update(self, request, pk=None):
        """Change an open deal, or close it: `{"status": "won"}` or `{"status": "lost", "lost_reason": …}`."""
        deal = self._change_deal(self.get_object(), request.data, actor=audit.actor_of(request))
        return Response(self.get_serializer(deal).data)

    def _change_deal(self, deal, data, *, actor):
        """A deal changed or closed through the API, by PATCH or a bulk-close row: the same checks and services."""
        serializer = DealSerializer(deal, data=data, partial=True, context=self.get_serializer_context())
        serializer.is_valid(raise_exception=True)
        data = dict(serializer.validated_data)
        new_status = data.pop("status", deal.status)
        lost_reason = data.pop("lost_reason", "")
        if new_status == DealStatus.LOST and deal.status == DealStatus.OPEN and not lost_reason.strip():
            raise exceptions.ValidationError({"lost_reason": ["Say why the deal was lost."]})
        with transaction.atomic():
            if data:
                services.update_deal(deal=deal, data=data)
            if new_status == DealStatus.WON and deal.status == DealStatus.OPEN:
                deal = services.win_deal(deal=deal, actor=actor)
            elif new_status == DealStatus.LOST and deal.status == DealStatus.OPEN:
                deal = services.lose_deal(deal=deal, reason=lost_reason, actor=actor)
            elif new_status != deal.status:
                raise services.DealClosed(f"This deal is already {deal.status}.")
        return deal

    @extend_schema(request=MoveSerializer, responses={200: DealSerializer, 409: MOVE_CONFLICT})
    @action(detail=True, methods=["post"])
    def move(self, request, pk=None):
        """Move the deal to another stage of its pipeline: `{"stage", "expected_stage", "reason"}`. A won or lost
        stage closes it (lost needs a reason); moving a closed deal back to an open stage needs a reason; a stage
        of another pipeline is a 400 at `stage`; a deal moved since the mover saw it in `expected_stage` is a 409
        naming its `current_stage`."""
        deal = self.get_object()
        serializer = MoveSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        deal = services.move_deal(deal=deal, stage_id=data["stage"], expected_stage_id=data["expected_stage"],
                                  reason=data["reason"], actor=audit.actor_of(request))
        return Response(self.get_serializer(deal).data)
