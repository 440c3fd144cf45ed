"""Browser forms of scoring: a rule built from plain inputs (no JSON needed) and the org's settings.

The checks themselves are scoring.services.clean_rule / clean_settings, so the browser, the admin and the API
accept and refuse exactly the same rules; these forms only turn inputs into a condition and map messages back
onto the inputs.
"""

import decimal
import json

from django import forms

from leads import activity_types
from leads.conditions import (
    BOOL,
    CUSTOM_PREFIX,
    DATE,
    JSON,
    LEAD_FIELDS,
    NO_VALUE_OPS,
    NUMBER,
    OP_LABELS,
    OPS_BY_KIND,
    OWNER,
    TAGS,
    TEXT,
    ConditionError,
    field_kind,
    value_text,
)
from leads.models import ActivityType, Grade, Lead

from . import services
from .models import MqlRule, RuleKind

NUMERIC_OPS = ("gt", "gte", "lt", "lte", "between", "within_days")
# Operators whose value the form splits on commas (contains / starts_with only for text: "any of these words").
LIST_INPUT_OPS = ("in", "not_in", "between")
ANY_OF_OPS = ("contains", "starts_with")
CUSTOM_FIELD = "__custom__"
FIELD_LABELS = {
    "country": "Country (two-letter code)", "owner": "Owner (user id)", "consent_opt_in": "Opted in",
    "company_size": "Company size (employees)", "source": "Source detail", "utm_source": "utm_source",
    "utm_medium": "utm_medium", "utm_campaign": "utm_campaign", "utm_term": "utm_term", "utm_content": "utm_content",
}
KIND_GROUPS = [(TEXT, "Text"), ("choice", "Choice"), (NUMBER, "Number"), (BOOL, "Yes / no"), (DATE, "Date"),
               (TAGS, "Tags"), (OWNER, "Owner")]
TRUE_WORDS, FALSE_WORDS = ("yes", "true", "1", "on", "y"), ("no", "false", "0", "off", "n")


def field_label(name: str) -> str:
    if name.startswith(CUSTOM_PREFIX):
        return f"Custom field “{name[len(CUSTOM_PREFIX):]}”"
    if name in FIELD_LABELS:
        return FIELD_LABELS[name]
    try:
        return str(Lead._meta.get_field(name).verbose_name).capitalize()
    except Exception:  # a field the model no longer has: show its key
        return name


def fit_fields() -> list[str]:
    return [name for name in LEAD_FIELDS if name not in services.NOT_FOR_FIT_RULES]


def _fit_field_choices():
    groups = [(label, [(name, field_label(name)) for name in fit_fields() if LEAD_FIELDS[name] == kind])
              for kind, label in KIND_GROUPS]
    return [("", "Choose a field"), *(group for group in groups if group[1]),
            ("Custom", [(CUSTOM_FIELD, "A custom field (give its key)")])]


class KindedSelect(forms.Select):
    """A select whose options say what kind of value their field holds, so the page can offer fitting
    operators only."""

    def create_option(self, name, value, label, selected, index, subindex=None, attrs=None):
        option = super().create_option(name, value, label, selected, index, subindex, attrs)
        if value == CUSTOM_FIELD:
            option["attrs"]["data-kind"] = JSON
        elif value in LEAD_FIELDS:
            option["attrs"]["data-kind"] = LEAD_FIELDS[value]
        return option


# --------------------------------------------------------------------------------------------- values


def _number(text: str):
    """'50' -> 50, '2.5' -> 2.5; anything else stays text, which clean_rule then refuses with its message."""
    try:
        number = decimal.Decimal(text)
    except decimal.InvalidOperation:
        return text
    if not number.is_finite():
        return text
    return int(number) if number == number.to_integral_value() else float(number)


def _typed(kind: str, op: str, text: str):
    if kind == NUMBER or (kind != DATE and op in NUMERIC_OPS) or op == "within_days":
        return _number(text)
    if kind == BOOL:
        lowered = text.lower()
        return True if lowered in TRUE_WORDS else False if lowered in FALSE_WORDS else text
    if kind == OWNER and text.isdigit():
        return int(text)
    return text


