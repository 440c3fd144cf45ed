"""Distribution: rep profiles, teams, assignment rules, each lead's routing state and its assignment history."""

import uuid

from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.db import models
from django.db.models import Q
from django.db.models.functions import Lower

from leadcrm.models import Organization, OrgQuerySet
from leads.models import Lead, Segment


class Seniority(models.TextChoices):
    JUNIOR = "junior", "Junior"
    MID = "mid", "Mid-level"
    SENIOR = "senior", "Senior"
    LEAD = "lead", "Lead"


class RepProfile(models.Model):
    """What routing knows about one rep (or manager) of an org: where and what they sell, and how much."""

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+", db_index=False)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="rep_profiles")
    territories = ArrayField(models.CharField(max_length=64), default=list, blank=True,
                             help_text="ISO country codes, optionally with a region: US, US-CA, DE. Empty: anywhere.")
    industries = ArrayField(models.CharField(max_length=100), default=list, blank=True,
                            help_text="Empty: any industry.")
    languages = ArrayField(models.CharField(max_length=16), default=list, blank=True,
                           help_text="Language codes (en, de…), matched against a lead's `language` custom field.")
    seniority = models.CharField(max_length=16, choices=Seniority.choices, blank=True, default="")
    capacity = models.PositiveIntegerField(default=50, null=True, blank=True,
                                           help_text="Most open leads at once; empty: no limit.")
    weight = models.PositiveSmallIntegerField(default=1, help_text="Share of leads under weighted round robin.")
    available = models.BooleanField(default=True, help_text="Off: paused, gets no new leads.")
    away_until = models.DateTimeField(null=True, blank=True)
    working_hours = models.JSONField(default=dict, blank=True,
                                     help_text='{"timezone": "Europe/Berlin", "days": [1,2,3,4,5], '
                                               '"start": "09:00", "end": "17:00"}; empty: any time.')
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = OrgQuerySet.as_manager()

    class Meta:
        ordering = ["user__email"]
        constraints = [models.UniqueConstraint(fields=["organization", "user"], name="repprofile_unique_user")]

    def __str__(self) -> str:
        return str(self.user)


class Team(models.Model):
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+", db_index=False)
    name = models.CharField(max_length=100)
    manager = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                related_name="managed_teams")
    members = models.ManyToManyField(RepProfile, through="TeamMember", related_name="teams", blank=True)
    # Round robin's clock: each turn taken stamps the member with the next tick (under a row lock on the team).
    turns_taken = models.BigIntegerField(default=0, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = OrgQuerySet.as_manager()

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint("organization", Lower("name"), name="team_unique_name")]

    def __str__(self) -> str:
        return self.name


class TeamMember(models.Model):
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+", db_index=False)
    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="memberships")
    rep = models.ForeignKey(RepProfile, on_delete=models.CASCADE, related_name="team_memberships")
    last_turn = models.BigIntegerField(default=0, help_text="The team tick of this member's last turn.")
    # Smooth weighted round robin (as in nginx): credit grows by the weight each pick, the pick pays the total.
    weighted_credit = models.IntegerField(default=0)
    joined_at = models.DateTimeField(auto_now_add=True)

    objects = OrgQuerySet.as_manager()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["team", "rep"], name="teammember_unique_rep")]

    def __str__(self) -> str:
        return f"{self.rep} in {self.team}"


class Strategy(models.TextChoices):
    REP = "rep", "A named rep"
    ROUND_ROBIN = "round_robin", "Round robin in a team"
    WEIGHTED = "weighted", "Weighted round robin in a team"
    LEAST_LOADED = "least_loaded", "Least loaded in a team"
    POOL = "pool", "The team's claim pool"


class AssignmentRule(models.Model):
    """Ordered per org, first match wins; the one fallback rule catches every lead no other rule takes."""

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+", db_index=False)
    name = models.CharField(max_length=200)
    order = models.PositiveIntegerField(default=100)
    condition = models.JSONField(default=dict, blank=True, help_text="A segment definition; empty: every lead.")
    # RESTRICT: a segment, rep or team a rule uses cannot be deleted on its own, but goes with its whole org.
    segment = models.ForeignKey(Segment, null=True, blank=True, on_delete=models.RESTRICT, related_name="+")
    strategy = models.CharField(max_length=16, choices=Strategy.choices)
    rep = models.ForeignKey(RepProfile, null=True, blank=True, on_delete=models.RESTRICT, related_name="+")
    team = models.ForeignKey(Team, null=True, blank=True, on_delete=models.RESTRICT, related_name="rules")
    respect_working_hours = models.BooleanField(default=False, help_text="Skip reps outside their working hours.")
    match_profile = models.BooleanField(
        default=True, help_text="Skip reps whose territories, industries or languages exclude the lead.")
    sla_minutes = models.PositiveIntegerField(null=True, blank=True, help_text="First-touch deadline.")
    max_reassignments = models.PositiveSmallIntegerField(default=2)
    is_fallback = models.BooleanField(default=False)
    active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = OrgQuerySet.as_manager()

    class Meta:
        ordering = ["is_fallback", "order", "created_at"]
        indexes = [models.Index(fields=["organization", "is_fallback", "order"], name="rule_org_order")]
        constraints = [
            models.UniqueConstraint(fields=["organization"], condition=Q(is_fallback=True),
                                    name="rule_one_fallback"),
            models.CheckConstraint(condition=Q(strategy="rep", rep__isnull=False, team__isnull=True)
                                   | (~Q(strategy="rep") & Q(team__isnull=False, rep__isnull=True)),
                                   name="rule_action_target"),
        ]

    def __str__(self) -> str:
        return self.name


