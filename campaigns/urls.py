from django.urls import path

from . import views

app_name = "campaigns"

urlpatterns = [
    path("campaigns/", views.campaign_list, name="list"),
    path("campaigns/new/", views.campaign_edit, name="create"),
    path("campaigns/add-leads/", views.leads_add, name="leads-add"),
    path("campaigns/<uuid:pk>/", views.campaign_detail, name="detail"),
    path("campaigns/<uuid:pk>/edit/", views.campaign_edit, name="edit"),
    path("campaigns/<uuid:pk>/delete/", views.campaign_delete, name="delete"),
    path("campaigns/<uuid:pk>/costs/", views.cost_add, name="cost-add"),
    path("campaigns/<uuid:pk>/costs/<uuid:cost_id>/delete/", views.cost_delete, name="cost-delete"),
    path("campaigns/<uuid:pk>/members/", views.members_add, name="members-add"),
    path("campaigns/<uuid:pk>/members/<uuid:lead_id>/remove/", views.member_remove, name="member-remove"),
    path("leads/<uuid:pk>/campaigns/", views.lead_card, name="lead-card"),
]
