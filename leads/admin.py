import json

from django import forms
from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.shortcuts import redirect
from django.utils.html import format_html

from leadcrm import policy
from leadcrm.admin import OrgScopedAdmin, admin_organization
from leadcrm.errors import DomainError

from . import services
from .models import (
    BANT_FIELDS,
    Account,
    Activity,
    Deal,
    DealStatus,
    Form,
    ImportJob,
    Lead,
    Pipeline,
    QualificationSettings,
    Reason,
    ReasonKind,
    Segment,
    SegmentKind,
    Stage,
)


@admin.register(Lead)
class LeadAdmin(OrgScopedAdmin):
    policy_action = policy.Action.MANAGE_LEADS
    list_display = ["email", "first_name", "last_name", "company", "lifecycle_stage", "score", "grade", "owner",
                    "created_at"]
    list_filter = ["lifecycle_stage", "grade", "source_type"]
    search_fields = ["email", "first_name", "last_name", "company"]
    list_select_related = ["owner"]
    show_full_result_count = False
    readonly_fields = ["fit_gained", "fit_lost", "behavior_gained", "behavior_lost", "fit_score", "behavior_score",
                       "score", "grade", "temperature", "created_at", "updated_at"]

    def delete_model(self, request, obj):
        # The same service as the API's delete: the lead's tombstone tells integrations' copies it is gone.
        services.delete_lead(lead=obj)

    def delete_queryset(self, request, queryset):
        for lead in queryset:
            services.delete_lead(lead=lead)

    def has_change_permission(self, request, obj=None):
        # An erased lead is kept, anonymous, for reports: it can be viewed, not changed (the API answers 409).
        # Without change permission the page is read-only, a POST to it is refused, and so are its inlines.
        if obj is not None and obj.erased_at is not None:
            return False
        return super().has_change_permission(request, obj)

    def save_model(self, request, obj, form, change):
        if not change:
            super().save_model(request, obj, form, change)
            services.emit_leads_changed(organization_id=obj.organization_id, lead_ids=[obj.pk], fields=["created"])
            return
        # The same service as every other way of changing a lead: refused once erased (e.g. while the form was
        # open), audited as lead.updated, re-scored.
        stored = Lead.objects.get(pk=obj.pk)
        try:
            services.update_lead(lead=stored, data={name: getattr(obj, name) for name in form.changed_data},
                                 actor=request.user)
        except services.LeadErased as exc:
            raise PermissionDenied(str(exc)) from None


@admin.register(Activity)
class ActivityAdmin(OrgScopedAdmin):
    policy_action = policy.Action.MANAGE_LEADS
    list_display = ["type", "lead", "occurred_at"]
    list_filter = ["type"]
    list_select_related = ["lead"]
    raw_id_fields = ["lead"]
    show_full_result_count = False

    def has_change_permission(self, request, obj=None):
        return False  # the timeline is append-only


@admin.register(Form)
class FormAdmin(OrgScopedAdmin):
    policy_action = policy.Action.FORMS
    list_display = ["name", "slug", "is_active", "created_at"]


@admin.register(ImportJob)
class ImportJobAdmin(OrgScopedAdmin):
    policy_action = policy.Action.IMPORTS
    list_display = ["filename", "status", "total_rows", "created_count", "merged_count", "failed_count",
                    "created_at"]
    exclude = ["file"]

    def has_add_permission(self, request):
        return False


# --- qualification and conversion -------------------------------------------------------------------------


def _organization_of(request, form):
    """The org a row being saved belongs to: the admin's own, or the one a superuser picked."""
    if request.user.is_superuser:
        instance_org = form.instance.organization_id if form.instance.pk else None
        chosen = form.cleaned_data.get("organization")
        return instance_org or (chosen.pk if chosen else None)
    organization = admin_organization(request)
    return organization.pk if organization else None


def with_request(form_class, request):
    """The admin's form class, bound to the request so its checks know the org (not a field for org admins)."""
    return type(form_class.__name__, (form_class,), {"request": request})


