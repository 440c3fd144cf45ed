"""Template helpers of tasks: times in the owner's zone, a task type's outcomes, the team page's overdue counts."""

from django import template

from leads import touches

from .. import selectors
from ..services import TOUCH_OF

register = template.Library()


@register.filter
def in_zone(value, zone):
    """The wall-clock time in `zone`, naive, so the `date` filter shows it as it is (and not in the viewer's zone)."""
    return value.astimezone(zone).replace(tzinfo=None) if value is not None and zone is not None else value


@register.filter
def outcomes_for(task_type):
    """[(value, label)] of how a task of this type may end (a to-do: none)."""
    touch_type = TOUCH_OF.get(task_type)
    return touches.OUTCOMES[touch_type] if touch_type else []


@register.filter
def outcome_words(task):
    return touches.outcome_label(TOUCH_OF.get(task.type, ""), task.outcome)


@register.simple_tag
def overdue_task_counts(organization, groups):
    """{user id: open tasks past due} for the reps on the team page (one query for every team shown)."""
    user_ids = {row["user"].pk for group in groups for row in group["rows"]}
    return selectors.overdue_counts(organization.pk, user_ids) if user_ids else {}


@register.filter
def count_of(counts, user_id):
    return counts.get(user_id, 0)
