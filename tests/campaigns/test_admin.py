"""The Django admin of campaigns is scoped to the org admin's organization, and saves are checked."""

import pytest

from campaigns.models import Campaign
from leadcrm.models import Membership, Role

from . import make_campaign

pytestmark = pytest.mark.django_db


def test_org_admin_sees_and_edits_only_their_campaigns(client, org, other_org):
    ours = make_campaign(org, "Ours", utm_campaign="ours")
    make_campaign(org, "Taken", utm_campaign="taken")
    theirs = make_campaign(other_org, "Theirs")
    admin = Membership.objects.get(organization=org, role=Role.ADMIN).user
    admin.is_staff = True
    admin.save()
    client.force_login(admin)

    listing = client.get("/admin/campaigns/campaign/").content.decode()
    assert "Ours" in listing and "Theirs" not in listing
    assert client.get(f"/admin/campaigns/campaign/{theirs.pk}/change/").status_code in (302, 404)

    form = {"name": "Ours", "channel": "event", "status": "active", "currency": "USD", "utm_campaign": "TAKEN",
            "costs-TOTAL_FORMS": "0", "costs-INITIAL_FORMS": "0"}
    response = client.post(f"/admin/campaigns/campaign/{ours.pk}/change/", form)
    assert response.status_code == 200 and "already uses this utm_campaign" in response.content.decode()
    form["utm_campaign"] = "ours-2"
    assert client.post(f"/admin/campaigns/campaign/{ours.pk}/change/", form).status_code == 302
    assert Campaign.objects.get(pk=ours.pk).utm_campaign == "ours-2"
