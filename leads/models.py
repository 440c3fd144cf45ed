"""The shared lead model, its timeline, and the capture channels (forms, imports)."""

import uuid
from decimal import Decimal

from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.contrib.postgres.indexes import GinIndex, OpClass
from django.core.serializers.json import DjangoJSONEncoder
from django.db import models
from django.db.models import F, Q, Value
from django.db.models.functions import Coalesce, Concat, Lower, Upper

from leadcrm.models import Organization, OrgQuerySet


class SourceType(models.TextChoices):
    ORGANIC = "organic", "Organic"
    INBOUND = "inbound", "Inbound"
    OUTBOUND = "outbound", "Outbound"
    REFERRAL = "referral", "Referral"
    PAID = "paid", "Paid"


class LifecycleStage(models.TextChoices):
    SUBSCRIBER = "subscriber", "Subscriber"
    LEAD = "lead", "Lead"
    MQL = "mql", "Marketing qualified"
    SAL = "sal", "Sales accepted"
    SQL = "sql", "Sales qualified"
    OPPORTUNITY = "opportunity", "Opportunity"
    CUSTOMER = "customer", "Customer"
    DISQUALIFIED = "disqualified", "Disqualified"
    RECYCLED = "recycled", "Recycled"


_S = LifecycleStage
# The allowed lifecycle moves, in one place. Reaching the MQL threshold and converting move leads along these
# same edges; the one exception is a won deal, which makes its lead a customer from whatever stage it is in.
ALLOWED_MOVES = {
    _S.SUBSCRIBER: (_S.LEAD, _S.MQL, _S.SAL, _S.DISQUALIFIED),
    _S.LEAD: (_S.SUBSCRIBER, _S.MQL, _S.SAL, _S.DISQUALIFIED),
    _S.MQL: (_S.SAL, _S.DISQUALIFIED, _S.RECYCLED),
    _S.SAL: (_S.SQL, _S.DISQUALIFIED, _S.RECYCLED),
    _S.SQL: (_S.OPPORTUNITY, _S.DISQUALIFIED, _S.RECYCLED),
    _S.OPPORTUNITY: (_S.CUSTOMER, _S.DISQUALIFIED, _S.RECYCLED),
    _S.CUSTOMER: (),
    _S.DISQUALIFIED: (_S.LEAD, _S.RECYCLED),
    _S.RECYCLED: (_S.LEAD, _S.MQL, _S.SAL, _S.DISQUALIFIED),
}
# Moves into these stages need a reason from the org's list.
STAGES_WITH_REASON = (_S.DISQUALIFIED, _S.RECYCLED)
# The funnel's stages in order, ranked from 1. A lead has reached a stage when it is in that stage or a later one,
# or its stage history holds one of them; Lead.reached_rank stores the furthest it reached (0: none).
FUNNEL_RANK = {_S.SUBSCRIBER: 1, _S.LEAD: 2, _S.MQL: 3, _S.SAL: 4, _S.SQL: 5, _S.OPPORTUNITY: 6, _S.CUSTOMER: 7}


def _reached_rank():
    furthest_first = sorted(FUNNEL_RANK.items(), key=lambda item: -item[1])
    return models.Case(
        *(models.When(Q(lifecycle_stage=stage.value) | Q(stage_entered_at__has_key=stage.value), then=Value(rank))
          for stage, rank in furthest_first),
        default=Value(0),
    )


class PredictiveBand(models.TextChoices):
    """The fifth of the org's leads a probability falls in, A the likeliest to convert."""

    A = "A", "A"
    B = "B", "B"
    C = "C", "C"
    D = "D", "D"
    E = "E", "E"


class LeadStatus(models.TextChoices):
    OPEN = "open", "Open"
    WORKING = "working", "Working"
    NURTURING = "nurturing", "Nurturing"
    CLOSED = "closed", "Closed"


class Grade(models.TextChoices):
    A = "A"
    B = "B"
    C = "C"
    D = "D"
    F = "F"


class Temperature(models.TextChoices):
    COLD = "cold", "Cold"
    WARM = "warm", "Warm"
    HOT = "hot", "Hot"


def lead_search_text():
    """The text `?search=` looks in (Lead.search_text)."""
    return Upper(Concat("first_name", Value(" "), "last_name", Value(" "), "email", Value(" "), "company"))


def likelihood():
    """A lead's conversion probability for ranking: a lead the org's model has not scored ranks below every scored
    one (a NULL has no place in a keyset comparison). The list's sort and its index share this expression."""
    return Coalesce("conversion_probability", Value(Decimal(-1)),
                    output_field=models.DecimalField(max_digits=5, decimal_places=4))


