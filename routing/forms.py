"""Browser forms of distribution: the queue's quick actions, re-assignment, and the routing settings (rep profiles,
teams, assignment rules)."""

import json
import re
import uuid

from django import forms
from django.core.exceptions import ValidationError

from leads.models import LifecycleStage

from .hours import DAY_NAMES, timezone_names
from .models import Seniority, Strategy
from .serializers import MAX_CAPACITY, MAX_LIST_ITEMS

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


# --------------------------------------------------------------------------------------------- routing settings
# The settings pages' forms check types and resolve choices within the org, as the API's serializers do; what only
# makes sense together is the services' to check (services.clean_rep / clean_team / clean_rule), and their
# messages are put back on these forms' fields by `put_errors`.


def put_errors(form, errors: dict, names: dict | None = None) -> None:
    """A service's {key: [messages]} on the form: each at the field `names` maps its key to (else the field of the
    same name), the rest above the form. A key naming a part of a field (`condition.all.0.value`) keeps that part
    in front of its message."""
    names = names or {}
    for key, problems in errors.items():
        field = names.get(key)
        prefix = ""
        if field is None:
            head, _, rest = key.partition(".")
            field = names.get(head + ".*", key)
            prefix = f"{rest}: " if head + ".*" in names and rest else ""
        form.add_error(field if field in form.fields else None, [f"{prefix}{problem}" for problem in problems])


def split_list(text: str) -> list[str]:
    """ "US, US-CA; DE" or one per line -> ["US", "US-CA", "DE"]."""
    return [part.strip() for part in re.split(r"[,;\n]+", text or "") if part.strip()]


class ListField(forms.CharField):
    """A list of short codes or names typed as text, separated by commas (or one per line)."""

    def __init__(self, *, item_length: int, max_items: int = MAX_LIST_ITEMS, **kwargs):
        self.item_length, self.max_items = item_length, max_items
        kwargs.setdefault("required", False)
        super().__init__(**kwargs)

    def prepare_value(self, value):
        return ", ".join(value) if isinstance(value, list | tuple) else value

    def to_python(self, value):
        return split_list(super().to_python(value))

    def validate(self, value):
        super().validate(value)
        if len(value) > self.max_items:
            raise ValidationError(f"At most {self.max_items}.")
        long = [item for item in value if len(item) > self.item_length]
        if long:
            raise ValidationError(f"At most {self.item_length} characters each: {', '.join(long[:3])}.")


DAY_CHOICES = [(day, name) for day, name in DAY_NAMES.items()]
HOURS_FIELDS = {"timezone": "hours_timezone", "days": "hours_days", "start": "hours_start", "end": "hours_end"}
INT32 = {"min_value": -(2**31), "max_value": 2**31 - 1}  # ranges that matter are the services' to check


class RepProfileForm(forms.Form):
    capacity = forms.IntegerField(
        required=False, min_value=0, max_value=MAX_CAPACITY, label="Capacity",
        help_text="Most open leads (subscriber to SQL) at once. Empty: no limit.")
    weight = forms.IntegerField(label="Weight", help_text="Share of leads under weighted round robin, 0 to 100.",
                                **INT32)
    available = forms.BooleanField(required=False, label="Takes new leads",
                                   help_text="Off: paused. A paused rep keeps their leads but gets no new ones.")
    away_until = forms.DateTimeField(
        required=False, label="Away until",
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"),
        input_formats=["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%d"],
        help_text="Gets no new leads until then. Empty: not away.")
    hours_timezone = forms.ChoiceField(required=False, label="Time zone")
    hours_days = forms.TypedMultipleChoiceField(required=False, coerce=int, choices=DAY_CHOICES, label="Days",
                                                widget=forms.CheckboxSelectMultiple)
    hours_start = forms.TimeField(required=False, label="From",
                                  widget=forms.TimeInput(attrs={"type": "time"}, format="%H:%M"))
    hours_end = forms.TimeField(required=False, label="To",
                                widget=forms.TimeInput(attrs={"type": "time"}, format="%H:%M"))
    territories = ListField(item_length=64, label="Territories",
                            help_text="Country codes, optionally with a region: US, US-CA, DE. Empty: anywhere.")
    industries = ListField(item_length=100, label="Industries", help_text="Separated by commas. Empty: any.")
    languages = ListField(item_length=16, label="Languages",
                          help_text="Language codes such as en, de, pt-br. Empty: any.")
    seniority = forms.ChoiceField(required=False, choices=[("", "Not set"), *Seniority.choices], label="Seniority")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["hours_timezone"].choices = [("", "Any time: no working hours"),
                                                 *((name, name) for name in timezone_names())]

    @staticmethod
    def initial_for(profile) -> dict:
        hours = profile.working_hours or {}
        return {
            "capacity": profile.capacity, "weight": profile.weight, "available": profile.available,
            "away_until": profile.away_until, "territories": profile.territories, "industries": profile.industries,
            "languages": profile.languages, "seniority": profile.seniority,
            **{field: hours.get(key) for key, field in HOURS_FIELDS.items()},
        }

    def clean(self):
        data = super().clean()
        given = {key: data.get(field) for key, field in HOURS_FIELDS.items()
                 if field not in self.errors}
        if any(given.values()):
            for key, field in HOURS_FIELDS.items():
                if key in given and not given[key]:
                    self.add_error(field, "Needed for working hours; leave all four empty for any time.")
        return data

    def service_data(self) -> dict:
        """What services.update_rep takes."""
        data = self.cleaned_data
        hours = {}
        if data["hours_timezone"]:
            hours = {"timezone": data["hours_timezone"], "days": data["hours_days"],
                     "start": data["hours_start"].strftime("%H:%M"), "end": data["hours_end"].strftime("%H:%M")}
        return {name: data[name] for name in ("capacity", "weight", "available", "away_until", "territories",
                                              "industries", "languages", "seniority")} | {"working_hours": hours}

    def put_service_errors(self, errors: dict) -> None:
        put_errors(self, errors, {f"working_hours.{key}": field for key, field in HOURS_FIELDS.items()}
                   | {"working_hours": "hours_timezone"})


class MemberChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, user):
        return user.email


class RepChoicesField(forms.ModelMultipleChoiceField):
    def label_from_instance(self, profile):
        return profile.user.email


class RepChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, profile):
        return profile.user.email


class TeamForm(forms.Form):
    name = forms.CharField(max_length=100, label="Name")
    manager = MemberChoiceField(queryset=None, required=False, empty_label="No manager", label="Manager",
                                help_text="Oversees the team's reps and pool; leads that miss their deadline "
                                          "too often are escalated to them.")
    members = RepChoicesField(queryset=None, required=False, to_field_name="user_id", label="Members",
                              widget=forms.CheckboxSelectMultiple,
                              help_text="The reps who share the leads of rules that name this team.")

    def __init__(self, *args, managers, reps, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["manager"].queryset = managers
        self.fields["members"].queryset = reps
        if len(self.fields["members"].choices) > MAX_LIST_ITEMS:
            self.fields["members"].help_text += f" At most {MAX_LIST_ITEMS}."

    def clean_members(self):
        members = self.cleaned_data["members"]
        if len(members) > MAX_LIST_ITEMS:
            raise ValidationError(f"At most {MAX_LIST_ITEMS} members.")
        return list(members)


RULE_FIELDS = {"action.type": "strategy", "action.rep": "rep", "action.team": "team", "condition.*": "definition"}
EMPTY_DEFINITIONS = ({}, {"all": []}, {"any": []})


class RuleForm(forms.Form):
    name = forms.CharField(max_length=200, label="Name")
    active = forms.BooleanField(required=False, initial=True, label="Active",
                                help_text="Off: kept, but routing skips it.")
    definition = forms.CharField(
        required=False, label="Conditions (JSON)",
        widget=forms.Textarea(attrs={"rows": 6, "spellcheck": "false", "class": "json"}),
        help_text='The builder writes this for you. Empty (or {"all": []}): every lead.')
    segment = forms.ModelChoiceField(queryset=None, required=False, label="Or: the leads of a saved segment",
                                     empty_label="None: use the conditions above")
    strategy = forms.ChoiceField(choices=Strategy.choices, label="Strategy")
    team = forms.ModelChoiceField(queryset=None, required=False, empty_label="Choose a team", label="Team")
    rep = RepChoiceField(queryset=None, required=False, to_field_name="user_id", empty_label="Choose a rep",
                         label="Rep")
    match_profile = forms.BooleanField(
        required=False, initial=True, label="Only reps whose territories, industries and languages fit the lead")
    respect_working_hours = forms.BooleanField(required=False, label="Skip reps outside their working hours")
    sla_minutes = forms.IntegerField(
        required=False, label="First touch within (minutes)", **INT32,
        help_text="The SLA. Empty: no deadline. Counted in the rep's working hours when they have some.")
    max_reassignments = forms.IntegerField(
        label="Re-assign up to (times)", initial=2, **INT32,
        help_text="When the deadline passes untouched, the lead goes to the next rep of the team; after this many "
                  "times (or at once for a named rep) it is escalated to the team's manager.")
    is_fallback = forms.BooleanField(
        required=False, label="Fallback rule",
        help_text="Takes every lead no other rule takes: it has no conditions and is always tried last. "
                  "One per organization.")

    def __init__(self, *args, segments, teams, reps, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["segment"].queryset = segments
        self.fields["team"].queryset = teams
        self.fields["rep"].queryset = reps

    @staticmethod
    def initial_for(rule) -> dict:
        return {
            "name": rule.name, "active": rule.active, "definition": json.dumps(rule.condition, indent=2),
            "segment": rule.segment_id, "strategy": rule.strategy, "team": rule.team_id,
            "rep": rule.rep.user_id if rule.rep_id else None, "match_profile": rule.match_profile,
            "respect_working_hours": rule.respect_working_hours, "sla_minutes": rule.sla_minutes,
            "max_reassignments": rule.max_reassignments, "is_fallback": rule.is_fallback,
        }

    def parsed_definition(self):
        """The posted definition as data, as far as it parses (for the builder to show); None when it does not."""
        return parse_definition(self.data.get("definition", ""))

    def clean_definition(self):
        text = self.cleaned_data["definition"].strip()
        definition = parse_definition(text)
        if definition is None:
            raise ValidationError('Not a definition: {"all": [...]} or {"any": [...]}, or empty for every lead.')
        return {} if definition in EMPTY_DEFINITIONS else definition

    def clean(self):
        data = super().clean()
        # Only the target the strategy uses counts; the other picker may still hold an earlier choice.
        if data.get("strategy") == Strategy.REP:
            data["team"] = None
        elif data.get("strategy"):
            data["rep"] = None
        return data

    def service_data(self) -> dict:
        """What services.save_rule takes."""
        data = self.cleaned_data
        return {"condition": data["definition"], **{name: data[name] for name in (
            "name", "active", "segment", "strategy", "team", "rep", "match_profile", "respect_working_hours",
            "sla_minutes", "max_reassignments", "is_fallback")}}

    def put_service_errors(self, errors: dict) -> None:
        put_errors(self, errors, RULE_FIELDS)


def parse_definition(text: str):
    if not (text or "").strip():
        return {}
    try:
        definition = json.loads(text)
    except ValueError:
        return None
    return definition if isinstance(definition, dict) else None
