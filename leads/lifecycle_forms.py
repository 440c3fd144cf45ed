"""Browser forms of working a lead: logging a touch, BANT answers, converting a lead, losing a deal.

They check types and lengths the way the API's serializers do (leads/api/lifecycle.py); the rules that depend
on the lead's state (allowed moves, required BANT, what can be converted) stay in the services.
"""

from django import forms
from django.core.validators import RegexValidator

from leadcrm import currency

from . import touches
from .models import BANT_FIELDS, Account, Lead

COUNTRY = RegexValidator(r"^[A-Za-z]{2}$", "Use a two-letter ISO 3166 code, such as DE.")
# How many accounts the convert form lists; any other is linked by typing its exact name as the new account.
ACCOUNT_CHOICES_SHOWN = 500
OTHER_REASON = "__other__"


def bant_label(field: str) -> str:
    return str(Lead._meta.get_field(field).verbose_name).capitalize()


class TouchForm(forms.Form):
    """Log a call, an email, a meeting or a note, how it went and when (the lead page and the queue). The rules
    are `touches.problems`, as in the API and the service."""

    type = forms.ChoiceField(choices=touches.TOUCH_CHOICES, label="What happened", initial="call",
                             widget=forms.RadioSelect)
    outcome = forms.ChoiceField(label="Outcome", required=False, choices=[("", "—"), *(
        (touches.label(kind), outcomes) for kind, outcomes in touches.OUTCOMES.items() if outcomes)])
    note = forms.CharField(label="Notes", required=False, max_length=touches.MAX_NOTE, strip=True,
                           widget=forms.Textarea(attrs={"rows": 3}))
    occurred_at = forms.DateTimeField(
        label="When", required=False, help_text="Leave empty for now.",
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"))

    def clean(self):
        data = super().clean()
        if "type" in data:
            for field, problems in touches.problems(type=data["type"], outcome=data.get("outcome", ""),
                                                    note=data.get("note", ""),
                                                    occurred_at=data.get("occurred_at")).items():
                if field not in self.errors:
                    self.add_error(field, problems)
        return data

    def outcome_groups(self) -> list[dict]:
        """The outcome select's groups, one per kind that has outcomes, marked with the kind they belong to."""
        chosen = str(self["outcome"].value() or "")
        return [{"type": kind, "label": touches.label(kind),
                 "options": [{"value": value, "label": label, "selected": value == chosen}
                             for value, label in outcomes]}
                for kind, outcomes in touches.OUTCOMES.items() if outcomes]

    def service_arguments(self) -> dict:
        data = self.cleaned_data
        return {"type": data["type"], "outcome": data.get("outcome", ""), "note": data.get("note", ""),
                "occurred_at": data.get("occurred_at")}


class QualificationForm(forms.Form):
    """The four BANT answers; `required_for_sql` names those the org wants before a lead may become SQL."""

    def __init__(self, *args, required_for_sql=(), **kwargs):
        super().__init__(*args, **kwargs)
        hints = {
            "bant_budget": "Is there money for it, and how much?",
            "bant_authority": "Who decides, and are we talking to them?",
            "bant_need": "What problem would it solve?",
            "bant_timeline": "When do they want it in place?",
        }
        for name in BANT_FIELDS:
            model_field = Lead._meta.get_field(name)
            label = bant_label(name) + (" (required for SQL)" if name in required_for_sql else "")
            widget = forms.Textarea(attrs={"rows": 2}) if name == "bant_need" else forms.TextInput
            self.fields[name] = forms.CharField(label=label, required=False, max_length=model_field.max_length,
                                                help_text=hints[name], widget=widget)

    @classmethod
    def for_lead(cls, lead, required_for_sql=()):
        return cls(initial={name: getattr(lead, name) for name in BANT_FIELDS}, required_for_sql=required_for_sql)


class AccountChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, obj):
        return obj.name


