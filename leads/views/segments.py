"""Segment pages: the list (with counts), the query builder with its live count, a segment's leads with bulk
tagging, and static lists (create, add by email or from any segment, remove)."""

import json
import re
import uuid

from django import forms
from django.contrib import messages
from django.contrib.auth import get_user_model
from django.db import transaction
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from leadcrm import replica
from leadcrm.csvutil import csv_response
from leadcrm.paging import keyset_page
from leadcrm.policy import Action, allowed

from .. import activity_types, listing, selectors, services
from ..conditions import (
    CHOICES,
    CUSTOM_PREFIX,
    LEAD_FIELDS,
    NO_VALUE_OPS,
    OP_LABELS,
    OPS_BY_KIND,
    ConditionError,
    value_text,
)
from ..models import ActivityType, Lead, Segment, SegmentKind
from ..segments import MAX_DEPTH, definition_q, registered_kind, registered_kinds

org_wide = allowed(Action.SEGMENTS)

LIST_PAGE_SIZE = 25
LEADS_PAGE_SIZE = 50
JSON_KIND = "json"
KIND_GROUPS = [("text", "Text"), ("choice", "Choice"), ("number", "Number"), ("bool", "Yes / no"), ("date", "Date"),
               ("tags", "Tags"), ("owner", "Owner")]
FIELD_LABELS = {
    "country": "Country (two-letter code)", "owner": "Owner", "consent_opt_in": "Opted in",
    "company_size": "Company size (employees)", "source": "Source detail", "source_type": "Source type",
    "lifecycle_stage": "Lifecycle stage", "score": "Score", "fit_score": "Fit score",
    "behavior_score": "Behaviour score", "conversion_probability": "Conversion probability (0–1)",
    "predictive_band": "Predictive band (A likeliest)", "created_at": "Created", "updated_at": "Updated",
    "last_activity_at": "Last activity", "consent_at": "Consented",
}
TAG_WORDS = {"eq": "Has the tag", "contains": "Has the tag", "in": "Has any of the tags",
             "not_in": "Has none of the tags", "is_empty": "Has no tags", "is_not_empty": "Has tags"}
# Every operator of the condition language, in the order the builder offers them.
ALL_OPS = list(dict.fromkeys(op for ops in OPS_BY_KIND.values() for op in ops))


def field_label(name: str) -> str:
    if name.startswith(CUSTOM_PREFIX):
        return f"Custom field “{name[len(CUSTOM_PREFIX):]}”"
    if name in FIELD_LABELS:
        return FIELD_LABELS[name]
    try:
        return str(Lead._meta.get_field(name).verbose_name).capitalize()
    except Exception:  # a name the model does not have: show it as given
        return name


def op_label(op) -> str:
    return OP_LABELS.get(op, str(op).replace("_", " "))


def _segments(request):
    return Segment.objects.for_org(request.organization)


def _static_lists(request, exclude=None):
    lists = _segments(request).filter(kind=SegmentKind.STATIC).order_by("name", "pk")
    return lists.exclude(pk=exclude.pk) if exclude is not None else lists


# ----------------------------------------------------------------------------------------------- words


