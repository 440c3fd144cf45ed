"""API shapes of nurturing. Sections: templates (and folders) first, then sequences."""

from rest_framework import serializers

from leadcrm.api import StrictSerializer

from .rendering import MAX_BODY, MAX_SUBJECT
from .services.templates import MAX_FOLDER_NAME, MAX_NAME

# ----------------------------------------------------------------------------------------------- templates


def _content_field(limit, **kwargs):
    # Bodies keep their whitespace: a text email's line breaks are its layout.
    return serializers.CharField(max_length=limit, allow_blank=True, trim_whitespace=False, **kwargs)


class TemplateSerializer(StrictSerializer):
    """A template with the content of its current version. Saving new content makes a new version."""

    id = serializers.UUIDField(read_only=True)
    name = serializers.CharField(max_length=MAX_NAME)
    folder = serializers.CharField(max_length=MAX_FOLDER_NAME, required=False, allow_null=True, allow_blank=True,
                                   help_text="The folder's name (made when new); null: no folder.")
    subject = _content_field(MAX_SUBJECT, help_text='With merge fields, e.g. "Hi {{ lead.first_name|default:'
                                                    '\\"there\\" }}".')
    html = _content_field(MAX_BODY, help_text="The HTML body (merge fields are HTML-escaped).")
    text = _content_field(MAX_BODY, required=False, default="", help_text="The plain-text body.")
    version = serializers.IntegerField(read_only=True, help_text="The current version's number.")
    versions = serializers.IntegerField(read_only=True, help_text="How many versions were saved.")
    created_at = serializers.DateTimeField(read_only=True)
    updated_at = serializers.DateTimeField(read_only=True)

    def to_representation(self, template):
        return {
            "id": str(template.pk), "name": template.name,
            "folder": template.folder.name if template.folder_id else None,
            "subject": template.current_subject, "html": template.current_html, "text": template.current_text,
            "version": template.version_number, "versions": template.version_count,
            "created_at": serializers.DateTimeField().to_representation(template.created_at),
            "updated_at": serializers.DateTimeField().to_representation(template.updated_at),
        }


class TemplateVersionSerializer(serializers.Serializer):
    number = serializers.IntegerField()
    subject = serializers.CharField()
    html = serializers.CharField()
    text = serializers.CharField()
    created_by = serializers.SerializerMethodField(help_text="The email of who saved it, if known.")
    created_at = serializers.DateTimeField()

    def get_created_by(self, version) -> str | None:
        return version.created_by.email if version.created_by_id else None


class TemplatePreviewSerializer(StrictSerializer):
    """The lead to render for (none: a sample lead), and optionally unsaved content to render instead."""

    lead = serializers.UUIDField(required=False, allow_null=True,
                                 error_messages={"invalid": "No such lead in this organization."})
    subject = _content_field(MAX_SUBJECT, required=False)
    html = _content_field(MAX_BODY, required=False)
    text = _content_field(MAX_BODY, required=False)


class RenderedSerializer(serializers.Serializer):
    subject = serializers.CharField()
    html = serializers.CharField()
    text = serializers.CharField()


class TemplateFolderSerializer(StrictSerializer):
    id = serializers.IntegerField(read_only=True)
    name = serializers.CharField(max_length=MAX_FOLDER_NAME)
    templates = serializers.IntegerField(read_only=True, source="template_count",
                                         help_text="How many templates it holds.")


# ----------------------------------------------------------------------------------------------- sequences

from leadcrm.api import storable_json  # noqa: E402

MAX_ENROLL_LEADS = 10_000


class SequenceSerializer(StrictSerializer):
    """A drip sequence. The services check the steps, entry and exit (`SequenceError` → 400 per field)."""

    id = serializers.UUIDField(read_only=True)
    name = serializers.CharField(max_length=200)
    active = serializers.BooleanField(required=False, help_text="Only active sequences enrol and send.")
    steps = serializers.ListField(child=serializers.JSONField(), required=False, max_length=100, help_text=(
        'In order: {"type": "email", "template": ID}; {"type": "wait", "hours"|"days": N, "business_days": bool}; '
        '{"type": "branch", "condition": {"opened_last"|"clicked_last": true} | {"score_gte": N} | '
        '{"segment": ID}, "then": INDEX, "else": INDEX} (an index equal to the number of steps ends the sequence); '
        '{"type": "update", "field", "value"}; {"type": "notify_owner"}; {"type": "create_task", "task_type": '
        '"call"|"email"|"meeting"|"todo", "due_hours": N, "note"} (a task for the lead\'s owner, due N hours later).'))
    entry = serializers.JSONField(required=False, help_text=(
        '{"segment": ID}, {"form": ID}, {"stage": STAGE} or {"manual": true} (the default).'))
    exit = serializers.JSONField(required=False, help_text=(
        '{"stages": [...], "condition": segment definition}; by default sql, opportunity and customer.'))
    allow_reenrollment = serializers.BooleanField(required=False)
    sending_hours = serializers.JSONField(required=False, help_text=(
        '{"start": "09:00", "end": "17:00"} in the lead\'s timezone; {}: any time.'))
    created_at = serializers.DateTimeField(read_only=True)
    updated_at = serializers.DateTimeField(read_only=True)

    def validate_steps(self, steps):
        storable_json(steps)
        return steps

    def to_representation(self, sequence):
        entry = {"manual": True}
        if sequence.entry_type == "segment":
            entry = {"segment": str(sequence.entry_segment_id)}
        elif sequence.entry_type == "form":
            entry = {"form": str(sequence.entry_form_id)}
        elif sequence.entry_type == "stage":
            entry = {"stage": sequence.entry_stage}
        steps = []
        for step in sorted(sequence.steps.all(), key=lambda step: step.position):
            shown = {"type": step.type}
            if step.type == "email":
                shown["template"] = str(step.template_id) if step.template_id else None
            shown.update(step.config or {})
            steps.append(shown)
        when = serializers.DateTimeField()
        return {
            "id": str(sequence.pk), "name": sequence.name, "active": sequence.active, "steps": steps,
            "entry": entry, "exit": {"stages": list(sequence.exit_stages), "condition": sequence.exit_condition},
            "allow_reenrollment": sequence.allow_reenrollment, "sending_hours": sequence.sending_hours,
            "created_at": when.to_representation(sequence.created_at),
            "updated_at": when.to_representation(sequence.updated_at),
        }


