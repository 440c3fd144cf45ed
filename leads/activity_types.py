"""Which activity types an organization may record: the built-in ones and those it registered. One home for the
check that capture, imports, scoring rules and segments all make."""

import re

from django.db import IntegrityError, transaction
from django.db.models.expressions import RawSQL

from leadcrm import urlids
from leadcrm.errors import Conflict, Invalid

from .models import Activity, ActivityType, CustomActivityType, Segment

KEY = re.compile(rf"^{urlids.SLUG_KEY}$")


def custom(organization_id):
    return CustomActivityType.objects.for_org(organization_id).order_by("label")


def choices(organization_id) -> list[tuple[str, str]]:
    """(key, label) of every type the org may record: built-in first, then its own by label."""
    return [*ActivityType.choices, *custom(organization_id).values_list("key", "label")]


def known(organization_id) -> list[str]:
    return [key for key, _ in choices(organization_id)]


def label(organization_id, key: str) -> str:
    return dict(choices(organization_id)).get(key, key)


def unknown_message(value, types) -> str:
    return f"Unknown activity type {value!r}; use one of {', '.join(types)}."


def check(organization_id, value) -> str:
    """The type if the org may record it, else Invalid naming every type it may."""
    types = known(organization_id)
    if value not in types:
        raise Invalid(unknown_message(value, types), errors={"type": [unknown_message(value, types)]})
    return value


class ActivityTypeInUse(Conflict):
    default_code = "activity_type_in_use"


# Other apps' uses of a type (scoring rules): each callable (organization_id, key) -> a name for the uses, or "".
_usage_checks = []


def register_usage_check(check_uses) -> None:
    if check_uses not in _usage_checks:
        _usage_checks.append(check_uses)


def create(*, organization_id, key: str, label: str) -> CustomActivityType:
    key, label = (key or "").strip(), (label or "").strip()
    errors = {}
    if not KEY.match(key):
        errors["key"] = ["Use 2 to 32 lowercase letters, digits and _, starting with a letter (e.g. sms_sent)."]
    elif key in ActivityType.values:
        errors["key"] = [f"{key!r} is a built-in activity type."]
    if not label:
        errors["label"] = ["Give the type a name people read, e.g. “SMS sent”."]
    elif len(label) > 100:
        errors["label"] = ["At most 100 characters."]
    if errors:
        raise Invalid("The activity type is not valid.", errors=errors)
    try:
        with transaction.atomic():
            return CustomActivityType.objects.create(organization_id=organization_id, key=key, label=label)
    except IntegrityError:
        raise Invalid("The activity type is not valid.", errors={"key": [f"{key!r} is registered already."]}) \
            from None


def delete(*, activity_type: CustomActivityType) -> None:
    """Refused while activities, segments or other apps' rows (scoring rules) use the type: they would lose their
    meaning."""
    organization_id, key = activity_type.organization_id, activity_type.key
    uses = []
    if Activity.objects.for_org(organization_id).filter(type=key).exists():
        uses.append("activities")
    uses += [name for check_uses in _usage_checks if (name := check_uses(organization_id, key))]
    in_segment = RawSQL("jsonb_path_exists(definition, '$.** ? (@.activity == $key)', jsonb_build_object('key', %s))",
                        [key])
    if Segment.objects.for_org(organization_id).alias(uses=in_segment).filter(uses=True).exists():
        uses.append("segments")
    if uses:
        raise ActivityTypeInUse(f"{activity_type.label} is used by {', '.join(uses)}; it cannot be deleted.")
    activity_type.delete()
