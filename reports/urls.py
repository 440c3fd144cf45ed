from django.urls import path

from . import views

app_name = "reports"

urlpatterns = [
    path("", views.dashboard, name="dashboard"),
    path("marketing/", views.marketing, name="marketing"),
    path("sales/", views.sales, name="sales"),
    path("<slug:name>/", views.report, name="report"),
]