class Lead(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    organization = models.ForeignKey(
        Organization, on_delete=models.CASCADE, related_name="leads", db_index=False  # composite indexes lead with it
    )

    # contact
    email = models.CharField(max_length=254, blank=True, default="")
    first_name = models.CharField(max_length=100, blank=True, default="")
    last_name = models.CharField(max_length=100, blank=True, default="")
    phone = models.CharField(max_length=32, blank=True, default="", help_text="E.164")
    job_title = models.CharField(max_length=150, blank=True, default="")
    # company
    company = models.CharField(max_length=200, blank=True, default="")
    industry = models.CharField(max_length=100, blank=True, default="")
    company_size = models.PositiveIntegerField(null=True, blank=True)
    annual_revenue = models.DecimalField(max_digits=16, decimal_places=2, null=True, blank=True)
    website = models.CharField(max_length=300, blank=True, default="")
    # place
    country = models.CharField(max_length=2, blank=True, default="", help_text="ISO 3166-1 alpha-2")
    region = models.CharField(max_length=100, blank=True, default="")
    city = models.CharField(max_length=100, blank=True, default="")
    timezone = models.CharField(max_length=64, blank=True, default="")
    # the lead's id in the system it came from (the CRM an import moved it from, an integration's record id):
    # unique per organization when given, and matched like email when a lead is captured or imported again
    external_id = models.CharField(max_length=200, blank=True, default="")
    # acquisition
    source_type = models.CharField(max_length=16, choices=SourceType.choices, blank=True, default="")
    source = models.CharField(max_length=200, blank=True, default="", help_text="Source detail")
    utm_source = models.CharField(max_length=200, blank=True, default="")
    utm_medium = models.CharField(max_length=200, blank=True, default="")
    utm_campaign = models.CharField(max_length=200, blank=True, default="")
    utm_term = models.CharField(max_length=200, blank=True, default="")
    utm_content = models.CharField(max_length=200, blank=True, default="")
    first_touch = models.JSONField(default=dict, blank=True, encoder=DjangoJSONEncoder)
    last_touch = models.JSONField(default=dict, blank=True, encoder=DjangoJSONEncoder)
    # lifecycle
    lifecycle_stage = models.CharField(max_length=16, choices=LifecycleStage.choices, default=LifecycleStage.LEAD)
    stage_entered_at = models.JSONField(default=dict, blank=True, encoder=DjangoJSONEncoder)
    status = models.CharField(max_length=16, choices=LeadStatus.choices, default=LeadStatus.OPEN)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="owned_leads"
    )
    # scoring (computed by the scoring app)
    fit_score = models.IntegerField(default=0)
    behavior_score = models.IntegerField(default=0)
    score = models.IntegerField(default=0)
    # the four parts sales asks about: fit_score = fit_gained + fit_lost, behavior_score likewise
    fit_gained = models.IntegerField(default=0)
    fit_lost = models.IntegerField(default=0)
    behavior_gained = models.IntegerField(default=0)
    behavior_lost = models.IntegerField(default=0)
    grade = models.CharField(max_length=1, choices=Grade.choices, blank=True, default="")
    temperature = models.CharField(max_length=8, choices=Temperature.choices, blank=True, default="")
    # written by the org's predictive model (scoring/predictive.py); empty until one is trained
    conversion_probability = models.DecimalField(max_digits=5, decimal_places=4, null=True, blank=True,
                                                 editable=False)
    predictive_band = models.CharField(max_length=1, choices=PredictiveBand.choices, blank=True, default="",
                                       editable=False)
    # kept by PostgreSQL, for reports: the furthest funnel stage reached (FUNNEL_RANK)
    reached_rank = models.GeneratedField(expression=_reached_rank(), output_field=models.SmallIntegerField(),
                                         db_persist=True)
    # kept by PostgreSQL, for `?search=`: a plain column, so the search's only function is LIKE, which row-level
    # security lets the trigram index serve (see rls.LEAKPROOF_FUNCTIONS)
    search_text = models.GeneratedField(expression=lead_search_text(), output_field=models.TextField(),
                                        db_persist=True)
    # the ids of the scoring rules that add to or take from the score, so reports can tell which rules' leads convert
    score_rules = ArrayField(models.UUIDField(), default=list, blank=True, editable=False)
    stage_reason = models.CharField(max_length=200, blank=True, default="",
                                    help_text="Why it was last disqualified or recycled")
    # qualification (BANT), filled in by reps
    bant_budget = models.CharField("budget", max_length=200, blank=True, default="")
    bant_authority = models.CharField("authority", max_length=200, blank=True, default="")
    bant_need = models.CharField("need", max_length=500, blank=True, default="")
    bant_timeline = models.CharField("timeline", max_length=200, blank=True, default="")
    # conversion
    account = models.ForeignKey("Account", null=True, blank=True, on_delete=models.SET_NULL, related_name="leads")
    # consent
    consent_opt_in = models.BooleanField(default=False)
    consent_at = models.DateTimeField(null=True, blank=True)
    unsubscribed = models.BooleanField(default=False)
    do_not_contact = models.BooleanField(default=False)
    bounced = models.BooleanField(default=False)

    tags = ArrayField(models.CharField(max_length=64), default=list, blank=True)
    custom_fields = models.JSONField(default=dict, blank=True, encoder=DjangoJSONEncoder)
    last_activity_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    # privacy: set when the person asked to be forgotten; the row stays (anonymous) so reports still count it
    erased_at = models.DateTimeField(null=True, blank=True)
    # the transaction that last wrote the row, stamped by a trigger (leadcrm/sync.py): the change feed's order
    sync_xid = models.BigIntegerField(default=0, editable=False)

    objects = OrgQuerySet.as_manager()

    class Meta:
        constraints = [
            # Emails are stored trimmed and lower-cased (checked below), so a plain unique index on the
            # column gives case-insensitive uniqueness and serves `email=` lookups directly.
            models.UniqueConstraint(fields=["organization", "email"], condition=~Q(email=""),
                                    name="lead_unique_email_per_org"),
            models.UniqueConstraint(fields=["organization", "external_id"], condition=~Q(external_id=""),
                                    name="lead_unique_external_id_per_org"),
            models.CheckConstraint(condition=Q(email=Lower("email")), name="lead_email_lowercase"),
            # A lead is someone we can find again: by email, phone or their id in another system.
            models.CheckConstraint(condition=~Q(email="", phone="", external_id="") | Q(erased_at__isnull=False),
                                   name="lead_has_email_or_phone"),
        ]
        indexes = [
            # The report columns ride along, so the reports over leads created in a range read this index only.
            models.Index(fields=["organization", "-created_at", "-id"], name="lead_org_created",
                         include=["reached_rank", "source_type", "source", "utm_campaign", "owner", "score",
                                  "grade", "score_rules"]),
            # chunks of set-based batch work; the reports join leads by id and read these columns only
            models.Index(fields=["organization", "id"], name="lead_org_id",
                         include=["created_at", "reached_rank", "owner"]),
            models.Index(fields=["organization", "-score"], name="lead_org_score"),
            # the list sorted by "likeliest to convert", page by page (keyset on the probability, then the id)
            models.Index(F("organization"), likelihood().desc(), F("id").desc(), name="lead_org_likelihood"),
            models.Index(fields=["organization", "lifecycle_stage"], name="lead_org_stage"),
            # a rep's leads; with the stage, a rep's open leads (their queue, its badge, routing's capacity count)
            # are found without visiting the closed ones a rep piles up over the years
            models.Index(fields=["organization", "owner", "lifecycle_stage"], name="lead_org_owner_stage"),
            models.Index(fields=["organization", "phone"], name="lead_org_phone", condition=~Q(phone="")),
            # the change feed (leadcrm/sync.py): pages in time order, and the few rows a poll's range holds
            models.Index(fields=["organization", "updated_at", "id"], name="lead_org_updated"),
            models.Index(fields=["organization", "sync_xid"], name="lead_org_sync"),
            GinIndex(fields=["tags"], name="lead_tags"),
            GinIndex(F("organization"), OpClass(F("search_text"), name="gin_trgm_ops"), name="lead_org_search"),
        ]

    def __str__(self) -> str:
        return self.full_name or self.email or self.phone

    @property
    def full_name(self) -> str:
        return f"{self.first_name} {self.last_name}".strip()


