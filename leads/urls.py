from django.urls import path

from .views import activity_types, bulk, conversion, duplicates, forms, imports, leads, search, workspace
from .views import segments as segment_views

app_name = "leads"

urlpatterns = [
    path("leads/", leads.lead_list, name="list"),
    path("leads/export.csv", leads.lead_list_export, name="list-export"),
    path("leads/views/", leads.saved_view_save, name="view-save"),
    path("leads/columns/", leads.list_columns, name="list-columns"),
    path("leads/bulk/", bulk.lead_bulk, name="bulk"),
    path("search/", search.search, name="search"),
    path("search/suggest/", search.suggest, name="search-suggest"),
    path("leads/views/<int:pk>/delete/", leads.saved_view_delete, name="view-delete"),
    path("leads/<uuid:pk>/", leads.lead_detail, name="detail"),
    path("leads/<uuid:pk>/stage/", leads.lead_stage, name="stage"),
    path("leads/<uuid:pk>/qualification/", leads.lead_qualification, name="qualification"),
    path("leads/<uuid:pk>/log/", workspace.lead_log, name="log"),
    path("leads/<uuid:pk>/details/", workspace.lead_details, name="details"),
    path("leads/<uuid:pk>/details/edit/", workspace.lead_details_edit, name="details-edit"),
    path("leads/<uuid:pk>/export/", leads.lead_export, name="export"),
    path("leads/<uuid:pk>/erase/", leads.lead_erase, name="erase"),
    path("leads/<uuid:pk>/convert/", conversion.lead_convert, name="convert"),
    path("settings/activity-types/", activity_types.activity_type_list, name="activity-types"),
    path("settings/activity-types/<slug:key>/delete/", activity_types.activity_type_delete,
         name="activity-type-delete"),
    path("leads/duplicates/", duplicates.duplicate_list, name="duplicates"),
    path("leads/duplicates/merge/", duplicates.duplicate_merge, name="duplicates-merge"),
    path("deals/", conversion.deal_list, name="deal-list"),
    path("deals/<uuid:pk>/win/", conversion.deal_win, name="deal-win"),
    path("deals/<uuid:pk>/lose/", conversion.deal_lose, name="deal-lose"),
    path("accounts/<uuid:pk>/", conversion.account_detail, name="account-detail"),
    path("forms/", forms.form_list, name="form-list"),
    path("forms/new/", forms.form_edit, name="form-create"),
    path("forms/<uuid:pk>/", forms.form_detail, name="form-detail"),
    path("forms/<uuid:pk>/edit/", forms.form_edit, name="form-edit"),
    path("f/<slug:slug>/", forms.public_form, name="public-form"),
    path("f/<slug:slug>/embed.js", forms.form_embed_js, name="public-form-embed"),
    path("imports/", imports.import_list, name="import-list"),
    path("imports/new/", imports.import_upload, name="import-upload"),
    path("imports/<uuid:pk>/", imports.import_detail, name="import-detail"),
    path("imports/<uuid:pk>/progress/", imports.import_progress, name="import-progress"),
    path("imports/<uuid:pk>/errors.csv", imports.import_errors_csv, name="import-errors"),
]
urlpatterns += [
    path("segments/", segment_views.segment_list, name="segment-list"),
    path("segments/new/", segment_views.segment_create, name="segment-create"),
    path("segments/lists/new/", segment_views.list_create, name="list-create"),
    path("segments/count/", segment_views.segment_count, name="segment-count"),
    path("segments/<uuid:pk>/", segment_views.segment_detail, name="segment-detail"),
    path("segments/<uuid:pk>/export.csv", segment_views.segment_export, name="segment-export"),
    path("segments/<uuid:pk>/edit/", segment_views.segment_edit, name="segment-edit"),
    path("segments/<uuid:pk>/delete/", segment_views.segment_delete, name="segment-delete"),
    path("segments/<uuid:pk>/tags/", segment_views.segment_tags, name="segment-tags"),
    path("segments/<uuid:pk>/members/", segment_views.segment_members, name="segment-members"),
    path("segments/<uuid:pk>/add-to-list/", segment_views.segment_add_to_list, name="segment-add-to-list"),
]
