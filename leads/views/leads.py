from django.shortcuts import get_object_or_404, render

from leadcrm.paging import keyset_page
from leadcrm.views import org_member_required

from .. import selectors
from ..filters import LeadFilter
from ..models import Activity, Grade, LifecycleStage, SourceType

SORTS = {
    "-created_at": "Newest",
    "created_at": "Oldest",
    "-score": "Highest score",
    "-last_activity_at": "Recently active",
    "-updated_at": "Recently updated",
}


@org_member_required
def lead_list(request):
    queryset = selectors.leads_for(request.organization)
    if request.membership.role == "rep":
        queryset = queryset.filter(owner=request.user)
    filterset = LeadFilter(request.GET, queryset=queryset)
    queryset = filterset.qs if filterset.is_valid() else queryset.none()
    search = request.GET.get("search", "").strip()
    queryset = selectors.search_leads(queryset, search)
    sort = request.GET.get("ordering", "-created_at")
    if sort not in SORTS:
        sort = "-created_at"
    leads, next_url, previous_url = keyset_page(request, queryset, sort)
    return render(request, "leads/lead_list.html", {
        "leads": leads, "filterset": filterset, "search": search, "sort": sort, "sorts": SORTS,
        "next_url": next_url, "previous_url": previous_url, "stages": LifecycleStage.choices,
        "grades": Grade.choices, "source_types": SourceType.choices,
    })


@org_member_required
def lead_detail(request, pk):
    queryset = selectors.leads_for(request.organization)
    if request.membership.role == "rep":
        queryset = queryset.filter(owner=request.user)
    lead = get_object_or_404(queryset, pk=pk)
    activities = (
        Activity.objects.for_org(request.organization).filter(lead=lead).select_related("actor")
        .order_by("-occurred_at")[:100]
    )
    return render(request, "leads/lead_detail.html", {"lead": lead, "activities": activities})
