"""CSV import pages: list, upload, column mapping, live progress and the error report."""

from django import forms
from django.conf import settings
from django.contrib import messages
from django.db import transaction
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_http_methods

from leadcrm.errors import DomainError
from leadcrm.paging import keyset_page
from leadcrm.policy import Action, allowed

from .. import imports
from ..models import ImportJob, ImportKind, ImportStatus

# How often the progress bar asks for news while an import runs.
POLL_SECONDS = 1


class UploadForm(forms.Form):
    kind = forms.ChoiceField(
        label="What does the file hold?", choices=[
            (ImportKind.LEADS, "Leads — one row per person, with their history if you have it (created date, "
                               "stage, owner, deals)"),
            (ImportKind.ACTIVITIES, "Activities of leads already here — one row per call, meeting, email or visit, "
                                    "with its time")],
        initial=ImportKind.LEADS, required=False, widget=forms.RadioSelect)
    file = forms.FileField(
        label="CSV file", widget=forms.ClearableFileInput(attrs={"accept": ".csv,.txt,.tsv,text/csv"}),
        help_text="UTF-8 is best; files saved as Windows-1252 (older Excel) are read too. The first row "
                  "must name the columns.",
    )


def _jobs(request):
    return ImportJob.objects.for_org(request.organization)


@allowed(Action.IMPORTS)
@require_GET
def import_list(request):
    jobs, next_url, previous_url = keyset_page(request, _jobs(request).select_related("created_by"), "-created_at")
    return render(request, "leads/import_list.html", {
        "jobs": jobs, "next_url": next_url, "previous_url": previous_url,
    })


@allowed(Action.IMPORTS)
@require_http_methods(["GET", "POST"])
def import_upload(request):
    form = UploadForm(request.POST, request.FILES) if request.method == "POST" else UploadForm()
    status = 200
    if request.method == "POST":
        if form.is_valid():
            try:
                job = imports.create_import(
                    organization_id=request.organization.pk, upload=form.cleaned_data["file"],
                    created_by=request.user, mapping=None, kind=form.cleaned_data["kind"] or ImportKind.LEADS,
                )
            except imports.ImportRejected as rejected:
                for message in rejected.messages:
                    form.add_error("file", message)
            else:
                return redirect("leads:import-detail", pk=job.pk)
        status = 400
    return render(request, "leads/import_upload.html", {
        "form": form, "max_mb": settings.MAX_IMPORT_BYTES // (1024 * 1024),
    }, status=status)


def _mapping_rows(job: ImportJob, chosen: dict, keys: dict | None = None) -> list[dict]:
    """One row per CSV column: its header, a few sample values, the chosen target, and the key it would be kept
    under as a custom field (activities: a property), which the user may rename."""
    spec = imports.kind_of(job.kind)
    samples = [[row[i] if i < len(row) else "" for row in job.preview] for i in range(len(job.headers))]
    rows = []
    for index, header in enumerate(job.headers):
        target = chosen.get(header, imports.IGNORE)
        key = (keys or {}).get(index)
        if target.startswith(spec.prefix):
            target, key = spec.custom, key or target[len(spec.prefix):]
        rows.append({"index": index, "header": header, "samples": [s for s in samples[index] if s.strip()][:3],
                     "target": target, "key": key or imports.custom_key(header, f"column_{index + 1}"),
                     "custom": target == spec.custom, "unmapped": not target})
    return rows


def _posted_mapping(request, job: ImportJob) -> tuple[dict, dict]:
    """The mapping a user chose ({header: target}, custom columns under the keys they typed, made safe) and the
    keys as typed, by column position (headers are user text and may repeat once made unique)."""
    spec = imports.kind_of(job.kind)
    chosen, keys = {}, {}
    for index, header in enumerate(job.headers):
        target = request.POST.get(f"column-{index}", imports.IGNORE)
        typed = request.POST.get(f"key-{index}", "").strip()
        if typed:
            keys[index] = typed
        if target == spec.custom:
            target = spec.prefix + imports.custom_key(typed or header, f"column_{index + 1}")
        chosen[header] = target
    return chosen, keys


@allowed(Action.IMPORTS)
@require_http_methods(["GET", "POST"])
def import_detail(request, pk):
    job = get_object_or_404(_jobs(request).select_related("created_by"), pk=pk)
    if job.status != ImportStatus.MAPPING:
        if request.method == "POST":
            messages.info(request, "This import has already started.")
            return redirect("leads:import-detail", pk=job.pk)
        mapped = [(header, imports.target_label(target, job.kind)) for header, target in job.mapping.items()
                  if target]
        skipped = [header for header in job.headers if not job.mapping.get(header)]
        return render(request, "leads/import_detail.html", {
            "job": job, "mapped": mapped, "skipped": skipped, "historical": imports.is_historical(job),
            "poll_seconds": POLL_SECONDS})

    chosen, keys, errors, status = job.mapping, {}, [], 200
    if request.method == "POST":
        chosen, keys = _posted_mapping(request, job)
        try:
            with transaction.atomic():
                imports.set_mapping(job=job, mapping=chosen)
                imports.start_import(job=job)
        except DomainError as rejected:  # a mapping refused, or the import started meanwhile
            errors = rejected.messages
            status = rejected.status
        else:
            messages.success(request, f"Importing {job.total_rows} rows from “{job.filename}”.")
            return redirect("leads:import-detail", pk=job.pk)
    spec = imports.kind_of(job.kind)
    columns = _mapping_rows(job, chosen, keys)
    return render(request, "leads/import_mapping.html", {
        "job": job, "columns": columns, "targets": [(v, label) for v, label in spec.targets.items()],
        "custom_target": spec.custom, "custom_label": spec.custom_label, "custom_prefix": spec.prefix,
        "unmapped": [column for column in columns if column["unmapped"]], "errors": errors,
        "key_help": imports.CUSTOM_KEY_HELP,
    }, status=status)


@allowed(Action.IMPORTS)
@require_GET
def import_progress(request, pk):
    """The progress fragment the detail page polls (htmx); it stops polling once the job is finished."""
    job = get_object_or_404(_jobs(request), pk=pk)
    return render(request, "leads/import_progress.html", {"job": job, "poll_seconds": POLL_SECONDS})


@allowed(Action.IMPORTS)
@require_GET
def import_errors_csv(request, pk):
    return imports.error_report_response(get_object_or_404(_jobs(request), pk=pk))
