"""Browser forms of sequences: the settings form, and the step rows of the editor turned into the API's shape.

The checks are the services' (`clean_sequence`); this only carries inputs there and puts the messages back on the
inputs and rows they are about."""

import json

from django import forms

from agenda.models import TaskType
from leads.models import Form, LifecycleStage, Segment

from .models import EntryType, StepType
from .services.sequences import MAX_STEPS, UPDATE_FIELDS

CONDITIONS = [("opened_last", "opened the last email"), ("clicked_last", "clicked in the last email"),
              ("score_gte", "score at least"), ("segment", "is in the segment")]
ROW_KEYS = ("type", "template", "amount", "unit", "business_days", "condition", "score", "segment", "then", "else",
            "field", "value", "message", "task_type", "due_hours", "task_note")
MAX_EMAILS = 1000


class SequenceForm(forms.Form):
    name = forms.CharField(max_length=200, required=False)
    active = forms.BooleanField(required=False, help_text="Only an active sequence enrols leads and sends email.")
    entry_type = forms.ChoiceField(label="Leads enter", choices=EntryType.choices, initial=EntryType.MANUAL)
    entry_segment = forms.ModelChoiceField(label="Segment", queryset=Segment.objects.none(), required=False,
                                           help_text="Leads entering this segment are enrolled, once each.")
    entry_form = forms.ModelChoiceField(label="Form", queryset=Form.objects.none(), required=False)
    entry_stage = forms.ChoiceField(label="Stage", choices=[("", "—"), *LifecycleStage.choices], required=False)
    exit_stages = forms.MultipleChoiceField(
        label="Leave on reaching", choices=LifecycleStage.choices, required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="Unsubscribing, bouncing and do-not-contact always end the sequence.")
    # Written by the condition builder of the segments page (static/js/segment-builder.js) as a segment
    # definition; nobody types it.
    exit_condition = forms.CharField(label="Exit condition", required=False, max_length=20_000,
                                     widget=forms.HiddenInput, initial='{"all": []}')
    allow_reenrollment = forms.BooleanField(label="Allow re-enrolment", required=False,
                                            help_text="A lead that finished or left may run it again.")
    sending_start = forms.CharField(label="Send from", required=False, max_length=5,
                                    widget=forms.TimeInput(attrs={"type": "time"}))
    sending_end = forms.CharField(label="until", required=False, max_length=5,
                                  widget=forms.TimeInput(attrs={"type": "time"}),
                                  help_text="In the lead's timezone; both empty: any time.")

    # SequenceError fields -> the input they are about
    ERROR_FIELDS = {"entry": "entry_type", "entry.segment": "entry_segment", "entry.form": "entry_form",
                    "entry.stage": "entry_stage", "exit": "exit_stages", "exit.stages": "exit_stages",
                    "sending_hours": "sending_start", "sending_hours.start": "sending_start",
                    "sending_hours.end": "sending_end"}

    def __init__(self, *args, organization_id, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["entry_segment"].queryset = Segment.objects.for_org(organization_id).order_by("name")
        self.fields["entry_form"].queryset = Form.objects.for_org(organization_id).order_by("name")

    def clean_exit_condition(self):
        text = self.cleaned_data["exit_condition"].strip()
        if not text:
            return {}
        try:
            value = json.loads(text)
        except ValueError as exc:
            raise forms.ValidationError(f"Not valid JSON: {exc}.") from None
        if not isinstance(value, dict):
            raise forms.ValidationError("A JSON object (a segment definition).")
        if value in ({"all": []}, {"any": []}):  # the builder with no condition chosen: none
            return {}
        return value

    def api_data(self) -> dict:
        """The settings in the shape `save_sequence` takes (call after is_valid())."""
        data = self.cleaned_data
        entry = {"manual": True}
        if data["entry_type"] == EntryType.SEGMENT:
            entry = {"segment": str(data["entry_segment"].pk) if data["entry_segment"] else None}
        elif data["entry_type"] == EntryType.FORM:
            entry = {"form": str(data["entry_form"].pk) if data["entry_form"] else None}
        elif data["entry_type"] == EntryType.STAGE:
            entry = {"stage": data["entry_stage"]}
        start, end = data["sending_start"].strip(), data["sending_end"].strip()
        return {"name": data["name"], "active": data["active"], "allow_reenrollment": data["allow_reenrollment"],
                "entry": entry, "exit": {"stages": data["exit_stages"], "condition": data["exit_condition"]},
                "sending_hours": {"start": start, "end": end} if start or end else {}}

    def add_problems(self, errors: dict[str, list[str]]) -> None:
        for key, messages in errors.items():
            if key.startswith("steps"):
                continue
            field = self.ERROR_FIELDS.get(key) or ("exit_condition" if key.startswith("exit.condition") else key)
            self.add_error(field if field in self.fields else None, messages)


def initial_of(sequence) -> dict:
    hours = sequence.sending_hours or {}
    return {"name": sequence.name, "active": sequence.active, "entry_type": sequence.entry_type,
            "entry_segment": sequence.entry_segment_id, "entry_form": sequence.entry_form_id,
            "entry_stage": sequence.entry_stage, "exit_stages": list(sequence.exit_stages),
            "exit_condition": json.dumps(sequence.exit_condition or {"all": []}),
            "allow_reenrollment": sequence.allow_reenrollment, "sending_start": hours.get("start", ""),
            "sending_end": hours.get("end", "")}


# ----------------------------------------------------------------------------------------------- step rows
# A row is a dict of strings as the inputs hold them; `then`/`else` are step numbers from 1, or "end".


def blank_row(kind: str = StepType.EMAIL) -> dict:
    row = dict.fromkeys(ROW_KEYS, "")
    row.update({"type": kind if kind in StepType.values else StepType.EMAIL, "unit": "days", "condition":
                "opened_last", "then": "end", "else": "end", "task_type": "call", "due_hours": "0"})
    return row


def row_of(step, count: int) -> dict:
    """The editor row of a saved step."""
    config = step.config or {}
    row = blank_row(step.type)
    row["template"] = str(step.template_id or "")
    if step.type == StepType.WAIT:
        row["unit"] = "hours" if "hours" in config else "days"
        row["amount"] = str(config.get(row["unit"], ""))
        row["business_days"] = "on" if config.get("business_days") else ""
    elif step.type == StepType.BRANCH:
        condition = config.get("condition") or {}
        kind, value = next(iter(condition.items()), ("opened_last", True))
        row["condition"] = kind
        row["score"] = str(value) if kind == "score_gte" else ""
        row["segment"] = str(value) if kind == "segment" else ""
        for key in ("then", "else"):
            target = config.get(key, count)
            row[key] = "end" if target >= count else str(target + 1)
    elif step.type == StepType.UPDATE:
        row["field"], row["value"] = config.get("field", ""), str(config.get("value", ""))
    elif step.type == StepType.NOTIFY_OWNER:
        row["message"] = config.get("message", "")
    elif step.type == StepType.CREATE_TASK:
        row["task_type"], row["due_hours"] = config.get("task_type", "call"), str(config.get("due_hours", 0))
        row["task_note"] = config.get("note", "")
    return row


def rows_from_post(post) -> list[dict]:
    try:
        count = max(0, min(int(post.get("step_count", 0)), MAX_STEPS + 1))
    except (TypeError, ValueError):
        count = 0
    return [{key: post.get(f"s{index}-{key}", "") for key in ROW_KEYS} for index in range(count)]


def _number(text: str):
    """A whole number when the input holds one; else the text as given (the services say what is wrong)."""
    try:
        return int(text.strip())
    except (AttributeError, ValueError):
        return text


def _target(text: str, count: int):
    if text == "end":
        return count
    number = _number(text)
    return number - 1 if isinstance(number, int) else number


def step_of(row: dict, count: int) -> dict:
    """The API shape of one row."""
    kind = row["type"]
    if kind == StepType.EMAIL:
        return {"type": kind, "template": row["template"] or None}
    if kind == StepType.WAIT:
        unit = row["unit"] if row["unit"] in ("hours", "days") else "days"
        return {"type": kind, unit: _number(row["amount"]), "business_days": bool(row["business_days"])}
    if kind == StepType.BRANCH:
        condition = row["condition"]
        value = {"score_gte": _number(row["score"]), "segment": row["segment"]}.get(condition, True)
        return {"type": kind, "condition": {condition: value}, "then": _target(row["then"], count),
                "else": _target(row["else"], count)}
    if kind == StepType.UPDATE:
        return {"type": kind, "field": row["field"], "value": row["value"]}
    if kind == StepType.NOTIFY_OWNER:
        return {"type": kind, **({"message": row["message"]} if row["message"] else {})}
    if kind == StepType.CREATE_TASK:
        return {"type": kind, "task_type": row["task_type"] or "call", "due_hours": _number(row["due_hours"] or "0"),
                "note": row["task_note"]}
    return {"type": kind}


def _counted(amount: int, word: str) -> str:
    return f"{amount} {word}{'' if amount == 1 else 's'}"


def wait_words(amount, unit: str, business_days=False) -> str:
    """A wait step in words: "Wait 3 days", "Wait 1 hour", "Wait 2 business days"; what is missing while the
    amount is not a number yet."""
    unit = "hours" if unit == "hours" else "days"
    number = _number(str(amount))
    if not isinstance(number, int) or number < 0:
        return f"Wait: enter the number of {unit}"
    if number == 0:
        return "No wait: the next step runs at once"
    if unit == "hours":
        return f"Wait {_counted(number, 'hour')}" + (" (on a weekday)" if business_days else "")
    return f"Wait {_counted(number, 'business day' if business_days else 'day')}"


def step_words(row: dict, *, templates: dict, segments: dict) -> str:
    """What a step does, in one line (`templates`, `segments`: names by id as text)."""
    kind = row["type"]
    if kind == StepType.EMAIL:
        name = templates.get(row["template"])
        return f"Send “{name}”" if name else "Send an email: choose its template"
    if kind == StepType.WAIT:
        return wait_words(row["amount"], row["unit"], bool(row["business_days"]))
    if kind == StepType.BRANCH:
        condition = dict(CONDITIONS).get(row["condition"], row["condition"])
        if row["condition"] == "score_gte":
            condition = f"has a score of at least {row['score'] or '…'}"
        elif row["condition"] == "segment":
            condition = f"is in the segment “{segments.get(row['segment'], '…')}”"

        def target(value):
            return "the end" if value == "end" else f"step {value}"

        return f"If the lead {condition}, go to {target(row['then'])}; else to {target(row['else'])}"
    if kind == StepType.UPDATE:
        field = UPDATE_FIELDS.get(row["field"])
        return f"Set {field.split(' (')[0]} to “{row['value']}”" if field else "Change a field: choose which"
    if kind == StepType.NOTIFY_OWNER:
        return "Email the lead's owner" + (f": “{row['message']}”" if row["message"] else "")
    if kind == StepType.CREATE_TASK:
        what = dict(TaskType.choices).get(row["task_type"], "task").lower()
        hours = _number(row["due_hours"])
        when = ("due at once" if hours == 0 else f"due in {_counted(hours, 'hour')}") if isinstance(hours, int) \
            else "due: enter the hours"
        return f"Plan a {what} for the lead's owner, {when}" + (f": “{row['task_note']}”" if row["task_note"] else "")
    return StepType(kind).label if kind in StepType.values else kind


def primary_input(index: int, kind: str) -> str:
    """The id of the input a person fills in first on a step of this type (focused when the step is added)."""
    return f"s{index}-" + {StepType.EMAIL: "template", StepType.WAIT: "amount", StepType.BRANCH: "condition",
                           StepType.UPDATE: "field", StepType.NOTIFY_OWNER: "message",
                           StepType.CREATE_TASK: "task_type"}.get(kind, "type")


def _renumber(rows: list[dict], mapping) -> None:
    """Keep branch targets on the same steps after rows moved: `mapping(old number) -> new number`."""
    for row in rows:
        for key in ("then", "else"):
            number = _number(row[key])
            if isinstance(number, int):
                row[key] = str(mapping(number))


def apply_action(rows: list[dict], action: str, add_type: str) -> list[dict]:
    """add / remove-N / up-N / down-N (N counted from 0), keeping branch targets on their steps."""
    name, _, index = action.partition("-")
    if name == "add":  # "add-wait", or "add" with the type in `add_type`
        if len(rows) < MAX_STEPS:
            rows.append(blank_row(index or add_type))
        return rows
    try:
        index = int(index)
    except ValueError:
        return rows
    if not 0 <= index < len(rows):
        return rows
    number = index + 1
    if name == "remove":
        del rows[index]
        # a target on the removed step now points at the step that took its place
        _renumber(rows, lambda n: n - 1 if n > number else n)
        for row in rows:
            for key in ("then", "else"):
                if row[key] == str(len(rows) + 1):
                    row[key] = "end"
    elif name in ("up", "down"):
        other = index - 1 if name == "up" else index + 1
        if 0 <= other < len(rows):
            rows[index], rows[other] = rows[other], rows[index]
            a, b = number, other + 1
            _renumber(rows, lambda n: b if n == a else a if n == b else n)
    return rows


def step_errors(errors: dict[str, list[str]], count: int) -> tuple[list[list[str]], list[str]]:
    """The SequenceError messages per row ("steps.2.then" on row 2, naming the input), and those about all steps."""
    per_row: list[list[str]] = [[] for _ in range(count)]
    general: list[str] = []
    labels = {"then": "Then", "else": "Else", "template": "Template", "hours": "Hours", "days": "Days",
              "business_days": "Business days", "condition": "Condition", "field": "Field", "value": "Value",
              "message": "Message", "type": "Type"}
    for key, messages in errors.items():
        parts = key.split(".")
        if parts[0] != "steps":
            continue
        if len(parts) > 1 and parts[1].isdigit() and int(parts[1]) < count:
            label = labels.get(parts[2], parts[2]) + ": " if len(parts) > 2 else ""
            per_row[int(parts[1])].extend(label + message for message in messages)
        else:
            general.extend(messages)
    return per_row, general


class EnrollForm(forms.Form):
    segment = forms.ModelChoiceField(queryset=Segment.objects.none(), required=False,
                                     empty_label="— every lead of a segment —")
    emails = forms.CharField(required=False, max_length=100_000, widget=forms.Textarea(attrs={"rows": 3}),
                             help_text="Or email addresses of existing leads, separated by commas, spaces or lines.")

    def __init__(self, *args, organization_id, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["segment"].queryset = Segment.objects.for_org(organization_id).order_by("name")

    def clean_emails(self):
        emails = [email for email in self.cleaned_data["emails"].replace(",", " ").replace(";", " ").split()]
        if len(emails) > MAX_EMAILS:
            raise forms.ValidationError(f"At most {MAX_EMAILS} addresses at once.")
        return emails

    def clean(self):
        data = super().clean()
        if not self.errors and bool(data.get("emails")) == bool(data.get("segment")):
            raise forms.ValidationError("Give either a segment or email addresses.")
        return data


UPDATE_FIELD_CHOICES = list(UPDATE_FIELDS.items())
