"""The lean read path (leadcrm/jsonrows.py) answers lists with the JSON the serializer would give, value for value
and key for key, so the serializer stays the one definition of the output."""

import json
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework import serializers
from rest_framework.renderers import JSONRenderer
from rest_framework.test import APIClient

from leadcrm import jsonrows
from leadcrm.models import Role
from leads import services
from leads.api.lifecycle import AccountSerializer, DealSerializer
from leads.models import Account, Deal, Lead
from leads.serializers import LeadSerializer

pytestmark = pytest.mark.django_db

AWKWARD = 'Zoë "Q" O\'Brien \\ \n\t\x01 </script> \u2028 日本 🦄'


@pytest.fixture
def varied(org, member):
    owner = member(Role.REP)
    account = Account.objects.create(organization=org, name="Ünïcode & Co", company_size=12, country="DE")
    plain = services.capture_lead(organization_id=org.pk, data={"email": "plain@example.com"}).lead
    full = services.capture_lead(organization_id=org.pk, data={
        "email": "full@example.com", "first_name": AWKWARD, "last_name": "Ó", "phone": "+14155550123",
        "company": AWKWARD, "company_size": 250, "annual_revenue": Decimal("1234.5"), "country": "FR",
        "tags": ["vip", AWKWARD], "custom_fields": {"plan": "pro", "nested": {"a": [1, 2.5, None, True], "ü": "ß"}},
        "utm_source": "news", "consent_opt_in": True, "owner": owner, "source_type": "paid"}).lead
    Lead.objects.filter(pk=full.pk).update(account=account, score=-7, grade="C", temperature="warm",
                                           annual_revenue=Decimal("0.00"))
    whole_second = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)  # no microseconds: written without them
    Lead.objects.filter(pk=plain.pk).update(created_at=whole_second, last_activity_at=None, updated_at=whole_second)
    erased = services.capture_lead(organization_id=org.pk, data={"email": "erase@example.com"}).lead
    services.erase_lead(lead=erased)
    Deal.objects.create(organization=org, account=account, lead=full, name=AWKWARD, amount=Decimal("10.5"),
                        currency="EUR", expected_close="2026-03-31", owner=owner)
    Deal.objects.create(organization=org, account=account, name="No date", amount=0, status="lost",
                        lost_reason="Price", closed_at=timezone.now())
    return org


def serialized(serializer_class, rows, org):
    data = serializer_class(rows, many=True, context={"organization": org}).data
    return json.loads(JSONRenderer().render(data))


@pytest.mark.parametrize(("path", "model", "serializer_class"), [
    ("/api/v1/leads/", Lead, LeadSerializer),
    ("/api/v1/deals/", Deal, DealSerializer),
    ("/api/v1/accounts/", Account, AccountSerializer),
])
@pytest.mark.parametrize("ordering", ["updated_at", "-created_at"])
def test_the_lean_list_is_the_serializers_json(api, varied, path, model, serializer_class, ordering):
    assert jsonrows.lean_rows(serializer_class) is not None, "this list is served the lean way"
    with CaptureQueriesContext(connection) as queries:
        response = api.get(f"{path}?ordering={ordering}")
    assert any("string_agg" in query["sql"] for query in queries.captured_queries), "PostgreSQL wrote the JSON"
    assert response.status_code == 200 and response["Content-Type"] == "application/json"
    got = json.loads(response.content)["results"]
    terms = [ordering, "-pk" if ordering.startswith("-") else "pk"]
    expected = serialized(serializer_class, model.objects.filter(organization=varied).order_by(*terms), varied)
    assert got == expected
    assert [list(row) for row in got] == [list(row) for row in expected], "the same keys in the same order"


def test_a_browser_in_another_time_zone_gets_the_ordinary_answer(client, varied):
    client.force_login(varied.memberships.get(role=Role.ADMIN).user)
    client.cookies["tz"] = "Europe/Berlin"
    rows = client.get("/api/v1/leads/?ordering=-created_at", HTTP_ACCEPT="application/json").json()["results"]
    assert rows[-1]["created_at"] == "2026-01-02T04:04:05+01:00"  # Berlin time, as the serializer writes it


def test_a_serializer_with_a_field_sql_cannot_write_is_served_the_ordinary_way():
    class Computed(serializers.ModelSerializer):
        shout = serializers.SerializerMethodField()

        class Meta:
            model = Account
            fields = ["id", "shout"]

        def get_shout(self, account) -> str:
            return account.name.upper()

    assert jsonrows.lean_rows(Computed) is None


@pytest.mark.parametrize("field", [
    serializers.CharField(source="company_size"),  # DRF writes "12", the column 12
    serializers.IntegerField(source="annual_revenue"),  # DRF writes int() of the decimal
])
def test_a_field_that_converts_its_column_is_served_the_ordinary_way(field):
    class Converting(serializers.ModelSerializer):
        value = field

        class Meta:
            model = Lead
            fields = ["id", "value"]

    assert jsonrows.lean_rows(Converting) is None


def test_the_browsable_api_is_not_lean(varied):
    client = APIClient()
    client.force_login(varied.memberships.get(role=Role.ADMIN).user)
    response = client.get("/api/v1/leads/?ordering=updated_at", HTTP_ACCEPT="text/html")
    assert response.status_code == 200 and response["Content-Type"].startswith("text/html")
