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
from ..models import ImportJob, ImportStatus

# How often the progress bar asks for news while an import runs.
POLL_SECONDS = 1


class UploadForm(forms.Form):
    file = forms.FileField(
        label="CSV file", widget=forms.ClearableFileInput(attrs={"accept": ".csv,.txt,.tsv,text/csv"}),
        help_text="UTF-8 is best; files saved as Windows-1252 (older Excel) are read too. The first row "
                  "must name the columns.",
    )


def _jobs(request):
    return ImportJob.objects.for_org(request.organization).defer("content")


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
                    created_by=request.user, mapping=None,
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


def _mapping_rows(job: ImportJob, chosen: dict) -> list[dict]:
    """One row per CSV column: its header, a few sample values and the chosen target."""
    samples = [[row[i] if i < len(row) else "" for row in job.preview] for i in range(len(job.headers))]
    return [
        {"index": index, "header": header, "samples": [s for s in samples[index] if s.strip()][:3],
         "target": chosen.get(header, imports.IGNORE)}
        for index, header in enumerate(job.headers)
    ]


@allowed(Action.IMPORTS)
@require_http_methods(["GET", "POST"])
def import_detail(request, pk):
    job = get_object_or_404(_jobs(request).select_related("created_by"), pk=pk)
    if job.status != ImportStatus.MAPPING:
        if request.method == "POST":
            messages.info(request, "This import has already started.")
            return redirect("leads:import-detail", pk=job.pk)
        mapped = [(header, imports.TARGETS.get(target, target)) for header, target in job.mapping.items() if target]
        return render(request, "leads/import_detail.html", {"job": job, "mapped": mapped, "poll_seconds": POLL_SECONDS})

    chosen, errors, status = job.mapping, [], 200
    if request.method == "POST":
        # Columns are posted by position: headers are user text and may repeat once made unique.
        chosen = {header: request.POST.get(f"column-{index}", imports.IGNORE)
                  for index, header in enumerate(job.headers)}
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
    return render(request, "leads/import_mapping.html", {
        "job": job, "columns": _mapping_rows(job, chosen), "targets": imports.TARGETS.items(), "errors": errors,
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
