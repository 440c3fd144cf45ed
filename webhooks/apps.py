from django.apps import AppConfig


class WebhooksConfig(AppConfig):
    name = "webhooks"

    def ready(self):
        from leadcrm import audit, events

        from . import handlers, privacy
        from .models import Endpoint

        for event, handler in handlers.SUBSCRIPTIONS.items():
            events.subscribe(event, handler)
        audit.register(Endpoint, secret={"secret"})
        privacy.register()
