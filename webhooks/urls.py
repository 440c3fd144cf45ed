from django.urls import path

from . import views

app_name = "webhooks"

urlpatterns = [
    path("", views.endpoint_list, name="list"),
    path("new/", views.endpoint_create, name="create"),
    path("<uuid:pk>/", views.endpoint_detail, name="detail"),
    path("<uuid:pk>/edit/", views.endpoint_edit, name="edit"),
    path("<uuid:pk>/active/", views.endpoint_active, name="active"),
    path("<uuid:pk>/rotate/", views.endpoint_rotate, name="rotate"),
    path("<uuid:pk>/test/", views.endpoint_test, name="test"),
    path("<uuid:pk>/delete/", views.endpoint_delete, name="delete"),
    path("<uuid:pk>/deliveries/<uuid:delivery_id>/", views.delivery_detail, name="delivery"),
    path("<uuid:pk>/deliveries/<uuid:delivery_id>/replay/", views.delivery_replay, name="replay"),
]
