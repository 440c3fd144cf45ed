from django.apps import AppConfig


class NurturingConfig(AppConfig):
    name = "nurturing"

    def ready(self):
        from leadcrm import audit, events

        from . import handlers, privacy, selectors
        from .models import EmailTemplate, Sequence, TemplateFolder

        audit.register(TemplateFolder)
        audit.register(EmailTemplate, related={"content": selectors.template_content})
        audit.register(Sequence, related={"steps": selectors.sequence_steps})

        events.subscribe(events.LEAD_STAGE_CHANGED, handlers.stage_changed, batch=True)
        events.subscribe(events.ACTIVITY_RECORDED, handlers.form_submitted)
        events.subscribe(events.LEAD_UPDATED, handlers.lead_updated)
        privacy.register()
