from django.apps import AppConfig


class CampaignsConfig(AppConfig):
    name = "campaigns"

    def ready(self):
        from leadcrm import events

        from . import conditions, handlers, privacy

        events.subscribe(events.LEAD_CAPTURED, handlers.joined_on_capture)
        events.subscribe(events.LEADS_IMPORTED, handlers.joined_on_import)
        events.subscribe(events.LEAD_CONVERTED, handlers.converted)
        events.subscribe(events.DEAL_WON, handlers.converted)
        privacy.register()
        conditions.register()
