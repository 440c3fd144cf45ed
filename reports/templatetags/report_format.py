"""Numbers as a person reads them on the report pages: durations ("1 h 20 min", "3 d 4 h"), counts with
thousands separators, money with its currency, shares as percentages. A missing value is a dash."""

from decimal import ROUND_HALF_UP, Decimal

from django import template

register = template.Library()

DASH = "—"
MINUS = "−"
SYMBOLS = {"USD": "$", "EUR": "€", "GBP": "£", "JPY": "¥", "INR": "₹"}
_UNITS = {"minutes": 1, "hours": 60, "days": 1440}


@register.filter
def duration(value, unit="minutes"):
    """A duration given in `unit` (minutes, hours or days) in its two largest parts, to the minute."""
    if value in (None, ""):
        return DASH
    total = round(float(value) * _UNITS[unit])
    sign, total = (MINUS, -total) if total < 0 else ("", total)
    days, rest = divmod(total, 1440)
    hours, minutes = divmod(rest, 60)
    if days:
        parts = [f"{days:,} d", f"{hours} h" if hours else ""]
    elif hours:
        parts = [f"{hours} h", f"{minutes} min" if minutes else ""]
    else:
        parts = [f"{minutes} min"]
    return sign + " ".join(part for part in parts if part)


@register.filter
def number(value, digits=None):
    """1234 → "1,234"; a fraction keeps one decimal (or `digits`)."""
    if value in (None, ""):
        return DASH
    if isinstance(value, int) and digits is None:
        text = f"{abs(value):,}"
    else:
        text = f"{abs(float(value)):,.{1 if digits is None else int(digits)}f}"
    return (MINUS if float(value) < 0 else "") + text


@register.filter
def money(value, currency=""):
    """"2550.5", "USD" → "$2,550.50"; a currency without a symbol is written before the amount ("CHF 12.00")."""
    if value in (None, ""):
        return DASH
    amount = Decimal(str(value)).quantize(Decimal("0.01"), ROUND_HALF_UP)
    text = f"{abs(amount):,.2f}"
    symbol = SYMBOLS.get(currency)
    text = f"{symbol}{text}" if symbol else f"{currency} {text}".strip()
    return (MINUS if amount < 0 else "") + text


@register.filter
def percent(rate):
    """A share from 0 to 1 as "42.5%"."""
    if rate in (None, ""):
        return DASH
    return (MINUS if rate < 0 else "") + f"{abs(float(rate)) * 100:,.1f}%"


@register.filter
def report_cell(cell):
    """A report table cell ({value, format, unit, currency}) in its format."""
    value, fmt = cell["value"], cell["format"]
    if fmt == "duration":
        return duration(value, cell["unit"])
    if fmt == "money":
        return money(value, cell["currency"])
    if fmt == "percent":
        return percent(value)
    if fmt == "number":
        return number(value)
    return DASH if value is None else value
