"""Validation and shape of distribution's API: rep profiles, teams, assignment rules, assignments, the queue.

A rep is named by their user id everywhere (a lead's `owner` is a user). Settings that only make sense together
are checked by the services (`ConfigError`); these serializers check types and resolve ids within the org.
"""

import math

from django.contrib.auth import get_user_model
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from leadcrm.api import StrictModelSerializer, StrictSerializer, storable_json
from leads import touches
from leads.models import Segment

from . import selectors
from .models import Assignment, AssignmentRule, RepProfile, Seniority, Strategy, Team

MAX_LIST_ITEMS = 500  # territories, industries, languages of a rep; members of a team
MAX_CAPACITY = 100_000
# What a rep logs, and the activity type it is recorded as.
TOUCH_TYPES = {"call": "call", "email": "email_logged", "meeting": "meeting", "note": "note"}
TOUCH_CHOICES = list(TOUCH_TYPES)
REASSIGN_LIMIT = 500


class OrgMemberField(serializers.PrimaryKeyRelatedField):
    """A user id; only members of the request's organization are accepted (others read as unknown)."""

    default_error_messages = {"does_not_exist": "No such member of this organization.",
                              "incorrect_type": "A user id (a number)."}

    def get_queryset(self):
        return get_user_model().objects.filter(memberships__organization=self.context["organization"])


@extend_schema_field(OpenApiTypes.INT)
class RepField(serializers.SlugRelatedField):
    """A rep named by user id, resolved to the rep's routing profile in the request's organization."""

    default_error_messages = {"does_not_exist": "No such rep in this organization.",
                              "invalid": "A rep's user id (a number)."}

    def __init__(self, **kwargs):
        super().__init__(slug_field="user_id", **kwargs)

    def get_queryset(self):
        organization = self.context["organization"]
        return (RepProfile.objects.for_org(organization).filter(user__memberships__organization=organization)
                .select_related("user"))


# ----------------------------------------------------------------------------------------------- reps


class TeamRefSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()


class RepSerializer(StrictModelSerializer):
    id = serializers.IntegerField(source="user_id", read_only=True, help_text="The rep's user id.")
    user = serializers.EmailField(source="user.email", read_only=True)
    role = serializers.CharField(read_only=True, help_text="The member's role in the organization.")
    territories = serializers.ListField(child=serializers.CharField(max_length=64), required=False,
                                        max_length=MAX_LIST_ITEMS,
                                        help_text="ISO country codes, optionally with a region (US, US-CA).")
    industries = serializers.ListField(child=serializers.CharField(max_length=100), required=False,
                                       max_length=MAX_LIST_ITEMS)
    languages = serializers.ListField(child=serializers.CharField(max_length=16), required=False,
                                      max_length=MAX_LIST_ITEMS)
    seniority = serializers.ChoiceField(choices=Seniority.choices, required=False, allow_blank=True)
    capacity = serializers.IntegerField(required=False, min_value=0, max_value=MAX_CAPACITY,
                                        help_text="Most open leads at once.")
    # The range (0 to 100) is the service's to check, with its own message.
    weight = serializers.IntegerField(required=False, min_value=-(2**31), max_value=2**31 - 1)
    away_until = serializers.DateTimeField(required=False, allow_null=True)
    working_hours = serializers.JSONField(required=False, allow_null=True, help_text=(
        '{"timezone": "Europe/Berlin", "days": [1, 2, 3, 4, 5], "start": "09:00", "end": "17:00"} '
        "(ISO weekdays, 1 = Monday), or {} for any time."))
    teams = TeamRefSerializer(many=True, read_only=True)
    open_leads = serializers.IntegerField(read_only=True, help_text="Leads the rep is working now.")

    class Meta:
        model = RepProfile
        fields = ["id", "user", "role", "territories", "industries", "languages", "seniority", "capacity", "weight",
                  "available", "away_until", "working_hours", "teams", "open_leads", "updated_at"]
        read_only_fields = ["id", "user", "role", "teams", "open_leads", "updated_at"]


# ----------------------------------------------------------------------------------------------- teams


