from django.apps import AppConfig


class WebhooksConfig(AppConfig):
    name = "webhooks"

    def ready(self):
        from leadcrm import events

        from . import handlers

        for event, handler in handlers.SUBSCRIPTIONS.items():
            events.subscribe(event, handler)
