"""Campaigns: what marketing spent where, who joined, and the revenue that followed."""

import uuid

from django.db import models
from django.db.models import Q
from django.db.models.functions import Lower

from leadcrm.models import Organization, OrgQuerySet
from leads.models import Lead


class Channel(models.TextChoices):
    EMAIL = "email", "Email"
    PAID_ADS = "paid_ads", "Paid ads"
    EVENT = "event", "Event"
    WEBINAR = "webinar", "Webinar"
    SOCIAL = "social", "Social"
    CONTENT = "content", "Content"
    REFERRAL = "referral", "Referral"
    OTHER = "other", "Other"


class CampaignStatus(models.TextChoices):
    PLANNED = "planned", "Planned"
    ACTIVE = "active", "Active"
    PAUSED = "paused", "Paused"
    COMPLETED = "completed", "Completed"


class Campaign(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+", db_index=False)
    name = models.CharField(max_length=200)
    channel = models.CharField(max_length=16, choices=Channel.choices, default=Channel.OTHER)
    status = models.CharField(max_length=16, choices=CampaignStatus.choices, default=CampaignStatus.PLANNED)
    start = models.DateField(null=True, blank=True)
    end = models.DateField(null=True, blank=True)
    budget = models.DecimalField(max_digits=14, decimal_places=2, null=True, blank=True)
    currency = models.CharField(max_length=3, default="USD", help_text="ISO 4217; revenue is counted in it")
    utm_campaign = models.CharField(max_length=200, blank=True, default="",
                                    help_text="Leads captured with this utm_campaign (any case) join the campaign.")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = OrgQuerySet.as_manager()

    class Meta:
        indexes = [models.Index(fields=["organization", "-created_at", "-id"], name="campaign_org_created")]
        constraints = [
            # Also the index the capture-time join looks campaigns up by.
            models.UniqueConstraint("organization", Lower("utm_campaign"), condition=~Q(utm_campaign=""),
                                    name="campaign_unique_utm"),
            models.CheckConstraint(condition=Q(budget__isnull=True) | Q(budget__gte=0),
                                   name="campaign_budget_not_negative"),
            models.CheckConstraint(
                condition=Q(start__isnull=True) | Q(end__isnull=True) | Q(end__gte=models.F("start")),
                name="campaign_end_after_start"),
        ]

    def __str__(self) -> str:
        return self.name


class CampaignCost(models.Model):
    """One spend on a campaign; its actual cost is the sum of these."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+", db_index=False)
    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="costs", db_index=False)
    date = models.DateField()
    amount = models.DecimalField(max_digits=14, decimal_places=2)
    note = models.CharField(max_length=200, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)

    objects = OrgQuerySet.as_manager()

    class Meta:
        indexes = [models.Index(fields=["organization", "campaign", "-date"], name="campaigncost_org_campaign")]
        constraints = [models.CheckConstraint(condition=Q(amount__gte=0), name="campaigncost_not_negative")]

    def __str__(self) -> str:
        return f"{self.amount} on {self.date}"


class MemberStatus(models.TextChoices):
    TARGETED = "targeted", "Targeted"
    RESPONDED = "responded", "Responded"
    CONVERTED = "converted", "Converted"


# Statuses only move forward when a lead joins again: a segment push never turns a responder back into a target.
STATUS_RANK = {MemberStatus.TARGETED: 0, MemberStatus.RESPONDED: 1, MemberStatus.CONVERTED: 2}


class MemberSource(models.TextChoices):
    UTM = "utm", "UTM campaign on capture"
    FORM = "form", "Form"
    IMPORT = "import", "Import"
    MANUAL = "manual", "By hand"
    SEGMENT = "segment", "Segment"


class CampaignMember(models.Model):
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+", db_index=False)
    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="members", db_index=False)
    lead = models.ForeignKey(Lead, on_delete=models.CASCADE, related_name="campaign_memberships", db_index=False)
    status = models.CharField(max_length=16, choices=MemberStatus.choices, default=MemberStatus.TARGETED)
    source = models.CharField(max_length=16, choices=MemberSource.choices, default=MemberSource.MANUAL)
    joined_at = models.DateTimeField()
    updated_at = models.DateTimeField(auto_now=True)

    objects = OrgQuerySet.as_manager()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["organization", "campaign", "lead"],
                                               name="campaignmember_unique")]
        indexes = [
            models.Index(fields=["organization", "campaign", "-joined_at", "-id"], name="campaignmember_org_camp"),
            models.Index(fields=["organization", "lead", "joined_at"], name="campaignmember_org_lead"),
        ]

    def __str__(self) -> str:
        return f"{self.lead_id} in {self.campaign_id}"