class TeamSerializer(StrictModelSerializer):
    manager = OrgMemberField(required=False, allow_null=True,
                             help_text="The user id of a manager or admin of the organization.")
    members = RepField(many=True, required=False, help_text="The reps' user ids.")

    class Meta:
        model = Team
        fields = ["id", "name", "manager", "members", "created_at"]
        read_only_fields = ["id", "created_at"]
        # Uniqueness is the service's to check (case-insensitively, with its own message).
        validators = []

    def validate_members(self, value):
        if len(value) > MAX_LIST_ITEMS:
            raise serializers.ValidationError(f"At most {MAX_LIST_ITEMS} members.")
        return value


# ----------------------------------------------------------------------------------------------- rules


class RuleActionSerializer(StrictSerializer):
    """What a rule does with a lead: give it to a named rep, or share it within a team by a strategy."""

    type = serializers.ChoiceField(choices=Strategy.choices)
    rep = serializers.IntegerField(required=False, allow_null=True,
                                   help_text='The user id of the rep, for "type": "rep".')
    team = serializers.IntegerField(required=False, allow_null=True,
                                    help_text="The team's id, for the team strategies.")

    def to_representation(self, rule):
        if rule.strategy == Strategy.REP:
            return {"type": rule.strategy, "rep": rule.rep.user_id if rule.rep_id else None}
        return {"type": rule.strategy, "team": rule.team_id}


def _flatten(detail: dict, name: str) -> dict:
    """{"action": {"team": [...]}} as {"action.team": [...]}, the way the services name parts of a setting."""
    nested = detail.get(name)
    if not isinstance(nested, dict):
        return detail
    flat = {key: value for key, value in detail.items() if key != name}
    for key, messages in nested.items():
        flat[name if key == "non_field_errors" else f"{name}.{key}"] = messages
    return flat


class RuleSerializer(StrictModelSerializer):
    condition = serializers.JSONField(required=False, validators=[storable_json], help_text=(
        'A segment definition ({"all": [...]} or {"any": [...]}); {} matches every lead.'))
    segment = serializers.PrimaryKeyRelatedField(
        queryset=Segment.objects.none(), required=False, allow_null=True,
        error_messages={"does_not_exist": "No such segment in this organization.",
                        "incorrect_type": "A segment id."},
        help_text="A saved segment to match instead of a condition.")
    action = RuleActionSerializer(source="*")

    class Meta:
        model = AssignmentRule
        fields = ["id", "name", "order", "condition", "segment", "action", "sla_minutes", "max_reassignments",
                  "respect_working_hours", "match_profile", "is_fallback", "active", "created_at", "updated_at"]
        read_only_fields = ["id", "created_at", "updated_at"]
        validators = []

    def get_fields(self):
        fields = super().get_fields()
        organization = self.context.get("organization")
        if organization is not None:
            fields["segment"].queryset = Segment.objects.for_org(organization)
        return fields

    def validate_condition(self, value):
        if not isinstance(value, dict):
            raise serializers.ValidationError('A segment definition, {"all": [...]} or {"any": [...]}; '
                                              "{} for every lead.")
        return value

    def to_internal_value(self, data):
        try:
            return super().to_internal_value(data)
        except serializers.ValidationError as exc:
            if isinstance(exc.detail, dict):
                raise serializers.ValidationError(_flatten(exc.detail, "action")) from None
            raise

    def validate(self, attrs):
        if not {"type", "rep", "team"} & set(attrs):
            return attrs
        errors = {}
        strategy = attrs.pop("type", None)
        rep_id, team_id = attrs.pop("rep", None), attrs.pop("team", None)
        if strategy is None:
            errors["action.type"] = ["This field is required."]
        organization = self.context["organization"]
        rep = team = None
        if rep_id is not None:
            rep = selectors.rep_profiles(organization.pk).filter(
                user_id=rep_id, user__memberships__organization=organization).first()
            if rep is None:
                errors["action.rep"] = ["No such rep in this organization."]
        if team_id is not None:
            team = Team.objects.for_org(organization).filter(pk=team_id).first()
            if team is None:
                errors["action.team"] = ["No such team in this organization."]
        if errors:
            raise serializers.ValidationError(errors)
        return {**attrs, "strategy": strategy, "rep": rep, "team": team}


