from django.urls import path

from . import views

app_name = "routing"

urlpatterns = [
    path("queue/", views.queue, name="queue"),
    path("queue/badge/", views.badge, name="badge"),
    path("queue/notifications/", views.notifications, name="notifications"),
    path("queue/notifications/read/", views.notifications_read, name="notifications-read"),
    path("queue/pool/", views.pool, name="pool"),
    path("queue/pool/<uuid:pk>/claim/", views.claim, name="claim"),
    path("queue/leads/<uuid:pk>/touch/", views.lead_touch, name="touch"),
    path("queue/leads/<uuid:pk>/stage/", views.lead_stage, name="stage"),
    path("team/", views.team, name="team"),
    path("team/reps/<int:user_id>/availability/", views.rep_availability, name="availability"),
    path("leads/routing/bulk/", views.bulk, name="bulk"),
    path("leads/<uuid:pk>/routing/", views.lead_card, name="lead-card"),
    path("leads/<uuid:pk>/routing/route/", views.lead_route, name="lead-route"),
    path("leads/<uuid:pk>/routing/reassign/", views.lead_reassign, name="lead-reassign"),
]
