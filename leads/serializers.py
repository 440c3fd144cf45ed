"""Validation of lead input, shared by the API, public forms and the browser UI."""

from functools import cache
from zoneinfo import available_timezones

from django.contrib.auth import get_user_model
from django.urls import reverse
from rest_framework import serializers
from rest_framework.validators import UniqueValidator

from leadcrm.api import StrictModelSerializer, StrictSerializer, storable_json

from . import activity_types, selectors, services, touches
from .models import (
    TOUCH_FIELDS,
    Activity,
    ConsentRecord,
    Form,
    FormSubmission,
    Grade,
    ImportJob,
    Lead,
    PredictiveBand,
    Temperature,
    Touch,
)

LEAD_INPUT_FIELDS = [
    "email", "first_name", "last_name", "phone", "job_title", "company", "industry", "company_size",
    "annual_revenue", "website", "country", "region", "city", "timezone", "source_type", "source",
    "utm_source", "utm_medium", "utm_campaign", "utm_term", "utm_content", "lifecycle_stage", "owner",
    "consent_opt_in", "unsubscribed", "do_not_contact", "tags", "custom_fields", "external_id",
    "bant_budget", "bant_authority", "bant_need", "bant_timeline",
]
# The contact and company details anyone who works a lead may correct (Action.EDIT_LEADS); changing the others
# (owner, consent, tags, source, custom fields…) is managing leads (Action.MANAGE_LEADS).
DETAIL_FIELDS = (
    "first_name", "last_name", "email", "phone", "job_title", "company", "industry", "company_size",
    "annual_revenue", "website", "country", "region", "city", "timezone",
)
# Lead fields a public form may show (no owner, stage or flags a visitor should not set).
FORM_FIELD_CHOICES = [
    "email", "first_name", "last_name", "phone", "job_title", "company", "industry", "company_size",
    "annual_revenue", "website", "country", "region", "city", "timezone", "consent_opt_in",
]
INITIAL_STAGES = ("subscriber", "lead")
# Lead fields a form may set on every submission, unseen by the visitor.
FORM_HIDDEN_KEYS = (
    "source_type", "source", "utm_source", "utm_medium", "utm_campaign", "utm_term", "utm_content", "tags",
    "lifecycle_stage",
)


@cache
def _timezone_names() -> frozenset[str]:
    return frozenset(available_timezones())  # reads the tz database from disk: once per process


# Computed by scoring: the totals, their four parts and the bands they fall in.
SCORE_FIELDS = ["score", "fit_score", "behavior_score", "fit_gained", "fit_lost", "behavior_gained", "behavior_lost",
                "grade", "temperature"]


class OwnerField(serializers.PrimaryKeyRelatedField):
    """A user id; only members of the request's organization are accepted."""

    def get_queryset(self):
        organization = self.context["organization"]
        return get_user_model().objects.filter(memberships__organization=organization)


# Written by the org's predictive model (scoring/predictive.py): null and empty until one is trained.
PREDICTIVE_FIELDS = ("conversion_probability", "predictive_band")