class ReasonAdminForm(forms.ModelForm):
    request = None

    class Meta:
        model = Reason
        fields = ["organization", "kind", "label", "active"]

    def clean(self):
        data = super().clean()
        organization_id = _organization_of(self.request, self)
        label, kind = (data.get("label") or "").strip(), data.get("kind")
        if organization_id and label and kind:
            # The unique constraint names the organization, which an org admin's form leaves out: check it here
            # so a repeat is a form error, not a failed save.
            taken = (Reason.objects.for_org(organization_id).filter(kind=kind, label__iexact=label)
                     .exclude(pk=self.instance.pk))
            if taken.exists():
                self.add_error("label", "This organization already has that reason.")
        return data


@admin.register(Reason)
class ReasonAdmin(OrgScopedAdmin):
    """Reasons offered when a lead is disqualified or recycled, or a deal is lost. Switch one off to stop
    offering it; leads and deals keep the words they were given."""

    form = ReasonAdminForm
    list_display = ["label", "kind", "active"]
    list_filter = ["kind", "active"]
    list_editable = ["active"]
    search_fields = ["label"]

    def get_form(self, request, obj=None, **kwargs):
        return with_request(super().get_form(request, obj, **kwargs), request)


BANT_CHOICES = [(field, str(Lead._meta.get_field(field).verbose_name).capitalize()) for field in BANT_FIELDS]


class QualificationSettingsAdminForm(forms.ModelForm):
    bant_required_for_sql = forms.MultipleChoiceField(
        label="Required before SQL", choices=BANT_CHOICES, required=False, widget=forms.CheckboxSelectMultiple,
        help_text="A lead may move to SQL only once these BANT answers are filled in.",
    )

    class Meta:
        model = QualificationSettings
        fields = ["bant_required_for_sql"]


@admin.register(QualificationSettings)
class QualificationSettingsAdmin(OrgScopedAdmin):
    form = QualificationSettingsAdminForm
    list_display = ["__str__", "required"]
    list_select_related = ["organization"]

    @admin.display(description="required before SQL")
    def required(self, settings):
        labels = dict(BANT_CHOICES)
        return ", ".join(labels.get(field, field) for field in settings.bant_required_for_sql) or "nothing"

    def has_add_permission(self, request):
        return False  # every org gets its row when it is created

    def has_delete_permission(self, request, obj=None):
        return False

    def changelist_view(self, request, extra_context=None):
        organization = admin_organization(request)
        if not request.user.is_superuser and organization is not None:
            # An org admin has exactly one settings row: go straight to it.
            settings, _ = QualificationSettings.objects.get_or_create(organization=organization)
            return redirect("admin:leads_qualificationsettings_change", settings.pk)
        return super().changelist_view(request, extra_context)


class AccountAdminForm(forms.ModelForm):
    request = None

    class Meta:
        model = Account
        fields = ["organization", "name", "website", "industry", "company_size", "country", "owner"]

    def clean(self):
        data = super().clean()
        organization_id = _organization_of(self.request, self)
        name = (data.get("name") or "").strip()
        if organization_id and name:
            taken = (Account.objects.for_org(organization_id).filter(name__iexact=name)
                     .exclude(pk=self.instance.pk))
            if taken.exists():
                self.add_error("name", "This organization already has an account of that name.")
        return data


@admin.register(Account)
class AccountAdmin(OrgScopedAdmin):
    policy_action = policy.Action.MANAGE_LEADS
    form = AccountAdminForm
    list_display = ["name", "industry", "country", "owner", "created_at"]
    list_select_related = ["owner"]
    search_fields = ["name"]
    show_full_result_count = False

    def get_form(self, request, obj=None, **kwargs):
        return with_request(super().get_form(request, obj, **kwargs), request)

    def has_delete_permission(self, request, obj=None):
        return False  # deals keep their account (and revenue reports their deals)