def describe(definition, list_names: dict, organization_id=None) -> dict:
    """A definition as nested groups of sentences, for the segment page: {"combinator", "items": [text or
    group]}. Plain text; the template escapes it."""
    combinator = "any" if isinstance(definition, dict) and "any" in definition else "all"
    items = definition.get(combinator) if isinstance(definition, dict) else None
    described = []
    for item in items if isinstance(items, list) else []:
        if not isinstance(item, dict):
            continue
        if "all" in item or "any" in item:
            described.append(describe(item, list_names, organization_id))
        elif "field" in item and item.get("field") == "tags" and item.get("op") in TAG_WORDS:
            op = item["op"]
            value = "" if op in NO_VALUE_OPS else f" {value_text(item.get('value'))}"
            described.append(f"{TAG_WORDS[op]}{value}")
        elif "field" in item:
            op = item.get("op")
            words = [field_label(str(item.get("field"))), op_label(op)]
            if op not in NO_VALUE_OPS:
                value = item.get("value")
                if op == "between" and isinstance(value, list) and len(value) == 2:
                    words.append(f"{value_text(value[0])} and {value_text(value[1])}")
                elif op == "within_days":
                    words[-1] = "is within the last"
                    words.append(f"{value_text(value)} days")
                else:
                    words.append(value_text(value))
            described.append(" ".join(words))
        elif "activity" in item:
            activity = item.get("activity")
            text = ActivityType(activity).label if activity in ActivityType.values else str(activity)
            if item.get("property"):
                op = item.get("op")
                text += f" where {item['property']} {op_label(op)}"
                if op not in NO_VALUE_OPS:
                    text += f" {value_text(item.get('value'))}"
            count = item.get("min_count") or 1
            text += " at least once" if count == 1 else f" at least {count} times"
            if item.get("within_days"):
                text += f" in the last {item['within_days']} days"
            described.append(text)
        elif "list" in item:
            name = list_names.get(str(item.get("list")), "a deleted list")
            described.append(f"{'Is' if item.get('member', True) else 'Is not'} in the list “{name}”")
        elif kind := registered_kind(item):
            described.append(kind.describe(organization_id, item))
    return {"combinator": combinator, "items": described}


# ----------------------------------------------------------------------------------------------- builder


def builder_group(node, depth: int = 1) -> dict:
    """The builder's rows for a definition (as far as it can show it; the JSON box always has all of it)."""
    combinator = "any" if isinstance(node, dict) and "any" in node else "all"
    items = node.get(combinator) if isinstance(node, dict) else None
    rows = []
    for item in items if isinstance(items, list) else []:
        if not isinstance(item, dict):
            continue
        if ("all" in item or "any" in item) and depth < MAX_DEPTH:
            rows.append({"type": "group", "group": builder_group(item, depth + 1)})
        elif "field" in item:
            field = str(item.get("field") or "")
            custom = field.startswith(CUSTOM_PREFIX)
            rows.append({"type": "field", "field": "__custom__" if custom else field,
                         "custom_key": field[len(CUSTOM_PREFIX):] if custom else "",
                         "op": item.get("op") or "", "value": value_text(item.get("value"))})
        elif "activity" in item:
            rows.append({"type": "activity", "activity": item.get("activity") or "",
                         "property": item.get("property") or "", "op": item.get("op") or "",
                         "value": value_text(item.get("value")), "min_count": item.get("min_count") or "",
                         "within_days": item.get("within_days") or ""})
        elif "list" in item:
            rows.append({"type": "list", "list": str(item.get("list") or ""),
                         "member": item.get("member", True) is not False})
        elif kind := registered_kind(item):
            statuses = item.get("status")
            rows.append({"type": kind.key, "kind": kind.key, "value": str(item.get(kind.key) or ""),
                         "member": item.get("member", True) is not False,
                         "status": statuses if isinstance(statuses, str) else ""})
    return {"combinator": combinator, "rows": rows, "depth": depth, "can_nest": depth < MAX_DEPTH}


def _field_choices():
    groups = []
    for kind, label in KIND_GROUPS:
        fields = [(name, field_label(name)) for name, field_kind in LEAD_FIELDS.items() if field_kind == kind]
        if fields:
            groups.append({"label": label, "kind": kind, "fields": sorted(fields, key=lambda pair: pair[1])})
    return groups


