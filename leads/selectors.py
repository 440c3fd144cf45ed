from .models import Lead


def leads_for(organization):
    return Lead.objects.for_org(organization).select_related("owner")