class ConsentChannel(models.TextChoices):
    FORM = "form", "Form"
    API = "api", "API"
    IMPORT = "import", "Import"


class ConsentRecord(models.Model):
    """One opt-in as it was given: when, through what (form slug, API key name, import id), the words shown,
    and for forms the visitor's IP address."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+", db_index=False)
    lead = models.ForeignKey(Lead, on_delete=models.CASCADE, related_name="consents")
    given_at = models.DateTimeField()
    channel = models.CharField(max_length=16, choices=ConsentChannel.choices)
    source = models.CharField(max_length=200, blank=True, default="", help_text="Form slug, API key name or import id")
    text = models.TextField(blank=True, default="", help_text="What the person agreed to, as shown")
    ip_address = models.GenericIPAddressField(null=True, blank=True)

    objects = OrgQuerySet.as_manager()

    class Meta:
        indexes = [models.Index(fields=["organization", "lead", "-given_at"], name="consent_org_lead_time")]

    def __str__(self) -> str:
        return f"{self.get_channel_display()} consent at {self.given_at:%Y-%m-%d %H:%M}"


class ActivityType(models.TextChoices):
    PAGE_VIEW = "page_view", "Page view"
    FORM_SUBMISSION = "form_submission", "Form submission"
    API_SUBMISSION = "api_submission", "API submission"
    IMPORTED = "imported", "Imported"
    EMAIL_SENT = "email_sent", "Email sent"
    EMAIL_OPEN = "email_open", "Email opened"
    EMAIL_CLICK = "email_click", "Email clicked"
    EMAIL_BOUNCE = "email_bounce", "Email bounced"
    UNSUBSCRIBE = "unsubscribe", "Unsubscribed"
    DOWNLOAD = "download", "Download"
    EVENT_ATTENDED = "event_attended", "Event attended"
    WEBINAR_ATTENDED = "webinar_attended", "Webinar attended"
    CALL = "call", "Call"
    MEETING = "meeting", "Meeting"
    NOTE = "note", "Note"
    EMAIL_LOGGED = "email_logged", "Email logged"
    STAGE_CHANGE = "stage_change", "Stage change"
    OWNER_CHANGE = "owner_change", "Owner change"
    SCORE_CHANGE = "score_change", "Score change"
    MERGE = "merge", "Merged"
    DEAL_CREATED = "deal_created", "Deal created"
    DEAL_WON = "deal_won", "Deal won"
    DEAL_LOST = "deal_lost", "Deal lost"
    CUSTOM = "custom", "Custom event"


class Activity(models.Model):
    """One thing that happened to a lead. Append-only."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+", db_index=False)
    lead = models.ForeignKey(Lead, on_delete=models.CASCADE, related_name="activities")
    type = models.CharField(max_length=32, choices=ActivityType.choices)
    properties = models.JSONField(default=dict, blank=True, encoder=DjangoJSONEncoder)
    occurred_at = models.DateTimeField()
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # "API key <name>" when a key did it (a key is no user); empty for people and the system. The database
    # default lets the set-based inserts (capture, import, sends) leave it out.
    actor_label = models.CharField(max_length=300, blank=True, default="", db_default="")
    created_at = models.DateTimeField(auto_now_add=True)

    objects = OrgQuerySet.as_manager()

    class Meta:
        verbose_name_plural = "activities"
        indexes = [
            models.Index(fields=["organization", "lead", "-occurred_at"], name="activity_org_lead_time"),
            models.Index(fields=["organization", "type", "-occurred_at"], name="activity_org_type_time"),
        ]

    def __str__(self) -> str:
        return f"{self.get_type_display()} at {self.occurred_at:%Y-%m-%d %H:%M}"


