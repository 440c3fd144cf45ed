import itertools

from django.db import connection
from django.db.models import Q
from django.utils.text import slugify

from leadcrm import rls
from leadcrm.models import Membership

from .models import Form, Lead, SavedView, SegmentKind, SegmentMember
from .segments import definition_q


def saved_views_for(organization, user):
    """The views a member may open on the leads list: their own and the org's shared ones, by name."""
    return SavedView.objects.for_org(organization).filter(Q(owner=user) | Q(shared=True)).order_by("name", "pk")


def leads_for(organization):
    return Lead.objects.for_org(organization).select_related("owner")


def search_text(queryset, term: str):
    """Substring search (any case) in the rows' stored `search_text`, served by its trigram index (leads:
    lead_org_search over name, email and company; accounts and deals: *_org_search over their name)."""
    term = term.replace("\x00", "").strip()  # PostgreSQL text cannot hold NUL; no row contains one
    if not term:
        return queryset
    return queryset.filter(search_text__contains=term.upper())


def search_leads(queryset, term: str):
    """Substring search over name, email and company, served by the lead_org_search trigram index."""
    return search_text(queryset, term)


def free_form_slug(name: str) -> str:
    """A slug made from a form's name that no form uses yet.

    Deliberately not scoped to an organization: slugs are public URLs (/f/<slug>/), unique across tenants.
    """
    base = slugify(name)[:70].strip("-") or "form"
    taken = set(Form.objects.filter(slug__startswith=base).values_list("slug", flat=True))
    if base not in taken:
        return base
    return next(f"{base}-{n}" for n in itertools.count(2) if f"{base}-{n}" not in taken)


def segment_leads(segment):
    """The segment's leads as one queryset (one SQL query, however the definition nests)."""
    leads = Lead.objects.for_org(segment.organization_id)
    if segment.kind == SegmentKind.STATIC:
        members = SegmentMember.objects.for_org(segment.organization_id).filter(segment=segment)
        return leads.filter(pk__in=members.values("lead_id"))
    return leads.filter(definition_q(segment.organization_id, segment.definition))


DUPLICATES_PAGE = 25
# Gmail ignores dots and anything after a + in the local part, and googlemail.com is gmail.com.
_GMAIL_KEY = ("replace(split_part(split_part(email, '@', 1), '+', 1), '.', '') || '@gmail.com'")


def duplicate_groups(organization_id, *, after: str = "", limit: int = DUPLICATES_PAGE) -> list[dict]:
    """Groups of likely duplicates, by reason then key, from after `reason:key` (keyset): the same Gmail
    address written differently, the same phone (E.164), the same first name, last name and company."""
    after_reason, _, after_key = after.partition(":")
    sql = f"""
        WITH keys AS (
            SELECT id, 'email' AS reason, {_GMAIL_KEY} AS key FROM leads_lead
            WHERE organization_id = %(org)s AND split_part(email, '@', 2) IN ('gmail.com', 'googlemail.com')
            UNION ALL
            SELECT id, 'phone', phone FROM leads_lead WHERE organization_id = %(org)s AND phone <> ''
            UNION ALL
            SELECT id, 'name_company', lower(first_name || ' ' || last_name || ' @ ' || company) FROM leads_lead
            WHERE organization_id = %(org)s AND first_name <> '' AND last_name <> '' AND company <> ''
        )
        SELECT reason, key, array_agg(id) FROM keys
        WHERE (reason, key) > (%(after_reason)s, %(after_key)s)
        GROUP BY reason, key HAVING count(*) > 1
        ORDER BY reason, key LIMIT %(limit)s
    """
    with connection.cursor() as cursor:
        cursor.execute(sql, {"org": organization_id, "after_reason": after_reason, "after_key": after_key,
                             "limit": limit})
        rows = cursor.fetchall()
    ids = {pk for _, _, group in rows for pk in group}
    leads = Lead.objects.for_org(organization_id).select_related("owner").in_bulk(ids)
    return [{"reason": reason, "key": key,
             "leads": sorted((leads[pk] for pk in group if pk in leads), key=lambda lead: lead.created_at)}
            for reason, key, group in rows]


# ----------------------------------------------------------------------------------------------- finding the org
# The app role sees one org at a time: these ask the SECURITY DEFINER functions of migration 0014 (leadcrm/rls.py).


def organization_of_form(slug: str):
    """The org of an active public form."""
    found = rls.lookup_ids("leads_form_organization", slug)
    return found[0] if found else None


def organization_of_import(import_id):
    found = rls.lookup_ids("leads_import_organization", str(import_id))
    return found[0] if found else None


def organizations_with_stale_imports(since) -> list:
    """Orgs with an import queued or running since before `since`."""
    return rls.lookup_ids("leads_organizations_with_stale_imports", since)


def member_ids_by_email(organization_id) -> dict[str, int]:
    """{email, lower case: user id} of the organization's members: an import names owners by email."""
    return {email.casefold(): user_id for email, user_id in Membership.objects.for_org(organization_id)
            .values_list("user__email", "user_id") if email}
