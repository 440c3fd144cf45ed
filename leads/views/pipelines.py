"""The pipeline board (`/deals/board/`): a column per stage, a card per deal, moved by dragging or by each card's
stage picker; and Settings → Pipelines, where admins shape the pipelines and their stages."""

from datetime import date

from django import forms
from django.contrib import messages
from django.contrib.auth import get_user_model
from django.forms import formset_factory
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from leadcrm.errors import DomainError, Invalid
from leadcrm.policy import Action, allowed, principal_of, visible_deals

from .. import selectors, services
from ..models import Deal, Pipeline, Stage, StageKind

# ----------------------------------------------------------------------------------------------- the board


class BoardFilters(forms.Form):
    pipeline = forms.UUIDField(required=False)
    owner = forms.TypedChoiceField(required=False, coerce=int, empty_value=None, label="Owner")
    close_month = forms.CharField(
        required=False,
        label="Expected close month",
        widget=forms.DateInput(attrs={"type": "month", "placeholder": "YYYY-MM"}),
    )

    def __init__(self, *args, owners=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["owner"].choices = [("", "Anyone")] + [(user.pk, user.email) for user in owners]

    def clean_close_month(self):
        value = (self.cleaned_data.get("close_month") or "").strip()
        if not value:
            return None
        try:
            year, month = (int(part) for part in value.split("-"))
            return date(year, month, 1)
        except ValueError:
            raise forms.ValidationError("Give a month as YYYY-MM, such as 2027-03.") from None


def _owners(request):
    """The members whose deals the filter offers: those who own a deal the member may see."""
    deals = visible_deals(principal_of(request), request.organization.pk, Deal.objects.for_org(request.organization))
    return (
        get_user_model().objects.filter(pk__in=deals.filter(owner__isnull=False).values("owner_id")).order_by("email")
    )


@allowed(Action.WORK_DEALS)
@require_GET
def deal_board(request):
    """The board of one pipeline (the picker switches), filtered by owner and expected close month."""
    pipelines = list(selectors.pipelines_of(request.organization))
    filters = BoardFilters(request.GET, owners=_owners(request))
    valid = filters.is_valid()
    data = filters.cleaned_data if valid else {}
    chosen = data.get("pipeline")
    pipeline = next((p for p in pipelines if p.pk == chosen), None) or next(iter(pipelines), None)
    columns = []
    if valid and pipeline is not None:
        columns = selectors.board(
            organization_id=request.organization.pk,
            principal=principal_of(request),
            pipeline=pipeline,
            owner_id=data.get("owner"),
            close_month=data.get("close_month"),
        )
    return render(
        request,
        "leads/deal_board.html",
        {
            "pipelines": pipelines,
            "pipeline": pipeline,
            "columns": columns,
            "filters": filters,
            "filtered": bool(data.get("owner") or data.get("close_month")),
            "here": request.get_full_path(),
            "deal_count": sum(column["count"] for column in columns),
        },
        status=200 if valid else 400,
    )


class MoveForm(forms.Form):
    stage = forms.UUIDField()
    expected_stage = forms.UUIDField()
    reason = forms.CharField(required=False, max_length=200)


@allowed(Action.WORK_DEALS)
@require_POST
def deal_move(request, pk):
    """A card's move (its stage picker, or a drag that fills it in): the service's refusals (a late move, a missing
    reason) come back to the board as messages."""
    deal = get_object_or_404(
        visible_deals(principal_of(request), request.organization.pk, Deal.objects.for_org(request.organization)), pk=pk
    )
    form = MoveForm(request.POST)
    if not form.is_valid():
        raise Invalid(errors={field: list(problems) for field, problems in form.errors.items()})
    data = form.cleaned_data
    moved = services.move_deal(
        deal=deal,
        stage_id=data["stage"],
        expected_stage_id=data["expected_stage"],
        reason=data["reason"],
        actor=request.user,
    )
    if moved.stage_id != data["expected_stage"]:
        messages.success(request, f"Moved “{moved.name}” to {moved.stage.name}.")
    back = request.POST.get("next", "")
    if back and url_has_allowed_host_and_scheme(
        back, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return redirect(back)
    return redirect("leads:deal-board")


# ----------------------------------------------------------------------------------------------- settings


class PipelineForm(forms.Form):
    name = forms.CharField(max_length=100)
    is_default = forms.BooleanField(required=False, label="New deals start in this pipeline (the default)")


class StageForm(forms.Form):
    id = forms.UUIDField(required=False, widget=forms.HiddenInput)
    position = forms.IntegerField(
        min_value=1,
        max_value=99,
        required=False,
        label="Position",
        help_text="Change the numbers to reorder the stages",
    )
    name = forms.CharField(max_length=100, required=False)
    probability = forms.IntegerField(min_value=0, max_value=100, required=False, label="Win probability (%)")
    rotting_days = forms.IntegerField(min_value=1, max_value=3650, required=False, label="Rots after (days)")
    kind = forms.ChoiceField(choices=StageKind.choices, initial=StageKind.OPEN)
    DELETE = forms.BooleanField(required=False, label="Remove")

    def has_content(self) -> bool:
        data = self.cleaned_data
        return bool(data.get("id") or data.get("name") or data.get("probability") is not None)


StageFormSet = formset_factory(StageForm, extra=2, max_num=services.pipelines.STAGE_LIMIT, validate_max=True)


def _stage_rows(formset) -> tuple[list[dict], list]:
    """The stages the formset keeps, in the order of their positions (rows without one last, as listed), and the
    forms they came from (to put refusals back on them)."""
    rows, origins = [], []
    kept = [form for form in formset.forms if form.has_content() and not form.cleaned_data.get("DELETE")]
    kept.sort(key=lambda form: form.cleaned_data.get("position") or 100)
    for form in kept:
        data = form.cleaned_data
        rows.append(
            {
                "id": data.get("id"),
                "name": data.get("name") or "",
                "probability": data.get("probability"),
                "rotting_days": data.get("rotting_days"),
                "kind": data.get("kind") or StageKind.OPEN,
            }
        )
        origins.append(form)
    return rows, origins


def _show_refusal(exc: DomainError, form, formset, origins) -> None:
    """The service's refusal at its field: `stages.2.probability` on the third kept stage's row."""
    for field, problems in (exc.errors or {None: [exc.message]}).items():
        parts = (field or "").split(".")
        if parts[0] == "stages" and len(parts) == 3 and int(parts[1]) < len(origins):
            target = origins[int(parts[1])]
            target.add_error(parts[2] if parts[2] in target.fields else None, problems)
        elif field in form.fields:
            form.add_error(field, problems)
        else:
            form.add_error(None, problems)


@allowed(Action.PIPELINES)
@require_GET
def pipeline_list(request):
    return render(request, "leads/pipeline_list.html", {"pipelines": selectors.pipelines_of(request.organization)})


@allowed(Action.PIPELINES)
@require_http_methods(["GET", "POST"])
def pipeline_edit(request, pk=None):
    """A pipeline's name and its stages, one row each in order (blank rows add stages; Remove takes one out)."""
    pipeline = get_object_or_404(Pipeline.objects.for_org(request.organization), pk=pk) if pk else None
    status = 200
    if request.method == "POST":
        form = PipelineForm(request.POST)
        formset = StageFormSet(request.POST, prefix="stages")
        if form.is_valid() and formset.is_valid():
            rows, origins = _stage_rows(formset)
            try:
                saved = services.save_pipeline(
                    organization_id=request.organization.pk,
                    pipeline=pipeline,
                    name=form.cleaned_data["name"],
                    stages=rows,
                    is_default=form.cleaned_data["is_default"] or None,
                    actor=request.user,
                )
            except DomainError as exc:
                _show_refusal(exc, form, formset, origins)
            else:
                messages.success(request, f"Saved the pipeline “{saved.name}”.")
                return redirect("leads:pipeline-list")
        status = 400
    else:
        form = PipelineForm(initial={"name": pipeline.name, "is_default": pipeline.is_default} if pipeline else {})
        stages = (
            Stage.objects.for_org(request.organization).filter(pipeline=pipeline).order_by("position")
            if pipeline
            else []
        )
        formset = StageFormSet(
            prefix="stages",
            initial=[
                {
                    "id": s.pk,
                    "position": n,
                    "name": s.name,
                    "probability": s.probability,
                    "rotting_days": s.rotting_days,
                    "kind": s.kind,
                }
                for n, s in enumerate(stages, 1)
            ]
            or [
                {"position": n, "name": name, "probability": probability, "kind": kind}
                for n, (name, probability, kind) in enumerate(services.DEFAULT_STAGES, 1)
            ],
        )
    return render(
        request, "leads/pipeline_form.html", {"pipeline": pipeline, "form": form, "formset": formset}, status=status
    )


@allowed(Action.PIPELINES)
@require_POST
def pipeline_delete(request, pk):
    pipeline = get_object_or_404(Pipeline.objects.for_org(request.organization), pk=pk)
    services.delete_pipeline(pipeline=pipeline, actor=request.user)  # a refusal returns as a message
    messages.success(request, f"Deleted the pipeline “{pipeline.name}”.")
    return redirect(reverse("leads:pipeline-list"))
