"""Validation of lead input, shared by the API, public forms and the browser UI."""

from django.contrib.auth import get_user_model
from rest_framework import serializers

from leadcrm.api import StrictModelSerializer, StrictSerializer

from . import services
from .models import Activity, ActivityType, Form, FormSubmission, ImportJob, Lead

LEAD_INPUT_FIELDS = [
    "email", "first_name", "last_name", "phone", "job_title", "company", "industry", "company_size",
    "annual_revenue", "website", "country", "region", "city", "timezone", "source_type", "source",
    "utm_source", "utm_medium", "utm_campaign", "utm_term", "utm_content", "lifecycle_stage", "owner",
    "consent_opt_in", "unsubscribed", "do_not_contact", "tags", "custom_fields",
]
# Lead fields a public form may show (no owner, stage or flags a visitor should not set).
FORM_FIELD_CHOICES = [
    "email", "first_name", "last_name", "phone", "job_title", "company", "industry", "company_size",
    "annual_revenue", "website", "country", "region", "city", "timezone", "consent_opt_in",
]
INITIAL_STAGES = ("subscriber", "lead")


class OwnerField(serializers.PrimaryKeyRelatedField):
    """A user id; only members of the request's organization are accepted."""

    def get_queryset(self):
        organization = self.context["organization"]
        return get_user_model().objects.filter(memberships__organization=organization)


class LeadSerializer(StrictModelSerializer):
    owner = OwnerField(required=False, allow_null=True)
    tags = serializers.ListField(child=serializers.CharField(max_length=64), required=False, max_length=100)
    custom_fields = serializers.DictField(required=False)
    email = serializers.EmailField(required=False, allow_blank=True, max_length=254)
    phone = serializers.CharField(required=False, allow_blank=True, max_length=40)
    country = serializers.CharField(required=False, allow_blank=True, max_length=2, min_length=2)
    website = serializers.CharField(required=False, allow_blank=True, max_length=300)

    class Meta:
        model = Lead
        fields = [
            "id", *LEAD_INPUT_FIELDS, "status", "fit_score", "behavior_score", "score", "grade", "temperature",
            "stage_entered_at", "first_touch", "last_touch", "bounced", "consent_at", "last_activity_at",
            "created_at", "updated_at",
        ]
        read_only_fields = [
            "id", "status", "fit_score", "behavior_score", "score", "grade", "temperature", "stage_entered_at",
            "first_touch", "last_touch", "bounced", "consent_at", "last_activity_at", "created_at", "updated_at",
        ]

    def validate_email(self, value):
        return services.normalize_email(value)

    def validate_country(self, value):
        value = value.upper()
        if value and not value.isalpha():
            raise serializers.ValidationError("Use a two-letter ISO 3166 country code, such as US or DE.")
        return value

    def validate_lifecycle_stage(self, value):
        if self.instance is None and value not in INITIAL_STAGES:
            raise serializers.ValidationError("A new lead starts as 'subscriber' or 'lead'.")
        if self.instance is not None and value != self.instance.lifecycle_stage:
            raise serializers.ValidationError("Change the stage through the stage endpoint.")
        return value

    def validate_tags(self, value):
        return list(dict.fromkeys(tag.strip() for tag in value if tag.strip()))

    def validate(self, attrs):
        merged = {"email": getattr(self.instance, "email", ""), "phone": getattr(self.instance, "phone", ""),
                  "country": getattr(self.instance, "country", "")}
        merged.update({k: v for k, v in attrs.items() if k in merged})
        if "phone" in attrs:
            try:
                attrs["phone"] = services.normalize_phone(attrs["phone"], merged["country"])
            except services.PhoneNumberInvalid:
                raise serializers.ValidationError(
                    {"phone": ["Enter a valid phone number, with its country code (e.g. +14155550123)."]}
                ) from None
            merged["phone"] = attrs["phone"]
        if not merged["email"] and not merged["phone"]:
            raise serializers.ValidationError({"email": ["A lead needs an email address or a phone number."]})
        return attrs


