"""Form management pages, and the public form that visitors fill in (hosted, framed or posted from other sites)."""

import html
import ipaddress
import logging
import unicodedata
from urllib.parse import unquote_to_bytes

from csp.decorators import csp_replace
from django.conf import settings
from django.contrib import messages
from django.db.models import Count, OuterRef, Subquery
from django.db.models.functions import Coalesce
from django.http import Http404, HttpResponseRedirect
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.clickjacking import xframe_options_exempt
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_http_methods
from django_ratelimit.core import get_usage

from leadcrm import rls
from leadcrm.paging import keyset_page
from leadcrm.policy import Action, allowed

from .. import selectors, services
from ..forms import HONEYPOT_FIELD, FormSettingsForm, PublicLeadForm
from ..models import Form, FormSubmission
from ..serializers import FORM_HIDDEN_KEYS, LeadSerializer

logger = logging.getLogger(__name__)

# The public form is framed by the sites that embed it, and after a submission may redirect to any address the
# marketer chose: those two directives are open on its pages only.
PUBLIC_FORM_CSP = {"frame-ancestors": ["*"], "form-action": None}

UTM_KEYS = ("utm_source", "utm_medium", "utm_campaign", "utm_term", "utm_content")
REFERRER_PARAM = "referrer"


# --- marketer pages -------------------------------------------------------------------------------------


@allowed(Action.FORMS)
def form_list(request):
    counts = (
        FormSubmission.objects.for_org(request.organization).filter(form=OuterRef("pk"))
        .values("form").annotate(n=Count("pk")).values("n")
    )
    # A correlated count runs for the page's rows only, not for every submission of the org.
    queryset = Form.objects.for_org(request.organization).annotate(submission_count=Coalesce(Subquery(counts), 0))
    forms, next_url, previous_url = keyset_page(request, queryset, "-created_at")
    return render(request, "leads/form_list.html", {
        "forms": forms, "next_url": next_url, "previous_url": previous_url,
    })


@allowed(Action.FORMS)
def form_edit(request, pk=None):
    instance = get_object_or_404(Form.objects.for_org(request.organization), pk=pk) if pk else None
    if request.method == "POST":
        form = FormSettingsForm(request.POST, organization=request.organization, instance=instance, request=request)
        if form.is_valid() and form.save() is not None:
            messages.success(request, f"Form “{form.saved.name}” saved.")
            return redirect("leads:form-detail", pk=form.saved.pk)
        status = 400
    else:
        form = FormSettingsForm(organization=request.organization, instance=instance, request=request)
        status = 200
    return render(request, "leads/form_edit.html", {"form": form, "capture_form": instance}, status=status)


@allowed(Action.FORMS)
def form_detail(request, pk):
    capture_form = get_object_or_404(Form.objects.for_org(request.organization), pk=pk)
    public_url = request.build_absolute_uri(reverse("leads:public-form", args=[capture_form.slug]))
    script_url = request.build_absolute_uri(reverse("leads:public-form-embed", args=[capture_form.slug]))
    # Plain strings escaped for HTML once, because the marketer pastes them into HTML; the template
    # escapes them again so the page shows them as text.
    iframe_snippet = (
        f'<iframe src="{html.escape(public_url)}" title="{html.escape(capture_form.name)}" width="100%" '
        f'height="640" style="border:0;max-width:640px" loading="lazy"></iframe>'
    )
    script_snippet = f'<script src="{html.escape(script_url)}" async></script>'
    submissions = FormSubmission.objects.for_org(request.organization).filter(form=capture_form).select_related("lead")
    rows, next_url, previous_url = keyset_page(request, submissions, "-created_at")
    return render(request, "leads/form_detail.html", {
        "capture_form": capture_form, "public_url": public_url, "iframe_snippet": iframe_snippet,
        "script_snippet": script_snippet, "submissions": rows, "next_url": next_url, "previous_url": previous_url,
    })


