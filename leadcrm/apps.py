from django.apps import AppConfig


class LeadcrmConfig(AppConfig):
    name = "leadcrm"
    verbose_name = "Organizations and access"

    def ready(self):
        from . import schema  # noqa: F401 - registers the OpenAPI auth extension
