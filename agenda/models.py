"""A rep's follow-ups: tasks on a lead, a deal or an account, with a due time, an owner and how they ended."""

import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q

from leadcrm.models import Organization, OrgQuerySet
from leads.models import Account, Deal, Lead


class TaskType(models.TextChoices):
    CALL = "call", "Call"
    EMAIL = "email", "Email"
    MEETING = "meeting", "Meeting"
    TODO = "todo", "To-do"


REMINDER_PENDING = Q(remind_at__isnull=False, reminded_at__isnull=True, done_at__isnull=True)


class Task(models.Model):
    """One follow-up. It belongs to exactly one of a lead, a deal or an account. Open while `done_at` is empty.
    Its reminder is due at `remind_at` (the due time) until it is sent (`reminded_at`): the reminder beat claims
    open, un-reminded tasks on it, and moving the due time re-arms it."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+", db_index=False)
    lead = models.ForeignKey(Lead, null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    deal = models.ForeignKey(Deal, null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    account = models.ForeignKey(Account, null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    type = models.CharField(max_length=8, choices=TaskType.choices, default=TaskType.CALL)
    note = models.TextField(blank=True, default="")
    due_at = models.DateTimeField()
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    done_at = models.DateTimeField(null=True, blank=True)
    outcome = models.CharField(max_length=32, blank=True, default="")
    remind_at = models.DateTimeField(null=True, blank=True)
    reminded_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = OrgQuerySet.as_manager()

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=(
                    Q(lead__isnull=False, deal__isnull=True, account__isnull=True)
                    | Q(lead__isnull=True, deal__isnull=False, account__isnull=True)
                    | Q(lead__isnull=True, deal__isnull=True, account__isnull=False)
                ),
                name="task_one_target",
            ),
        ]
        indexes = [
            # the today view, ?owner= and the team page's overdue counts: an owner's open tasks by due time
            models.Index(
                fields=["organization", "owner", "due_at"],
                condition=Q(done_at__isnull=True),
                name="task_org_owner_open",
            ),
            # the API list's keyset order
            models.Index(fields=["organization", "due_at", "id"], name="task_org_due"),
            models.Index(
                fields=["organization", "lead", "due_at"], condition=Q(lead__isnull=False), name="task_org_lead"
            ),
            models.Index(fields=["organization", "deal"], condition=Q(deal__isnull=False), name="task_org_deal"),
            models.Index(
                fields=["organization", "account"], condition=Q(account__isnull=False), name="task_org_account"
            ),
            # the reminder claim inside one org, and (below) the beat's look for orgs with due reminders: only open,
            # un-reminded tasks are in them, so a task leaves both when it is reminded or done
            models.Index(fields=["organization", "remind_at"], condition=REMINDER_PENDING, name="task_org_remind"),
            models.Index(fields=["remind_at"], condition=REMINDER_PENDING, name="task_remind_due"),
        ]

    def __str__(self) -> str:
        return f"{self.get_type_display()}: {self.target}"

    @property
    def target(self):
        return self.lead or self.deal or self.account

    @property
    def done(self) -> bool:
        return self.done_at is not None
