"""Browser pages of nurturing. Sections: templates (list by folder, editor with live preview, versions, delete),
then sequences."""

from django.contrib import messages
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from leadcrm import policy
from leadcrm.errors import DomainError
from leadcrm.paging import keyset_page
from leadcrm.policy import Action, allowed
from leads.models import Lead

from . import rendering, selectors, services
from .forms import PreviewForm, TemplateForm
from .views_sequences import with_percents

org_wide = allowed(Action.NURTURE)

# ----------------------------------------------------------------------------------------------- templates


def _template(request, pk):
    return get_object_or_404(selectors.templates(request.organization.pk), pk=pk)


def _visible_leads(request):
    """The leads the member may preview with: the org's leads they see (the policy's one rule)."""
    return policy.visible_to(request, Lead.objects.for_org(request.organization.pk))


def _editor(request, context, status=200):
    return render(request, "nurturing/template_form.html", {
        **context,
        "merge_fields": rendering.MERGE_FIELDS, "allowed_filters": rendering.ALLOWED_FILTERS,
        "folders": selectors.folders(request.organization.pk),
    }, status=status)


@org_wide
@require_GET
def template_list(request):
    groups = selectors.template_groups(request.organization.pk)
    return render(request, "nurturing/template_list.html", {
        "groups": groups, "has_templates": any(group["templates"] for group in groups)})


@org_wide
@require_http_methods(["GET", "POST"])
def template_edit(request, pk=None):
    template = _template(request, pk) if pk else None
    current = selectors.current_version(template) if template else None
    if request.method == "GET":
        initial = {"name": "", "subject": "Hi {{ lead.first_name|default:\"there\" }}",
                   "html": "<p>Hi {{ lead.first_name|default:\"there\" }},</p>\n\n<p></p>\n\n"
                           "<p>{{ owner.signature|linebreaksbr }}</p>\n"
                           "<p><small><a href=\"{{ unsubscribe_url }}\">Unsubscribe</a></small></p>\n",
                   "text": "Hi {{ lead.first_name|default:\"there\" }},\n\n\n\n{{ owner.signature }}\n\n"
                           "Unsubscribe: {{ unsubscribe_url }}\n"}
        if template is not None:
            initial = {"name": template.name, "folder": template.folder.name if template.folder_id else "",
                       "subject": current.subject if current else "", "html": current.html if current else "",
                       "text": current.text if current else ""}
        return _editor(request, {"form": TemplateForm(initial=initial), "template": template, "current": current})
    form = TemplateForm(request.POST)
    if form.is_valid():
        data = form.cleaned_data
        try:
            if template is None:
                template = services.create_template(
                    organization_id=request.organization.pk, name=data["name"], folder=data["folder"] or None,
                    subject=data["subject"], html=data["html"], text=data["text"], actor=request.user)
                messages.success(request, f"Template “{template.name}” saved as version 1.")
            else:
                before = current.number if current else 0
                services.update_template(template=template, name=data["name"], folder=data["folder"] or None,
                                         subject=data["subject"], html=data["html"], text=data["text"],
                                         actor=request.user)
                after = selectors.current_version(template)
                if after.number != before:
                    messages.success(request, f"Template “{template.name}” saved as version {after.number}.")
                else:
                    messages.info(request, f"Template “{template.name}” saved; the content did not change, so "
                                           f"it is still version {after.number}.")
            return redirect("nurturing:template-edit", pk=template.pk)
        except (rendering.TemplateProblem, services.TemplateRefused) as exc:
            form.add_problems(exc.errors)
    return _editor(request, {"form": form, "template": template, "current": current}, status=400)


@org_wide
@require_POST
def template_preview(request, pk=None):
    """The live preview (htmx fragment): the posted content rendered for the chosen lead, or the sample lead."""
    if pk:
        _template(request, pk)  # another org's template is a 404 here too
    form = PreviewForm(request.POST)
    context = {"lead_key": request.POST.get("lead", "")}
    status = 200
    if form.is_valid():
        data = form.cleaned_data
        lead = selectors.preview_lead(request.organization.pk, data["lead"], leads=_visible_leads(request),
                                      search=True)
        if data["lead"] and lead is None:
            context["lead_missing"] = True
            status = 400
        context["lead"] = lead
        try:
            context["rendered"] = rendering.preview(data["subject"], data["html"], data["text"], lead=lead,
                                                    organization=request.organization)
        except rendering.TemplateProblem as exc:
            context["problems"] = [(part, problems) for part, problems in exc.errors.items()]
            status = 400
    else:
        context["problems"] = list(form.errors.items())
        status = 400
    if request.htmx:  # htmx swaps only 2xx answers: the fragment itself says what is wrong
        return render(request, "nurturing/template_preview.html", context)
    # Without scripts the Preview button posts the whole editor: show it again with the preview under it.
    template = _template(request, pk) if pk else None
    return _editor(request, {**context, "form": TemplateForm(request.POST), "template": template,
                             "current": selectors.current_version(template) if template else None,
                             "show_preview": True}, status=status)


