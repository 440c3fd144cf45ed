from rest_framework import serializers

from leadcrm.api import StrictSerializer, storable_json

from .models import Attempt, Delivery, DeliveryStatus, EventType


class EndpointSerializer(StrictSerializer):
    id = serializers.UUIDField(read_only=True)
    url = serializers.CharField(max_length=2000, validators=[storable_json],
                                help_text="A public https URL (resolved and checked on save and on every send).")
    description = serializers.CharField(max_length=200, required=False, allow_blank=True, validators=[storable_json])
    events = serializers.ListField(child=serializers.CharField(max_length=64, validators=[storable_json]),
                                   allow_empty=True,
                                   help_text=f"One or more of: {', '.join(EventType.values)}.")
    active = serializers.BooleanField(required=False)
    created_at = serializers.DateTimeField(read_only=True)
    updated_at = serializers.DateTimeField(read_only=True)


class EndpointCreatedSerializer(EndpointSerializer):
    secret = serializers.CharField(read_only=True, help_text="Shown only in this response (and after a rotation).")


class SecretSerializer(serializers.Serializer):
    id = serializers.UUIDField(read_only=True)
    secret = serializers.CharField(read_only=True)


class AttemptSerializer(serializers.ModelSerializer):
    class Meta:
        model = Attempt
        fields = ["attempted_at", "url", "status_code", "response_body", "error", "duration_ms"]


class DeliverySerializer(serializers.ModelSerializer):
    status = serializers.ChoiceField(choices=DeliveryStatus.choices)
    replay_of = serializers.UUIDField(source="replay_of_id", allow_null=True)

    class Meta:
        model = Delivery
        fields = ["id", "message_id", "event_type", "lead_id", "payload", "status", "attempt_count",
                  "next_attempt_at", "last_status_code", "last_error", "replay_of", "created_at", "updated_at"]
        read_only_fields = fields


class DeliveryDetailSerializer(DeliverySerializer):
    attempts = AttemptSerializer(many=True, read_only=True)

    class Meta(DeliverySerializer.Meta):
        fields = [*DeliverySerializer.Meta.fields, "attempts"]
        read_only_fields = fields
