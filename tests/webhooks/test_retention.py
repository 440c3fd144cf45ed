"""Retention: finished deliveries go with their attempts after WEBHOOKS_RETENTION_DAYS; pending ones stay."""

from datetime import timedelta

import pytest
from django.utils import timezone

from leads import services as lead_services
from webhooks import services, tasks
from webhooks.models import Attempt, Delivery, DeliveryStatus

pytestmark = pytest.mark.django_db


def delivery(org, endpoint, lead, status, days_old, **fields):
    [pk] = services.deliveries_for_lead(organization_id=org.pk, event_type="lead.updated", lead_id=lead.pk,
                                        data={"n": Delivery.objects.count()})
    Delivery.objects.filter(pk=pk).update(status=status, created_at=timezone.now() - timedelta(days=days_old),
                                          **fields)
    Attempt.objects.create(organization_id=org.pk, delivery_id=pk, attempted_at=timezone.now(),
                           url="http://127.0.0.1/hook", status_code=200)
    return Delivery.objects.get(pk=pk)


@pytest.fixture
def setup(org, other_org, local_receivers, receiver, settings):
    settings.WEBHOOKS_RETENTION_DAYS = 30
    made = {}
    for owner in (org, other_org):
        endpoint = services.create_endpoint(organization_id=owner.pk, data={
            "url": receiver.url(), "events": ["lead.updated"]})
        lead = lead_services.capture_lead(organization_id=owner.pk, data={"email": "ada@example.com"}).lead
        made[owner.slug] = {
            "old delivered": delivery(owner, endpoint, lead, DeliveryStatus.DELIVERED, 31),
            "old failed": delivery(owner, endpoint, lead, DeliveryStatus.FAILED, 45),
            "old pending": delivery(owner, endpoint, lead, DeliveryStatus.PENDING, 40),
            "recent delivered": delivery(owner, endpoint, lead, DeliveryStatus.DELIVERED, 29),
        }
        made[owner.slug]["recent replay"] = delivery(owner, endpoint, lead, DeliveryStatus.DELIVERED, 1,
                                                     replay_of=made[owner.slug]["old failed"])
    return made


def test_finished_deliveries_older_than_the_retention_go_with_their_attempts(setup):
    tasks.purge.apply()  # as beat runs it: every org

    for made in setup.values():
        kept = {name for name, d in made.items() if Delivery.objects.filter(pk=d.pk).exists()}
        assert kept == {"old pending", "recent delivered", "recent replay"}
        assert Attempt.objects.filter(delivery_id=made["old delivered"].pk).count() == 0
        assert Attempt.objects.filter(delivery_id=made["recent delivered"].pk).count() == 1
        replay = Delivery.objects.get(pk=made["recent replay"].pk)
        assert replay.replay_of_id is None and replay.payload == made["recent replay"].payload


def test_the_retention_comes_from_settings(setup, settings):
    settings.WEBHOOKS_RETENTION_DAYS = 60
    assert services.purge_old_deliveries() == 0
    settings.WEBHOOKS_RETENTION_DAYS = 7
    assert services.purge_old_deliveries() == 2 * 3  # per org: all but the pending one and the day-old replay