# --- public form ----------------------------------------------------------------------------------------


def _active_form_or_404(slug: str) -> Form:
    # Public and unauthenticated: the slug (unique across tenants) is what picks the organization.
    organization_id = selectors.organization_of_form(slug)
    if organization_id is None:
        raise Http404("No such form.")
    rls.set_organization(organization_id)
    form = Form.objects.filter(slug=slug, is_active=True).select_related("organization").first()
    if form is None:  # deactivated meanwhile
        raise Http404("No such form.")
    return form


def client_ip(request) -> str | None:
    """REMOTE_ADDR. Behind a reverse proxy, the proxy (or the WSGI server, e.g. gunicorn's
    --forwarded-allow-ips) must set it to the visitor's address, or all visitors share one limit."""
    try:
        return str(ipaddress.ip_address(request.META.get("REMOTE_ADDR", "").strip()))
    except ValueError:
        return None


def _rate_key(group, request) -> str:
    ip = client_ip(request)
    if ip and ":" in ip:  # one IPv6 host can use a whole /64
        return str(ipaddress.ip_network(f"{ip}/64", strict=False).network_address)
    return ip or "unknown"


def _retry_after(request, form) -> int:
    """Counts this submission; seconds the address must wait when it is over the form's limit, else 0."""
    try:
        usage = get_usage(request, group=f"public-form:{form.pk}", key=_rate_key, rate=settings.FORM_RATE_LIMIT,
                          method="POST", increment=True)
    except Exception:  # a cache outage must not cost a lead: accept and log
        logger.exception("Rate limit check failed for form %s", form.pk)
        return 0
    if usage is None or not usage["should_limit"]:
        return 0
    return usage["time_left"] if usage["time_left"] > 0 else 60


def _clean_text(value, limit: int) -> str:
    """Carried tracking values: no control characters (PostgreSQL rejects NUL), trimmed, bounded."""
    text = "".join(ch for ch in str(value or "") if unicodedata.category(ch) != "Cc" and ch != "\ufffd")
    return text.strip()[:limit]


def _own_page(request, url: str) -> bool:
    return url.startswith(request.build_absolute_uri(request.path))


def _carried_values(request) -> dict:
    """UTM parameters and the referrer seen when the page was opened, kept for the POST in hidden inputs."""
    values = {key: _clean_text(request.GET.get(key), 200) for key in UTM_KEYS}
    referrer = request.GET.get(REFERRER_PARAM) or request.META.get("HTTP_REFERER", "")
    values[REFERRER_PARAM] = "" if _own_page(request, referrer) else _clean_text(referrer, 1000)
    return values


def _touch(request, form) -> dict:
    touch = {"form": form.slug}
    for key in UTM_KEYS:
        value = _clean_text(request.POST.get(key) or request.GET.get(key), 200)
        if value:
            touch[key] = value
    referrer = request.POST.get(REFERRER_PARAM) or request.GET.get(REFERRER_PARAM)
    if not referrer:  # a form on another site posting here directly
        header = request.META.get("HTTP_REFERER", "")
        referrer = "" if _own_page(request, header) else header
    referrer = _clean_text(referrer, 1000)
    if referrer:
        touch["referrer"] = referrer
    return touch


def _invalid_utf8_fields(request) -> set[str]:
    """Names of posted fields whose value is not UTF-8 (Django would quietly decode them with substitutes)."""
    if request.content_type == "application/x-www-form-urlencoded":
        if (request.encoding or "utf-8").lower().replace("_", "-") not in ("utf-8", "utf8"):
            return set()  # the sender declared another charset, which Django honours
        bad = set()
        for pair in request.body.split(b"&"):
            name, _, value = pair.partition(b"=")
            name, value = (unquote_to_bytes(part.replace(b"+", b" ")) for part in (name, value))
            try:
                name.decode("utf-8")
                value.decode("utf-8")
            except UnicodeDecodeError:
                bad.add(name.decode("utf-8", "replace"))
        return bad
    return {name for name, values in request.POST.lists() if any("\ufffd" in value for value in values)}


