"""Browser pages of scoring: the rules (list, form with preview, switch, delete), the org's settings, the
progress of a recalculation, and the score panel that the lead page loads."""

from django.contrib import messages
from django.core.exceptions import NON_FIELD_ERRORS
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from leadcrm import policy
from leadcrm.policy import Action, allowed
from leads.conditions import OPS_BY_KIND, ConditionError
from leads.selectors import leads_for

from . import api, selectors, services
from .forms import RuleForm, SettingsForm, describe_condition, describe_limits
from .models import RecalculationStatus, RuleKind, ScoringRule

# How often the progress bar asks for news while the org is being re-scored.
POLL_SECONDS = 1
# Sent with answers that queued a recalculation, so the progress bar on the page wakes up.
RECALC_EVENT = "recalc-changed"

org_wide = allowed(Action.SCORING)


def _rules(request):
    return ScoringRule.objects.for_org(request.organization)


def _with_words(rule: ScoringRule) -> ScoringRule:
    rule.condition_text = describe_condition(rule.kind, rule.condition)
    rule.limits_text = describe_limits(rule)
    return rule


def _status_context(request) -> dict:
    settings = services.get_settings(request.organization.pk)
    busy = settings.recalc_status in (RecalculationStatus.QUEUED, RecalculationStatus.RUNNING)
    return {"scoring_settings": settings, "busy": busy, "poll_seconds": POLL_SECONDS}


def chart_data(chart_type: str, labels: list, datasets: list[tuple[str, list]]) -> dict:
    """What static/js/app.js draws with Chart.js: {type, labels, datasets: [{label, data}]}."""
    return {"type": chart_type, "labels": labels,
            "datasets": [{"label": label, "data": data} for label, data in datasets]}


def preview_context(result: dict) -> dict:
    """What scoring/_preview.html shows of a preview (scoring.api.draft_preview): counts and histograms."""
    histogram = result["histogram"]
    return {
        "preview": result,
        "preview_chart": chart_data("bar", histogram["labels"], [("Now", histogram["before"]),
                                                                 ("With this rule", histogram["after"])]),
        "histogram_rows": list(zip(histogram["labels"], histogram["before"], histogram["after"], strict=True)),
    }


# --------------------------------------------------------------------------------------------- rules


@org_wide
@require_GET
def rule_list(request):
    rules = [_with_words(rule) for rule in _rules(request).order_by("kind", "name", "id")]
    groups = [
        {"kind": kind, "title": title, "rules": [rule for rule in rules if rule.kind == kind]}
        for kind, title in ((RuleKind.FIT, "Fit rules"), (RuleKind.BEHAVIOR, "Behaviour rules"))
    ]
    return render(request, "scoring/rule_list.html", {"groups": groups, **_status_context(request)})


def _save_rule(request, form, rule):
    """Save through the service; a refusal there (a race with another edit) becomes form errors."""
    try:
        return services.save_rule(organization_id=request.organization.pk, rule=rule, actor=request.user,
                                  **form.rule_fields())
    except ConditionError as exc:
        for key, problems in exc.errors.items():
            form.add_error(key if key in form.fields else None, problems)
        return None


@org_wide
@require_http_methods(["GET", "POST"])
def rule_edit(request, pk=None):
    rule = get_object_or_404(_rules(request), pk=pk) if pk else None
    status = 200
    if request.method == "POST":
        form = RuleForm(request.POST, organization_id=request.organization.pk)
        if form.is_valid() and (saved := _save_rule(request, form, rule)) is not None:
            messages.success(request, f"Rule “{saved.name}” saved. Every lead is being re-scored.")
            return redirect("scoring:rules")
        status = 400
    else:
        kind = request.GET.get("kind")  # the empty states link to a new rule of their kind
        if rule is not None:
            form = RuleForm(initial=RuleForm.initial_for(rule), organization_id=request.organization.pk)
        else:
            form = RuleForm(initial={"kind": kind} if kind in RuleKind.values else None,
                            organization_id=request.organization.pk)
    return _form_page(request, {"form": form, "rule": rule}, status)


def _error_summary(form) -> list[tuple[str, str, list]]:
    """(label, input id, messages) per input with errors, for the preview to link to."""
    rows = []
    for name, problems in form.errors.items():
        if name == NON_FIELD_ERRORS:
            rows.append(("", "", problems))
        else:
            rows.append((form[name].label, form[name].id_for_label, problems))
    return rows


def _form_page(request, context, status):
    return render(request, "scoring/rule_form.html", {**context, "ops_by_kind": OPS_BY_KIND}, status=status)


