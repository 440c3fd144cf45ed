"""Django admin of campaigns, tenant-scoped through OrgScopedAdmin; saves go through the same checks as the API."""

from django import forms
from django.contrib import admin

from leadcrm import policy
from leadcrm.admin import OrgScopedAdmin, admin_organization
from leadcrm.errors import add_to_form

from . import services
from .models import Campaign, CampaignCost, CampaignMember


class CampaignForm(forms.ModelForm):
    organization_id = None

    class Meta:
        model = Campaign
        fields = list(services.CAMPAIGN_FIELDS)

    def clean(self):
        data = super().clean()
        organization_id = self.instance.organization_id or self.organization_id
        if organization_id is None and data.get("organization"):
            organization_id = data["organization"].pk
        if organization_id is None:
            return data
        values = {field: data.get(field) for field in services.CAMPAIGN_FIELDS if field in data}
        try:
            data.update(services.clean_campaign(organization_id, values,
                                                self.instance if self.instance.pk else None))
        except services.CampaignError as exc:
            add_to_form(self, exc)
        return data


class CostInline(admin.TabularInline):
    model = CampaignCost
    fields = ["date", "amount", "note"]
    extra = 0


@admin.register(Campaign)
class CampaignAdmin(OrgScopedAdmin):
    policy_action = policy.Action.CAMPAIGNS
    form = CampaignForm
    list_display = ["name", "channel", "status", "start", "end", "budget", "currency", "utm_campaign"]
    list_filter = ["channel", "status"]
    search_fields = ["name", "utm_campaign"]
    inlines = [CostInline]

    def get_form(self, request, obj=None, **kwargs):
        form = super().get_form(request, obj, **kwargs)
        organization = admin_organization(request)
        return type(form.__name__, (form,), {"organization_id": organization.pk if organization else None})

    def save_formset(self, request, form, formset, change):
        for inline_form in formset.forms:
            inline_form.instance.organization_id = form.instance.organization_id
        super().save_formset(request, form, formset, change)


@admin.register(CampaignMember)
class CampaignMemberAdmin(OrgScopedAdmin):
    policy_action = policy.Action.CAMPAIGNS
    list_display = ["campaign", "lead", "status", "source", "joined_at"]
    list_filter = ["status", "source"]
    search_fields = ["campaign__name", "lead__email"]
    readonly_fields = ["campaign", "lead", "source", "joined_at"]  # only the status is edited here
    list_select_related = ["campaign", "lead"]

    def has_add_permission(self, request):
        return False  # members join through the campaign pages and API, set-based
