from django.apps import AppConfig


class LeadcrmConfig(AppConfig):
    name = "leadcrm"
    verbose_name = "Organizations and access"

    def ready(self):
        from . import checks, schema  # noqa: F401 - register the deploy checks and the OpenAPI auth extension
