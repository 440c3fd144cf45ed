"""Readable rendering of JSON values (activity properties, touches). Output stays autoescaped."""

import phonenumbers
from django import template
from django.utils.dateparse import parse_datetime

register = template.Library()


@register.filter
def plain(value):
    """Lists as 'a, b', booleans as yes/no, dicts as 'k: v; …', everything else as text."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list | tuple):
        return ", ".join(plain(item) for item in value)
    if isinstance(value, dict):
        return "; ".join(f"{key}: {plain(item)}" for key, item in value.items())
    return "" if value is None else str(value)


@register.filter
def touch_summary(touch):
    """A first/last touch as 'utm_source=google, utm_campaign=spring (via https://ref…)'."""
    if not touch:
        return ""
    parts = [f"{key}={value}" for key, value in touch.items() if key not in ("at", "referrer") and value]
    if touch.get("referrer"):
        parts.append(f"via {touch['referrer']}")
    return ", ".join(parts)


@register.filter
def iso_datetime(value):
    return parse_datetime(value) if isinstance(value, str) else value


@register.filter
def phone_display(value):
    """An E.164 number as people read it (+1 415-555-0123); anything else as it is."""
    try:
        number = phonenumbers.parse(value or "", None)
    except phonenumbers.NumberParseException:
        return value or ""
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.INTERNATIONAL)


@register.filter
def thousands(value):
    """12345 → "12,345": counts people read at a glance."""
    try:
        return f"{int(value):,}"
    except (TypeError, ValueError):
        return value
