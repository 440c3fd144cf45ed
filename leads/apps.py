from django.apps import AppConfig


class LeadsConfig(AppConfig):
    name = "leads"

    def ready(self):
        from leadcrm import claims, events

        from . import tasks
        from .services import lifecycle, privacy

        events.subscribe(events.ORG_CREATED, lifecycle.set_up_organization)
        claims.register_sweeper("imports", tasks.enqueue_abandoned_imports)
        privacy.register_parts()
