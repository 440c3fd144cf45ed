"""Browser forms of distribution: the queue's quick actions, re-assignment and a rep's availability."""

import uuid

from django import forms
from django.core.exceptions import ValidationError

from leads.models import LifecycleStage

# The stage moves the queue offers (the lifecycle itself decides which are allowed from where).
QUEUE_MOVES = (LifecycleStage.SAL, LifecycleStage.SQL, LifecycleStage.DISQUALIFIED, LifecycleStage.RECYCLED)
MAX_BULK = 500  # leads per bulk action: one page of the list is far less


class StageForm(forms.Form):
    stage = forms.ChoiceField(choices=[(stage, LifecycleStage(stage).label) for stage in QUEUE_MOVES])
    reason = forms.CharField(max_length=200, required=False, strip=True)


class LeadIdsField(forms.Field):
    """The ids of the leads ticked in a list (a repeated `lead` field)."""

    widget = forms.MultipleHiddenInput

    def to_python(self, value):
        values = value if isinstance(value, list | tuple) else ([value] if value else [])
        ids = []
        for item in values:
            try:
                ids.append(uuid.UUID(str(item)))
            except ValueError:
                raise ValidationError("Unknown lead.") from None
        return list(dict.fromkeys(ids))

    def validate(self, value):
        if not value:
            raise ValidationError("Select at least one lead.")
        if len(value) > MAX_BULK:
            raise ValidationError(f"Select at most {MAX_BULK} leads at a time.")


def rep_choices(profiles) -> list[tuple[str, str]]:
    return [(str(profile.user_id), profile.user.email) for profile in profiles]


class RepChoiceForm(forms.Form):
    rep = forms.TypedChoiceField(coerce=int, label="Re-assign to", empty_value=None)

    def __init__(self, *args, reps=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["rep"].choices = [("", "Choose a rep"), *rep_choices(reps)]


class BulkForm(RepChoiceForm):
    """Leads ticked in a list, and what to do with them: route them by the rules, or hand them to a rep."""

    action = forms.ChoiceField(choices=[("route", "Route now"), ("reassign", "Re-assign")])
    lead = LeadIdsField()

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["rep"].required = False

    def clean(self):
        data = super().clean()
        if data.get("action") == "reassign" and not data.get("rep") and "rep" not in self.errors:
            self.add_error("rep", "Choose the rep who gets the leads.")
        return data