class CustomActivityType(models.Model):
    """An activity type an organization adds to the built-in ones (`sms_sent`, `chat_started`…): capture,
    scoring rules and segments accept its key like any other type (leads/activity_types.py)."""

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+", db_index=False)
    key = models.CharField(max_length=32, help_text="Lowercase letters, digits and _, starting with a letter")
    label = models.CharField(max_length=100)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = OrgQuerySet.as_manager()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["organization", "key"], name="customactivitytype_key")]

    def __str__(self) -> str:
        return self.label


TOUCH_FIELDS = ("source", "utm_source", "utm_medium", "utm_campaign", "utm_term", "utm_content", "referrer",
                "landing_page", "form")


class Touch(models.Model):
    """One time the lead came to us: each capture through the API, a form or an import, with where it came from.
    The lead's first and last touch are the earliest and latest of these; campaign membership and attribution
    follow the campaigns the touches name. Append-only (a merge moves them to the lead kept)."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+", db_index=False)
    # Its own index on the lead, as the timeline's: deleting a lead finds its touches without reading every org's.
    lead = models.ForeignKey(Lead, on_delete=models.CASCADE, related_name="touches")
    occurred_at = models.DateTimeField()
    channel = models.CharField(max_length=16, help_text="api, api_bulk, form or import")
    source = models.CharField(max_length=200, blank=True, default="")
    utm_source = models.CharField(max_length=200, blank=True, default="")
    utm_medium = models.CharField(max_length=200, blank=True, default="")
    utm_campaign = models.CharField(max_length=200, blank=True, default="")
    utm_term = models.CharField(max_length=200, blank=True, default="")
    utm_content = models.CharField(max_length=200, blank=True, default="")
    referrer = models.CharField(max_length=1000, blank=True, default="")
    landing_page = models.CharField(max_length=1000, blank=True, default="")
    form = models.CharField(max_length=100, blank=True, default="", help_text="The form's slug")
    import_id = models.UUIDField(null=True, blank=True)

    objects = OrgQuerySet.as_manager()

    class Meta:
        indexes = [
            models.Index(fields=["organization", "lead", "occurred_at", "id"], name="touch_org_lead_time"),
            models.Index(fields=["organization", "import_id"], name="touch_org_import",
                         condition=models.Q(import_id__isnull=False)),
        ]

    def __str__(self) -> str:
        return f"{self.channel} touch at {self.occurred_at:%Y-%m-%d %H:%M}"

    def as_summary(self) -> dict:
        """The lead's first_touch / last_touch object: the fields it has, and when."""
        return {**{name: getattr(self, name) for name in TOUCH_FIELDS if getattr(self, name)},
                "at": self.occurred_at.isoformat()}


