"""Shape of the tasks API. Ids are resolved within the org and what the caller may see (another org's lead, or one
the caller may not work, is the same 400); a due time without an offset is read in the owner's time zone."""

from django.utils import timezone
from rest_framework import serializers

from leadcrm.api import StrictSerializer
from leads.touches import OUTCOME_VALUES

from .models import Task, TaskType
from .services import MAX_BULK, MAX_NOTE


class LocalDateTimeField(serializers.DateTimeField):
    """A date and time as sent: with an offset it is that instant; without one it stays naive, and the view reads it
    in the owner's time zone (which only the view knows)."""

    def enforce_timezone(self, value):
        return value if timezone.is_naive(value) else super().enforce_timezone(value)


class TaskSerializer(serializers.ModelSerializer):
    lead = serializers.UUIDField(source="lead_id", read_only=True, allow_null=True)
    deal = serializers.UUIDField(source="deal_id", read_only=True, allow_null=True)
    account = serializers.UUIDField(source="account_id", read_only=True, allow_null=True)
    owner = serializers.IntegerField(source="owner_id", read_only=True)
    owner_email = serializers.EmailField(source="owner.email", read_only=True)
    done = serializers.BooleanField(read_only=True)
    overdue = serializers.SerializerMethodField(help_text="Open and past its due time.")
    target = serializers.SerializerMethodField(help_text="The name of the lead, deal or account.")

    class Meta:
        model = Task
        fields = [
            "id",
            "lead",
            "deal",
            "account",
            "target",
            "type",
            "note",
            "due_at",
            "owner",
            "owner_email",
            "done",
            "done_at",
            "outcome",
            "overdue",
            "reminded_at",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields

    def get_overdue(self, task) -> bool:
        return task.done_at is None and task.due_at < self.context.get("now", timezone.now())

    def get_target(self, task) -> str:
        return str(task.target)


class TaskInputSerializer(StrictSerializer):
    lead = serializers.UUIDField(required=False, help_text="The lead the task is about (or `deal`, or `account`).")
    deal = serializers.UUIDField(required=False)
    account = serializers.UUIDField(required=False)
    type = serializers.ChoiceField(choices=TaskType.choices, default=TaskType.CALL)
    note = serializers.CharField(max_length=MAX_NOTE, required=False, allow_blank=True, trim_whitespace=True)
    due_at = LocalDateTimeField(
        help_text="ISO 8601; without an offset, in the owner's time zone. A past time is "
        "allowed (a task logged late) and shows as overdue."
    )
    owner = serializers.IntegerField(required=False, help_text="A member's user id; default the target's owner.")


class TaskChangeSerializer(StrictSerializer):
    type = serializers.ChoiceField(choices=TaskType.choices, required=False)
    note = serializers.CharField(max_length=MAX_NOTE, required=False, allow_blank=True)
    due_at = LocalDateTimeField(required=False)
    owner = serializers.IntegerField(required=False)
    done = serializers.BooleanField(
        required=False,
        help_text="true completes the task (a call, email or meeting is logged on the lead's timeline with `outcome`).",
    )
    outcome = serializers.ChoiceField(choices=OUTCOME_VALUES, required=False, allow_blank=True)

    def validate_done(self, value):
        if value is False:
            raise serializers.ValidationError("A done task stays done; plan a new one instead.")
        return value


class BulkTaskSerializer(StrictSerializer):
    leads = serializers.ListField(child=serializers.UUIDField(), min_length=1, max_length=MAX_BULK)
    type = serializers.ChoiceField(choices=TaskType.choices, default=TaskType.CALL)
    note = serializers.CharField(max_length=MAX_NOTE, required=False, allow_blank=True)
    due_at = LocalDateTimeField()
    owner = serializers.IntegerField(required=False)
