from .models import TEST_EVENT, Delivery, DeliveryStatus, Endpoint, EventType


def endpoints(organization):
    return Endpoint.objects.for_org(organization)


def deliveries(endpoint: Endpoint, *, status: str = "", event: str = ""):
    """An endpoint's deliveries, filtered by status and event type (unknown values are ignored by the callers'
    validation)."""
    queryset = Delivery.objects.for_org(endpoint.organization_id).filter(endpoint=endpoint)
    if status:
        queryset = queryset.filter(status=status)
    if event:
        queryset = queryset.filter(event_type=event)
    return queryset


STATUS_FILTERS = DeliveryStatus.values
EVENT_FILTERS = [*EventType.values, TEST_EVENT]