class Form(models.Model):
    """A hosted/embeddable capture form, public at /f/<slug>/."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="forms")
    name = models.CharField(max_length=200)
    slug = models.SlugField(max_length=80, unique=True)
    fields = models.JSONField(default=list, help_text="Lead field names shown on the form, in order.")
    required_fields = models.JSONField(default=list, blank=True)
    hidden_values = models.JSONField(default=dict, blank=True, help_text="Values set on every submission.")
    consent_text = models.TextField(blank=True, default="")
    submit_label = models.CharField(max_length=60, default="Submit")
    thank_you_message = models.TextField(blank=True, default="Thank you! We will be in touch.")
    redirect_url = models.URLField(blank=True, default="")
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = OrgQuerySet.as_manager()

    class Meta:
        indexes = [models.Index(fields=["organization", "-created_at"], name="form_org_created")]

    def __str__(self) -> str:
        return self.name


class FormSubmission(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+")
    form = models.ForeignKey(Form, on_delete=models.CASCADE, related_name="submissions")
    lead = models.ForeignKey(Lead, on_delete=models.CASCADE, related_name="form_submissions")
    data = models.JSONField(default=dict, encoder=DjangoJSONEncoder)
    created_lead = models.BooleanField(default=False)
    ip_address = models.GenericIPAddressField(null=True, blank=True)
    referrer = models.CharField(max_length=1000, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)

    objects = OrgQuerySet.as_manager()

    class Meta:
        indexes = [models.Index(fields=["organization", "form", "-created_at"], name="formsub_org_form_created")]

    def __str__(self) -> str:
        return f"{self.form} submission at {self.created_at:%Y-%m-%d %H:%M}"


class ImportStatus(models.TextChoices):
    MAPPING = "mapping", "Waiting for column mapping"
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    DONE = "done", "Done"
    FAILED = "failed", "Failed"


class ImportKind(models.TextChoices):
    LEADS = "leads", "Leads"
    ACTIVITIES = "activities", "Activities of existing leads"


def import_file_name(job, filename) -> str:
    """Where an uploaded CSV is stored: named by org and job, never by the name the uploader gave it."""
    return f"imports/{job.organization_id}/{job.pk}.csv"


class ImportJob(models.Model):
    """A CSV import. The file is in the shared file storage (STORAGES["default"]: a directory every host mounts, or
    an S3-compatible bucket), so any worker host can process it."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="imports")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    filename = models.CharField(max_length=255)
    kind = models.CharField(max_length=16, choices=ImportKind.choices, default=ImportKind.LEADS,
                            help_text="What each row is: a lead, or an activity of an existing lead")
    file = models.FileField(upload_to=import_file_name, max_length=255, blank=True,
                            help_text="The uploaded CSV; removed once every row is in")
    encoding = models.CharField(max_length=32, default="utf-8", help_text="How the file's bytes were read")
    delimiter = models.CharField(max_length=1, default=",")
    headers = models.JSONField(default=list, help_text="Column names, made unique (empty ones named 'Column N')")
    preview = models.JSONField(default=list, blank=True, help_text="The first few data rows, for the mapping step")
    mapping = models.JSONField(default=dict, blank=True, help_text="CSV header -> lead field")
    status = models.CharField(max_length=16, choices=ImportStatus.choices, default=ImportStatus.MAPPING)
    total_rows = models.PositiveIntegerField(default=0)
    processed_rows = models.PositiveIntegerField(default=0)
    created_count = models.PositiveIntegerField(default=0)
    merged_count = models.PositiveIntegerField(default=0)
    failed_count = models.PositiveIntegerField(default=0)
    errors = models.JSONField(
        default=list, blank=True, help_text="[{row, errors}] for the first rows that failed (all are in row_errors)"
    )
    error_message = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    # The sweeper's lease: a job it re-enqueued is not re-enqueued again before this (null: never swept).
    swept_until = models.DateTimeField(null=True, blank=True)

    objects = OrgQuerySet.as_manager()

    class Meta:
        indexes = [models.Index(fields=["organization", "-created_at"], name="import_org_created")]

    def __str__(self) -> str:
        return self.filename

    @property
    def progress_percent(self) -> int:
        if not self.total_rows:
            return 100 if self.status == ImportStatus.DONE else 0
        return min(100, round(100 * self.processed_rows / self.total_rows))

    @property
    def is_finished(self) -> bool:
        return self.status in (ImportStatus.DONE, ImportStatus.FAILED)


