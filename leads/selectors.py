import itertools

from django.utils.text import slugify

from .models import Form, Lead, lead_search_text


def leads_for(organization):
    return Lead.objects.for_org(organization).select_related("owner")


def search_leads(queryset, term: str):
    """Substring search over name, email and company, served by the lead_org_search trigram index."""
    term = term.replace("\x00", "").strip()  # PostgreSQL text cannot hold NUL; no lead contains one
    if not term:
        return queryset
    return queryset.alias(search_text=lead_search_text()).filter(search_text__contains=term.upper())


def free_form_slug(name: str) -> str:
    """A slug made from a form's name that no form uses yet.

    Deliberately not scoped to an organization: slugs are public URLs (/f/<slug>/), unique across tenants.
    """
    base = slugify(name)[:70].strip("-") or "form"
    taken = set(Form.objects.filter(slug__startswith=base).values_list("slug", flat=True))
    if base not in taken:
        return base
    return next(f"{base}-{n}" for n in itertools.count(2) if f"{base}-{n}" not in taken)
