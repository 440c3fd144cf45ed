"""The lead page's timeline: touches (calls, emails, meetings, notes) read with their outcome and note."""

from django import template

from .. import touches

register = template.Library()


@register.filter
def is_touch(activity) -> bool:
    return activity.type in touches.TOUCH_TYPES


@register.filter
def outcome(activity) -> str:
    """A touch's outcome in words ("Left voicemail"), or ""."""
    if activity.type not in touches.TOUCH_TYPES or not isinstance(activity.properties, dict):
        return ""
    return touches.outcome_label(activity.type, activity.properties.get("outcome"))


@register.filter
def other_properties(activity) -> list[tuple]:
    """The activity's properties to list as they are: all but a touch's outcome and note, shown on their own."""
    properties = activity.properties if isinstance(activity.properties, dict) else {}
    skip = ("outcome", "note") if activity.type in touches.TOUCH_TYPES else ()
    return [(key, value) for key, value in properties.items() if key not in skip]
