from django import template

register = template.Library()


@register.filter
def signed(value):
    """Points with their sign: +15, −10 (a true minus sign), 0."""
    try:
        number = int(value)
    except (TypeError, ValueError):
        return value
    return f"+{number}" if number > 0 else f"−{-number}" if number < 0 else "0"
