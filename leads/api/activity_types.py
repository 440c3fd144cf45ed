"""`/api/v1/activity-types/`: the activity types an org may record — the built-in ones and those it registered
(`sms_sent`, `chat_started`…), which capture, scoring rules and segments then accept."""

from drf_spectacular.utils import extend_schema
from rest_framework import mixins, serializers, status
from rest_framework.response import Response

from leadcrm import urlids
from leadcrm.api import OrgScopedViewSet
from leadcrm.policy import Action

from .. import activity_types
from ..models import ActivityType, CustomActivityType


class ActivityTypeSerializer(serializers.ModelSerializer):
    key = serializers.CharField(max_length=32)
    label = serializers.CharField(max_length=100)
    builtin = serializers.SerializerMethodField()

    class Meta:
        model = CustomActivityType
        fields = ["key", "label", "builtin"]

    def get_builtin(self, row) -> bool:
        return False


class ActivityTypeViewSet(mixins.ListModelMixin, mixins.DestroyModelMixin, OrgScopedViewSet):
    """List every type (built-in ones first, `builtin: true`); register and delete the org's own. A type still used by
    activities, rules or segments is not deleted (409)."""

    policy_action = Action.SCORING
    policy_actions = {"list": Action.WORK_LEADS}
    serializer_class = ActivityTypeSerializer
    lookup_field = "key"
    lookup_value_regex = urlids.SLUG_KEY
    pagination_class = None
    filter_backends: list = []

    def get_queryset(self):
        return activity_types.custom(self.organization)

    def list(self, request):
        builtin = [{"key": key, "label": label, "builtin": True} for key, label in ActivityType.choices]
        return Response(builtin + self.get_serializer(self.get_queryset(), many=True).data)

    @extend_schema(request=ActivityTypeSerializer, responses={201: ActivityTypeSerializer})
    def create(self, request):
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        created = activity_types.create(organization_id=self.organization.pk, **serializer.validated_data)
        return Response(self.get_serializer(created).data, status=status.HTTP_201_CREATED)

    def perform_destroy(self, instance):
        activity_types.delete(activity_type=instance)
