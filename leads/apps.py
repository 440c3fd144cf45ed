from django.apps import AppConfig


class LeadsConfig(AppConfig):
    name = "leads"

    def ready(self):
        from leadcrm import events

        from .services import lifecycle, privacy

        events.subscribe(events.ORG_CREATED, lifecycle.set_up_organization)
        privacy.register_parts()
