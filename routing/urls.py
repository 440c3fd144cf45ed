from django.urls import path

from . import config_views, views

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
    # Settings → Routing
    path("settings/routing/", config_views.rule_list, name="rules"),
    path("settings/routing/rules/new/", config_views.rule_create, name="rule-create"),
    path("settings/routing/rules/<int:pk>/", config_views.rule_edit, name="rule-edit"),
    path("settings/routing/rules/<int:pk>/move/", config_views.rule_move, name="rule-move"),
    path("settings/routing/rules/<int:pk>/delete/", config_views.rule_delete, name="rule-delete"),
    path("settings/routing/teams/", config_views.team_list, name="teams"),
    path("settings/routing/teams/new/", config_views.team_create, name="team-create"),
    path("settings/routing/teams/<int:pk>/", config_views.team_edit, name="team-edit"),
    path("settings/routing/teams/<int:pk>/delete/", config_views.team_delete, name="team-delete"),
    path("settings/routing/reps/", config_views.rep_list, name="reps"),
    path("settings/routing/reps/<int:user_id>/", config_views.rep_edit, name="rep-edit"),
]
