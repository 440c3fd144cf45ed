from django import forms

from .models import EventType


class EndpointForm(forms.Form):
    url = forms.CharField(label="URL", max_length=2000, widget=forms.URLInput(attrs={"placeholder": "https://"}),
                          help_text="A public https address; it is resolved and checked on save and on every send.")
    description = forms.CharField(max_length=200, required=False)
    events = forms.MultipleChoiceField(choices=EventType.choices, widget=forms.CheckboxSelectMultiple,
                                       error_messages={"required": "Choose at least one event."})
    active = forms.BooleanField(required=False, initial=True, label="Active (deliver events to it)")