class ConvertForm(forms.Form):
    """A new account (prefilled from the lead's company) or one of the org's accounts, and the deal."""

    account_choice = forms.ChoiceField(
        label="Account", widget=forms.RadioSelect, initial="new",
        choices=[("new", "A new account"), ("existing", "An existing account")],
    )
    account_name = forms.CharField(label="Account name", required=False, max_length=200,
                                   help_text="An account of this name that already exists is linked instead.")
    website = forms.CharField(required=False, max_length=300)
    industry = forms.CharField(required=False, max_length=100)
    country = forms.CharField(label="Country (two-letter code)", required=False, max_length=2, validators=[COUNTRY])
    existing_account = AccountChoiceField(label="Existing account", queryset=Account.objects.none(), required=False,
                                          empty_label="Choose an account")
    deal_name = forms.CharField(label="Deal name", max_length=200)
    amount = forms.DecimalField(max_digits=14, decimal_places=2, min_value=0)
    currency = currency.CurrencyField(initial="USD")
    expected_close = forms.DateField(label="Expected close", required=False,
                                     widget=forms.DateInput(attrs={"type": "date"}), help_text="Optional.")

    NEW_ACCOUNT_FIELDS = ("account_name", "website", "industry", "country")
    DEAL_FIELDS = ("deal_name", "amount", "currency", "expected_close")

    def __init__(self, *args, lead, **kwargs):
        accounts = Account.objects.for_org(lead.organization_id).order_by("name", "pk")
        if not args and "initial" not in kwargs:
            kwargs["initial"] = {
                "account_choice": "existing" if lead.account_id else "new",
                "existing_account": lead.account_id,
                "account_name": lead.company, "website": lead.website, "industry": lead.industry,
                "country": lead.country,
                "deal_name": f"{lead.company or lead} deal"[:200],
            }
        super().__init__(*args, **kwargs)
        field = self.fields["existing_account"]
        field.queryset = accounts  # any of the org's accounts is accepted...
        field.widget.choices = [("", field.empty_label)] + [  # ...but a long list is cut short on screen
            (account.pk, account.name) for account in accounts[:ACCOUNT_CHOICES_SHOWN]]

    def clean_country(self):
        return self.cleaned_data["country"].upper()

    def clean(self):
        data = super().clean()
        if data.get("account_choice") == "existing" and not data.get("existing_account"):
            self.add_error("existing_account", "Choose the account, or create a new one.")
        if data.get("account_choice") == "new" and not data.get("account_name"):
            self.add_error("account_name", "Name the new account.")
        return data

    def service_arguments(self) -> dict:
        """What conversion.convert_lead takes: the deal, and the account's id or fields."""
        data = self.cleaned_data
        deal = {"name": data["deal_name"], "amount": data["amount"], "currency": data["currency"],
                "expected_close": data["expected_close"]}
        if data["account_choice"] == "existing":
            return {"deal": deal, "account_id": data["existing_account"].pk}
        account = {"name": data["account_name"], "website": data["website"], "industry": data["industry"],
                   "country": data["country"]}
        return {"deal": deal, "account": account}

    def new_account_fields(self):
        return [self[name] for name in self.NEW_ACCOUNT_FIELDS]

    def deal_fields(self):
        return [self[name] for name in self.DEAL_FIELDS]


class LoseDealForm(forms.Form):
    """Why a deal was lost: one of the org's lost reasons, or in the user's own words."""

    reason = forms.ChoiceField(label="Reason", required=False)
    other_reason = forms.CharField(label="Or in your own words", required=False, max_length=200)

    def __init__(self, *args, reasons=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["reason"].choices = [("", "Choose a reason"), *((r, r) for r in reasons),
                                         (OTHER_REASON, "Other (write it below)")]

    def clean(self):
        data = super().clean()
        chosen = data.get("reason", "")
        if self.has_error("reason"):
            return data
        text = data.get("other_reason", "") if chosen in ("", OTHER_REASON) else chosen
        if not text:
            self.add_error("reason", "Say why the deal was lost: choose a reason or write one.")
        data["lost_reason"] = text
        return data


class SavedViewForm(forms.Form):
    """Save the leads list as it is searched, filtered and sorted, under a name."""

    name = forms.CharField(max_length=100, label="View name")
    shared = forms.BooleanField(required=False, label="Share with everyone in the org")
    query = forms.CharField(max_length=2000, required=False, widget=forms.HiddenInput)
