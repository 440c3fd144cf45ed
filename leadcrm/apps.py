from django.apps import AppConfig


class LeadcrmConfig(AppConfig):
    name = "leadcrm"
    verbose_name = "Organizations and access"
