from django.urls import path

from .views import forms, imports, leads

app_name = "leads"

urlpatterns = [
    path("leads/", leads.lead_list, name="list"),
    path("leads/<uuid:pk>/", leads.lead_detail, name="detail"),
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