class DealAdminForm(forms.ModelForm):
    """An open deal's terms, and closing it (through the conversion service, like the API and the lead page)."""

    outcome = forms.ChoiceField(label="Close the deal", required=False, choices=[
        ("", "Keep it open"), (DealStatus.WON, "Won"), (DealStatus.LOST, "Lost")])
    reason = forms.CharField(label="Why it was lost", required=False, max_length=200)
    currency = forms.RegexField(r"^[A-Za-z]{3}$", max_length=3,
                                error_messages={"invalid": "Use a three-letter ISO 4217 code, such as EUR."})

    class Meta:
        model = Deal
        fields = ["name", "amount", "currency", "expected_close", "owner"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if "reason" in self.fields and self.instance.organization_id:
            choices = services.reasons(self.instance.organization_id, ReasonKind.LOST)
            self.fields["reason"].help_text = f"The organization's reasons: {'; '.join(choices) or 'none yet'}."

    def clean_currency(self):
        return self.cleaned_data["currency"].upper()

    def clean(self):
        data = super().clean()
        if data.get("outcome") == DealStatus.LOST and not (data.get("reason") or "").strip():
            self.add_error("reason", "Say why the deal was lost.")
        if data.get("outcome") and self.instance.status != DealStatus.OPEN:
            self.add_error("outcome", f"This deal is already {self.instance.status}.")
        return data


@admin.register(Deal)
class DealAdmin(OrgScopedAdmin):
    """Deals are opened by converting a lead; here their terms change while open, and they can be closed."""

    policy_action = policy.Action.MANAGE_LEADS
    form = DealAdminForm
    list_display = ["name", "account", "lead", "amount", "currency", "status", "stage", "expected_close",
                    "closed_at"]
    list_filter = ["status", "currency"]
    list_select_related = ["account", "lead", "stage"]
    search_fields = ["name", "account__name"]
    show_full_result_count = False
    CLOSED_READONLY = ["name", "amount", "currency", "expected_close", "owner"]
    ALWAYS_READONLY = ["account", "lead", "status", "lost_reason", "pipeline", "stage", "stage_entered_at",
                       "created_at", "updated_at", "closed_at"]

    def get_fields(self, request, obj=None):
        editable = ["outcome", "reason"] if obj is not None and obj.status == DealStatus.OPEN else []
        return [*self.CLOSED_READONLY, *editable, *self.ALWAYS_READONLY]

    def get_readonly_fields(self, request, obj=None):
        closed = obj is not None and obj.status != DealStatus.OPEN
        return [*(self.CLOSED_READONLY if closed else []), *self.ALWAYS_READONLY]

    def has_add_permission(self, request):
        return False  # a deal comes from converting a lead

    def has_delete_permission(self, request, obj=None):
        return False  # won and lost deals are what the reports count

    def save_model(self, request, obj, form, change):
        terms = {name: form.cleaned_data[name] for name in self.CLOSED_READONLY if name in form.changed_data}
        deal = Deal.objects.for_org(obj.organization_id).get(pk=obj.pk)
        if terms:
            services.update_deal(deal=deal, data=terms)
        outcome = form.cleaned_data.get("outcome")
        if outcome == DealStatus.WON:
            services.win_deal(deal=deal, actor=request.user)
        elif outcome == DealStatus.LOST:
            services.lose_deal(deal=deal, reason=form.cleaned_data["reason"], actor=request.user)


class SegmentAdminForm(forms.ModelForm):
    class Meta:
        model = Segment
        fields = ["name", "description"]


@admin.register(Segment)
class SegmentAdmin(OrgScopedAdmin):
    """Names and descriptions; the conditions are built in the browser (or the API) and shown here as JSON."""

    policy_action = policy.Action.SEGMENTS
    form = SegmentAdminForm
    list_display = ["name", "kind", "created_by", "updated_at"]
    list_filter = ["kind"]
    list_select_related = ["created_by"]
    search_fields = ["name"]
    fields = ["name", "description", "kind", "definition_json", "created_by", "created_at", "updated_at"]
    readonly_fields = ["kind", "definition_json", "created_by", "created_at", "updated_at"]

    @admin.display(description="definition")
    def definition_json(self, segment):
        if segment.kind == SegmentKind.STATIC:
            return "A static list: its leads are hand-picked, not described by conditions."
        return format_html("<pre>{}</pre>", json.dumps(segment.definition, indent=2, ensure_ascii=False))

    def has_add_permission(self, request):
        return False  # segments are built with the query builder or the API, which check their conditions

    def save_model(self, request, obj, form, change):
        services.update_segment(segment=obj, name=form.cleaned_data["name"],
                                description=form.cleaned_data["description"])

    def get_deleted_objects(self, objs, request):
        """Refuse to delete a static list other segments still test membership of (as the service does)."""
        deleted, counts, perms_needed, protected = super().get_deleted_objects(objs, request)
        for segment in objs:
            if segment.kind == SegmentKind.STATIC:
                users = services.segments_using_list(segment).values_list("name", flat=True)[:5]
                protected = [*protected, *(f"Segment “{name}” tests membership of “{segment}”" for name in users)]
        return deleted, counts, perms_needed, protected

    def delete_model(self, request, obj):
        services.delete_segment(segment=obj)

    def delete_queryset(self, request, queryset):
        for segment in queryset:
            services.delete_segment(segment=segment)


class StageInlineFormSet(forms.BaseInlineFormSet):
    """The stages as the pipeline service checks them (one won, one lost, probabilities 0–100…), before saving."""

    def rows(self) -> list[dict]:
        kept = [form.cleaned_data for form in self.forms
                if form.cleaned_data and not form.cleaned_data.get("DELETE") and form.cleaned_data.get("name")]
        kept.sort(key=lambda data: data.get("position") if data.get("position") is not None else 1_000)
        return [{"id": data["id"].pk if data.get("id") else None, "name": data["name"],
                 "probability": data.get("probability"), "rotting_days": data.get("rotting_days"),
                 "kind": data.get("kind") or "open"} for data in kept]

    def clean(self):
        super().clean()
        if any(self.errors):
            return
        try:
            services.pipelines.check_stages(self.rows())
        except DomainError as exc:
            raise forms.ValidationError(exc.messages) from None


class StageInline(admin.TabularInline):
    model = Stage
    formset = StageInlineFormSet
    fields = ["position", "name", "probability", "rotting_days", "kind"]
    ordering = ["position"]
    extra = 1

    def has_view_permission(self, request, obj=None):
        return request.user.is_superuser or policy.can(request, policy.Action.PIPELINES)

    has_change_permission = has_add_permission = has_delete_permission = has_view_permission


@admin.register(Pipeline)
class PipelineAdmin(OrgScopedAdmin):
    """Pipelines and their stages, saved (and refused) by the same service as Settings → Pipelines and the API."""

    policy_action = policy.Action.PIPELINES
    list_display = ["name", "is_default", "created_at"]
    fields = ["name", "is_default"]
    inlines = [StageInline]

    def save_model(self, request, obj, form, change):
        if not request.user.is_superuser:
            obj.organization = admin_organization(request)
        # saved with its stages in save_related, by the service

    def save_formset(self, request, form, formset, change):
        formset.new_objects, formset.changed_objects, formset.deleted_objects = [], [], []  # the service saves them

    def save_related(self, request, form, formsets, change):
        obj = form.instance
        for formset in formsets:
            self.save_formset(request, form, formset, change)
        try:
            services.save_pipeline(organization_id=obj.organization_id, pipeline=obj, name=obj.name,
                                   stages=formsets[0].rows(), is_default=obj.is_default or None, actor=request.user)
        except DomainError as exc:
            raise PermissionDenied(exc.message) from exc

    def delete_model(self, request, obj):
        services.delete_pipeline(pipeline=obj, actor=request.user)
