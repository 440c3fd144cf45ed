"""Browser forms of campaigns: the campaign itself, a cost entry, and adding members by emails or a segment."""

import re

from django import forms

from leadcrm import currency
from leads.models import Segment

from .models import CampaignStatus, Channel, MemberStatus

MAX_EMAILS = 1000


class CampaignForm(forms.Form):
    name = forms.CharField(max_length=200)
    channel = forms.ChoiceField(choices=Channel.choices)
    status = forms.ChoiceField(choices=CampaignStatus.choices)
    start = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))
    end = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))
    budget = forms.DecimalField(required=False, max_digits=14, decimal_places=2)
    currency = currency.CurrencyField(initial="USD")
    utm_campaign = forms.CharField(max_length=200, required=False, label="UTM campaign",
                                   help_text="Leads captured with this utm_campaign (in links or as a form's "
                                             "hidden value) join the campaign as responders.")


class CostForm(forms.Form):
    date = forms.DateField(widget=forms.DateInput(attrs={"type": "date"}))
    amount = forms.DecimalField(max_digits=14, decimal_places=2, min_value=0)
    note = forms.CharField(max_length=200, required=False)


class AddMembersForm(forms.Form):
    emails = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 3}),
                             help_text="One or more email addresses of existing leads, separated by commas, "
                                       "spaces or new lines.")
    segment = forms.ModelChoiceField(queryset=Segment.objects.none(), required=False,
                                     empty_label="— or every lead of a segment —")
    status = forms.ChoiceField(choices=MemberStatus.choices, initial=MemberStatus.TARGETED)

    def __init__(self, *args, organization_id, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["segment"].queryset = Segment.objects.for_org(organization_id).order_by("name")

    def clean_emails(self):
        emails = [email for email in re.split(r"[\s,;]+", self.cleaned_data["emails"]) if email]
        if len(emails) > MAX_EMAILS:
            raise forms.ValidationError(f"At most {MAX_EMAILS} addresses at once.")
        return emails

    def clean(self):
        data = super().clean()
        if bool(data.get("emails")) == bool(data.get("segment")):
            raise forms.ValidationError("Give either email addresses or a segment.")
        return data
