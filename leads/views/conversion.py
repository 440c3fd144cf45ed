"""Conversion pages: converting a lead into an account and a deal, winning and losing deals, the deals list
and the account page."""

import uuid

from django.contrib import messages
from django.db.models import Count, Q, Sum
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_http_methods, require_POST

from leadcrm import policy
from leadcrm.paging import keyset_page
from leadcrm.policy import Action, allowed

from .. import services
from ..lifecycle_forms import ConvertForm, LoseDealForm
from ..models import Account, Deal, DealStatus, ReasonKind
from ..services.conversion import CONVERTIBLE_STAGES
from .leads import visible_leads

DEALS_PAGE_SIZE = 50
ACCOUNT_ROWS = 100


def visible_deals(request):
    """Deals the member may see: reps those on their leads or owned by them, other roles the org's."""
    deals = Deal.objects.for_org(request.organization)
    if not policy.can(request, Action.ALL_LEADS):
        deals = deals.filter(Q(lead__owner=request.user) | Q(owner=request.user))
    return deals


def visible_accounts(request):
    """Accounts the member may open: reps those they own or have a lead or deal of, other roles the org's."""
    accounts = Account.objects.for_org(request.organization)
    if not policy.can(request, Action.ALL_LEADS):
        mine = (Q(owner=request.user) | Q(leads__owner=request.user) | Q(deals__owner=request.user)
                | Q(deals__lead__owner=request.user))
        accounts = accounts.filter(pk__in=Account.objects.for_org(request.organization).filter(mine).values("pk"))
    return accounts


def _back(request, deal) -> str:
    """Where a deal action returns to: the page it was started from, else the deal's lead or account."""
    target = request.POST.get("next", "")
    if target and url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()},
                                                  require_https=request.is_secure()):
        return target
    if deal.lead_id:
        return reverse("leads:detail", args=[deal.lead_id])
    return reverse("leads:account-detail", args=[deal.account_id])


@allowed(Action.WORK_LEADS)
@require_http_methods(["GET", "POST"])
def lead_convert(request, pk):
    lead = get_object_or_404(visible_leads(request), pk=pk)
    convertible = lead.lifecycle_stage in CONVERTIBLE_STAGES
    status = 200
    if request.method == "POST":
        form = ConvertForm(request.POST, lead=lead)
        if form.is_valid():
            try:
                account, deal = services.convert_lead(lead=lead, actor=request.user, **form.service_arguments())
            except services.StageMoveRefused as exc:
                form.add_error(None, str(exc))
            except Account.DoesNotExist:
                form.add_error("existing_account", "That account no longer exists; choose another.")
            else:
                messages.success(request, f"Converted: deal “{deal.name}” for account “{account.name}”.")
                return redirect("leads:detail", pk=lead.pk)
        status = 400
    else:
        form = ConvertForm(lead=lead)
    return render(request, "leads/lead_convert.html", {"lead": lead, "form": form, "convertible": convertible},
                  status=status)


@allowed(Action.WORK_LEADS)
@require_POST
def deal_win(request, pk):
    deal = get_object_or_404(visible_deals(request), pk=pk)
    deal = services.win_deal(deal=deal, actor=request.user)  # a closed deal: DomainErrorMiddleware says so
    messages.success(request, f"Deal “{deal.name}” won." + (" The lead is now a customer." if deal.lead_id else ""))
    return redirect(_back(request, deal))


@allowed(Action.WORK_LEADS)
@require_http_methods(["GET", "POST"])
def deal_lose(request, pk):
    deal = get_object_or_404(visible_deals(request).select_related("lead", "account"), pk=pk)
    reasons = services.reasons(request.organization.pk, ReasonKind.LOST)
    status = 200
    if request.method == "POST":
        form = LoseDealForm(request.POST, reasons=reasons)
        if form.is_valid():
            try:
                deal = services.lose_deal(deal=deal, reason=form.cleaned_data["lost_reason"], actor=request.user)
            except services.DealClosed as exc:
                form.add_error(None, str(exc))
            else:
                messages.success(request, f"Deal “{deal.name}” lost: {deal.lost_reason}.")
                return redirect(_back(request, deal))
        status = 400
    else:
        form = LoseDealForm(reasons=reasons)
    return render(request, "leads/deal_lose.html", {"deal": deal, "form": form,
                                                    "next": request.POST.get("next") or request.GET.get("next", "")},
                  status=status)


def _totals(deals) -> list[dict]:
    """Open and won amounts per currency, in one aggregate query."""
    open_, won = Q(status=DealStatus.OPEN), Q(status=DealStatus.WON)
    return list(
        deals.filter(open_ | won).order_by().values("currency")
        .annotate(open_amount=Sum("amount", filter=open_), open_count=Count("pk", filter=open_),
                  won_amount=Sum("amount", filter=won), won_count=Count("pk", filter=won))
        .order_by("currency")
    )


def _uuid_or_none(value):
    try:
        return uuid.UUID(str(value))
    except ValueError:
        return None


@allowed(Action.WORK_LEADS)
def deal_list(request):
    deals = visible_deals(request)
    account = None
    if request.GET.get("account"):  # the account page links here for all of its deals
        account = get_object_or_404(visible_accounts(request), pk=_uuid_or_none(request.GET["account"]))
        deals = deals.filter(account=account)
    status = request.GET.get("status", "")
    if status not in DealStatus.values:
        status = ""
    listed = deals.filter(status=status) if status else deals
    rows, next_url, previous_url = keyset_page(
        request, listed.select_related("account", "lead", "owner"), "-created_at", page_size=DEALS_PAGE_SIZE)
    return render(request, "leads/deal_list.html", {
        "deals": rows, "next_url": next_url, "previous_url": previous_url, "status": status,
        "statuses": DealStatus.choices, "totals": _totals(deals), "account": account,
    })


@allowed(Action.WORK_LEADS)
def account_detail(request, pk):
    account = get_object_or_404(visible_accounts(request).select_related("owner"), pk=pk)
    leads = visible_leads(request).filter(account=account).order_by("-created_at", "-pk")
    deals = visible_deals(request).filter(account=account)
    shown = list(deals.select_related("lead").order_by("-created_at", "-pk")[:ACCOUNT_ROWS])
    lost_reasons = (services.reasons(request.organization.pk, ReasonKind.LOST)
                    if any(deal.status == DealStatus.OPEN for deal in shown) else [])
    return render(request, "leads/account_detail.html", {
        "account": account,
        "leads": leads[:ACCOUNT_ROWS], "lead_count": leads.count(),
        "deals": shown, "deal_count": deals.count(), "totals": _totals(deals), "rows_shown": ACCOUNT_ROWS,
        "lose_form": LoseDealForm(reasons=lost_reasons),
    })
