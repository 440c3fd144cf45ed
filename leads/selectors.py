from .models import Lead, lead_search_text


def leads_for(organization):
    return Lead.objects.for_org(organization).select_related("owner")


def search_leads(queryset, term: str):
    """Substring search over name, email and company, served by the lead_org_search trigram index."""
    term = term.strip()
    if not term:
        return queryset
    return queryset.alias(search_text=lead_search_text()).filter(search_text__contains=term.upper())