class EnrollSerializer(StrictSerializer):
    leads = serializers.ListField(child=serializers.CharField(max_length=64), required=False, allow_empty=False,
                                  max_length=MAX_ENROLL_LEADS, help_text="Lead ids.")
    segment = serializers.UUIDField(required=False, error_messages={"invalid": "No such segment in this "
                                                                               "organization."})

    def validate(self, data):
        if ("leads" in data) == ("segment" in data):
            raise serializers.ValidationError({"non_field_errors": ['Send {"leads": [IDS]} or {"segment": ID}.']})
        return data


class EnrollResultSerializer(serializers.Serializer):
    enrolled = serializers.IntegerField(help_text="Leads enrolled now (those already running it, or that ran it "
                                                  "when re-enrolment is off, are not).")


class EnrollmentSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    lead = serializers.UUIDField(source="lead_id")
    email = serializers.CharField(source="lead.email")
    status = serializers.CharField()
    position = serializers.IntegerField(help_text="The step it runs next.")
    next_run_at = serializers.DateTimeField(allow_null=True)
    exit_reason = serializers.CharField()
    enrolled_by = serializers.CharField()
    enrolled_at = serializers.DateTimeField()
    finished_at = serializers.DateTimeField(allow_null=True)


class ExitSerializer(StrictSerializer):
    reason = serializers.CharField(max_length=200, required=False, default="replied")


class StepStatsSerializer(serializers.Serializer):
    position = serializers.IntegerField()
    type = serializers.CharField()
    template = serializers.UUIDField(allow_null=True)
    at_step = serializers.IntegerField(help_text="Active enrolments waiting to run this step.")
    sent = serializers.IntegerField()
    delivered = serializers.IntegerField(help_text="Sent less bounced.")
    opened = serializers.IntegerField()
    clicked = serializers.IntegerField()
    bounced = serializers.IntegerField()
    unsubscribed = serializers.IntegerField()
    skipped = serializers.IntegerField()
    failed = serializers.IntegerField()
    open_rate = serializers.FloatField(allow_null=True)
    click_rate = serializers.FloatField(allow_null=True)
    bounce_rate = serializers.FloatField(allow_null=True)
    unsubscribe_rate = serializers.FloatField(allow_null=True)


class SequenceStatsSerializer(serializers.Serializer):
    sequence = serializers.UUIDField()
    enrollments = serializers.DictField(child=serializers.IntegerField())
    steps = StepStatsSerializer(many=True)


class MessageSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    sequence = serializers.SerializerMethodField()
    step = serializers.SerializerMethodField(help_text="The step's position in its sequence.")
    template = serializers.SerializerMethodField()
    template_version = serializers.SerializerMethodField(help_text="The version's number.")
    to_email = serializers.CharField()
    subject = serializers.CharField()
    status = serializers.CharField()
    skip_reason = serializers.CharField()
    error = serializers.CharField()
    created_at = serializers.DateTimeField()
    sent_at = serializers.DateTimeField(allow_null=True)
    opened_at = serializers.DateTimeField(allow_null=True)
    clicked_at = serializers.DateTimeField(allow_null=True)
    bounced_at = serializers.DateTimeField(allow_null=True)
    unsubscribed_at = serializers.DateTimeField(allow_null=True)

    def get_sequence(self, message) -> dict | None:
        if message.enrollment_id is None:
            return None
        sequence = message.enrollment.sequence
        return {"id": str(sequence.pk), "name": sequence.name}

    def get_step(self, message) -> int | None:
        return message.step.position if message.step_id else None

    def get_template(self, message) -> dict | None:
        if message.template_version_id is None:
            return None
        template = message.template_version.template
        return {"id": str(template.pk), "name": template.name}

    def get_template_version(self, message) -> int | None:
        return message.template_version.number if message.template_version_id else None


class EmailEventSerializer(StrictSerializer):
    """A bounce or complaint reported by the mail provider, naming the message (our id, or its Message-ID header
    `<id@domain>`) or the recipient's address."""

    event = serializers.ChoiceField(choices=["bounce", "complaint"])
    message_id = serializers.CharField(max_length=300, required=False)
    email = serializers.EmailField(max_length=254, required=False)

    def validate(self, data):
        if ("message_id" in data) == ("email" in data):
            raise serializers.ValidationError({"non_field_errors": ['Name the message ("message_id") or the '
                                                                    'recipient ("email").']})
        return data