class LeadRouting(models.Model):
    """A routed lead's state: where it waits (a team's pool), its SLA clock, and its speed-to-lead times."""

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+", db_index=False)
    lead = models.OneToOneField(Lead, on_delete=models.CASCADE, related_name="routing")
    rule = models.ForeignKey(AssignmentRule, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    team = models.ForeignKey(Team, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    pooled = models.BooleanField(default=False, help_text="Waiting in the team's pool for a rep to claim it.")
    mql_at = models.DateTimeField(null=True, blank=True)
    first_assigned_at = models.DateTimeField(null=True, blank=True)
    assigned_at = models.DateTimeField(null=True, blank=True)
    first_touch_at = models.DateTimeField(null=True, blank=True)
    sla_due_at = models.DateTimeField(null=True, blank=True)
    # The deadline of the lead's first assignment, kept for the speed-to-lead report's share within SLA.
    first_sla_due_at = models.DateTimeField(null=True, blank=True)
    reassignments = models.PositiveSmallIntegerField(default=0)
    escalated_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = OrgQuerySet.as_manager()

    class Meta:
        indexes = [
            models.Index(fields=["organization", "team"], condition=Q(pooled=True), name="routing_org_pool"),
            # The SLA beat looks across orgs for due clocks: this partial index holds only running ones.
            models.Index(fields=["sla_due_at"], condition=Q(sla_due_at__isnull=False), name="routing_sla_due"),
        ]

    def __str__(self) -> str:
        return f"routing of {self.lead_id}"


class AssignmentReason(models.TextChoices):
    RULE = "rule", "Assignment rule"
    FALLBACK = "fallback", "Fallback rule"
    ROUTE_NOW = "route_now", "Routed by hand"
    MANUAL = "manual", "Re-assigned by hand"
    CLAIM = "claim", "Claimed from the pool"
    SLA = "sla", "SLA missed"
    ESCALATION = "escalation", "Escalated to the manager"
    POOL = "pool", "Sent to the pool"


class Assignment(models.Model):
    """One assignment, re-assignment, pooling or claim of a lead: who got it, by which rule, and why."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+", db_index=False)
    lead = models.ForeignKey(Lead, on_delete=models.CASCADE, related_name="assignments")
    rep = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                            related_name="+", help_text="Empty: the lead went to the team's pool.")
    previous_rep = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                     related_name="+")
    team = models.ForeignKey(Team, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    rule = models.ForeignKey(AssignmentRule, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    rule_name = models.CharField(max_length=200, blank=True, default="")
    strategy = models.CharField(max_length=16, choices=Strategy.choices, blank=True, default="")
    reason = models.CharField(max_length=16, choices=AssignmentReason.choices)
    sla_due_at = models.DateTimeField(null=True, blank=True)
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                              related_name="+")
    actor_label = models.CharField(max_length=300, blank=True, default="", db_default="",
                                   help_text='"API key <name>" when a key did it')
    created_at = models.DateTimeField(auto_now_add=True)

    objects = OrgQuerySet.as_manager()

    class Meta:
        indexes = [models.Index(fields=["organization", "lead", "-created_at"], name="assignment_org_lead")]

    def __str__(self) -> str:
        return f"{self.get_reason_display()}: {self.rep or 'pool'}"


class NotificationKind(models.TextChoices):
    ASSIGNED = "assigned", "Lead assigned to you"
    POOLED = "pooled", "Lead waiting in the pool"
    ESCALATED = "escalated", "Lead escalated"
    TASK_DUE = "task_due", "Task due"


class Notification(models.Model):
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+", db_index=False)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    lead = models.ForeignKey(Lead, null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    kind = models.CharField(max_length=16, choices=NotificationKind.choices)
    message = models.CharField(max_length=300)
    emailed_at = models.DateTimeField(null=True, blank=True)
    read_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = OrgQuerySet.as_manager()

    class Meta:
        indexes = [models.Index(fields=["organization", "user", "-created_at"], condition=Q(read_at__isnull=True),
                                name="notification_org_unread"),
                   # the notifications page: keyset pages of one member's notifications, newest first
                   models.Index(fields=["organization", "user", "-created_at", "-id"],
                                name="notification_org_user_created")]

    def __str__(self) -> str:
        return self.message