def parse_value(kind: str, op: str, text: str):
    """The typed value a condition needs, from what a person typed; None when there is none."""
    text = (text or "").strip()
    if op in NO_VALUE_OPS or not text:
        return None
    if op in LIST_INPUT_OPS or (op in ANY_OF_OPS and kind in (TEXT, JSON) and "," in text):
        items = [item.strip() for item in text.split(",") if item.strip()]
        return [_typed(kind, op, item) for item in items] or None
    return _typed(kind, op, text)


def _fits_text_input(value) -> bool:
    if isinstance(value, list):
        return bool(value) and all(not isinstance(item, (list, dict)) and "," not in value_text(item)
                                   for item in value)
    return not isinstance(value, dict)


def describe_value(op: str, value) -> str:
    if op in NO_VALUE_OPS:
        return ""
    if op == "between" and isinstance(value, list) and len(value) == 2:
        return f"{value_text(value[0])} and {value_text(value[1])}"
    if op == "within_days":
        return f"{value_text(value)} days"
    if op in ANY_OF_OPS and isinstance(value, list):
        return "any of " + value_text(value)
    return value_text(value)


def describe_condition(kind: str, condition) -> str:
    """A rule's condition in words: 'Industry is one of Software, Finance', 'Page view where url contains
    /pricing'. Plain text (the templates escape it)."""
    if not isinstance(condition, dict):
        return str(condition)
    if kind == RuleKind.FIT:
        op = condition.get("op", "")
        words = [field_label(str(condition.get("field", ""))), OP_LABELS.get(op, op),
                 describe_value(op, condition.get("value"))]
        return " ".join(word for word in words if word)
    activity = condition.get("activity_type", "")
    text = ActivityType(activity).label if activity in ActivityType.values else str(activity)
    tests = list(condition.get("where") or [])
    if "property" in condition:
        tests.insert(0, condition)
    parts = []
    for test in tests:
        if isinstance(test, dict):
            op = test.get("op", "")
            words = [str(test.get("property", "")), OP_LABELS.get(op, op), describe_value(op, test.get("value"))]
            parts.append(" ".join(word for word in words if word))
    return f"{text} where {' and '.join(parts)}" if parts else text


def describe_limits(rule) -> str:
    parts = []
    if rule.max_occurrences:
        parts.append("once" if rule.max_occurrences == 1 else f"at most {rule.max_occurrences} times")
    if rule.window_days:
        parts.append(f"in the last {rule.window_days} days")
    return ", ".join(parts)


# --------------------------------------------------------------------------------------------- rule form


