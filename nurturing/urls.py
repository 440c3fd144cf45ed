from django.urls import path

from . import views, views_sequences

app_name = "nurturing"

urlpatterns = [
    # templates
    path("templates/", views.template_list, name="templates"),
    path("templates/new/", views.template_edit, name="template-create"),
    path("templates/preview/", views.template_preview, name="template-preview-new"),
    path("templates/test/", views.template_test_email, name="template-test-new"),
    path("templates/leads/", views.template_lead_options, name="template-lead-options"),
    path("templates/folders/<int:pk>/", views.folder_edit, name="folder-edit"),
    path("templates/<uuid:pk>/", views.template_edit, name="template-edit"),
    path("templates/<uuid:pk>/preview/", views.template_preview, name="template-preview"),
    path("templates/<uuid:pk>/test/", views.template_test_email, name="template-test"),
    path("templates/<uuid:pk>/versions/", views.template_versions, name="template-versions"),
    path("templates/<uuid:pk>/delete/", views.template_delete, name="template-delete"),
    # sequences
    path("sequences/", views_sequences.sequence_list, name="sequences"),
    path("sequences/new/", views_sequences.sequence_edit, name="sequence-create"),
    path("sequences/<uuid:pk>/", views_sequences.sequence_detail, name="sequence-detail"),
    path("sequences/<uuid:pk>/edit/", views_sequences.sequence_edit, name="sequence-edit"),
    path("sequences/<uuid:pk>/enroll/", views_sequences.sequence_enroll, name="sequence-enroll"),
    path("sequences/<uuid:pk>/enrollments/<uuid:enrollment_id>/exit/", views_sequences.enrollment_exit,
         name="enrollment-exit"),
    path("leads/<uuid:pk>/", views_sequences.lead_card, name="lead-card"),
    path("leads/<uuid:pk>/enroll/", views_sequences.lead_enroll, name="lead-enroll"),
]
