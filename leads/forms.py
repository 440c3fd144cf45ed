"""Browser forms: a marketer's settings for a capture Form, the public form built from them, and the lead page's
contact and company details.

They defer the rules to the API serializers (FormSerializer, LeadSerializer), so the browser, the
public page and the API accept and reject exactly the same input.
"""

from functools import cache

import pycountry
from django import forms
from django.db import IntegrityError, transaction

from .models import Lead, LifecycleStage, SourceType
from .serializers import FORM_FIELD_CHOICES, FORM_HIDDEN_KEYS, FormSerializer, LeadSerializer

DEFAULT_FIELDS = ["email", "first_name", "last_name", "company"]
DEFAULT_CONSENT_LABEL = "I agree to be contacted by email."
# A visually hidden input that people never see and bots tend to fill in.
HONEYPOT_FIELD = "comment_body"

LABELS = {"email": "Email", "consent_opt_in": "Consent checkbox", "country": "Country (two-letter code)"}


def field_label(name: str) -> str:
    return LABELS.get(name) or str(Lead._meta.get_field(name).verbose_name).capitalize()


def flatten_errors(errors) -> list[str]:
    """DRF error details (lists, dicts keyed by index or name) as plain messages."""
    if isinstance(errors, dict):
        return [message for value in errors.values() for message in flatten_errors(value)]
    if isinstance(errors, list | tuple):
        return [message for value in errors for message in flatten_errors(value)]
    return [str(errors)]


