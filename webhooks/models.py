"""Outbound webhooks: the endpoints an organization registers, the deliveries owed to them, each attempt made."""

import uuid

from django.contrib.postgres.fields import ArrayField
from django.db import models
from django.db.models import Q

from leadcrm.models import Organization, OrgQuerySet


class EventType(models.TextChoices):
    LEAD_CREATED = "lead.created", "Lead created"
    LEAD_UPDATED = "lead.updated", "Lead updated"
    LEAD_MQL = "lead.mql", "Lead became an MQL"
    LEAD_ASSIGNED = "lead.assigned", "Lead assigned"
    LEAD_STAGE_CHANGED = "lead.stage_changed", "Lead stage changed"
    LEAD_CONVERTED = "lead.converted", "Lead converted"
    DEAL_WON = "deal.won", "Deal won"
    EMAIL_UNSUBSCRIBED = "email.unsubscribed", "Email unsubscribed"


# Sent by "Send test event" whatever the endpoint subscribes to; never chosen as a subscription.
TEST_EVENT = "webhook.test"


class Endpoint(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+", db_index=False)
    url = models.CharField(max_length=2000)
    description = models.CharField(max_length=200, blank=True, default="")
    events = ArrayField(models.CharField(max_length=32, choices=EventType.choices))
    active = models.BooleanField(default=True)
    # Standard Webhooks form: "whsec_" + base64 of the random key bytes.
    secret = models.CharField(max_length=100)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = OrgQuerySet.as_manager()

    class Meta:
        indexes = [models.Index(fields=["organization", "-created_at", "-id"], name="whendpoint_org_created")]

    def __str__(self) -> str:
        return self.url


class DeliveryStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    DELIVERED = "delivered", "Delivered"
    FAILED = "failed", "Failed"


class Delivery(models.Model):
    """One message owed to one endpoint. `next_attempt_at` is when it is next due (a claimed one is leased ahead,
    so a worker that dies mid-send only delays it); null once delivered or failed."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+", db_index=False)
    endpoint = models.ForeignKey(Endpoint, on_delete=models.CASCADE, related_name="deliveries", db_index=False)
    message_id = models.CharField(max_length=40)
    event_type = models.CharField(max_length=32)
    # event_id of the domain event, its type and the lead: a re-delivered event adds nothing. Null (not "") when the
    # event has no id, so the partial unique index leaves those alone.
    event_key = models.CharField(max_length=120, null=True, blank=True)  # noqa: DJ001
    lead_id = models.UUIDField(null=True, blank=True)
    payload = models.JSONField()
    status = models.CharField(max_length=16, choices=DeliveryStatus.choices, default=DeliveryStatus.PENDING)
    attempt_count = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    last_status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    last_error = models.CharField(max_length=500, blank=True, default="")
    replay_of = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = OrgQuerySet.as_manager()

    class Meta:
        verbose_name_plural = "deliveries"
        indexes = [
            models.Index(fields=["organization", "endpoint", "-created_at", "-id"], name="whdelivery_org_endpoint"),
            models.Index(fields=["organization", "endpoint", "status", "-created_at", "-id"],
                         name="whdelivery_org_status"),
            models.Index(fields=["organization", "endpoint", "event_type", "-created_at", "-id"],
                         name="whdelivery_org_event"),
            # a lead's deliveries, for its privacy export and erasure
            models.Index(fields=["organization", "lead_id"], condition=Q(lead_id__isnull=False),
                         name="whdelivery_org_lead"),
            # The sweeper looks across organizations for due rows; only pending rows are in it.
            models.Index(fields=["next_attempt_at"], condition=Q(status="pending"), name="whdelivery_due"),
        ]
        constraints = [
            models.UniqueConstraint(fields=["organization", "message_id"], name="whdelivery_unique_message"),
            models.UniqueConstraint(fields=["endpoint", "event_key"], condition=Q(event_key__isnull=False),
                                    name="whdelivery_unique_event"),
        ]

    def __str__(self) -> str:
        return f"{self.event_type} {self.message_id}"


RESPONSE_EXCERPT_BYTES = 2048


class Attempt(models.Model):
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+", db_index=False)
    delivery = models.ForeignKey(Delivery, on_delete=models.CASCADE, related_name="attempts", db_index=False)
    attempted_at = models.DateTimeField()
    url = models.CharField(max_length=2000, help_text="The last URL tried (after redirects)")
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    response_body = models.TextField(blank=True, default="", help_text="At most the first 2 KB")
    error = models.CharField(max_length=500, blank=True, default="")
    duration_ms = models.PositiveIntegerField(default=0)

    objects = OrgQuerySet.as_manager()

    class Meta:
        indexes = [models.Index(fields=["organization", "delivery", "attempted_at"], name="whattempt_org_delivery")]

    def __str__(self) -> str:
        return f"{self.status_code or self.error} at {self.attempted_at}"