class ImportRowError(models.Model):
    """One CSV row that could not be imported: its cells as given and why, for the error report."""

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+")
    job = models.ForeignKey(ImportJob, on_delete=models.CASCADE, related_name="row_errors")
    row_number = models.PositiveIntegerField(help_text="As a spreadsheet counts rows: the header is row 1")
    values = models.JSONField(default=list)
    errors = models.JSONField(default=dict, help_text="column -> [messages]")

    objects = OrgQuerySet.as_manager()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["organization", "job", "row_number"], name="importrowerror_unique_row"),
        ]

    def __str__(self) -> str:
        return f"Row {self.row_number}"


BANT_FIELDS = ("bant_budget", "bant_authority", "bant_need", "bant_timeline")


class QualificationSettings(models.Model):
    """Per org: which BANT fields a lead needs before it may move to SQL."""

    organization = models.OneToOneField(Organization, on_delete=models.CASCADE, primary_key=True,
                                        related_name="qualification_settings")
    bant_required_for_sql = ArrayField(models.CharField(max_length=16, choices=[(f, f) for f in BANT_FIELDS]),
                                       default=list, blank=True)

    objects = OrgQuerySet.as_manager()

    class Meta:
        verbose_name = verbose_name_plural = "qualification settings"

    def __str__(self) -> str:
        return f"Qualification settings of {self.organization}"


class ReasonKind(models.TextChoices):
    DISQUALIFIED = "disqualified", "Disqualified"
    RECYCLED = "recycled", "Recycled"
    LOST = "lost", "Deal lost"


class Reason(models.Model):
    """An org-editable reason to pick when disqualifying or recycling a lead, or losing a deal."""

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+", db_index=False)
    kind = models.CharField(max_length=16, choices=ReasonKind.choices)
    label = models.CharField(max_length=200)
    active = models.BooleanField(default=True)

    objects = OrgQuerySet.as_manager()

    class Meta:
        ordering = ["kind", "label"]
        constraints = [models.UniqueConstraint(fields=["organization", "kind", "label"], name="reason_unique")]

    def __str__(self) -> str:
        return self.label


class SegmentKind(models.TextChoices):
    DYNAMIC = "dynamic", "Dynamic (conditions)"
    STATIC = "static", "Static list (hand-picked)"


class Segment(models.Model):
    """A saved audience: conditions evaluated in one SQL query (dynamic), or hand-picked leads (static)."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="segments",
                                     db_index=False)
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True, default="")
    kind = models.CharField(max_length=8, choices=SegmentKind.choices, default=SegmentKind.DYNAMIC)
    definition = models.JSONField(default=dict, blank=True, encoder=DjangoJSONEncoder)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = OrgQuerySet.as_manager()

    class Meta:
        indexes = [models.Index(fields=["organization", "-created_at", "-id"], name="segment_org_created")]

    def __str__(self) -> str:
        return self.name


class SegmentMember(models.Model):
    """A lead hand-picked into a static list."""

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+", db_index=False)
    segment = models.ForeignKey(Segment, on_delete=models.CASCADE, related_name="members", db_index=False)
    lead = models.ForeignKey(Lead, on_delete=models.CASCADE, related_name="list_memberships")
    added_at = models.DateTimeField(auto_now_add=True)

    objects = OrgQuerySet.as_manager()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["organization", "segment", "lead"],
                                               name="segmentmember_unique")]

    def __str__(self) -> str:
        return f"{self.lead_id} in {self.segment_id}"


class Account(models.Model):
    """A company that became (or is becoming) a customer."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="accounts",
                                     db_index=False)
    name = models.CharField(max_length=200)
    website = models.CharField(max_length=300, blank=True, default="")
    industry = models.CharField(max_length=100, blank=True, default="")
    company_size = models.PositiveIntegerField(null=True, blank=True)
    country = models.CharField(max_length=2, blank=True, default="")
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                              related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    # What the header's search looks in: the name upper-cased, stored, so its trigram index serves `LIKE` under
    # row-level security (upper() itself is not leakproof; see Lead.search_text).
    search_text = models.GeneratedField(expression=Upper("name"), output_field=models.TextField(), db_persist=True)
    # the transaction that last wrote the row, stamped by a trigger (leadcrm/sync.py): the change feed's order
    sync_xid = models.BigIntegerField(default=0, editable=False)

    objects = OrgQuerySet.as_manager()

    class Meta:
        constraints = [models.UniqueConstraint("organization", Upper("name"), name="account_unique_name")]
        indexes = [
            GinIndex(F("organization"), OpClass(F("search_text"), name="gin_trgm_ops"), name="account_org_search"),
            models.Index(fields=["organization", "updated_at", "id"], name="account_org_updated"),
            models.Index(fields=["organization", "sync_xid"], name="account_org_sync"),
        ]

    def __str__(self) -> str:
        return self.name


