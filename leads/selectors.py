import itertools
from datetime import timedelta
from decimal import Decimal

from django.db import connection
from django.db.models import (
    BooleanField,
    Case,
    Count,
    DateTimeField,
    ExpressionWrapper,
    F,
    Func,
    Prefetch,
    Q,
    Sum,
    Value,
    When,
    Window,
)
from django.db.models.functions import RowNumber
from django.utils import timezone
from django.utils.text import slugify

from leadcrm import policy, rls
from leadcrm.models import Membership

from .models import (
    Deal,
    DealStageChange,
    DealStatus,
    Form,
    Lead,
    Pipeline,
    SavedView,
    SegmentKind,
    SegmentMember,
    Stage,
)
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


# ----------------------------------------------------------------------------------------------- deal pipelines

BOARD_CARDS = 100  # cards shown per column; the column's count and totals still cover every deal in it


def pipelines_of(organization_id):
    """The org's pipelines, the default first, each with its stages in order (two queries)."""
    return Pipeline.objects.for_org(organization_id).prefetch_related(
        Prefetch("stages", queryset=Stage.objects.for_org(organization_id).order_by("position")))


def _rots_at():
    """When a deal's stay in its stage turns rotten: entered + the stage's limit (NULL: never)."""
    return ExpressionWrapper(
        F("stage_entered_at") + Func(F("stage__rotting_days"), template="make_interval(days => %(expressions)s)"),
        output_field=DateTimeField())


def with_rot(deals, now=None):
    """Deals annotated with `rots_at` and `rotting`: an open deal idle in its stage past the stage's limit."""
    now = now or timezone.now()
    return deals.annotate(rots_at=_rots_at()).annotate(rotting=Case(
        When(status=DealStatus.OPEN, rots_at__lt=now, then=Value(True)), default=Value(False),
        output_field=BooleanField()))


def board_deals(*, organization_id, principal, pipeline, owner_id=None, close_month=None):
    """The deals of a pipeline a principal may see (policy.visible_deals), filtered by owner and by the month of
    their expected close (a date whose day is ignored)."""
    deals = policy.visible_deals(principal, organization_id,
                                 Deal.objects.for_org(organization_id).filter(pipeline=pipeline))
    if owner_id is not None:
        deals = deals.filter(owner_id=owner_id)
    if close_month is not None:
        first = close_month.replace(day=1)
        after = (first + timedelta(days=32)).replace(day=1)
        deals = deals.filter(expected_close__gte=first, expected_close__lt=after)
    return deals


def board(*, organization_id, principal, pipeline, owner_id=None, close_month=None, now=None) -> list[dict]:
    """The board of a pipeline: a column per stage, in order, with its cards (up to BOARD_CARDS, longest in the
    stage first, each with `rotting`), its count, and its total and weighted total (total × the stage's
    probability) per currency. Three queries, whatever the number of stages or deals."""
    now = now or timezone.now()
    stages = list(Stage.objects.for_org(organization_id).filter(pipeline=pipeline).order_by("position"))
    deals = board_deals(organization_id=organization_id, principal=principal, pipeline=pipeline,
                        owner_id=owner_id, close_month=close_month)
    totals = {}
    for row in (deals.order_by().values("stage_id", "currency")
                .annotate(count=Count("pk"), total=Sum("amount")).order_by("stage_id", "currency")):
        totals.setdefault(row["stage_id"], []).append(row)
    ranked = with_rot(deals, now).annotate(rank=Window(RowNumber(), partition_by=[F("stage_id")],
                                                       order_by=[F("stage_entered_at").asc(), F("id").asc()]))
    cards = {}
    for deal in (ranked.filter(rank__lte=BOARD_CARDS).select_related("account", "owner", "stage")
                 .order_by("stage_entered_at", "id")):
        deal.days_in_stage = max(0, (now - deal.stage_entered_at).days) if deal.stage_entered_at else None
        cards.setdefault(deal.stage_id, []).append(deal)
    columns = []
    for stage in stages:
        rows = totals.get(stage.pk, [])
        columns.append({
            "stage": stage, "deals": cards.get(stage.pk, []), "count": sum(row["count"] for row in rows),
            "totals": [{"currency": row["currency"], "total": row["total"],
                        "weighted": (row["total"] * stage.probability / 100).quantize(Decimal("0.01"))}
                       for row in rows]})
    return columns


def rotting_deals(*, organization, owner_ids, now=None) -> dict:
    """{owner id: [deal, …]} of the given owners' open deals idle in their stage longer than the stage's rotting
    limit, the longest rotten first; each deal with `rots_at`, its `stage` and `account` (one query). For the
    today view: `rotting_deals(organization=org, owner_ids=[user.pk])`."""
    organization_id = getattr(organization, "pk", organization)
    deals = with_rot(Deal.objects.for_org(organization_id).filter(
        owner_id__in=list(owner_ids), status=DealStatus.OPEN, stage__rotting_days__isnull=False), now)
    found: dict = {}
    for deal in deals.filter(rotting=True).select_related("stage", "account").order_by("rots_at", "id"):
        found.setdefault(deal.owner_id, []).append(deal)
    return found


def stage_history(deal):
    """A deal's stays in its stages, newest first, with who moved it there."""
    return (DealStageChange.objects.for_org(deal.organization_id).filter(deal=deal).select_related("entered_by")
            .order_by("-entered_at", "-id"))