class RuleForm(forms.Form):
    """A scoring rule. For a fit rule: a lead field, an operator and a value; for a behaviour rule: an
    activity type, optionally a test on one of its properties, a cap and a window. The advanced JSON box,
    when filled, replaces the field/operator/value inputs."""

    kind = forms.ChoiceField(choices=RuleKind.choices, widget=forms.RadioSelect, initial=RuleKind.FIT,
                             label="Kind of rule")
    name = forms.CharField(max_length=200, help_text="What the rule rewards, as sales will read it.")
    points = forms.IntegerField(
        widget=forms.NumberInput(attrs={"min": -services.POINTS_LIMIT, "max": services.POINTS_LIMIT, "step": 1}),
        help_text=f"Positive adds, negative takes away; -{services.POINTS_LIMIT} to {services.POINTS_LIMIT}.",
    )

    lead_field = forms.ChoiceField(required=False, label="Field", widget=KindedSelect)
    custom_key = forms.CharField(required=False, max_length=64, label="Custom field key",
                                 help_text="For a custom field: its key, such as plan.")
    op = forms.ChoiceField(required=False, label="Operator")
    value = forms.CharField(
        required=False, max_length=5000, label="Value",
        help_text="For “is one of”, “is none of” and “is between”, separate values with commas (Software, Finance "
                  "or 50, 5000); for “contains”, commas give several words, any of which matches. Yes/no fields "
                  "take yes or no; dates look like 2026-01-31.",
    )

    activity_type = forms.ChoiceField(required=False, label="Activity",
                                      choices=[("", "Choose an activity"), *ActivityType.choices])
    property_name = forms.CharField(required=False, max_length=64, label="Property (optional)",
                                    help_text="Test one property of the activity, such as url for a page view.")
    property_op = forms.ChoiceField(required=False, label="Property operator")
    property_value = forms.CharField(required=False, max_length=5000, label="Property value",
                                     help_text="Commas separate values, as for fit rules.")
    max_occurrences = forms.IntegerField(
        required=False, label="Count at most (times)", widget=forms.NumberInput(attrs={"min": 1}),
        help_text="Empty: every occurrence counts.")
    window_days = forms.IntegerField(
        required=False, label="Only the last (days)", widget=forms.NumberInput(attrs={"min": 1}),
        help_text="Empty: all time.")

    active = forms.BooleanField(required=False, initial=True, label="Active (switched-off rules score nothing)")
    condition_json = forms.CharField(
        required=False, max_length=20000, label="Condition as JSON",
        widget=forms.Textarea(attrs={"rows": 3, "spellcheck": "false"}),
        help_text='When filled, used instead of the inputs above. Fit: {"field": "industry", "op": "in", "value": '
                  '["Software"]}; behaviour: {"activity_type": "page_view", "property": "url", "op": "contains", '
                  '"value": "/pricing"}.',
    )

    def __init__(self, *args, organization_id=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.organization_id = organization_id
        if organization_id:
            self.fields["activity_type"].choices = [("", "Choose an activity"),
                                                    *activity_types.choices(organization_id)]
        self.fields["lead_field"].choices = _fit_field_choices()
        ops = [("", "Choose an operator"), *((op, OP_LABELS.get(op, op)) for op in OP_LABELS)]
        self.fields["op"].choices = ops
        self.fields["property_op"].choices = [(op, label) for op, label in ops
                                              if op == "" or op in OPS_BY_KIND[JSON]]

    # --- to and from a rule

    @staticmethod
    def initial_for(rule) -> dict:
        """Initial values that show `rule`; conditions the inputs cannot express go into the JSON box."""
        initial = {"kind": rule.kind, "name": rule.name, "points": rule.points, "active": rule.active,
                   "max_occurrences": rule.max_occurrences, "window_days": rule.window_days}
        condition = rule.condition if isinstance(rule.condition, dict) else {}
        value = condition.get("value")
        simple = "value" not in condition or _fits_text_input(value)
        if rule.kind == RuleKind.FIT and simple and set(condition) <= {"field", "op", "value"}:
            field = str(condition.get("field", ""))
            if field.startswith(CUSTOM_PREFIX):
                initial.update(lead_field=CUSTOM_FIELD, custom_key=field[len(CUSTOM_PREFIX):])
            else:
                initial["lead_field"] = field
            initial.update(op=condition.get("op"), value=value_text(value))
        elif rule.kind == RuleKind.BEHAVIOR and simple and set(condition) <= {"activity_type", "property", "op",
                                                                             "value"}:
            initial.update(activity_type=condition.get("activity_type"),
                           property_name=condition.get("property", ""), property_op=condition.get("op", ""),
                           property_value=value_text(value))
        else:
            initial["condition_json"] = json.dumps(rule.condition, indent=2, ensure_ascii=False)
        return initial

    def rule_fields(self) -> dict:
        """The cleaned rule, as keyword arguments of services.save_rule (and the preview's draft)."""
        data = self.cleaned_data
        return {"name": data["name"], "kind": data["kind"], "points": data["points"],
                "condition": data["condition"], "max_occurrences": data["max_occurrences"],
                "window_days": data["window_days"], "active": data["active"]}

    # --- building and checking the condition

    def _fit_condition(self, data) -> tuple[dict, dict]:
        field = data.get("lead_field")
        targets = {"field": "lead_field", "op": "op", "value": "value", "condition": None}
        if field == CUSTOM_FIELD:
            targets["field"] = "custom_key"
            key = (data.get("custom_key") or "").strip()
            if not key:
                self.add_error("custom_key", "Give the custom field's key, such as plan.")
            field = CUSTOM_PREFIX + key
        elif not field:
            self.add_error("lead_field", "Choose the field this rule tests.")
        op = data.get("op")
        if not op:
            self.add_error("op", "Choose an operator.")
        try:
            kind = field_kind(field, allow_score_fields=False)
        except ConditionError:
            kind = TEXT  # clean_rule names the problem with the field
        condition = {"field": field, "op": op}
        value = parse_value(kind, op, data.get("value"))
        if value is not None:
            condition["value"] = value
        return condition, targets

    def _behavior_condition(self, data) -> tuple[dict, dict]:
        targets = {"activity_type": "activity_type", "property": "property_name", "op": "property_op",
                   "value": "property_value", "where": "condition_json", "condition": None}
        if not data.get("activity_type"):
            self.add_error("activity_type", "Choose the activity this rule counts.")
        condition = {"activity_type": data.get("activity_type")}
        name, op = (data.get("property_name") or "").strip(), data.get("property_op")
        if name and not op:
            self.add_error("property_op", "Choose how to test the property, or leave the property empty.")
        if name:
            condition["property"] = name
        if op:
            condition["op"] = op
            value = parse_value(JSON, op, data.get("property_value"))
            if value is not None:
                condition["value"] = value
        return condition, targets

    def clean(self):
        data = super().clean()
        kind = data.get("kind")
        if not kind:
            return data
        raw = (data.get("condition_json") or "").strip()
        if raw:
            try:
                condition = json.loads(raw)
            except ValueError as exc:
                self.add_error("condition_json", f"This is not valid JSON: {exc}.")
                return data
            targets = {}
        elif kind == RuleKind.FIT:
            condition, targets = self._fit_condition(data)
        else:
            condition, targets = self._behavior_condition(data)
        if kind == RuleKind.FIT:
            # A fit rule has no cap or window; the inputs for them belong to the behaviour part of the page.
            data["max_occurrences"] = data["window_days"] = None
        try:
            data["condition"] = services.clean_rule(
                kind=kind, condition=condition, points=data.get("points", 0),
                max_occurrences=data.get("max_occurrences"), window_days=data.get("window_days"),
                organization_id=self.organization_id)
        except ConditionError as exc:
            self._add_rule_errors(exc.errors, targets, default="condition_json" if raw else None,
                                  condition=condition)
        return data

    def _add_rule_errors(self, errors: dict, targets: dict, default, condition):
        for key, messages in errors.items():
            if key == "condition":
                # clean_rule reports condition problems as "key: message"; put each next to its input.
                for text in messages:
                    part, _, message = text.partition(": ")
                    target = targets.get(part) if message else None
                    if target is None:  # no input of its own: the whole message, on the JSON box or the form
                        target, message = default, text
                    elif isinstance(condition, dict):
                        message = self._friendly(part, message, condition)
                    if target is not None and self.has_error(target):
                        continue  # the input already says what is wrong with it
                    self.add_error(target, message)
            elif key in self.fields and not self.has_error(key):
                self.add_error(key, messages)
            elif key not in self.fields:
                self.add_error(None, messages)

    @staticmethod
    def _friendly(part: str, message: str, condition: dict) -> str:
        """Operator messages in the words of the select rather than the condition's codes."""
        if part != "op" or not condition.get("op"):
            return message
        field = condition.get("field")
        try:
            kind = field_kind(field, allow_score_fields=False) if field is not None else JSON
        except ConditionError:
            return message
        allowed = ", ".join(f"“{OP_LABELS.get(op, op)}”" for op in OPS_BY_KIND[kind])
        subject = field_label(field) if field is not None else "an activity property"
        return f"“{OP_LABELS.get(condition['op'], condition['op'])}” does not apply to {subject}; use {allowed}."


# --------------------------------------------------------------------------------------------- settings


class SettingsForm(forms.Form):
    """The org's MQL threshold, grade and temperature bands, and decay. Checked by services.clean_settings."""

    mql_rule = forms.ChoiceField(choices=MqlRule.choices, widget=forms.RadioSelect, label="Hand leads to sales by",
                                 required=False)
    mql_score = forms.IntegerField(label="Score at least", help_text="A lead at or above this score…")
    mql_min_grade = forms.ChoiceField(choices=Grade.choices, label="Grade at least",
                                      help_text="…and with this grade or better becomes a marketing qualified lead.")
    mql_probability = forms.DecimalField(
        label="Conversion probability at least (%)", min_value=decimal.Decimal("0.01"), max_value=100, decimal_places=2,
        required=False,
        help_text="A lead this likely to convert, or likelier, becomes a marketing qualified lead.")
    mql_probability_anyway = forms.BooleanField(
        required=False, label="Use the probability even if the model does not beat the rule score",
        help_text="Otherwise score and grade keep handing leads to sales until a model does.")
    grade_a = forms.IntegerField(label="A from")
    grade_b = forms.IntegerField(label="B from")
    grade_c = forms.IntegerField(label="C from")
    grade_d = forms.IntegerField(label="D from", help_text="Below D is F.")
    warm = forms.IntegerField(label="Warm from", help_text="Below warm is cold.")
    hot = forms.IntegerField(label="Hot from")
    decay_half_life_days = forms.IntegerField(
        required=False, min_value=1, label="Half-life (days)",
        help_text="Behaviour points halve after this many days. Leave empty to keep them at full value.")

    GROUP_LABELS = {"grade_bands": "Grade bands", "temperature_bands": "Temperature bands"}
    FIELDS = ("mql_rule", "mql_score", "mql_min_grade", "mql_probability", "mql_probability_anyway", "grade_bands",
              "temperature_bands", "decay_half_life_days")

    @staticmethod
    def initial_for(settings) -> dict:
        grades, temperatures = settings.grade_bands or {}, settings.temperature_bands or {}
        percent = f"{settings.mql_probability * 100:.2f}".rstrip("0").rstrip(".")
        return {"mql_rule": settings.mql_rule, "mql_probability": percent,
                "mql_probability_anyway": settings.mql_probability_anyway,
                "mql_score": settings.mql_score, "mql_min_grade": settings.mql_min_grade,
                **{f"grade_{label.lower()}": grades.get(label) for label in "ABCD"},
                "warm": temperatures.get("warm"), "hot": temperatures.get("hot"),
                "decay_half_life_days": settings.decay_half_life_days}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.group_errors = {}

    def clean(self):
        data = super().clean()
        if self.errors:
            return data
        values = {
            "mql_probability_anyway": data["mql_probability_anyway"],
            "mql_score": data["mql_score"], "mql_min_grade": data["mql_min_grade"],
            "grade_bands": {label: data[f"grade_{label.lower()}"] for label in "ABCD"},
            "temperature_bands": {"warm": data["warm"], "hot": data["hot"]},
            "decay_half_life_days": data.get("decay_half_life_days"),
        }
        if data.get("mql_rule"):  # left out: as it is
            values["mql_rule"] = data["mql_rule"]
        if data.get("mql_probability") is not None:
            values["mql_probability"] = data["mql_probability"] / 100
        try:
            self.settings_values = services.clean_settings(values)
        except ConditionError as exc:
            for key, messages in exc.errors.items():
                if key in self.fields:
                    self.add_error(key, messages)
                else:  # a band set: shown in its fieldset, and in the summary at the top
                    self.group_errors[key] = messages
                    label = self.GROUP_LABELS.get(key, key)
                    self.add_error(None, [f"{label}: {message}" for message in messages])
        return data

    def changed_values(self, settings) -> dict:
        """The cleaned values that differ from `settings`."""
        return {name: value for name, value in self.settings_values.items() if getattr(settings, name) != value}


class SuggestedRulesForm(forms.Form):
    """The draft rule set the suggestion page shows, posted back as it was shown when the admin saves it. It is
    checked rule by rule by the same service as every rule (scoring.advice.apply_rules)."""

    rules = forms.CharField(widget=forms.HiddenInput)

    def clean_rules(self):
        try:
            rules = json.loads(self.cleaned_data["rules"])
        except ValueError:
            raise forms.ValidationError("The draft could not be read; suggest the rules again.") from None
        if not isinstance(rules, list) or not rules:
            raise forms.ValidationError("The draft has no rules; suggest the rules again.")
        return rules


class ThresholdPickForm(forms.Form):
    """The MQL score picked on the predictive page: a share of converters to catch, or a row of the table."""

    recall = forms.IntegerField(
        label="Catch at least this share of converters (%)", min_value=1, max_value=100, required=False,
        help_text="The highest score threshold that does so on the held-out leads becomes the MQL score.",
        widget=forms.NumberInput(attrs={"inputmode": "numeric"}))
    score = forms.IntegerField(required=False, widget=forms.HiddenInput, min_value=-100_000, max_value=100_000)

    def clean(self):
        cleaned = super().clean()
        if cleaned.get("recall") is None and cleaned.get("score") is None and not self.errors:
            self.add_error("recall", "Give a share of converters from 1 to 100, or pick a row of the table.")
        return cleaned
