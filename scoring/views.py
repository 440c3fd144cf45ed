"""Browser pages of scoring: the rules (list, form with preview, switch, delete), the org's settings, the
progress of a recalculation, the score panel that the lead page loads, and the predictive model's page (its
accuracy, training, suggested rules and threshold advice)."""

import json

from django.contrib import messages
from django.core.exceptions import NON_FIELD_ERRORS
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from leadcrm import errors, policy
from leadcrm.policy import Action, allowed
from leads.conditions import OPS_BY_KIND, ConditionError
from leads.selectors import leads_for

from . import advice, api, predictive, selectors, services
from .forms import (
    RuleForm,
    SettingsForm,
    SuggestedRulesForm,
    ThresholdPickForm,
    describe_condition,
    describe_limits,
)
from .models import PredictiveModel, PredictiveStatus, RecalculationStatus, RuleKind, ScoringRule

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


def preview_context(result: dict, subject: str = "this rule") -> dict:
    """What scoring/_preview.html shows of a preview (scoring.api.draft_preview): counts and histograms."""
    histogram = result["histogram"]
    return {
        "preview": result,
        "preview_subject": subject,
        "preview_chart": chart_data("bar", histogram["labels"], [("Now", histogram["before"]),
                                                                 (f"With {subject}", histogram["after"])]),
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


# --------------------------------------------------------------------------------------------- predictive scoring

TRAINING_POLL_SECONDS = 2
VERSIONS_SHOWN = 20


def _percent(value):
    return None if value is None else round(value * 100, 1)


def _training_context(request) -> dict:
    latest = PredictiveModel.objects.for_org(request.organization).order_by("-version").first()
    busy = latest is not None and latest.status in (PredictiveStatus.QUEUED, PredictiveStatus.TRAINING)
    return {"latest": latest, "training_busy": busy, "poll_seconds": TRAINING_POLL_SECONDS}


def _predictive_context(request) -> dict:
    """Everything the predictive page shows: the outcomes, the active version and its holdout metrics, the
    versions, and the threshold advice."""
    organization_id = request.organization.pk
    converted, lost = predictive.outcome_counts(organization_id)
    active = predictive.active_model(organization_id)
    metrics = active.metrics if active else {}
    calibration = metrics.get("calibration") or []
    thresholds = advice.threshold_advice(organization_id)
    score_rows = thresholds["score"]
    return {
        **_training_context(request),
        "outcomes": {"converted": converted, "lost": lost},
        "shortfall": predictive.shortfall(converted, lost),
        "active": active, "metrics": metrics,
        "features": [predictive.feature_label(feature) for feature in (active.model.get("features", []) if active
                                                                         else [])],
        "versions": PredictiveModel.objects.for_org(organization_id).order_by("-version")[:VERSIONS_SHOWN],
        "calibration_chart": chart_data("bar", [f"{row['decile']}" for row in calibration], [
            ("Predicted (%)", [_percent(row["predicted"]) for row in calibration]),
            ("Converted (%)", [_percent(row["actual"]) for row in calibration])]),
        "thresholds": thresholds,
        "threshold_chart": chart_data("line", [row["threshold"] for row in score_rows], [
            ("Handed off (%)", [_percent(row["handed_off"]) for row in score_rows]),
            ("Precision (%)", [_percent(row["precision"]) for row in score_rows]),
            ("Recall (%)", [_percent(row["recall"]) for row in score_rows])]),
    }


def _predictive_page(request, *, threshold_form=None, status=200):
    context = _predictive_context(request)
    context["threshold_form"] = threshold_form or ThresholdPickForm()
    return render(request, "scoring/predictive.html", context, status=status)


@org_wide
@require_GET
def predictive_page(request):
    """/scoring/predictive/: the org's conversion model, how accurate it is beside the rules, and its advice."""
    return _predictive_page(request)


@org_wide
@require_POST
def predictive_train(request):
    """Queue a training run; too few outcomes is said on the page (how many more are needed)."""
    try:
        version = predictive.request_training(organization_id=request.organization.pk)
    except predictive.NotEnoughOutcomes as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, f"Training version {version.version}. This page shows its progress.")
    return redirect("scoring:predictive")


@org_wide
@require_GET
def predictive_status(request):
    """The training state the page polls (htmx) while a run is queued or training; the page reloads when it ends."""
    context = _training_context(request)
    response = render(request, "scoring/_predictive_status.html", context)
    if request.GET.get("was_busy") and not context["training_busy"]:
        response["HX-Refresh"] = "true"  # the finished run's metrics, charts and advice: the whole page changes
    return response


def _suggestion_page(request, suggestion: dict, form, status=200):
    rules = suggestion["rules"]
    for rule in rules:
        rule["condition_text"] = describe_condition(rule["kind"], rule["condition"])
    context = {"suggestion": suggestion, "rules": rules, "form": form,
               "replaced": ScoringRule.objects.for_org(request.organization).filter(active=True).count(),
               **preview_context(suggestion["preview"], subject="these rules")}
    return render(request, "scoring/predictive_suggest.html", context, status=status)


@org_wide
@require_POST
def predictive_suggest(request):
    """A draft rule set learnt from the outcomes, with its holdout AUC and the rule preview; saves nothing."""
    suggestion = advice.suggest_rules(request.organization.pk)
    form = SuggestedRulesForm(initial={"rules": json.dumps([
        {key: rule[key] for key in ("name", "kind", "points", "condition", "max_occurrences", "window_days")}
        for rule in suggestion["rules"]])})
    return _suggestion_page(request, suggestion, form)


@org_wide
@require_POST
def predictive_apply(request):
    """Save the draft shown on the suggestion page in place of the active rules."""
    form = SuggestedRulesForm(request.POST)
    if form.is_valid():
        try:
            saved = advice.apply_rules(organization_id=request.organization.pk, rules=form.cleaned_data["rules"],
                                       actor=request.user)
        except ConditionError as exc:
            form.add_error(None, [f"{key}: {' '.join(problems)}" for key, problems in exc.errors.items()])
        else:
            messages.success(request, f"{len(saved)} learnt rule{'s' if len(saved) != 1 else ''} saved; the "
                                      "previous rules are switched off. Every lead is being re-scored.")
            return redirect("scoring:rules")
    messages.error(request, " ".join(str(problem) for problems in form.errors.values() for problem in problems))
    return redirect("scoring:predictive")


@org_wide
@require_POST
def predictive_threshold(request):
    """Set the MQL score from the threshold advice: a share of converters to catch, or a picked row."""
    form = ThresholdPickForm(request.POST)
    if form.is_valid():
        organization_id = request.organization.pk
        try:
            if form.cleaned_data["score"] is not None:
                settings = services.update_settings(organization_id=organization_id, actor=request.user,
                                                    mql_score=form.cleaned_data["score"])
            else:
                settings = advice.set_mql_score_for_recall(organization_id=organization_id, actor=request.user,
                                                           recall=form.cleaned_data["recall"] / 100)
        except errors.DomainError as exc:
            for key, problems in (exc.errors or {"recall": exc.messages}).items():
                form.add_error("recall" if key in ("recall", "mql_score") else None, problems)
        else:
            messages.success(request, f"The MQL threshold is now a score of {settings.mql_score}. Every lead is "
                                      "being re-scored with it.")
            return redirect("scoring:predictive")
    return _predictive_page(request, threshold_form=form, status=400)
