"""The lead page as a rep's workspace: log a touch in place, edit the contact and company details in place.

Each answers htmx with the piece of the page that changed (and, out of band, the pieces that follow from it), and a
browser without scripts with a redirect to the lead page or a page of its own.
"""

from django.contrib import messages
from django.db import IntegrityError
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from leadcrm import policy
from leadcrm.errors import DomainError, Invalid, add_to_form
from leadcrm.policy import Action, allowed

from .. import navigation, services, touches
from ..forms import LeadDetailsForm
from ..lifecycle_forms import TouchForm
from .leads import lead_page, timeline, visible_leads

# Sent with a logged touch, so the cards loaded from other apps (the Distribution card: first touch) ask again.
TOUCH_EVENT = "touch-logged"


def _lead(request, pk):
    return get_object_or_404(visible_leads(request).select_related("account"), pk=pk)


@allowed(Action.WORK_LEADS)
@require_POST
def lead_log(request, pk):
    """Log a call, email, meeting or note with its outcome: a touch that stops the SLA clock and counts for the
    score like any activity. Whoever may work the lead may log on it (policy.visible)."""
    lead = _lead(request, pk)
    form = TouchForm(request.POST, auto_id="log-%s")
    activity = None
    if form.is_valid():
        try:
            activity = services.log_touch(organization_id=request.organization.pk, lead=lead, actor=request.user,
                                          **form.service_arguments())
        except Invalid as exc:  # a refusal of another kind (the lead was erased) goes to the middleware
            add_to_form(form, exc)
    if activity is None:
        if not request.htmx:
            return lead_page(request, lead, status=400, touch_form=form)
        return render(request, "leads/_touch_form.html", {
            "lead": lead, "form": form, "origin": navigation.origin_of(request)}, status=400)
    notice = f"{touches.label(activity.type)} logged."
    if not request.htmx:
        messages.success(request, notice)
        return redirect(navigation.detail_url(request, lead))
    response = render(request, "leads/_touch_logged.html", {
        "lead": lead, "form": TouchForm(auto_id="log-%s"), "notice": notice,
        "activities": timeline(lead.organization_id, lead), "new_activity_id": activity.pk,
        "origin": navigation.origin_of(request), "oob": True})
    response["HX-Trigger"] = TOUCH_EVENT
    return response


def _details_context(request, lead, **extra) -> dict:
    return {"lead": lead, "origin": navigation.origin_of(request),
            "can_edit": policy.can(request, Action.EDIT_LEADS) and lead.erased_at is None,
            "detail_url": navigation.detail_url(request, lead), **extra}


@allowed(Action.WORK_LEADS)
@require_GET
def lead_details(request, pk):
    """The details card (Cancel brings it back in place of the form)."""
    lead = _lead(request, pk)
    if not request.htmx:
        return redirect(navigation.detail_url(request, lead))
    return render(request, "leads/_lead_details.html", _details_context(request, lead, focus=True))


@allowed(Action.EDIT_LEADS)
@require_http_methods(["GET", "POST"])
def lead_details_edit(request, pk):
    """The details as a form (in place, or on a page of its own without scripts); saving goes through the lead
    update service, as the API's PATCH does (the same checks, re-scoring, events, audit)."""
    lead = _lead(request, pk)
    services.check_changeable(lead, LeadDetailsForm.FIELDS)  # an erased lead: a 409 saying so
    if request.method == "GET":
        return _details_form(request, lead, LeadDetailsForm(lead=lead, request=request))
    form = LeadDetailsForm(request.POST, lead=lead, request=request)
    if not form.is_valid():
        return _details_form(request, lead, form, status=400)
    try:
        services.update_lead(lead=lead, data=form.serializer.validated_data, actor=request.user)
    except IntegrityError:  # another lead took the email after it was checked
        form.add_error("email", "Another lead already has this email address.")
        return _details_form(request, lead, form, status=400)
    except DomainError as exc:  # erased meanwhile
        add_to_form(form, exc)
        return _details_form(request, lead, form, status=exc.status)
    if not request.htmx:
        messages.success(request, "Details saved.")
        return redirect(navigation.detail_url(request, lead))
    lead = _lead(request, pk)  # as stored, with its owner and account for the header
    return render(request, "leads/_details_saved.html",
                  _details_context(request, lead, notice="Details saved.", focus=True, oob=True))


def _details_form(request, lead, form, *, status=200):
    context = _details_context(request, lead, form=form.focus_first())
    template = "leads/_lead_details_form.html" if request.htmx else "leads/lead_details_edit.html"
    return render(request, template, context, status=status)