class FormSettingsForm(forms.Form):
    """Create or edit a capture Form. Saving goes through FormSerializer, the same path as the API."""

    name = forms.CharField(max_length=200)
    slug = forms.SlugField(
        max_length=80, required=False,
        help_text="The public address is /f/<slug>/. Leave it empty to make one from the name. "
                  "Changing it breaks pages that already embed the form.",
    )
    consent_text = forms.CharField(
        required=False, max_length=2000, widget=forms.Textarea(attrs={"rows": 2}),
        help_text="When set, the form shows this next to a checkbox; ticking it records the lead's opt-in.",
    )
    submit_label = forms.CharField(max_length=60, initial="Submit")
    thank_you_message = forms.CharField(
        required=False, max_length=5000, widget=forms.Textarea(attrs={"rows": 2}),
        initial="Thank you! We will be in touch.",
    )
    redirect_url = forms.URLField(
        required=False, max_length=200, assume_scheme="https",
        help_text="After a successful submission, send the visitor here instead of showing the message.",
    )
    is_active = forms.BooleanField(required=False, initial=True, label="Active (accepting submissions)")

    hv_source_type = forms.ChoiceField(
        required=False, label="Source type", choices=[("", "—"), *SourceType.choices]
    )
    hv_source = forms.CharField(required=False, max_length=200, label="Source detail")
    hv_utm_source = forms.CharField(required=False, max_length=200, label="utm_source")
    hv_utm_medium = forms.CharField(required=False, max_length=200, label="utm_medium")
    hv_utm_campaign = forms.CharField(required=False, max_length=200, label="utm_campaign")
    hv_utm_term = forms.CharField(required=False, max_length=200, label="utm_term")
    hv_utm_content = forms.CharField(required=False, max_length=200, label="utm_content")
    hv_tags = forms.CharField(required=False, max_length=2000, label="Tags", help_text="Separate tags with commas.")
    hv_lifecycle_stage = forms.ChoiceField(
        required=False, label="Lifecycle stage",
        choices=[("", "Default (Lead)"), (LifecycleStage.SUBSCRIBER, LifecycleStage.SUBSCRIBER.label),
                 (LifecycleStage.LEAD, LifecycleStage.LEAD.label)],
    )

    def __init__(self, *args, organization, instance=None, request=None, **kwargs):
        self.organization = organization
        self.instance = instance
        self.request = request
        if instance is not None and not args and "initial" not in kwargs:
            kwargs["initial"] = self._initial_from(instance)
        super().__init__(*args, **kwargs)
        shown = [name for name in (instance.fields if instance is not None else DEFAULT_FIELDS)
                 if name in FORM_FIELD_CHOICES]
        required = instance.required_fields if instance is not None else ["email"]
        # Rows in the form's current order: shown fields first, then the others.
        self.field_order_names = [*shown, *(name for name in FORM_FIELD_CHOICES if name not in shown)]
        for position, name in enumerate(self.field_order_names, start=1):
            label = field_label(name)
            self.fields[f"show_{name}"] = forms.BooleanField(
                required=False, initial=name in shown, label=f"Show {label}"
            )
            self.fields[f"required_{name}"] = forms.BooleanField(
                required=False, initial=name in required, label=f"{label} is required"
            )
            self.fields[f"order_{name}"] = forms.IntegerField(
                required=False, min_value=1, max_value=999, initial=position, label=f"Position of {label}",
                widget=forms.NumberInput(attrs={"class": "order"}),
            )
        self.saved = None

    @staticmethod
    def _initial_from(form) -> dict:
        initial = {
            "name": form.name, "slug": form.slug, "consent_text": form.consent_text,
            "submit_label": form.submit_label, "thank_you_message": form.thank_you_message,
            "redirect_url": form.redirect_url, "is_active": form.is_active,
        }
        for key, value in form.hidden_values.items():
            initial[f"hv_{key}"] = ", ".join(value) if isinstance(value, list) else value
        return initial

    def field_rows(self):
        """(label, show, required, order) bound fields, one row per lead field a form may show."""
        return [
            (field_label(name), self[f"show_{name}"], self[f"required_{name}"], self[f"order_{name}"])
            for name in self.field_order_names
        ]

    def identity_fields(self):
        return [self["name"], self["slug"]]

    def outcome_fields(self):
        return [self[name] for name in ("consent_text", "submit_label", "thank_you_message", "redirect_url",
                                        "is_active")]

    def hidden_value_fields(self):
        return [self[f"hv_{key}"] for key in FORM_HIDDEN_KEYS]

    def _payload(self) -> dict:
        data = self.cleaned_data
        positions = {name: index for index, name in enumerate(FORM_FIELD_CHOICES)}
        shown = sorted(
            (name for name in FORM_FIELD_CHOICES if data.get(f"show_{name}")),
            key=lambda name: (data.get(f"order_{name}") or 1000, positions[name]),
        )
        hidden = {}
        for key in FORM_HIDDEN_KEYS:
            value = data.get(f"hv_{key}")
            if key == "tags":
                value = [tag.strip() for tag in (value or "").split(",") if tag.strip()]
            if value:
                hidden[key] = value
        payload = {
            "name": data["name"], "fields": shown,
            "required_fields": [name for name in FORM_FIELD_CHOICES if data.get(f"required_{name}")],
            "hidden_values": hidden, "consent_text": data["consent_text"], "submit_label": data["submit_label"],
            "thank_you_message": data["thank_you_message"], "redirect_url": data["redirect_url"],
            "is_active": data["is_active"],
        }
        if data.get("slug"):
            payload["slug"] = data["slug"]
        elif self.instance is not None:
            payload["slug"] = self.instance.slug
        return payload

    def clean(self):
        cleaned = super().clean()
        if self.errors:
            return cleaned
        self.serializer = FormSerializer(
            self.instance, data=self._payload(), context={"organization": self.organization, "request": self.request}
        )
        if not self.serializer.is_valid():
            self._add_serializer_errors(self.serializer.errors)
        return cleaned

    def _add_serializer_errors(self, errors):
        for key, detail in errors.items():
            if key == "hidden_values" and isinstance(detail, dict):
                for hidden_key, messages in detail.items():
                    target = f"hv_{hidden_key}" if f"hv_{hidden_key}" in self.fields else None
                    self.add_error(target, flatten_errors(messages))
            elif key in ("fields", "required_fields"):
                self.add_error(None, [f"Fields: {message}" for message in flatten_errors(detail)])
            elif key in self.fields:
                self.add_error(key, flatten_errors(detail))
            else:
                self.add_error(None, flatten_errors(detail))

    def save(self):
        """The saved Form, or None with a slug error when another form took the slug meanwhile."""
        extra = {"organization": self.organization} if self.instance is None else {}
        try:
            with transaction.atomic():
                self.saved = self.serializer.save(**extra)
        except IntegrityError:
            self.add_error("slug", "This slug is taken; choose another.")
            return None
        return self.saved