def builder_context(request, definition) -> dict:
    members = (get_user_model().objects.filter(memberships__organization=request.organization)
               .order_by("email").values_list("pk", "email"))
    suggestions = {field: [(value, value) for value in values] for field, values in CHOICES.items()}
    suggestions["owner"] = [(str(pk), email) for pk, email in members]
    for name, kind in LEAD_FIELDS.items():
        if kind == "bool":
            suggestions[name] = [("yes", "yes"), ("no", "no")]
    builder = builder_group(definition)
    if not builder["rows"]:
        builder["rows"] = [{"type": "field"}]  # a blank row to start from; blank rows are left out of the JSON
    return {
        "builder": builder,
        "field_groups": _field_choices(),
        "ops": [(op, op_label(op)) for op in ALL_OPS],
        "json_ops": [(op, op_label(op)) for op in OPS_BY_KIND[JSON_KIND]],
        "activity_types": activity_types.choices(request.organization.pk),
        "static_lists": _static_lists(request),
        "suggestions": suggestions,
        "builder_config": {"opsByKind": OPS_BY_KIND, "noValueOps": list(NO_VALUE_OPS), "maxDepth": MAX_DEPTH,
                           "fieldKinds": {**LEAD_FIELDS, "__custom__": JSON_KIND}},
        "empty_field_row": {"type": "field"}, "empty_activity_row": {"type": "activity", "min_count": 1},
        "empty_list_row": {"type": "list", "member": True},
        "membership_kinds": [{"key": kind.key, "noun": kind.noun, "statuses": kind.statuses,
                              "choices": kind.choices(request.organization.pk),
                              "empty_row": {"type": kind.key, "kind": kind.key, "member": True}}
                             for kind in registered_kinds() if kind.noun],
        "empty_group_row": {"type": "group", "group": {"combinator": "all", "rows": [], "depth": 2,
                                                       "can_nest": True}},
    }


# ----------------------------------------------------------------------------------------------- forms


def _error_lines(exc: ConditionError) -> list[tuple[str, str]]:
    return [(key, message) for key, problems in exc.errors.items() for message in problems]


class SegmentForm(forms.Form):
    name = forms.CharField(max_length=200)
    description = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}))
    definition = forms.CharField(
        label="Definition (JSON)", required=False,
        widget=forms.Textarea(attrs={"rows": 8, "spellcheck": "false", "class": "json"}),
        help_text='The builder writes this for you; edit it to use the full language ({"all": [...]}).')

    def __init__(self, *args, organization_id, **kwargs):
        super().__init__(*args, **kwargs)
        self.organization_id = organization_id
        self.definition_problems = []

    def parsed_definition(self):
        try:
            return json.loads(self.data.get("definition") or "{}")
        except ValueError:
            return None

    def clean_definition(self):
        text = self.cleaned_data["definition"].strip()
        if not text:
            raise forms.ValidationError("Add at least one condition.")
        try:
            definition = json.loads(text)
        except ValueError as exc:
            raise forms.ValidationError(f"This is not valid JSON: {exc}.") from None
        try:
            return services.clean_definition(self.organization_id, definition)
        except ConditionError as exc:
            self.definition_problems = _error_lines(exc)
            raise forms.ValidationError([f"{key}: {message}" for key, message in self.definition_problems]) from None


class StaticListForm(forms.Form):
    name = forms.CharField(max_length=200)
    description = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}))
    emails = forms.CharField(
        label="Add leads by email", required=False, widget=forms.Textarea(attrs={"rows": 4}),
        help_text="One email address per line (or separated by commas); each must belong to a lead.")

    def clean_emails(self):
        return split_emails(self.cleaned_data["emails"])


def split_emails(text: str) -> list[str]:
    return [part for part in re.split(r"[\s,;]+", text or "") if part][:services.MEMBERS_LIMIT + 1]


def _unknown(exc) -> str:
    shown = ", ".join(exc.missing[:20]) + (" …" if len(exc.missing) > 20 else "")
    return f"No lead of this organization has {'this email' if len(exc.missing) == 1 else 'these emails'}: {shown}."


def _definition_from_post(request):
    try:
        return json.loads(request.POST.get("definition") or "")
    except ValueError:
        return None


# ----------------------------------------------------------------------------------------------- pages


