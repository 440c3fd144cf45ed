"""Nurturing: email templates (versioned, in folders), drip sequences, enrolments, and every message sent."""

import uuid

from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.db import models
from django.db.models import Q
from django.db.models.functions import Lower

from leadcrm.models import Organization, OrgQuerySet
from leads.models import Form, Lead, Segment


class TemplateFolder(models.Model):
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+", db_index=False)
    name = models.CharField(max_length=100)

    objects = OrgQuerySet.as_manager()

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint("organization", Lower("name"), name="templatefolder_unique_name")]

    def __str__(self) -> str:
        return self.name


class EmailTemplate(models.Model):
    """A named template; its content lives in versions, and every sent email records the version it used."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+", db_index=False)
    folder = models.ForeignKey(TemplateFolder, null=True, blank=True, on_delete=models.SET_NULL,
                               related_name="templates")
    name = models.CharField(max_length=200)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = OrgQuerySet.as_manager()

    class Meta:
        ordering = ["name"]
        indexes = [models.Index(fields=["organization", "name"], name="template_org_name")]

    def __str__(self) -> str:
        return self.name


class TemplateVersion(models.Model):
    """One saved state of a template. Versions are never changed: an edit saves a new one."""

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+", db_index=False)
    template = models.ForeignKey(EmailTemplate, on_delete=models.CASCADE, related_name="versions")
    number = models.PositiveIntegerField()
    subject = models.CharField(max_length=300)
    html = models.TextField()
    text = models.TextField()
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    objects = OrgQuerySet.as_manager()

    class Meta:
        ordering = ["template", "-number"]
        constraints = [models.UniqueConstraint(fields=["template", "number"], name="templateversion_unique_number")]

    def __str__(self) -> str:
        return f"{self.template} v{self.number}"


class EntryType(models.TextChoices):
    MANUAL = "manual", "By hand or API"
    SEGMENT = "segment", "Entering a segment"
    FORM = "form", "Submitting a form"
    STAGE = "stage", "Reaching a lifecycle stage"


class Sequence(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+", db_index=False)
    name = models.CharField(max_length=200)
    active = models.BooleanField(default=False)
    entry_type = models.CharField(max_length=16, choices=EntryType.choices, default=EntryType.MANUAL)
    entry_segment = models.ForeignKey(Segment, null=True, blank=True, on_delete=models.RESTRICT, related_name="+")
    entry_form = models.ForeignKey(Form, null=True, blank=True, on_delete=models.RESTRICT, related_name="+")
    entry_stage = models.CharField(max_length=16, blank=True, default="")
    exit_stages = ArrayField(models.CharField(max_length=16), default=list, blank=True,
                             help_text="Leaving when the lead reaches one of these stages (e.g. sql, customer).")
    exit_condition = models.JSONField(default=dict, blank=True, help_text="A segment definition; {}: none.")
    allow_reenrollment = models.BooleanField(default=False)
    sending_hours = models.JSONField(
        default=dict, blank=True, help_text='{"start": "09:00", "end": "17:00"} in the lead\'s timezone; {}: any time.')
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = OrgQuerySet.as_manager()

    class Meta:
        ordering = ["name"]
        indexes = [models.Index(fields=["organization", "entry_type"], name="sequence_org_entry",
                                condition=Q(active=True))]

    def __str__(self) -> str:
        return self.name


class StepType(models.TextChoices):
    EMAIL = "email", "Send an email"
    WAIT = "wait", "Wait"
    BRANCH = "branch", "Branch on a condition"
    UPDATE = "update", "Change a field or stage"
    NOTIFY_OWNER = "notify_owner", "Notify the owner"
    CREATE_TASK = "create_task", "Create a task for the owner"


class SequenceStep(models.Model):
    """One step; `config` holds the type's settings (wait: hours/days/business_days; branch: condition, then,
    else as step positions; update: field, value)."""

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+", db_index=False)
    sequence = models.ForeignKey(Sequence, on_delete=models.CASCADE, related_name="steps")
    position = models.PositiveIntegerField()
    type = models.CharField(max_length=16, choices=StepType.choices)
    template = models.ForeignKey(EmailTemplate, null=True, blank=True, on_delete=models.RESTRICT, related_name="+")
    config = models.JSONField(default=dict, blank=True)

    objects = OrgQuerySet.as_manager()

    class Meta:
        ordering = ["sequence", "position"]
        constraints = [models.UniqueConstraint(fields=["sequence", "position"], name="step_unique_position")]

    def __str__(self) -> str:
        return f"{self.sequence} #{self.position} {self.type}"


class EnrollmentStatus(models.TextChoices):
    ACTIVE = "active", "Active"
    COMPLETED = "completed", "Completed"
    EXITED = "exited", "Exited"


class Enrollment(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+", db_index=False)
    sequence = models.ForeignKey(Sequence, on_delete=models.CASCADE, related_name="enrollments")
    lead = models.ForeignKey(Lead, on_delete=models.CASCADE, related_name="enrollments")
    status = models.CharField(max_length=16, choices=EnrollmentStatus.choices, default=EnrollmentStatus.ACTIVE)
    position = models.PositiveIntegerField(default=0, help_text="The step to run next.")
    next_run_at = models.DateTimeField(null=True, blank=True, help_text="When the next step is due.")
    exit_reason = models.CharField(max_length=200, blank=True, default="")
    enrolled_by = models.CharField(max_length=32, blank=True, default="", help_text="manual, api, segment…")
    enrolled_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    objects = OrgQuerySet.as_manager()

    class Meta:
        indexes = [
            models.Index(fields=["organization", "sequence", "status"], name="enrollment_org_seq"),
            models.Index(fields=["organization", "lead"], name="enrollment_org_lead"),
            # The beat looks across orgs for due steps: this partial index holds only running enrolments.
            models.Index(fields=["next_run_at"], condition=Q(status="active"), name="enrollment_due"),
        ]
        constraints = [models.UniqueConstraint(fields=["sequence", "lead"], condition=Q(status="active"),
                                               name="enrollment_one_active")]

    def __str__(self) -> str:
        return f"{self.lead_id} in {self.sequence_id}"


class MessageStatus(models.TextChoices):
    QUEUED = "queued", "Queued"  # claimed, not yet handed to the mail server: safe to send after a crash
    SENDING = "sending", "Sending"  # being handed over: never sent again
    SENT = "sent", "Sent"
    SKIPPED = "skipped", "Skipped"
    FAILED = "failed", "Failed"
    UNKNOWN = "unknown", "Unknown (the sender stopped mid-send)"


class Message(models.Model):
    """An email to a lead: claimed (one row per enrolment and step, so never sent twice), then sent or skipped,
    then tracked."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+", db_index=False)
    lead = models.ForeignKey(Lead, on_delete=models.CASCADE, related_name="messages")
    enrollment = models.ForeignKey(Enrollment, null=True, blank=True, on_delete=models.CASCADE, related_name="messages")
    step = models.ForeignKey(SequenceStep, null=True, blank=True, on_delete=models.SET_NULL, related_name="messages")
    template_version = models.ForeignKey(TemplateVersion, null=True, blank=True, on_delete=models.SET_NULL,
                                         related_name="messages")
    to_email = models.CharField(max_length=254, blank=True, default="")
    subject = models.CharField(max_length=300, blank=True, default="")
    links = models.JSONField(default=list, blank=True, help_text="The URLs in the email, in order (click tracking).")
    status = models.CharField(max_length=16, choices=MessageStatus.choices, default=MessageStatus.SENDING)
    skip_reason = models.CharField(max_length=200, blank=True, default="")
    error = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    opened_at = models.DateTimeField(null=True, blank=True)
    clicked_at = models.DateTimeField(null=True, blank=True)
    bounced_at = models.DateTimeField(null=True, blank=True)
    unsubscribed_at = models.DateTimeField(null=True, blank=True)

    objects = OrgQuerySet.as_manager()

    class Meta:
        indexes = [
            models.Index(fields=["organization", "lead", "-created_at"], name="message_org_lead"),
            models.Index(fields=["organization", "template_version"], name="message_org_version"),
            models.Index(fields=["organization", "step"], name="message_org_step"),
            # The tick's sweeps look across orgs for claims a stopped worker left behind.
            models.Index(fields=["created_at"], condition=Q(status__in=["queued", "sending"]), name="message_unsent"),
        ]
        constraints = [models.UniqueConstraint(fields=["enrollment", "step"], name="message_once_per_step")]

    def __str__(self) -> str:
        return f"{self.subject} to {self.to_email}"