class TelInput(forms.TextInput):
    input_type = "tel"


@cache
def _lead_input_limits() -> dict[str, int]:
    """Max lengths of the lead API's input fields, so the form and the API cut off at the same point."""
    fields = LeadSerializer().fields
    return {name: getattr(fields[name], "max_length", None) for name in FORM_FIELD_CHOICES}


WIDGETS = {
    "email": lambda: forms.EmailInput(attrs={"autocomplete": "email"}),
    "phone": lambda: TelInput(attrs={"autocomplete": "tel"}),
    "first_name": lambda: forms.TextInput(attrs={"autocomplete": "given-name"}),
    "last_name": lambda: forms.TextInput(attrs={"autocomplete": "family-name"}),
    "job_title": lambda: forms.TextInput(attrs={"autocomplete": "organization-title"}),
    "company": lambda: forms.TextInput(attrs={"autocomplete": "organization"}),
    "company_size": lambda: forms.NumberInput(attrs={"min": 0, "step": 1}),
    "annual_revenue": lambda: forms.NumberInput(attrs={"min": 0, "step": "0.01"}),
    "website": lambda: forms.TextInput(attrs={"inputmode": "url", "autocomplete": "url"}),
    "country": lambda: forms.TextInput(attrs={"autocomplete": "country", "size": 2, "placeholder": "US"}),
    "region": lambda: forms.TextInput(attrs={"autocomplete": "address-level1"}),
    "city": lambda: forms.TextInput(attrs={"autocomplete": "address-level2"}),
}

PUBLIC_LABELS = {"country": "Country (two-letter code, e.g. US)", "company_size": "Company size (employees)"}


class PublicLeadForm(forms.Form):
    """What a visitor fills in on /f/<slug>/. Values stay text here: LeadSerializer types and checks them."""

    def __init__(self, *args, capture_form, **kwargs):
        super().__init__(*args, **kwargs)
        self.capture_form = capture_form
        # Only fields a visitor may set, even if the stored list was edited by other means.
        names = [name for name in dict.fromkeys(capture_form.fields) if name in FORM_FIELD_CHOICES]
        if capture_form.consent_text and "consent_opt_in" not in names:
            names.append("consent_opt_in")
        limits = _lead_input_limits()
        for name in names:
            required = name in capture_form.required_fields
            if name == "consent_opt_in":
                self.fields[name] = forms.BooleanField(
                    required=required, label=capture_form.consent_text or DEFAULT_CONSENT_LABEL,
                    error_messages={"required": "Please tick this box to continue."},
                )
                continue
            label = PUBLIC_LABELS.get(name) or str(Lead._meta.get_field(name).verbose_name).capitalize()
            self.fields[name] = forms.CharField(
                required=required, label=label, max_length=limits.get(name),
                widget=WIDGETS.get(name, forms.TextInput)(),
            )
        self.fields[HONEYPOT_FIELD] = forms.CharField(
            required=False, label="Leave this field empty",
            widget=forms.TextInput(attrs={"tabindex": "-1", "autocomplete": "off"}),
        )

    def lead_fields(self):
        return [self[name] for name in self.fields if name != HONEYPOT_FIELD]

    def honeypot(self):
        return self[HONEYPOT_FIELD]

    def typed_values(self) -> dict:
        """The visitor's non-empty answers, as LeadSerializer input."""
        return {
            name: value for name, value in self.cleaned_data.items()
            if name != HONEYPOT_FIELD and value not in ("", None, False)
        }

    def add_lead_errors(self, errors) -> bool:
        """Show LeadSerializer errors next to the inputs. Returns True when some error is about a value the
        visitor cannot see (a hidden value of a misconfigured form)."""
        hidden_problem = False
        for key, detail in errors.items():
            messages = flatten_errors(detail)
            if key in self.fields and key != HONEYPOT_FIELD:
                self.add_error(key, messages)
            elif key == "email" and "phone" in self.fields:
                self.add_error("phone", messages)  # "needs an email or a phone" on a phone-only form
            else:
                hidden_problem = True
        if hidden_problem:
            self.add_error(None, "This form cannot be sent because of how it is set up. "
                                 "Please let the site owner know.")
        return hidden_problem


