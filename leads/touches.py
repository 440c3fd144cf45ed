"""What a person logs by hand on a lead — a call, an email, a meeting or a note — and how it went.

One home for the kinds and their outcomes: the lead page, the rep's queue, `POST /api/v1/leads/{id}/touch/` and
`POST /api/v1/activities/` all check against these, so a "left voicemail" means the same wherever it was logged.
Logging one of them is a touch: the first one stops the lead's first-touch (SLA) clock.
"""

from datetime import timedelta

from django.utils import timezone

from .models import ActivityType

TOUCH_TYPES = (ActivityType.CALL.value, ActivityType.EMAIL_LOGGED.value, ActivityType.MEETING.value,
               ActivityType.NOTE.value)
TOUCH_CHOICES = [("call", "Call"), ("email_logged", "Email"), ("meeting", "Meeting"), ("note", "Note")]

# How it went, per kind (a note has none). Stored as the activity's `properties.outcome`.
OUTCOMES: dict[str, list[tuple[str, str]]] = {
    "call": [("connected", "Connected"), ("left_voicemail", "Left voicemail"), ("no_answer", "No answer"),
             ("busy", "Busy"), ("wrong_number", "Wrong number")],
    "email_logged": [("sent", "Sent"), ("replied", "Replied"), ("bounced", "Bounced")],
    "meeting": [("held", "Held"), ("no_show", "No-show"), ("rescheduled", "Rescheduled"), ("cancelled", "Cancelled")],
    "note": [],
}
assert set(OUTCOMES) == set(TOUCH_TYPES)
# Every outcome value once, for an API schema's choices.
OUTCOME_VALUES = list(dict.fromkeys(value for outcomes in OUTCOMES.values() for value, _ in outcomes))

MAX_NOTE = 10_000
# A clock a little ahead of the server's is not "the future".
FUTURE_SLACK = timedelta(minutes=5)

_KIND_WORDS = {"call": "a call", "email_logged": "an email", "meeting": "a meeting", "note": "a note"}


def label(type: str) -> str:
    return dict(TOUCH_CHOICES).get(type, type)


def outcome_label(type: str, outcome) -> str:
    """The outcome in words ("Left voicemail"); an outcome stored by other means shows as it was given."""
    if not isinstance(outcome, str):
        return str(outcome or "")
    return dict(OUTCOMES.get(type, ())).get(outcome, outcome)


def outcome_problem(type: str, outcome) -> str:
    """Why `outcome` cannot go with a `type` touch, or "" when it can (no outcome always can)."""
    if outcome in (None, ""):
        return ""
    choices = OUTCOMES.get(type, [])
    if not choices:
        return f"{label(type)} has no outcome; leave it empty."
    if not isinstance(outcome, str) or outcome not in dict(choices):
        words = ", ".join(name for _, name in choices)
        return f"Choose how {_KIND_WORDS.get(type, type)} went: {words}."
    return ""


def problems(*, type: str, outcome: str = "", note: str = "", occurred_at=None, now=None) -> dict[str, list[str]]:
    """Field errors of a touch about to be logged ({} when it may be)."""
    errors: dict[str, list[str]] = {}
    if type not in TOUCH_TYPES:
        errors["type"] = ["Choose what happened: a call, an email, a meeting or a note."]
    elif problem := outcome_problem(type, outcome):
        errors["outcome"] = [problem]
    if type == ActivityType.NOTE and not (note or "").strip():
        errors["note"] = ["Write the note."]
    elif len(note or "") > MAX_NOTE:
        errors["note"] = [f"Keep the note under {MAX_NOTE:,} characters."]
    if occurred_at is not None and occurred_at > (now or timezone.now()) + FUTURE_SLACK:
        errors["occurred_at"] = ["That is in the future: log what has happened, up to now."]
    return errors
