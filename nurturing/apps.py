from django.apps import AppConfig


class NurturingConfig(AppConfig):
    name = "nurturing"

    def ready(self):
        from leadcrm import events

        from . import handlers

        events.subscribe(events.LEAD_STAGE_CHANGED, handlers.stage_changed)
        events.subscribe(events.ACTIVITY_RECORDED, handlers.form_submitted)
        events.subscribe(events.LEAD_UPDATED, handlers.lead_updated)