@org_wide
@require_POST
def rule_preview(request, pk=None):
    """What saving the posted rule would change, without saving it: a fragment for htmx, or the form page
    with the preview under it when the browser posts without scripts."""
    rule = get_object_or_404(_rules(request), pk=pk) if pk else None
    form = RuleForm(request.POST, organization_id=request.organization.pk)
    context = {"form": form, "rule": rule}
    if form.is_valid():
        result = api.draft_preview(request.organization.pk, form.rule_fields(), replaces=rule.pk if rule else None)
        context.update(preview_context(result))
    else:
        context["error_summary"] = _error_summary(form)
    if request.htmx:
        return render(request, "scoring/_preview.html", context)
    return _form_page(request, {**context, "show_preview": True}, 200 if form.is_valid() else 400)


@org_wide
@require_POST
def rule_toggle(request, pk):
    """Switch a rule on or off (the posted checkbox is the wanted state, so a repeat changes nothing)."""
    rule = get_object_or_404(_rules(request), pk=pk)
    wanted = request.POST.get("active") == "on"
    error = None
    if rule.active != wanted:
        try:
            rule = services.save_rule(organization_id=request.organization.pk, rule=rule, active=wanted,
                                      actor=request.user)
        except ConditionError as exc:
            rule.refresh_from_db()
            error = " ".join(message for problems in exc.errors.values() for message in problems)
    if request.htmx:
        response = render(request, "scoring/_rule_row.html", {"rule": _with_words(rule), "error": error})
        response["HX-Trigger"] = RECALC_EVENT
        return response
    if error:
        messages.error(request, f"Rule “{rule.name}” cannot be changed: {error} Edit it to fix it.")
    else:
        messages.success(request, f"Rule “{rule.name}” switched {'on' if rule.active else 'off'}.")
    return redirect("scoring:rules")


@org_wide
@require_http_methods(["GET", "POST"])
def rule_delete(request, pk):
    rule = _with_words(get_object_or_404(_rules(request), pk=pk))
    if request.method == "POST":
        services.delete_rule(rule=rule, actor=request.user)
        messages.success(request, f"Rule “{rule.name}” deleted. Every lead is being re-scored.")
        return redirect("scoring:rules")
    return render(request, "scoring/rule_confirm_delete.html", {"rule": rule})


# --------------------------------------------------------------------------------------------- settings


@org_wide
@require_http_methods(["GET", "POST"])
def settings_edit(request):
    settings = services.get_settings(request.organization.pk)
    status = 200
    if request.method == "POST":
        form = SettingsForm(request.POST)
        if form.is_valid():
            changed = form.changed_values(settings)
            if not changed:
                messages.info(request, "Nothing changed.")
                return redirect("scoring:settings")
            try:
                services.update_settings(organization_id=request.organization.pk, actor=request.user, **changed)
            except ConditionError as exc:
                for key, problems in exc.errors.items():
                    form.add_error(key if key in form.fields else None, problems)
            else:
                messages.success(request, "Settings saved. Every lead is being re-scored with them.")
                return redirect("scoring:settings")
        status = 400
    else:
        form = SettingsForm(initial=SettingsForm.initial_for(settings))
    return render(request, "scoring/settings.html", {"form": form, "handoff": services.handoff(settings),
                                                     **_status_context(request)}, status=status)


@org_wide
@require_GET
def recalculation_status(request):
    """The progress fragment the pages poll (htmx) while a recalculation is queued or running."""
    return render(request, "scoring/_recalc_status.html", _status_context(request))


# --------------------------------------------------------------------------------------------- lead page


@allowed(Action.WORK_LEADS)
@require_GET
def lead_panel(request, pk):
    """The lead page's Score panel: the numbers, each rule that contributed, and the score over time."""
    lead = get_object_or_404(policy.visible_to(request, leads_for(request.organization)), pk=pk)
    contributions = selectors.score_explanation(lead, services.load_config(request.organization.pk))
    history = selectors.score_history(lead)
    labels = [timezone.localtime(point["recorded_at"]).strftime("%Y-%m-%d %H:%M") for point in history]
    chart = chart_data("line", labels, [
        ("Score", [point["score"] for point in history]),
        ("Fit", [point["fit_score"] for point in history]),
        ("Behaviour", [point["behavior_score"] for point in history]),
    ])
    context = {
        "lead": lead, "contributions": contributions, "history": history, "history_chart": chart,
        "history_chart_id": f"score-history-{lead.pk}",
        "can_edit_rules": policy.can(request, Action.SCORING),
    }
    template = "scoring/_lead_panel.html" if request.htmx else "scoring/lead_score.html"
    return render(request, template, context)
