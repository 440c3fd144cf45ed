from datetime import UTC, datetime, time, timedelta

import django_filters
from django.core.exceptions import ValidationError
from django.utils import timezone
from django_filters.fields import IsoDateTimeField, MultipleChoiceField

from .models import AuditAction, AuditEntry


def _day_start(day) -> datetime:
    return timezone.make_aware(datetime.combine(day, time.min), timezone.get_current_timezone())


class _ChoicesField(MultipleChoiceField):
    """A multiple choice where an empty value ("Any" in a page's select) is no choice rather than a bad one."""

    def to_python(self, value):
        return [choice for choice in super().to_python(value) if choice != ""]


class _UTCDateTimeField(IsoDateTimeField):
    """An ISO 8601 instant, in UTC: PostgreSQL takes UTC offsets up to 15:59 only, Python's parser up to 23:59."""

    def to_python(self, value):
        value = super().to_python(value)
        if value is None:
            return value
        try:
            return value.astimezone(UTC)
        except OverflowError:
            raise ValidationError("Enter an instant between the years 1 and 9999.", code="invalid") from None


class InstantFilter(django_filters.IsoDateTimeFilter):
    """`?x=<ISO 8601 date and time>`, compared in UTC, so any offset Python reads is a valid query (never a 500)."""

    field_class = _UTCDateTimeField


class ChoicesFilter(django_filters.MultipleChoiceFilter):
    """`?x=a&x=b` keeps rows whose x is a or b; `?x=` (a select left at "Any") filters nothing."""

    field_class = _ChoicesField


class AuditFilter(django_filters.FilterSet):
    """Shared by `GET /api/v1/audit-log/` and the `/audit/` page. Dates are whole days in the viewer's zone."""

    object_type = django_filters.CharFilter(field_name="object_type")
    object_id = django_filters.CharFilter(field_name="object_id")
    action = ChoicesFilter(choices=AuditAction.choices)
    actor = django_filters.CharFilter(method="filter_actor", help_text="Part of the actor's email or key name")
    start = django_filters.DateFilter(method="filter_start", help_text="From this day on")
    end = django_filters.DateFilter(method="filter_end", help_text="Up to and including this day")

    class Meta:
        model = AuditEntry
        fields = []

    def filter_actor(self, queryset, name, value):
        return queryset.filter(actor_label__icontains=value.strip()) if value.strip() else queryset

    def filter_start(self, queryset, name, value):
        return queryset.filter(time__gte=_day_start(value))

    def filter_end(self, queryset, name, value):
        return queryset.filter(time__lt=_day_start(value + timedelta(days=1)))