@org_wide
@require_GET
def segment_list(request):
    queryset = _segments(request).select_related("created_by")
    kind = request.GET.get("kind")
    if kind in SegmentKind.values:
        queryset = queryset.filter(kind=kind)
    segments, next_url, previous_url = keyset_page(request, queryset, "-created_at", page_size=LIST_PAGE_SIZE)
    with replica.reading():
        counts = services.segment_counts(request.organization.pk, segments)  # one query for the whole page
    for segment in segments:
        segment.lead_count = counts.get(segment.pk)
    return render(request, "leads/segment_list.html", {
        "segments": segments, "next_url": next_url, "previous_url": previous_url, "kind": kind,
    })


def _builder_page(request, form, segment=None, status=200, definition=None):
    if definition is None:
        definition = form.parsed_definition() if form.is_bound else (segment.definition if segment else {})
    return render(request, "leads/segment_form.html", {
        "form": form, "segment": segment, **builder_context(request, definition if definition is not None else {}),
    }, status=status)


@org_wide
@require_http_methods(["GET", "POST"])
def segment_create(request):
    if request.method == "POST":
        form = SegmentForm(request.POST, organization_id=request.organization.pk)
        if request.POST.get("load_json"):  # show the JSON box's definition in the builder; save nothing
            return _builder_page(request, form, definition=_definition_from_post(request))
        if form.is_valid():
            try:
                segment = services.create_segment(
                    organization_id=request.organization.pk, name=form.cleaned_data["name"],
                    description=form.cleaned_data["description"], definition=form.cleaned_data["definition"],
                    created_by=request.user)
            except ConditionError as exc:  # the definition changed meaning since the form checked it
                form.add_error("definition", [f"{key}: {message}" for key, message in _error_lines(exc)])
            else:
                messages.success(request, f"Segment “{segment.name}” saved.")
                return redirect("leads:segment-detail", pk=segment.pk)
        return _builder_page(request, form, status=400)
    form = SegmentForm(organization_id=request.organization.pk, initial={"definition": '{"all": []}'})
    return _builder_page(request, form, definition={"all": []})


@org_wide
@require_http_methods(["GET", "POST"])
def list_create(request):
    form = StaticListForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        organization_id = request.organization.pk
        try:
            leads = services.leads_by_emails(organization_id, form.cleaned_data["emails"])
        except services.UnknownLeads as exc:
            form.add_error("emails", _unknown(exc))
        else:
            with transaction.atomic():
                segment = services.create_segment(organization_id=organization_id, name=form.cleaned_data["name"],
                                                  description=form.cleaned_data["description"],
                                                  kind=SegmentKind.STATIC, created_by=request.user)
                added = services.add_to_list(segment=segment, leads=leads) if form.cleaned_data["emails"] else 0
            messages.success(request, f"List “{segment.name}” created with {added} lead{'s' * (added != 1)}.")
            return redirect("leads:segment-detail", pk=segment.pk)
    return render(request, "leads/segment_list_form.html", {"form": form, "segment": None},
                  status=400 if form.errors else 200)


@org_wide
@require_GET
def segment_export(request, pk):
    """The segment's (or static list's) leads as a streamed, formula-safe CSV, newest first."""
    segment = get_object_or_404(_segments(request), pk=pk)
    stamp = timezone.localtime().strftime("%Y%m%d-%H%M")
    name = re.sub(r"[^\w-]+", "-", segment.name.lower()).strip("-")[:60] or "segment"
    return csv_response(f"{name}-{stamp}.csv", listing.export_header(listing.DEFAULT_COLUMNS),
                        listing.export_rows(selectors.segment_leads(segment), "-created_at"))


def _count(leads) -> int:
    with replica.reading():
        return leads.count()


