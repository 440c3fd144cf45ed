"""Working hours: `{"timezone": "Europe/Berlin", "days": [1, 2, 3, 4, 5], "start": "09:00", "end": "17:00"}`.

Days are ISO weekdays (1 = Monday). An empty dict means "any time". A shift crosses no midnight: a rep who
works 22:00-06:00 is better described by two profiles' worth of thought than by a wrapped window.
"""

from datetime import datetime, time, timedelta
from functools import cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from leadcrm.errors import Invalid

MAX_DAYS_AHEAD = 14  # a deadline further away than two weeks of one's own working days is not a deadline


@cache
def _timezone_names() -> frozenset[str]:
    return frozenset(available_timezones())  # reads the tz database from disk: once per process


def timezone_names() -> list[str]:
    """The IANA time zones working hours may name, sorted (for pickers)."""
    return sorted(_timezone_names())


class HoursError(Invalid):
    default_code = "invalid_working_hours"

    def __init__(self, errors: dict[str, list[str]]):
        super().__init__(errors=errors)


def _parse_time(value, key: str) -> time:
    try:
        hours, minutes = str(value).split(":")
        return time(int(hours), int(minutes))
    except (TypeError, ValueError):
        raise HoursError({key: ["Use 24-hour HH:MM, such as 09:00."]}) from None


def clean_working_hours(value) -> dict:
    """The stored form of working hours, or HoursError naming what makes no sense."""
    if value in (None, {}):
        return {}
    if not isinstance(value, dict):
        raise HoursError({"working_hours": ['Send {"timezone", "days", "start", "end"} or {} for any time.']})
    unknown = sorted(set(value) - {"timezone", "days", "start", "end"})
    if unknown:
        raise HoursError({key: ["Unknown key."] for key in unknown})
    missing = [key for key in ("timezone", "days", "start", "end") if key not in value]
    if missing:
        raise HoursError({key: ["This key is required."] for key in missing})
    if value["timezone"] not in _timezone_names():
        raise HoursError({"timezone": ["Not a time zone of the IANA database, such as Europe/Berlin."]})
    days = value["days"]
    if (not isinstance(days, list) or not days
            or any(not isinstance(day, int) or isinstance(day, bool) or not 1 <= day <= 7 for day in days)):
        raise HoursError({"days": ["A non-empty list of ISO weekdays, 1 (Monday) to 7 (Sunday)."]})
    start, end = _parse_time(value["start"], "start"), _parse_time(value["end"], "end")
    if start >= end:
        raise HoursError({"end": ["The end must come after the start on the same day."]})
    return {"timezone": value["timezone"], "days": sorted(set(days)),
            "start": start.strftime("%H:%M"), "end": end.strftime("%H:%M")}


def _window(hours: dict, day) -> tuple[datetime, datetime] | None:
    """The working window of a local date, or None on a day off."""
    if day.isoweekday() not in hours["days"]:
        return None
    zone = ZoneInfo(hours["timezone"])
    start = datetime.combine(day, time.fromisoformat(hours["start"]), zone)
    end = datetime.combine(day, time.fromisoformat(hours["end"]), zone)
    return start, end


def is_working(hours: dict, at: datetime) -> bool:
    if not hours:
        return True
    try:
        local = at.astimezone(ZoneInfo(hours["timezone"]))
    except ZoneInfoNotFoundError:
        return True
    window = _window(hours, local.date())
    return window is not None and window[0] <= local < window[1]


def add_working_minutes(hours: dict, start: datetime, minutes: int) -> datetime:
    """`start` plus `minutes` of working time (plain minutes when no hours are set)."""
    if not hours:
        return start + timedelta(minutes=minutes)
    remaining = timedelta(minutes=minutes)
    local = start.astimezone(ZoneInfo(hours["timezone"]))
    day = local.date()
    for _ in range(MAX_DAYS_AHEAD):
        window = _window(hours, day)
        if window is not None:
            begin = max(local, window[0])
            if begin < window[1]:
                available = window[1] - begin
                if remaining <= available:
                    return begin + remaining
                remaining -= available
        day += timedelta(days=1)
    return start + timedelta(minutes=minutes)


DAY_NAMES = {1: "Mon", 2: "Tue", 3: "Wed", 4: "Thu", 5: "Fri", 6: "Sat", 7: "Sun"}


def days_text(days) -> str:
    """ISO weekdays in words, runs of three or more as a range: [1, 2, 3, 4, 5] -> "Mon–Fri"."""
    days = sorted({day for day in days if day in DAY_NAMES})
    runs: list[list[int]] = []
    for day in days:
        if runs and day == runs[-1][-1] + 1:
            runs[-1].append(day)
        else:
            runs.append([day])
    parts = []
    for run in runs:
        if len(run) >= 3:
            parts.append(f"{DAY_NAMES[run[0]]}–{DAY_NAMES[run[-1]]}")
        else:
            parts.extend(DAY_NAMES[day] for day in run)
    return ", ".join(parts)


def hours_text(hours: dict) -> str:
    """Stored working hours in words: "Mon–Fri 09:00–17:00 (Europe/Berlin)"; "" for any time."""
    if not hours:
        return ""
    return f"{days_text(hours.get('days', []))} {hours.get('start', '')}–{hours.get('end', '')} " \
           f"({hours.get('timezone', '')})"
