"""Tombstones: what an integration's copy of the leads must drop (deleted, merged away, erased), kept for a while.

The services that remove a lead write its tombstone in their own transaction, so the two commit together;
`GET /api/v1/leads/deleted/` serves them as a change feed (leadcrm/sync.py).
"""

from datetime import timedelta

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from leadcrm import rls

from ..models import LeadTombstone, TombstoneReason

PURGE_BATCH = 10_000


def record_removal(*, organization_id, leads, reason: str, merged_into=None, at=None) -> None:
    """One tombstone per lead of `leads` (Lead objects, as they were before the change), in one insert."""
    at = at or timezone.now()
    LeadTombstone.objects.bulk_create([
        LeadTombstone(organization_id=organization_id, lead_id=lead.pk, reason=reason, owner_id=lead.owner_id,
                      merged_into=merged_into if reason == TombstoneReason.MERGED else None, deleted_at=at)
        for lead in leads])


def purge_tombstones(*, now=None) -> int:
    """Tombstones older than SYNC_TOMBSTONE_RETENTION_DAYS go, set-based, in every org under its own scope.
    Returns how many went."""
    cutoff = (now or timezone.now()) - timedelta(days=settings.SYNC_TOMBSTONE_RETENTION_DAYS)
    table = connection.ops.quote_name(LeadTombstone._meta.db_table)
    sql = (f"DELETE FROM {table} WHERE id IN (SELECT id FROM {table} WHERE organization_id = %s AND deleted_at < %s "
           f"ORDER BY deleted_at LIMIT {PURGE_BATCH})")
    purged = 0
    for organization_id in rls.lookup_ids("leads_organizations_with_tombstones_before", cutoff):
        with rls.scope(organization_id):
            while True:
                with transaction.atomic(), connection.cursor() as cursor:
                    cursor.execute(sql, [organization_id, cutoff])
                    purged += cursor.rowcount
                if cursor.rowcount < PURGE_BATCH:
                    break
    return purged