class DealStatus(models.TextChoices):
    OPEN = "open", "Open"
    WON = "won", "Won"
    LOST = "lost", "Lost"


class StageKind(models.TextChoices):
    """What reaching a stage means for its deals' status: a won or lost stage closes the deal (the same values as
    DealStatus, so a deal's status is its stage's kind)."""

    OPEN = "open", "Open"
    WON = "won", "Won"
    LOST = "lost", "Lost"


class Pipeline(models.Model):
    """An org's sequence of deal stages; each deal is in one stage of one pipeline. One pipeline is the default,
    where new deals start (made for each org by services.set_up_pipelines)."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+", db_index=False)
    name = models.CharField(max_length=100)
    is_default = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = OrgQuerySet.as_manager()

    class Meta:
        ordering = ["-is_default", "name"]
        constraints = [
            models.UniqueConstraint("organization", Upper("name"), name="pipeline_unique_name"),
            models.UniqueConstraint(fields=["organization"], condition=Q(is_default=True), name="pipeline_one_default"),
        ]

    def __str__(self) -> str:
        return self.name


class Stage(models.Model):
    """One step of a pipeline, in `position` order: the chance a deal in it is won (`probability`, 0–100, which
    weights the forecast) and how many idle days make a deal in it rot (none: it never does)."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+", db_index=False)
    pipeline = models.ForeignKey(Pipeline, on_delete=models.CASCADE, related_name="stages", db_index=False)
    name = models.CharField(max_length=100)
    position = models.PositiveSmallIntegerField()
    probability = models.PositiveSmallIntegerField(help_text="Chance of winning a deal in this stage, 0–100 %")
    rotting_days = models.PositiveSmallIntegerField(
        null=True, blank=True, help_text="A deal idle in this stage for more days than this is rotting")
    kind = models.CharField(max_length=8, choices=StageKind.choices, default=StageKind.OPEN)

    objects = OrgQuerySet.as_manager()

    class Meta:
        ordering = ["position"]
        constraints = [
            models.CheckConstraint(condition=Q(probability__lte=100), name="stage_probability_0_100"),
            models.UniqueConstraint(fields=["organization", "pipeline", "position"], name="stage_unique_position",
                                    deferrable=models.Deferrable.DEFERRED),
            models.UniqueConstraint(fields=["organization", "pipeline", "kind"], condition=~Q(kind="open"),
                                    name="stage_one_won_one_lost"),
        ]

    def __str__(self) -> str:
        return self.name


class Deal(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="deals", db_index=False)
    account = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="deals")
    lead = models.ForeignKey(Lead, null=True, blank=True, on_delete=models.SET_NULL, related_name="deals")
    name = models.CharField(max_length=200)
    amount = models.DecimalField(max_digits=14, decimal_places=2)
    currency = models.CharField(max_length=3, default="USD", help_text="ISO 4217")
    expected_close = models.DateField(null=True, blank=True)
    status = models.CharField(max_length=8, choices=DealStatus.choices, default=DealStatus.OPEN)
    lost_reason = models.CharField(max_length=200, blank=True, default="")
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                              related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    closed_at = models.DateTimeField(null=True, blank=True)
    # Where the deal is in its pipeline, and since when. A deal inserted without a stage (any path: an import's
    # SQL too) is placed by a trigger (migration 0025) in its org's default pipeline, in the first stage of the
    # kind its status names, with its first history row; every later move is services.move_deal's.
    pipeline = models.ForeignKey(Pipeline, null=True, blank=True, on_delete=models.PROTECT, related_name="deals",
                                 db_index=False)
    stage = models.ForeignKey(Stage, null=True, blank=True, on_delete=models.PROTECT, related_name="deals",
                              db_index=False)
    stage_entered_at = models.DateTimeField(null=True, blank=True)
    search_text = models.GeneratedField(expression=Upper("name"), output_field=models.TextField(), db_persist=True)
    # the transaction that last wrote the row, stamped by a trigger (leadcrm/sync.py): the change feed's order
    sync_xid = models.BigIntegerField(default=0, editable=False)

    objects = OrgQuerySet.as_manager()

    class Meta:
        indexes = [
            models.Index(fields=["organization", "pipeline", "stage", "owner"], name="deal_org_board"),
            models.Index(fields=["organization", "owner", "status", "stage_entered_at"], name="deal_org_owner_open"),
            GinIndex(F("organization"), OpClass(F("search_text"), name="gin_trgm_ops"), name="deal_org_search"),
            models.Index(fields=["organization", "-created_at", "-id"], name="deal_org_created"),
            models.Index(fields=["organization", "status", "-closed_at"], name="deal_org_status_closed"),
            models.Index(fields=["organization", "lead"], name="deal_org_lead"),
            models.Index(fields=["organization", "updated_at", "id"], name="deal_org_updated"),
            models.Index(fields=["organization", "sync_xid"], name="deal_org_sync"),
        ]
        constraints = [
            models.CheckConstraint(condition=Q(amount__gte=0), name="deal_amount_not_negative"),
            models.CheckConstraint(condition=Q(status="open") | Q(closed_at__isnull=False), name="deal_closed_at"),
        ]

    def __str__(self) -> str:
        return self.name