@org_wide
@require_GET
def segment_detail(request, pk):
    segment = get_object_or_404(_segments(request), pk=pk)
    leads = selectors.segment_leads(segment).select_related("owner")
    page, next_url, previous_url = keyset_page(request, leads, "-created_at", page_size=LEADS_PAGE_SIZE)
    lists = list(_static_lists(request))
    names = {str(item.pk): item.name for item in lists}
    return render(request, "leads/segment_detail.html", {
        "segment": segment, "leads": page, "next_url": next_url, "previous_url": previous_url,
        "count": _count(leads),
        "words": describe(segment.definition, names, segment.organization_id) if segment.definition else None,
        "target_lists": [item for item in lists if item.pk != segment.pk],
        "is_static": segment.kind == SegmentKind.STATIC,
    })


@org_wide
@require_http_methods(["GET", "POST"])
def segment_edit(request, pk):
    segment = get_object_or_404(_segments(request), pk=pk)
    if segment.kind == SegmentKind.STATIC:
        form = StaticListForm(request.POST or None, initial={"name": segment.name,
                                                             "description": segment.description})
        form.fields.pop("emails")
        if request.method == "POST" and form.is_valid():
            services.update_segment(segment=segment, name=form.cleaned_data["name"],
                                    description=form.cleaned_data["description"])
            messages.success(request, f"List “{segment.name}” saved.")
            return redirect("leads:segment-detail", pk=segment.pk)
        return render(request, "leads/segment_list_form.html", {"form": form, "segment": segment},
                      status=400 if form.errors else 200)
    if request.method == "POST":
        form = SegmentForm(request.POST, organization_id=request.organization.pk)
        if request.POST.get("load_json"):
            return _builder_page(request, form, segment, definition=_definition_from_post(request))
        if form.is_valid():
            try:
                services.update_segment(segment=segment, name=form.cleaned_data["name"],
                                        description=form.cleaned_data["description"],
                                        definition=form.cleaned_data["definition"])
            except ConditionError as exc:
                form.add_error("definition", [f"{key}: {message}" for key, message in _error_lines(exc)])
            else:
                messages.success(request, f"Segment “{segment.name}” saved.")
                return redirect("leads:segment-detail", pk=segment.pk)
        return _builder_page(request, form, segment, status=400)
    form = SegmentForm(organization_id=request.organization.pk, initial={
        "name": segment.name, "description": segment.description,
        "definition": json.dumps(segment.definition, indent=2)})
    return _builder_page(request, form, segment)


@org_wide
@require_http_methods(["GET", "POST"])
def segment_delete(request, pk):
    segment = get_object_or_404(_segments(request), pk=pk)
    if request.method == "POST":
        try:
            services.delete_segment(segment=segment)
        except services.SegmentInUse as exc:
            messages.error(request, f"“{segment.name}” was not deleted. {exc}")
            return redirect("leads:segment-detail", pk=segment.pk)
        messages.success(request, f"“{segment.name}” deleted. Its leads were not changed.")
        return redirect("leads:segment-list")
    users = list(services.segments_using_list(segment)[:10]) if segment.kind == SegmentKind.STATIC else []
    return render(request, "leads/segment_confirm_delete.html", {"segment": segment, "used_by": users})


@org_wide
@require_POST
def segment_count(request):
    """The live count under the builder: the number of leads the posted definition selects, or what is wrong
    with it (400, so the page can tell; the builder's script lets htmx show it)."""
    definition = _definition_from_post(request)
    context = {"count": None, "problems": [], "hint": ""}
    status = 200
    if definition is None:
        context["problems"] = [("definition", "This is not valid JSON.")]
        status = 400
    elif definition in ({"all": []}, {"any": []}, {}):
        context["hint"] = "Add a condition to see how many leads match."
    else:
        try:
            definition = services.clean_definition(request.organization.pk, definition)
        except ConditionError as exc:
            context["problems"] = _error_lines(exc)
            status = 400
        else:
            with replica.reading(writes_nothing=True):  # the preview only asks: the replica answers it
                context["count"] = (Lead.objects.for_org(request.organization)
                                    .filter(definition_q(request.organization.pk, definition)).count())
    return render(request, "leads/_segment_count.html", context, status=status)


