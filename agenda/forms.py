"""Browser forms of tasks. Times are entered as wall-clock times of the task owner's time zone (the view reads them
there); the services check what these cannot."""

from django import forms
from django.utils import timezone

from leads import touches

from .models import TaskType
from .services import MAX_NOTE, SNOOZES, TOUCH_OF


class LocalDateTimeField(forms.DateTimeField):
    """A date and time as typed, left naive: whose wall clock it is, the view knows."""

    widget = forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M")

    def __init__(self, **kwargs):
        super().__init__(input_formats=["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M"], **kwargs)

    def to_python(self, value):
        value = super().to_python(value)
        return timezone.make_naive(value) if value is not None and timezone.is_aware(value) else value


class TaskForm(forms.Form):
    type = forms.ChoiceField(choices=TaskType.choices, initial=TaskType.CALL, widget=forms.RadioSelect)
    due_at = LocalDateTimeField(label="Due")
    owner = forms.TypedChoiceField(coerce=int, label="For", required=False)
    note = forms.CharField(max_length=MAX_NOTE, required=False, widget=forms.Textarea(attrs={"rows": 2}))

    def __init__(self, *args, owners=(), zone_name="", **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["owner"].choices = [(user.pk, user.email) for user in owners]
        if len(self.fields["owner"].choices) <= 1:
            self.fields["owner"].widget = forms.HiddenInput()
        if zone_name:
            self.fields["due_at"].help_text = f"In {zone_name} time. A time in the past is fine: it shows as overdue."


def outcome_groups(selected=""):
    """The outcomes of the task types that log a touch, grouped as the touch form groups them."""
    groups = []
    for task_type, touch_type in TOUCH_OF.items():
        groups.append(
            {
                "type": task_type,
                "label": TaskType(task_type).label,
                "options": [
                    {"value": value, "label": label, "selected": value == selected}
                    for value, label in touches.OUTCOMES[touch_type]
                ],
            }
        )
    return groups


class CompleteForm(forms.Form):
    outcome = forms.CharField(max_length=32, required=False)
    note = forms.CharField(max_length=MAX_NOTE, required=False)


class SnoozeForm(forms.Form):
    snooze = forms.ChoiceField(choices=[(key, key) for key in SNOOZES], required=False)
    due_at = LocalDateTimeField(required=False, label="New due time")

    def clean(self):
        data = super().clean()
        if not data.get("snooze") and not data.get("due_at") and not self.errors:
            raise forms.ValidationError("Choose how long to snooze, or a new due time.")
        return data