class DealStageChange(models.Model):
    """A deal's stay in a stage: entered (by whom, with what reason), left (null: it is there now). Written by
    services.move_deal and the close services; the first row by the trigger that places a new deal."""

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+", db_index=False)
    deal = models.ForeignKey(Deal, on_delete=models.CASCADE, related_name="stage_history", db_index=False)
    stage = models.ForeignKey(Stage, null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
                              db_index=False)
    stage_name = models.CharField(max_length=100, help_text="The stage's name then (kept if the stage is deleted)")
    entered_at = models.DateTimeField()
    left_at = models.DateTimeField(null=True, blank=True)
    entered_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")
    reason = models.CharField(max_length=200, blank=True, default="")

    objects = OrgQuerySet.as_manager()

    class Meta:
        ordering = ["entered_at", "id"]
        indexes = [
            models.Index(fields=["organization", "deal", "entered_at"], name="stagechange_org_deal"),
            models.Index(fields=["organization", "stage", "entered_at"], name="stagechange_org_stage"),
        ]
        constraints = [models.UniqueConstraint(fields=["organization", "deal"], condition=Q(left_at__isnull=True),
                                               name="stagechange_one_current")]

    def __str__(self) -> str:
        return f"{self.stage_name} from {self.entered_at:%Y-%m-%d %H:%M}"


class SavedView(models.Model):
    """A named leads-list query (search, filters, sort, visible columns) a member keeps; a shared one every member
    can open."""

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+", db_index=False)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    name = models.CharField(max_length=100)
    # The list's query string without its page cursor, keeping only the list's own keys (services.save_view); its
    # `columns` are the columns the view shows.
    query = models.CharField(max_length=2000, blank=True, default="")
    shared = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = OrgQuerySet.as_manager()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["organization", "owner", "name"], name="savedview_owner_name")]
        indexes = [models.Index(fields=["organization", "name"], condition=Q(shared=True), name="savedview_shared")]

    def __str__(self) -> str:
        return self.name


class ListPreference(models.Model):
    """What a member last chose to see on the leads list: its columns (keys of leads.listing.COLUMNS), in the
    list's own order. A saved view that names columns shows its own instead."""

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+", db_index=False)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    columns = ArrayField(models.CharField(max_length=32), default=list, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = OrgQuerySet.as_manager()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["organization", "user"], name="listpreference_member")]

    def __str__(self) -> str:
        return f"{self.user_id}: {', '.join(self.columns)}"


class TombstoneReason(models.TextChoices):
    DELETED = "deleted", "Deleted"
    MERGED = "merged", "Merged into another lead"
    ERASED = "erased", "Erased on request"


class LeadTombstone(models.Model):
    """A lead an integration's copy must drop: deleted, merged into another (`merged_into`), or erased on request
    (the anonymous row stays in the lead list for reports; the person's data must go). Written by the service that
    removes the lead, in its transaction; kept for SYNC_TOMBSTONE_RETENTION_DAYS."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+", db_index=False)
    lead_id = models.UUIDField()
    reason = models.CharField(max_length=8, choices=TombstoneReason.choices)
    merged_into = models.UUIDField(null=True, blank=True, help_text="The lead it was merged into")
    # whose lead it was: a member who sees only their own leads sees only their own leads' tombstones
    owner_id = models.IntegerField(null=True, blank=True)
    deleted_at = models.DateTimeField()
    sync_xid = models.BigIntegerField(default=0, editable=False)

    objects = OrgQuerySet.as_manager()

    class Meta:
        indexes = [
            models.Index(fields=["organization", "deleted_at", "id"], name="tombstone_org_deleted"),
            models.Index(fields=["organization", "sync_xid"], name="tombstone_org_sync"),
        ]

    def __str__(self) -> str:
        return f"{self.lead_id} {self.reason} at {self.deleted_at:%Y-%m-%d %H:%M}"