# ----------------------------------------------------------------------------------------------- assignments


class AssignmentSerializer(serializers.ModelSerializer):
    lead = serializers.UUIDField(source="lead_id", read_only=True)
    rep = serializers.IntegerField(source="rep_id", read_only=True, allow_null=True,
                                   help_text="The user id of the rep who got the lead; null: the team's pool.")
    rep_email = serializers.SerializerMethodField()
    previous_rep = serializers.IntegerField(source="previous_rep_id", read_only=True, allow_null=True)
    team = serializers.IntegerField(source="team_id", read_only=True, allow_null=True)
    rule = serializers.IntegerField(source="rule_id", read_only=True, allow_null=True)
    pooled = serializers.SerializerMethodField(help_text="The lead went to the team's pool, to be claimed.")
    actor = serializers.IntegerField(source="actor_id", read_only=True, allow_null=True)

    class Meta:
        model = Assignment
        fields = ["id", "lead", "rep", "rep_email", "previous_rep", "team", "rule", "rule_name", "strategy", "reason",
                  "sla_due_at", "pooled", "actor", "actor_label", "created_at"]
        read_only_fields = fields

    def get_rep_email(self, assignment) -> str | None:
        return assignment.rep.email if assignment.rep_id else None

    def get_pooled(self, assignment) -> bool:
        return assignment.rep_id is None


class TouchSerializer(StrictSerializer):
    type = serializers.ChoiceField(choices=TOUCH_CHOICES, help_text="What the rep did.")
    outcome = serializers.ChoiceField(
        choices=touches.OUTCOME_VALUES, required=False, allow_blank=True, default="",
        help_text="How it went, one of the type's outcomes: " + "; ".join(
            f"{api}: {', '.join(value for value, _ in touches.OUTCOMES[kind])}"
            for api, kind in TOUCH_TYPES.items() if touches.OUTCOMES[kind]) + ". A note has none.")
    note = serializers.CharField(required=False, allow_blank=True, max_length=touches.MAX_NOTE, default="")
    occurred_at = serializers.DateTimeField(required=False, default=None,
                                            help_text="When it happened (not in the future); default now.")

    def validate(self, attrs):
        errors = touches.problems(type=TOUCH_TYPES[attrs["type"]], outcome=attrs["outcome"], note=attrs["note"],
                                  occurred_at=attrs["occurred_at"])
        if errors:
            raise serializers.ValidationError(errors)
        return attrs


class ReassignSerializer(StrictSerializer):
    leads = serializers.ListField(child=serializers.UUIDField(), min_length=1, max_length=REASSIGN_LIMIT)
    rep = RepField(allow_null=True, help_text="The user id of the rep who takes the leads; null: nobody.")


class QueueItemSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    name = serializers.CharField(source="full_name")
    email = serializers.CharField()
    company = serializers.CharField()
    score = serializers.IntegerField()
    grade = serializers.CharField()
    temperature = serializers.CharField()
    lifecycle_stage = serializers.CharField()
    sla_due_at = serializers.DateTimeField(allow_null=True)
    sla_seconds_left = serializers.SerializerMethodField(
        help_text="Seconds until the first-touch deadline; negative when overdue, null with no deadline.")
    overdue = serializers.BooleanField()
    last_activity_at = serializers.DateTimeField(allow_null=True)
    created_at = serializers.DateTimeField()

    def get_sla_seconds_left(self, lead) -> int | None:
        if lead.sla_due_at is None:
            return None
        return math.floor((lead.sla_due_at - self.context["now"]).total_seconds())


class QueueSerializer(serializers.Serializer):
    rep = serializers.IntegerField(help_text="The user id of the rep whose queue this is.")
    count = serializers.IntegerField(help_text="Open leads in the queue (the list shows at most "
                                               f"{selectors.QUEUE_LIMIT}).")
    results = QueueItemSerializer(many=True)
