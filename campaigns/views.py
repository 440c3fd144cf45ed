"""Browser pages of campaigns: the list with each campaign's numbers, a campaign's page (metrics, attribution, cost
entries, members), the create/edit form, and the Campaigns card of the lead page."""

from django.contrib import messages
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from leadcrm import policy
from leadcrm.errors import Invalid, add_to_form
from leadcrm.paging import keyset_page
from leadcrm.policy import Action, allowed
from leads import selectors as lead_selectors
from leads import services as lead_services
from leads.views import bulk as lead_bulk

from . import selectors, services
from .forms import AddMembersForm, CampaignForm, CostForm
from .models import Campaign, CampaignCost, MemberSource

org_wide = allowed(Action.CAMPAIGNS)
MEMBERS_PAGE = 50


def _campaign(request, pk) -> Campaign:
    return get_object_or_404(Campaign.objects.for_org(request.organization), pk=pk)


@org_wide
@require_GET
def campaign_list(request):
    """Every campaign with its members, cost, won revenue and ROI, newest first."""
    campaigns, next_url, previous_url = keyset_page(request, selectors.with_metrics(request.organization.pk),
                                                    "-created_at")
    for campaign in campaigns:
        campaign.roi = selectors.roi(campaign)
    return render(request, "campaigns/campaign_list.html",
                  {"campaigns": campaigns, "next_url": next_url, "previous_url": previous_url})


def _detail(request, campaign, *, cost_form=None, members_form=None, status=200):
    organization_id = request.organization.pk
    annotated = selectors.with_metrics(organization_id).get(pk=campaign.pk)
    members, next_url, previous_url = keyset_page(request, selectors.members(campaign), "-joined_at",
                                                  page_size=MEMBERS_PAGE)
    context = {
        "campaign": annotated, "metrics": selectors.campaign_metrics(annotated),
        "costs": list(selectors.costs(campaign)[:200]), "members": members, "next_url": next_url,
        "previous_url": previous_url,
        "cost_form": cost_form or CostForm(),
        "members_form": members_form or AddMembersForm(organization_id=organization_id),
    }
    return render(request, "campaigns/campaign_detail.html", context, status=status)


@org_wide
@require_GET
def campaign_detail(request, pk):
    return _detail(request, _campaign(request, pk))


@org_wide
def campaign_edit(request, pk=None):
    campaign = _campaign(request, pk) if pk else None
    if request.method == "POST":
        form = CampaignForm(request.POST)
        if form.is_valid():
            try:
                campaign = services.save_campaign(organization_id=request.organization.pk, data=form.cleaned_data,
                                                  instance=campaign)
            except services.CampaignError as exc:
                add_to_form(form, exc)
            else:
                messages.success(request, f"Saved the campaign “{campaign.name}”.")
                return redirect("campaigns:detail", pk=campaign.pk)
        status = 400
    else:
        initial = {field: getattr(campaign, field) for field in services.CAMPAIGN_FIELDS} if campaign else {}
        form, status = CampaignForm(initial=initial), 200
    return render(request, "campaigns/campaign_form.html", {"form": form, "campaign": campaign}, status=status)


@org_wide
@require_POST
def campaign_delete(request, pk):
    campaign = _campaign(request, pk)
    services.delete_campaign(campaign=campaign)
    messages.success(request, f"Deleted the campaign “{campaign.name}”.")
    return redirect("campaigns:list")


@org_wide
@require_POST
def cost_add(request, pk):
    campaign = _campaign(request, pk)
    form = CostForm(request.POST)
    if form.is_valid():
        try:
            services.add_cost(campaign=campaign, **form.cleaned_data)
        except services.CampaignError as exc:
            add_to_form(form, exc)
        else:
            messages.success(request, "Cost entry added.")
            return redirect("campaigns:detail", pk=campaign.pk)
    return _detail(request, campaign, cost_form=form, status=400)