class LeadSerializer(StrictModelSerializer):
    owner = OwnerField(required=False, allow_null=True)
    tags = serializers.ListField(child=serializers.CharField(max_length=64), required=False, max_length=100)
    custom_fields = serializers.DictField(required=False, validators=[storable_json])
    email = serializers.EmailField(required=False, allow_blank=True, max_length=254)
    phone = serializers.CharField(required=False, allow_blank=True, max_length=40)
    country = serializers.CharField(required=False, allow_blank=True, max_length=2, min_length=2)
    website = serializers.CharField(required=False, allow_blank=True, max_length=300)
    # Empty until scoring first runs for the lead (the schema must say so).
    grade = serializers.ChoiceField(choices=Grade.choices, allow_blank=True, read_only=True)
    temperature = serializers.ChoiceField(choices=Temperature.choices, allow_blank=True, read_only=True)
    predictive_band = serializers.ChoiceField(choices=PredictiveBand.choices, allow_blank=True, read_only=True)
    conversion_probability = serializers.FloatField(
        read_only=True, allow_null=True, help_text="The org's conversion model's probability (0–1); null until one "
                                                   "is trained.")

    class Meta:
        model = Lead
        fields = [
            "id", *LEAD_INPUT_FIELDS, "status", *SCORE_FIELDS, *PREDICTIVE_FIELDS, "stage_entered_at", "stage_reason",
            "account",
            "first_touch", "last_touch", "bounced", "consent_at", "last_activity_at", "created_at", "updated_at",
            "erased_at",
        ]
        read_only_fields = [
            "id", "status", *SCORE_FIELDS, *PREDICTIVE_FIELDS, "stage_entered_at", "stage_reason", "account",
            "first_touch", "last_touch", "bounced", "consent_at", "last_activity_at", "created_at", "updated_at",
            "erased_at",
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

    def validate_timezone(self, value):
        if value and value not in _timezone_names():
            raise serializers.ValidationError("Use an IANA time zone name, such as Europe/Berlin.")
        return value

    def validate_external_id(self, value):
        return value.strip()

    def validate_tags(self, value):
        return list(dict.fromkeys(tag.strip() for tag in value if tag.strip()))

    def validate(self, attrs):
        merged = {"email": getattr(self.instance, "email", ""), "phone": getattr(self.instance, "phone", ""),
                  "country": getattr(self.instance, "country", ""),
                  "external_id": getattr(self.instance, "external_id", "")}
        merged.update({k: v for k, v in attrs.items() if k in merged})
        if "phone" in attrs:
            try:
                attrs["phone"] = services.normalize_phone(attrs["phone"], merged["country"])
            except services.PhoneNumberInvalid:
                raise serializers.ValidationError(
                    {"phone": ["Enter a valid phone number, with its country code (e.g. +14155550123)."]}
                ) from None
            merged["phone"] = attrs["phone"]
        if not merged["email"] and not merged["phone"] and not merged["external_id"]:
            # A visitor of a public form is never asked for an external id; an integration may send one.
            needs = ("an email address, a phone number or an external id" if "view" in self.context
                     else "an email address or a phone number")
            raise serializers.ValidationError({"email": [f"A lead needs {needs}."]})
        if self.instance is not None and attrs.get("external_id") and attrs["external_id"] != self.instance.external_id:
            # Creating merges into the lead with this external id; moving it onto a second lead cannot.
            others = Lead.objects.for_org(self.instance.organization_id).exclude(pk=self.instance.pk)
            if others.filter(external_id=attrs["external_id"]).exists():
                raise serializers.ValidationError({"external_id": ["Another lead already has this external id."]})
        if self.instance is not None and attrs.get("email") and attrs["email"] != self.instance.email:
            # Creating merges into the lead with this email; changing one lead's email onto another's cannot.
            others = Lead.objects.for_org(self.instance.organization_id).exclude(pk=self.instance.pk)
            if others.filter(email=attrs["email"]).exists():
                raise serializers.ValidationError({"email": ["Another lead already has this email address."]})
        return attrs


class ActivitySerializer(serializers.ModelSerializer):
    lead = serializers.UUIDField(source="lead_id", read_only=True)
    actor = serializers.IntegerField(source="actor_id", read_only=True, allow_null=True)

    class Meta:
        model = Activity
        fields = ["id", "lead", "type", "properties", "occurred_at", "actor", "actor_label", "created_at"]


class TouchSerializer(serializers.ModelSerializer):
    lead = serializers.UUIDField(source="lead_id", read_only=True)

    class Meta:
        model = Touch
        fields = ["id", "lead", "occurred_at", "channel", *TOUCH_FIELDS, "import_id"]


class ActivityInputSerializer(StrictSerializer):
    lead = serializers.UUIDField(required=False)
    email = serializers.EmailField(required=False, max_length=254)
    type = serializers.CharField(max_length=32, help_text="A built-in activity type or one the org registered "
                                 "(GET /api/v1/activity-types/).")
    properties = serializers.DictField(required=False, default=dict, validators=[storable_json])
    occurred_at = serializers.DateTimeField(required=False)

    def validate_type(self, value):
        types = activity_types.known(self.context["organization"].pk)
        if value not in types:
            raise serializers.ValidationError(activity_types.unknown_message(value, types))
        return value

    def validate(self, attrs):
        # An outcome of a call, email or meeting is one of the outcomes the lead page and the queue offer.
        outcome = attrs.get("properties", {}).get("outcome")
        if attrs["type"] in touches.TOUCH_TYPES and (problem := touches.outcome_problem(attrs["type"], outcome)):
            raise serializers.ValidationError({"properties": [f"outcome: {problem}"]})
        if bool(attrs.get("lead")) == bool(attrs.get("email")):
            raise serializers.ValidationError({"lead": ["Give either 'lead' (an id) or 'email', not both."]})
        if attrs.get("lead"):
            lead = Lead.objects.for_org(self.context["organization"]).filter(pk=attrs["lead"]).first()
            if lead is None:
                raise serializers.ValidationError({"lead": ["No such lead."]})
            attrs["lead"] = lead
        return attrs


class FormSerializer(StrictModelSerializer):
    # Slugs are global because they are public URLs (/f/<slug>/); left out, one is made from the name.
    slug = serializers.SlugField(
        max_length=80, required=False,
        validators=[UniqueValidator(queryset=Form.objects.all(), message="This slug is taken; choose another.")],
    )
    fields = serializers.ListField(child=serializers.ChoiceField(choices=FORM_FIELD_CHOICES), min_length=1)
    required_fields = serializers.ListField(
        child=serializers.ChoiceField(choices=FORM_FIELD_CHOICES), required=False
    )
    hidden_values = serializers.DictField(required=False)
    consent_text = serializers.CharField(required=False, allow_blank=True, max_length=2000)
    thank_you_message = serializers.CharField(required=False, allow_blank=True, max_length=5000)
    redirect_url = serializers.URLField(required=False, allow_blank=True, max_length=200)
    embed_url = serializers.SerializerMethodField(help_text="The public page of the form.")
    embed_script_url = serializers.SerializerMethodField(help_text="The script that embeds the form in a page.")

    class Meta:
        model = Form
        fields = [
            "id", "name", "slug", "fields", "required_fields", "hidden_values", "consent_text", "submit_label",
            "thank_you_message", "redirect_url", "is_active", "embed_url", "embed_script_url", "created_at",
            "updated_at",
        ]
        read_only_fields = ["id", "embed_url", "embed_script_url", "created_at", "updated_at"]

    def _absolute(self, path: str) -> str:
        request = self.context.get("request")
        return request.build_absolute_uri(path) if request else path

    def get_embed_url(self, form) -> str:
        return self._absolute(reverse("leads:public-form", args=[form.slug]))

    def get_embed_script_url(self, form) -> str:
        return self._absolute(reverse("leads:public-form-embed", args=[form.slug]))

    def validate_fields(self, value):
        if "email" not in value and "phone" not in value:
            raise serializers.ValidationError("A form needs an email or a phone field.")
        return list(dict.fromkeys(value))

    def validate_required_fields(self, value):
        return list(dict.fromkeys(value))

    def validate_hidden_values(self, value):
        unknown = sorted(set(value) - set(FORM_HIDDEN_KEYS))
        if unknown:
            raise serializers.ValidationError(
                {key: [f"Hidden values may set only: {', '.join(FORM_HIDDEN_KEYS)}."] for key in unknown}
            )
        # The same rules as a lead from the API; the placeholder phone only satisfies "email or phone".
        check = LeadSerializer(data={"phone": "+14155550123", **value}, context=self.context)
        if not check.is_valid():
            raise serializers.ValidationError({key: check.errors[key] for key in check.errors})
        # Store the normalised values (trimmed tags, canonical choices), not the raw input.
        return {key: check.validated_data[key] for key in value if key in check.validated_data}

    def validate(self, attrs):
        fields = attrs.get("fields", getattr(self.instance, "fields", []))
        required = attrs.get("required_fields", getattr(self.instance, "required_fields", []))
        missing = [f for f in required if f not in fields]
        if missing:
            raise serializers.ValidationError({"required_fields": [f"Not on the form: {', '.join(missing)}."]})
        if self.instance is None and not attrs.get("slug"):
            attrs["slug"] = selectors.free_form_slug(attrs["name"])
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


class ConsentSerializer(serializers.ModelSerializer):
    class Meta:
        model = ConsentRecord
        fields = ["given_at", "channel", "source", "text", "ip_address"]
        read_only_fields = fields


class LeadDetailSerializer(LeadSerializer):
    """One lead, with how each opt-in was given."""

    consents = ConsentSerializer(many=True, read_only=True)

    class Meta(LeadSerializer.Meta):
        fields = [*LeadSerializer.Meta.fields, "consents"]
        read_only_fields = [*LeadSerializer.Meta.read_only_fields, "consents"]
