"""Settings → Activity types: the built-in types and the org's own, which it registers and deletes here."""

from django.contrib import messages
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from leadcrm.errors import Invalid
from leadcrm.policy import Action, allowed

from .. import activity_types
from ..models import ActivityType


@allowed(Action.SCORING)
@require_http_methods(["GET", "POST"])
def activity_type_list(request):
    organization_id = request.organization.pk
    errors, values, status = {}, {}, 200
    if request.method == "POST":
        values = {"key": request.POST.get("key", ""), "label": request.POST.get("label", "")}
        try:
            created = activity_types.create(organization_id=organization_id, **values)
        except Invalid as exc:
            errors, status = exc.errors, 400
        else:
            messages.success(request, f"Activity type “{created.label}” added: capture, scoring rules and segments "
                                      f"accept {created.key} now.")
            return redirect("leads:activity-types")
    return render(request, "leads/activity_types.html", {
        "builtin": ActivityType.choices, "custom": activity_types.custom(organization_id), "errors": errors,
        "values": values}, status=status)


@allowed(Action.SCORING)
@require_POST
def activity_type_delete(request, key):
    activity_type = get_object_or_404(activity_types.custom(request.organization.pk), key=key)
    activity_types.delete(activity_type=activity_type)  # in use: the domain-error page says by what
    messages.success(request, f"Activity type “{activity_type.label}” deleted.")
    return redirect("leads:activity-types")