class ActivitySerializer(serializers.ModelSerializer):
    lead = serializers.UUIDField(source="lead_id", read_only=True)
    actor = serializers.IntegerField(source="actor_id", read_only=True)

    class Meta:
        model = Activity
        fields = ["id", "lead", "type", "properties", "occurred_at", "actor", "created_at"]


class ActivityInputSerializer(StrictSerializer):
    lead = serializers.UUIDField(required=False)
    email = serializers.EmailField(required=False, max_length=254)
    type = serializers.ChoiceField(choices=ActivityType.choices)
    properties = serializers.DictField(required=False, default=dict)
    occurred_at = serializers.DateTimeField(required=False)

    def validate(self, attrs):
        if bool(attrs.get("lead")) == bool(attrs.get("email")):
            raise serializers.ValidationError({"lead": ["Give either 'lead' (an id) or 'email', not both."]})
        if attrs.get("lead"):
            lead = Lead.objects.for_org(self.context["organization"]).filter(pk=attrs["lead"]).first()
            if lead is None:
                raise serializers.ValidationError({"lead": ["No such lead."]})
            attrs["lead"] = lead
        return attrs


class FormSerializer(StrictModelSerializer):
    fields = serializers.ListField(child=serializers.ChoiceField(choices=FORM_FIELD_CHOICES), min_length=1)
    required_fields = serializers.ListField(
        child=serializers.ChoiceField(choices=FORM_FIELD_CHOICES), required=False
    )
    hidden_values = serializers.DictField(required=False)
    embed_url = serializers.SerializerMethodField()

    class Meta:
        model = Form
        fields = [
            "id", "name", "slug", "fields", "required_fields", "hidden_values", "consent_text", "submit_label",
            "thank_you_message", "redirect_url", "is_active", "embed_url", "created_at", "updated_at",
        ]
        read_only_fields = ["id", "embed_url", "created_at", "updated_at"]

    def get_embed_url(self, form) -> str:
        request = self.context.get("request")
        path = f"/f/{form.slug}/"
        return request.build_absolute_uri(path) if request else path

    def validate_fields(self, value):
        if "email" not in value and "phone" not in value:
            raise serializers.ValidationError("A form needs an email or a phone field.")
        return list(dict.fromkeys(value))

    def validate_hidden_values(self, value):
        allowed = {"source_type", "source", "utm_source", "utm_medium", "utm_campaign", "tags", "lifecycle_stage"}
        unknown = sorted(set(value) - allowed)
        if unknown:
            raise serializers.ValidationError(f"Hidden values may set only: {', '.join(sorted(allowed))}.")
        check = LeadSerializer(data={"phone": "+14155550123", **value}, context=self.context)
        if not check.is_valid():
            raise serializers.ValidationError([f"{k}: {' '.join(map(str, v))}" for k, v in check.errors.items()])
        return value

    def validate(self, attrs):
        fields = attrs.get("fields", getattr(self.instance, "fields", []))
        missing = [f for f in attrs.get("required_fields", []) if f not in fields]
        if missing:
            raise serializers.ValidationError({"required_fields": [f"Not on the form: {', '.join(missing)}."]})
        return attrs


class FormSubmissionSerializer(serializers.ModelSerializer):
    lead = serializers.UUIDField(source="lead_id", read_only=True)

    class Meta:
        model = FormSubmission
        fields = ["id", "lead", "data", "created_lead", "referrer", "created_at"]


class ImportJobSerializer(serializers.ModelSerializer):
    progress_percent = serializers.IntegerField(read_only=True)

    class Meta:
        model = ImportJob
        fields = [
            "id", "filename", "status", "headers", "mapping", "total_rows", "processed_rows", "progress_percent",
            "created_count", "merged_count", "failed_count", "errors", "error_message", "created_at",
            "started_at", "finished_at",
        ]
        read_only_fields = fields