@org_wide
@require_POST
def cost_delete(request, pk, cost_id):
    campaign = _campaign(request, pk)
    cost = get_object_or_404(CampaignCost.objects.for_org(request.organization).filter(campaign=campaign),
                             pk=cost_id)
    services.delete_cost(cost=cost)
    messages.success(request, "Cost entry removed.")
    return redirect("campaigns:detail", pk=campaign.pk)


@org_wide
@require_POST
def members_add(request, pk):
    campaign = _campaign(request, pk)
    organization_id = request.organization.pk
    form = AddMembersForm(request.POST, organization_id=organization_id)
    if form.is_valid():
        data = form.cleaned_data
        try:
            if data["segment"]:
                leads, source = lead_selectors.segment_leads(data["segment"]), MemberSource.SEGMENT
            else:
                leads, source = lead_services.leads_by_emails(organization_id, data["emails"]), MemberSource.MANUAL
        except lead_services.UnknownLeads as exc:
            form.add_error("emails", str(exc))
        else:
            added = services.add_members(campaign=campaign, leads=leads, status=data["status"], source=source)
            messages.success(request, f"{added} lead{'s' if added != 1 else ''} added or moved forward.")
            return redirect("campaigns:detail", pk=campaign.pk)
    return _detail(request, campaign, members_form=form, status=400)


@org_wide
@require_POST
def leads_add(request):
    """The leads list's bulk action: put the selected leads (ticked, or all that match the list) into a campaign,
    chosen on the page that also confirms how many."""
    try:
        picked = lead_bulk.selected(request)
    except Invalid as exc:
        return lead_bulk.ask(request, None, title="Nothing changed", action_url="", button="", problems=exc.messages,
                             status=400)
    campaigns = Campaign.objects.for_org(request.organization).order_by("name", "pk")
    chosen = request.POST.get("campaign")
    campaign = campaigns.filter(pk=lead_bulk.uuid_or_none(chosen)).first() if chosen else None
    if campaign is None or not lead_bulk.confirmed(request):
        problems = ["Choose a campaign."] if chosen is not None and campaign is None else []
        if not campaigns.exists():
            problems = ["There is no campaign yet: make one on the Campaigns page first."]
        return lead_bulk.ask(request, picked, title="Add to a campaign", action_url=reverse("campaigns:leads-add"),
                             button="Add to the campaign", problems=problems, status=400 if problems else 200,
                             choice={"name": "campaign", "label": "Campaign", "value": chosen or "",
                                     "options": [(str(each.pk), each.name) for each in campaigns]})
    added = services.add_members(campaign=campaign, leads=picked.leads, source=MemberSource.MANUAL)
    messages.success(request, f"{added:,} lead{'s' if added != 1 else ''} added to “{campaign.name}”.")
    return redirect(lead_bulk.back(request))


@org_wide
@require_POST
def member_remove(request, pk, lead_id):
    campaign = _campaign(request, pk)
    member = get_object_or_404(selectors.members(campaign), lead_id=lead_id)
    services.remove_members(campaign=campaign, leads=lead_selectors.leads_for(request.organization)
                            .filter(pk=member.lead_id))
    messages.success(request, f"Removed {member.lead} from the campaign.")
    return redirect("campaigns:detail", pk=campaign.pk)


@allowed(Action.WORK_LEADS)
@require_GET
def lead_card(request, pk):
    """The lead page's Campaigns card: the campaigns the lead joined, when, how and with what status."""
    lead = get_object_or_404(policy.visible_to(request, lead_selectors.leads_for(request.organization)), pk=pk)
    context = {"lead": lead, "memberships": list(selectors.campaigns_of_lead(request.organization.pk, lead.pk)),
               "can_open": policy.can(request, Action.CAMPAIGNS)}
    template = "campaigns/_lead_card.html" if request.htmx else "campaigns/lead_campaigns.html"
    return render(request, template, context)
