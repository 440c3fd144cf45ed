from django.apps import AppConfig


class WebhooksConfig(AppConfig):
    name = "webhooks"

    def ready(self):
        from leadcrm import audit, events

        from . import handlers, privacy
        from .models import Endpoint

        for event, (handler, *event_types) in handlers.SUBSCRIPTIONS.items():
            events.subscribe(event, handlers.batched(handler, *event_types), batch=True)
        audit.register(Endpoint, secret={"secret"})
        privacy.register()