def _country_choices(current: str = "") -> list[tuple[str, str]]:
    choices = [("", "—"), *sorted(((country.alpha_2, f"{country.name} ({country.alpha_2})")
                                   for country in pycountry.countries), key=lambda choice: choice[1])]
    if current and current not in dict(choices):  # a code stored by other means stays choosable
        choices.append((current, current))
    return choices


class LeadDetailsForm(forms.Form):
    """The lead's contact and company details, edited in place on the lead page. Values stay text here:
    LeadSerializer (the API's PATCH) types and checks the ones that changed, so both accept and refuse the same —
    a phone with its country code, a well-formed email no other lead of the org has, one of the two kept."""

    FIELDS = ("first_name", "last_name", "email", "phone", "job_title", "company", "website", "industry",
              "company_size", "annual_revenue", "country", "region", "city")
    LABELS = {"company_size": "Company size (employees)", "country": "Country"}

    def __init__(self, *args, lead, request=None, **kwargs):
        self.lead, self.request = lead, request
        kwargs.setdefault("initial", {name: self._text(getattr(lead, name)) for name in self.FIELDS})
        kwargs.setdefault("auto_id", "edit-%s")
        super().__init__(*args, **kwargs)
        limits = _lead_input_limits()
        for name in self.FIELDS:
            label = self.LABELS.get(name) or field_label(name)
            if name == "country":
                self.fields[name] = forms.ChoiceField(label=label, required=False,
                                                      choices=_country_choices(lead.country))
            else:
                # No limits of its own: the serializer says when a value is too long, in the API's words.
                widget = WIDGETS.get(name, forms.TextInput)()
                if limits.get(name):
                    widget.attrs["maxlength"] = limits[name]
                self.fields[name] = forms.CharField(label=label, required=False, widget=widget)
        self.fields["phone"].widget.attrs["placeholder"] = "+1 415 555 0123"
        self.serializer = None

    def focus_first(self) -> "LeadDetailsForm":
        """Autofocus the first field in error, else the first field (htmx focuses it once swapped in)."""
        name = next((name for name in self.fields if name in self.errors), next(iter(self.fields)))
        self.fields[name].widget.attrs["autofocus"] = True
        return self

    @staticmethod
    def _text(value) -> str:
        return "" if value is None else str(value)

    def changes(self) -> dict:
        """The fields whose text differs from the lead's, as the API's PATCH would send them."""
        nullable = ("company_size", "annual_revenue")
        return {name: (None if name in nullable and value == "" else value)
                for name, value in self.cleaned_data.items()
                if name in self.FIELDS and value != self._text(getattr(self.lead, name))}

    def clean(self):
        cleaned = super().clean()
        if self.errors:
            return cleaned
        self.serializer = LeadSerializer(self.lead, data=self.changes(), partial=True, context={
            "organization": self.lead.organization_id, "request": self.request})
        if not self.serializer.is_valid():
            for key, detail in self.serializer.errors.items():
                self.add_error(key if key in self.fields else None, flatten_errors(detail))
        return cleaned