def _render_public(request, form, public, carried, status=200, submitted=False):
    response = render(request, "leads/form_public.html", {
        "capture_form": form, "form": public, "carried": carried, "submitted": submitted,
        "honeypot_name": HONEYPOT_FIELD,
    }, status=status)
    return response


def _success(request, form):
    if form.redirect_url:
        response = HttpResponseRedirect(form.redirect_url)
        response.status_code = 303
        return response
    return _render_public(request, form, None, {}, submitted=True)


@csrf_exempt  # posted from other sites and from inside iframes, by visitors without a session
@xframe_options_exempt  # other sites frame it (the embed snippets)
@csp_replace(PUBLIC_FORM_CSP)
@require_http_methods(["GET", "HEAD", "POST"])
def public_form(request, slug):
    form = _active_form_or_404(slug)
    if request.method != "POST":
        return _render_public(request, form, PublicLeadForm(capture_form=form), _carried_values(request))

    retry_after = _retry_after(request, form)
    if retry_after:
        return rate_limited(request, retry_after=retry_after)
    if request.POST.get(HONEYPOT_FIELD, "").strip():
        logger.info("Honeypot filled on form %s; nothing stored", form.pk)
        return _success(request, form)  # look like a success, so bots learn nothing

    carried = {key: _clean_text(request.POST.get(key), 1000 if key == REFERRER_PARAM else 200)
               for key in (*UTM_KEYS, REFERRER_PARAM)}
    public = PublicLeadForm(request.POST, capture_form=form)
    valid = public.is_valid()
    undecodable = _invalid_utf8_fields(request)
    for name in sorted(undecodable):
        public.add_error(name if name in public.fields and name != HONEYPOT_FIELD else None,
                         "This contains characters that are not valid UTF-8 text.")
    if valid and not undecodable:
        hidden = {key: value for key, value in form.hidden_values.items() if key in FORM_HIDDEN_KEYS}
        lead_input = LeadSerializer(data={**hidden, **public.typed_values()},
                                    context={"organization": form.organization})
        if lead_input.is_valid():
            values = dict(lead_input.validated_data)
            touch = _touch(request, form)
            for key in UTM_KEYS:
                if touch.get(key) and not values.get(key):
                    values[key] = touch[key]
            data = public.typed_values()
            if data.get("consent_opt_in"):
                data["consent_text"] = public.fields["consent_opt_in"].label  # what they agreed to
            services.submit_form(form=form, values=values, data=data, touch=touch, ip_address=client_ip(request),
                                 referrer=touch.get("referrer", ""))
            return _success(request, form)
        if public.add_lead_errors(lead_input.errors):
            logger.warning("Form %s has hidden values the lead rules reject: %s", form.pk, lead_input.errors)
    return _render_public(request, form, public, carried, status=400)


@require_GET
def form_embed_js(request, slug):
    """A script for other sites: it puts the form in an iframe where the script tag is, passing on the
    page's UTM parameters and address (an iframe's own Referer is often cut to the origin)."""
    form = _active_form_or_404(slug)
    response = render(request, "leads/form_embed.js", {
        "form_url": request.build_absolute_uri(reverse("leads:public-form", args=[form.slug])),
        "form_name": form.name, "utm_keys": UTM_KEYS, "referrer_param": REFERRER_PARAM,
    }, content_type="text/javascript; charset=utf-8")
    response["Cache-Control"] = "public, max-age=300"
    return response


def rate_limited(request, exception=None, retry_after: int = 60):
    """429 for a visitor who sent too much: a plain page that can be shown inside an iframe."""
    response = render(request, "leads/form_rate_limited.html", {"retry_after": retry_after}, status=429)
    response["Retry-After"] = str(retry_after)
    response.xframe_options_exempt = True
    response._csp_replace = PUBLIC_FORM_CSP
    return response
