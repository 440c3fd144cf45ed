"""Domain events become deliveries, set-based; sending happens in the `webhooks` queue.

Handlers accept `**_` (events grow fields) and pass an `event_id` through when the event carries one, so an event
delivered twice creates its deliveries once."""

from leadcrm import events

from . import services
from .models import EventType


def _str(value):
    return None if value is None else str(value)


def lead_captured(*, organization_id, lead_id, created=True, channel=None, event_id=None, **_):
    services.deliveries_for_lead(
        organization_id=organization_id, lead_id=lead_id, event_id=event_id,
        event_type=EventType.LEAD_CREATED if created else EventType.LEAD_UPDATED,
        data={"channel": channel} if created else {"channel": channel, "merged_capture": True})


def lead_updated(*, organization_id, lead_id, fields=(), event_id=None, **_):
    services.deliveries_for_lead(organization_id=organization_id, lead_id=lead_id, event_id=event_id,
                                 event_type=EventType.LEAD_UPDATED, data={"changed_fields": list(fields)})


def lead_mql(*, organization_id, lead_ids, event_id=None, **_):
    if lead_ids:
        services.deliveries_for_leads(organization_id=organization_id, lead_ids=list(lead_ids), event_id=event_id,
                                      event_type=EventType.LEAD_MQL)


def lead_assigned(*, organization_id, lead_id, owner_id=None, reason="", assignment_id=None, event_id=None, **_):
    services.deliveries_for_lead(organization_id=organization_id, lead_id=lead_id, event_id=event_id,
                                 event_type=EventType.LEAD_ASSIGNED,
                                 data={"owner_id": owner_id, "reason": reason, "assignment_id": _str(assignment_id)})


def lead_stage_changed(*, organization_id, lead_id, from_stage=None, to_stage=None, event_id=None, **_):
    services.deliveries_for_lead(organization_id=organization_id, lead_id=lead_id, event_id=event_id,
                                 event_type=EventType.LEAD_STAGE_CHANGED,
                                 data={"from_stage": from_stage, "to_stage": to_stage})


def lead_converted(*, organization_id, lead_id, account_id=None, deal_id=None, event_id=None, **_):
    services.deliveries_for_lead(organization_id=organization_id, lead_id=lead_id, event_id=event_id,
                                 event_type=EventType.LEAD_CONVERTED,
                                 data={"account_id": _str(account_id), "deal_id": _str(deal_id)})


def deal_won(*, organization_id, deal_id, event_id=None, **_):
    services.deliveries_for_deal(organization_id=organization_id, deal_id=deal_id, event_id=event_id,
                                 event_type=EventType.DEAL_WON)


def email_unsubscribed(*, organization_id, lead_id, how="", message_id=None, event_id=None, **_):
    services.deliveries_for_lead(organization_id=organization_id, lead_id=lead_id, event_id=event_id,
                                 event_type=EventType.EMAIL_UNSUBSCRIBED,
                                 data={"how": how, "message_id": _str(message_id)})


def leads_imported(*, organization_id, import_id, event_id=None, **_):
    services.deliveries_for_import(organization_id=organization_id, import_id=import_id, event_id=event_id)


# Each domain event, its handler and the webhook event types it may deliver.
SUBSCRIPTIONS = {
    events.LEAD_CAPTURED: (lead_captured, EventType.LEAD_CREATED, EventType.LEAD_UPDATED),
    events.LEAD_UPDATED: (lead_updated, EventType.LEAD_UPDATED),
    events.LEAD_MQL: (lead_mql, EventType.LEAD_MQL),
    events.LEAD_ASSIGNED: (lead_assigned, EventType.LEAD_ASSIGNED),
    events.LEAD_STAGE_CHANGED: (lead_stage_changed, EventType.LEAD_STAGE_CHANGED),
    events.LEAD_CONVERTED: (lead_converted, EventType.LEAD_CONVERTED),
    events.DEAL_WON: (deal_won, EventType.DEAL_WON),
    events.EMAIL_UNSUBSCRIBED: (email_unsubscribed, EventType.EMAIL_UNSUBSCRIBED),
    events.LEADS_IMPORTED: (leads_imported, EventType.LEAD_CREATED, EventType.LEAD_UPDATED),
}


def batched(handler, *event_types):
    """`handler` as a batch handler: the events of one org delivered together cost one look for an endpoint that
    takes them (most orgs have none), not one per event."""

    def deliver(*, organization_id, payloads):
        if services.subscribed(organization_id, *event_types):
            for payload in payloads:
                handler(**payload)

    deliver.__qualname__ = deliver.__name__ = handler.__name__  # the name the outbox keeps while it is pending
    return deliver
