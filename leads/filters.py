import django_filters
from rest_framework.filters import BaseFilterBackend

from leadcrm.filters import ChoicesFilter, InstantFilter

from . import selectors
from .models import Account, Deal, Grade, Lead, LeadTombstone, LifecycleStage, SourceType, Temperature


def _updated_after():
    return InstantFilter(
        field_name="updated_at", lookup_expr="gt",
        help_text="Changed after this instant (ISO 8601). With `ordering=updated_at` the list is the change feed.")


class LeadFilter(django_filters.FilterSet):
    email = django_filters.CharFilter(method="filter_email")
    lifecycle_stage = ChoicesFilter(choices=LifecycleStage.choices)
    owner = django_filters.NumberFilter(field_name="owner_id")
    unassigned = django_filters.BooleanFilter(field_name="owner", lookup_expr="isnull")
    source = django_filters.CharFilter(field_name="source", lookup_expr="iexact")
    source_type = ChoicesFilter(choices=SourceType.choices)
    country = django_filters.CharFilter(method="filter_country")
    industry = django_filters.CharFilter(field_name="industry", lookup_expr="iexact")
    created_after = InstantFilter(field_name="created_at", lookup_expr="gte")
    created_before = InstantFilter(field_name="created_at", lookup_expr="lt")
    updated_after = _updated_after()
    score_min = django_filters.NumberFilter(field_name="score", lookup_expr="gte")
    score_max = django_filters.NumberFilter(field_name="score", lookup_expr="lte")
    grade = ChoicesFilter(choices=Grade.choices)
    temperature = ChoicesFilter(choices=Temperature.choices)
    tag = django_filters.CharFilter(field_name="tags", lookup_expr="contains", method="filter_tag")

    class Meta:
        model = Lead
        fields = []

    def filter_email(self, queryset, name, value):
        return queryset.filter(email=value.strip().lower())

    def filter_country(self, queryset, name, value):
        return queryset.filter(country=value.strip().upper())

    def filter_tag(self, queryset, name, value):
        return queryset.filter(tags__contains=[value])


class LeadSearchFilter(BaseFilterBackend):
    """`?search=` over name, email and company (see selectors.search_leads)."""

    def filter_queryset(self, request, queryset, view):
        return selectors.search_leads(queryset, request.query_params.get("search", ""))

    def get_schema_operation_parameters(self, view):
        return [{
            "name": "search", "required": False, "in": "query",
            "description": "Substring of the name, email or company.", "schema": {"type": "string"},
        }]


class AccountFilter(django_filters.FilterSet):
    updated_after = _updated_after()

    class Meta:
        model = Account
        fields = []


class DealFilter(django_filters.FilterSet):
    updated_after = _updated_after()

    class Meta:
        model = Deal
        fields = []


class TombstoneFilter(django_filters.FilterSet):
    since = InstantFilter(field_name="deleted_at", lookup_expr="gt",
                                             help_text="Removed after this instant (ISO 8601).")

    class Meta:
        model = LeadTombstone
        fields = []
