from leadcrm import rls

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


# ----------------------------------------------------------------------------------------------- finding the org
# The app role sees one org at a time: these ask the SECURITY DEFINER functions of migration 0003 (leadcrm/rls.py).


def organization_of_delivery(delivery_id):
    found = rls.lookup_ids("webhooks_delivery_organization", str(delivery_id))
    return found[0] if found else None


def organizations_with_due(now) -> list:
    """Orgs with a pending delivery due by `now` to an active endpoint."""
    return rls.lookup_ids("webhooks_organizations_with_due", now)


def organizations_with_endpoints() -> list:
    return rls.lookup_ids("webhooks_organizations_with_endpoints")


def retry_backlog() -> int:
    """Deliveries that failed at least once and wait for another attempt, across every org (the metrics gauge)."""
    return rls.lookup("webhooks_retry_backlog")[0][0]
