"""The sweeper for MQLs whose routing task never ran (a worker killed mid-task, a broker restarted empty)."""

from datetime import datetime, timedelta

from django.utils import timezone

from leadcrm import rls
from leads.models import Lead, LifecycleStage

SWEEP_WINDOW = timedelta(days=1)  # an MQL no rule could place is tried again for this long, then left to people


def _mql_at(entered: dict) -> datetime | None:
    try:
        return datetime.fromisoformat(entered["mql"])
    except (KeyError, TypeError, ValueError):
        return None


def unrouted_mqls(*, older_than: timedelta, now=None) -> dict:
    """{organization id: [lead ids]} of MQLs that became MQLs between a day and `older_than` ago and still have
    no owner and no pool. One query per org, on the (organization, lifecycle_stage) index."""
    now = now or timezone.now()
    earliest, latest = now - SWEEP_WINDOW, now - older_than
    found = {}
    for organization_id in rls.lookup_ids("leadcrm_organization_ids"):  # every org; each read under its own scope
        with rls.scope(organization_id):
            rows = list(Lead.objects.for_org(organization_id)
                        .filter(lifecycle_stage=LifecycleStage.MQL, owner__isnull=True, updated_at__gte=earliest)
                        .exclude(routing__pooled=True).values_list("pk", "stage_entered_at"))
        lead_ids = [pk for pk, entered in rows if (at := _mql_at(entered)) and earliest <= at <= latest]
        if lead_ids:
            found[organization_id] = lead_ids
    return found
