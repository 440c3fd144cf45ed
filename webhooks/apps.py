from django.apps import AppConfig


class WebhooksConfig(AppConfig):
    name = "webhooks"

    def ready(self):
        from leadcrm import audit, events, metrics

        from . import handlers, privacy, selectors
        from .models import Endpoint

        for event, (handler, *event_types) in handlers.SUBSCRIPTIONS.items():
            events.subscribe(event, handlers.batched(handler, *event_types), batch=True)
        audit.register(Endpoint, secret={"secret"})
        privacy.register()
        metrics.register_gauge("leadcrm_webhook_retry_backlog",
                               "Webhook deliveries that failed at least once and wait for another attempt",
                               selectors.retry_backlog)
