"""REST API of outbound webhooks.

`/api/v1/webhooks/` CRUD of endpoints (the `secret` is in the create and rotate answers only),
`…/{id}/deliveries/` in cursor pages (`?status=`, `?event=`), `…/{id}/deliveries/{delivery_id}/replay/` (a new
delivery of the same payload with a new message id), `…/{id}/rotate-secret/`.
"""

from django.shortcuts import get_object_or_404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import exceptions, mixins, status
from rest_framework.decorators import action
from rest_framework.response import Response

from leadcrm import audit, urlids
from leadcrm.api import OrgScopedViewSet, idempotent
from leadcrm.pagination import CreatedCursorPagination
from leadcrm.policy import Action

from . import selectors, services
from .models import Delivery, Endpoint
from .serializers import (
    DeliveryDetailSerializer,
    DeliverySerializer,
    EndpointCreatedSerializer,
    EndpointSerializer,
    SecretSerializer,
)

IDEMPOTENCY_PARAMETER = OpenApiParameter("Idempotency-Key", str, OpenApiParameter.HEADER)


class WebhookViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, OrgScopedViewSet):
    """Endpoints that receive signed deliveries of the events they choose."""

    policy_action = Action.WEBHOOKS
    serializer_class = EndpointSerializer
    pagination_class = CreatedCursorPagination
    search_fields = ["url", "description"]
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return Endpoint.objects.none()
        return selectors.endpoints(self.organization)

    def _endpoint(self, pk) -> Endpoint:
        return get_object_or_404(selectors.endpoints(self.organization), pk=pk)

    @extend_schema(request=EndpointSerializer, responses={201: EndpointCreatedSerializer},
                   parameters=[IDEMPOTENCY_PARAMETER])
    @idempotent
    def create(self, request, *args, **kwargs):
        """Register an endpoint; the answer carries its signing `secret`, shown only here."""
        serializer = EndpointSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        endpoint = services.create_endpoint(organization_id=self.organization.pk, actor=audit.actor_of(request),
                                            data=dict(serializer.validated_data))
        return Response(EndpointCreatedSerializer(endpoint).data, status=status.HTTP_201_CREATED)

    def partial_update(self, request, pk=None):
        endpoint = self._endpoint(pk)
        serializer = EndpointSerializer(endpoint, data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        endpoint = services.update_endpoint(endpoint=endpoint, data=dict(serializer.validated_data),
                                            actor=audit.actor_of(request))
        return Response(EndpointSerializer(endpoint).data)

    def destroy(self, request, pk=None):
        services.delete_endpoint(endpoint=self._endpoint(pk), actor=audit.actor_of(request))
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(request=None, responses=SecretSerializer)
    @action(detail=True, methods=["post"], url_path="rotate-secret", filter_backends=[], pagination_class=None)
    def rotate_secret(self, request, pk=None):
        """A new signing secret, effective at once for every send (also retries); shown only in this answer."""
        endpoint = services.rotate_secret(endpoint=self._endpoint(pk), actor=audit.actor_of(request))
        return Response({"id": str(endpoint.pk), "secret": endpoint.secret})

    @extend_schema(responses=DeliverySerializer(many=True), parameters=[
        OpenApiParameter("status", str, enum=selectors.STATUS_FILTERS),
        OpenApiParameter("event", str, enum=selectors.EVENT_FILTERS)])
    @action(detail=True, methods=["get"], filter_backends=[])
    def deliveries(self, request, pk=None):
        """The endpoint's deliveries, newest first, in cursor pages; `?status=` and `?event=` filter."""
        endpoint = self._endpoint(pk)
        status_filter = request.query_params.get("status", "")
        event_filter = request.query_params.get("event", "")
        errors = {}
        if status_filter and status_filter not in selectors.STATUS_FILTERS:
            errors["status"] = [f"Choose one of: {', '.join(selectors.STATUS_FILTERS)}."]
        if event_filter and event_filter not in selectors.EVENT_FILTERS:
            errors["event"] = [f"Choose one of: {', '.join(selectors.EVENT_FILTERS)}."]
        if errors:
            raise exceptions.ValidationError(errors)
        page = self.paginate_queryset(selectors.deliveries(endpoint, status=status_filter, event=event_filter))
        return self.get_paginated_response(DeliverySerializer(page, many=True).data)

    @extend_schema(request=None, responses={201: DeliveryDetailSerializer},
                   parameters=[OpenApiParameter("delivery_id", OpenApiTypes.UUID, OpenApiParameter.PATH)])
    @action(detail=True, methods=["post"], url_path=rf"deliveries/(?P<delivery_id>{urlids.UUID})/replay",
            filter_backends=[], pagination_class=None)
    def replay(self, request, pk=None, delivery_id=None):
        """Send a delivery's payload again now, as a new delivery with a new `webhook-id` and its own retries
        (the original keeps its history; `replay_of` names it)."""
        endpoint = self._endpoint(pk)
        delivery = get_object_or_404(Delivery.objects.for_org(self.organization).filter(endpoint=endpoint),
                                     pk=delivery_id)
        copy = services.replay(delivery=delivery)
        return Response(DeliveryDetailSerializer(copy).data, status=status.HTTP_201_CREATED)