# ----------------------------------------------------------------------------------------------- bulk actions


def _selected_ids(request) -> list[str]:
    ids = []
    for value in request.POST.getlist("lead")[:services.MEMBERS_LIMIT + 1]:
        try:
            ids.append(str(uuid.UUID(value)))
        except ValueError:
            continue  # not an id of ours; the selection simply does not include it
    return ids


@org_wide
@require_POST
def segment_tags(request, pk):
    """Add or remove a tag on every lead of the segment, in one statement."""
    segment = get_object_or_404(_segments(request), pk=pk)
    tag = request.POST.get("tag", "").replace("\x00", "").strip()
    action = request.POST.get("action")
    if not tag or len(tag) > 64 or action not in ("add", "remove"):
        messages.error(request, "Give a tag of 1 to 64 characters, then choose Add or Remove.")
        return redirect("leads:segment-detail", pk=segment.pk)
    changed = services.tag_leads(organization_id=request.organization.pk, leads=selectors.segment_leads(segment),
                                 add=[tag] if action == "add" else [], remove=[tag] if action == "remove" else [])
    verb = "added to" if action == "add" else "removed from"
    messages.success(request, f"Tag “{tag}” {verb} {changed} lead{'s' * (changed != 1)}.")
    return redirect("leads:segment-detail", pk=segment.pk)


@org_wide
@require_POST
def segment_members(request, pk):
    """A static list's own page: add leads by email, or remove the selected leads."""
    segment = get_object_or_404(_segments(request), pk=pk)
    if segment.kind != SegmentKind.STATIC:
        raise Http404("Only static lists have hand-picked members.")
    organization_id = request.organization.pk
    try:
        if request.POST.get("action") == "remove":
            ids = _selected_ids(request)
            if not ids:
                messages.error(request, "Select the leads to remove first.")
                return redirect("leads:segment-detail", pk=segment.pk)
            # a selected lead deleted meanwhile is simply no longer in the list
            removed = services.remove_from_list(segment=segment,
                                                leads=Lead.objects.for_org(organization_id).filter(pk__in=ids))
            messages.success(request, f"{removed} lead{'s' * (removed != 1)} removed from “{segment.name}”.")
        else:
            emails = split_emails(request.POST.get("emails", ""))
            if not emails:
                messages.error(request, "Give the email addresses of the leads to add.")
                return redirect("leads:segment-detail", pk=segment.pk)
            added = services.add_to_list(segment=segment, leads=services.leads_by_emails(organization_id, emails))
            messages.success(request, f"{added} lead{'s' * (added != 1)} added to “{segment.name}”.")
    except services.UnknownLeads as exc:
        messages.error(request, f"Nothing changed. {_unknown(exc)}")
    return redirect("leads:segment-detail", pk=segment.pk)


@org_wide
@require_POST
def segment_add_to_list(request, pk):
    """Put the selected leads of this segment (or all of them) into a static list."""
    segment = get_object_or_404(_segments(request), pk=pk)
    target = get_object_or_404(_static_lists(request), pk=_uuid_or_404(request.POST.get("list")))
    if request.POST.get("scope") == "all":
        leads = selectors.segment_leads(segment)
    else:
        ids = _selected_ids(request)
        if not ids:
            messages.error(request, "Select leads first, or add all of them.")
            return redirect("leads:segment-detail", pk=segment.pk)
        leads = selectors.segment_leads(segment).filter(pk__in=ids)
    added = services.add_to_list(segment=target, leads=leads)
    messages.success(request, f"{added} lead{'s' * (added != 1)} added to “{target.name}”.")
    return redirect("leads:segment-detail", pk=segment.pk)


def _uuid_or_404(value):
    try:
        return uuid.UUID(str(value))
    except ValueError:
        raise Http404("No such list.") from None
