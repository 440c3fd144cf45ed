from django.urls import path

from . import views

app_name = "agenda"

urlpatterns = [
    path("today/", views.today, name="today"),
    path("tasks/new/", views.task_new, name="new"),
    path("tasks/bulk/", views.bulk, name="bulk"),
    path("tasks/<uuid:pk>/done/", views.task_done, name="done"),
    path("tasks/<uuid:pk>/snooze/", views.task_snooze, name="snooze"),
    path("tasks/<uuid:pk>/delete/", views.task_delete, name="delete"),
    path("leads/<uuid:pk>/tasks/", views.lead_card, name="lead-card"),
]