@org_wide
@require_POST
def template_test_email(request, pk=None):
    """"Send me a test": the editor's content as it is now (saved or not), rendered for the chosen lead or the
    sample lead, mailed to the signed-in member (services.send_test_email). htmx shows the outcome under the
    buttons; without scripts the editor comes back with it."""
    template = _template(request, pk) if pk else None  # another org's template is a 404 here too
    form = PreviewForm(request.POST)
    result, status = {}, 200
    if form.is_valid():
        data = form.cleaned_data
        lead = selectors.preview_lead(request.organization.pk, data["lead"], leads=_visible_leads(request),
                                      search=True)
        if data["lead"] and lead is None:
            result["problems"] = [f"No lead of this organization matches “{data['lead']}”: pick one from the "
                                  "list, or leave it empty for the sample lead."]
            status = 400
        else:
            try:
                result["sent_to"] = services.send_test_email(
                    organization=request.organization, user=request.user, subject=data["subject"],
                    html=data["html"], text=data["text"], lead=lead)
                result["lead"] = lead
            except rendering.TemplateProblem as exc:
                result["problems"] = [f"{part}: {message}" for part, messages in exc.errors.items()
                                      for message in messages]
                status = 400
            except DomainError as exc:  # no address, too many just now, the mail server refused
                result["problems"], status = exc.messages, exc.status
    else:
        result["problems"] = [f"{part}: {message}" for part, messages in form.errors.items() for message in messages]
        status = 400
    if request.htmx:
        return render(request, "nurturing/_test_email_result.html", {"result": result}, status=status)
    return _editor(request, {"form": TemplateForm(request.POST), "template": template,
                             "lead_key": request.POST.get("lead", ""), "test_result": result,
                             "current": selectors.current_version(template) if template else None}, status=status)


@org_wide
@require_GET
def template_lead_options(request):
    """The options of the preview's lead picker: leads whose email, name or company contains what was typed."""
    query = request.GET.get("lead", "")[:254].replace("\x00", "")
    leads = selectors.preview_lead_options(_visible_leads(request), query)
    return render(request, "nurturing/template_lead_options.html", {"leads": leads, "query": query.strip()})


@org_wide
@require_GET
def template_versions(request, pk):
    template = _template(request, pk)
    rows, next_url, previous_url = keyset_page(request, selectors.versions(template), "-number", page_size=20)
    numbers = selectors.version_stats(request.organization.pk, [version.pk for version in rows])
    empty = selectors.with_rates({key: 0 for key in ("sent", "bounced", "opened", "clicked", "unsubscribed")})
    for version in rows:
        version.numbers = with_percents(dict(numbers.get(version.pk, empty)))
    return render(request, "nurturing/template_versions.html", {
        "template": template, "versions": rows, "next_url": next_url, "previous_url": previous_url})


@org_wide
@require_http_methods(["GET", "POST"])
def template_delete(request, pk):
    template = _template(request, pk)
    if request.method == "POST":
        try:
            services.delete_template(template=template, actor=request.user)
        except services.TemplateInUse as exc:
            return render(request, "nurturing/template_confirm_delete.html",
                          {"template": template, "problems": exc.messages}, status=409)
        messages.success(request, f"Template “{template.name}” deleted.")
        return redirect("nurturing:templates")
    return render(request, "nurturing/template_confirm_delete.html", {"template": template})


@org_wide
@require_POST
def folder_edit(request, pk):
    """Rename a folder (`name`) or delete it (`delete`); its templates stay, outside any folder when deleted."""
    folder = get_object_or_404(selectors.folders(request.organization.pk), pk=pk)
    if "delete" in request.POST:
        services.delete_folder(folder=folder, actor=request.user)
        messages.success(request, f"Folder “{folder.name}” deleted; its templates are now in no folder.")
        return redirect("nurturing:templates")
    try:
        services.rename_folder(folder=folder, name=request.POST.get("name", ""), actor=request.user)
    except services.TemplateRefused as exc:
        messages.error(request, f"Folder “{folder.name}” not renamed: " + " ".join(exc.messages))
    else:
        messages.success(request, f"Folder renamed to “{folder.name}”.")
    return redirect("nurturing:templates")
