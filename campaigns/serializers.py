"""Validation and shape of the campaigns API. Settings that only make sense together (dates, a utm_campaign taken
by another campaign) are checked by the services; these serializers check types and resolve ids within the org."""

import uuid

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from leadcrm.api import StrictModelSerializer, StrictSerializer
from leads.models import Segment
from leads.services import MEMBERS_LIMIT

from . import selectors
from .models import Campaign, CampaignCost, CampaignMember, MemberStatus

MONEY = {"max_digits": 14, "decimal_places": 2}


class AttributionSerializer(serializers.Serializer):
    first_touch = serializers.DecimalField(**MONEY, help_text="Won revenue of deals whose lead joined this "
                                                              "campaign first.")
    last_touch = serializers.DecimalField(**MONEY, help_text="Won revenue of deals whose lead joined this campaign "
                                                             "last before the win.")
    linear = serializers.DecimalField(**MONEY, help_text="This campaign's equal share of the won revenue of its "
                                                         "members' deals, split over the campaigns each lead joined "
                                                         "before the win.")


class CampaignSerializer(StrictModelSerializer):
    name = serializers.CharField(max_length=200)
    budget = serializers.DecimalField(**MONEY, required=False, allow_null=True)
    currency = serializers.CharField(max_length=3, required=False)
    utm_campaign = serializers.CharField(max_length=200, required=False, allow_blank=True)
    cost = serializers.DecimalField(**MONEY, read_only=True, help_text="The sum of the cost entries.")
    members = serializers.IntegerField(source="member_count", read_only=True)
    mqls = serializers.IntegerField(read_only=True, help_text="Members that reached MQL or beyond.")
    sqls = serializers.IntegerField(read_only=True, help_text="Members that reached SQL or beyond.")
    deals = serializers.IntegerField(read_only=True, help_text="Deals of members created after they joined.")
    won_revenue = serializers.DecimalField(**MONEY, read_only=True,
                                           help_text="Won amount of those deals, in the campaign's currency.")
    roi = serializers.SerializerMethodField(help_text="(won revenue − cost) / cost; null when nothing was spent.")
    attribution = serializers.SerializerMethodField()

    class Meta:
        model = Campaign
        fields = ["id", "name", "channel", "status", "start", "end", "budget", "currency", "utm_campaign", "cost",
                  "members", "mqls", "sqls", "deals", "won_revenue", "roi", "attribution", "created_at",
                  "updated_at"]
        read_only_fields = ["id", "created_at", "updated_at"]
        validators = []  # the services check utm_campaign uniqueness (any case) and the dates

    def get_roi(self, campaign) -> float | None:
        if not hasattr(campaign, "cost"):
            return None
        value = selectors.roi(campaign)
        return None if value is None else float(value)

    @extend_schema_field(AttributionSerializer(allow_null=True))
    def get_attribution(self, campaign):
        shares = self.context.get("attribution", {}).get(str(campaign.pk))
        return AttributionSerializer(shares).data if shares is not None else None


class CostSerializer(StrictModelSerializer):
    amount = serializers.DecimalField(**MONEY)
    note = serializers.CharField(max_length=200, required=False, allow_blank=True)

    class Meta:
        model = CampaignCost
        fields = ["id", "date", "amount", "note", "created_at"]
        read_only_fields = ["id", "created_at"]


class MemberSerializer(serializers.ModelSerializer):
    lead = serializers.UUIDField(source="lead_id", read_only=True)
    email = serializers.CharField(source="lead.email", read_only=True)
    name = serializers.CharField(source="lead.full_name", read_only=True)

    class Meta:
        model = CampaignMember
        fields = ["lead", "email", "name", "status", "source", "joined_at"]
        read_only_fields = fields


@extend_schema_field({"type": "string", "format": "uuid"})
class SegmentField(serializers.PrimaryKeyRelatedField):
    """A segment id of the request's organization; another org's reads as unknown."""

    default_error_messages = {"does_not_exist": "No such segment.", "incorrect_type": "A segment id."}

    def get_queryset(self):
        return Segment.objects.for_org(self.context["organization"])

    def to_internal_value(self, data):
        try:
            uuid.UUID(str(data))
        except ValueError:
            self.fail("incorrect_type")
        return super().to_internal_value(data)


class MembersInputSerializer(StrictSerializer):
    """Exactly one of `leads`, `emails` or `segment`."""

    leads = serializers.ListField(child=serializers.UUIDField(), required=False, max_length=MEMBERS_LIMIT,
                                  allow_empty=False)
    emails = serializers.ListField(child=serializers.CharField(max_length=254), required=False,
                                   max_length=MEMBERS_LIMIT, allow_empty=False)
    segment = SegmentField(required=False)
    status = serializers.ChoiceField(choices=MemberStatus.choices, default=MemberStatus.TARGETED)

    def validate(self, attrs):
        given = [name for name in ("leads", "emails", "segment") if name in attrs]
        if len(given) != 1:
            raise serializers.ValidationError({"leads": ["Give exactly one of leads (ids), emails or segment."]})
        return attrs


class RemoveMembersSerializer(StrictSerializer):
    leads = serializers.ListField(child=serializers.UUIDField(), required=False, max_length=MEMBERS_LIMIT,
                                  allow_empty=False)
    emails = serializers.ListField(child=serializers.CharField(max_length=254), required=False,
                                   max_length=MEMBERS_LIMIT, allow_empty=False)

    def validate(self, attrs):
        if ("leads" in attrs) == ("emails" in attrs):
            raise serializers.ValidationError({"leads": ["Give exactly one of leads (ids) or emails."]})
        return attrs
