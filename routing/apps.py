from django.apps import AppConfig


class RoutingConfig(AppConfig):
    name = "routing"

    def ready(self):
        from leadcrm import events

        from . import handlers

        events.subscribe(events.LEAD_MQL, handlers.route_new_mqls)
        events.subscribe(events.ACTIVITY_RECORDED, handlers.touch_on_activity)
        events.subscribe(events.LEAD_STAGE_CHANGED, handlers.touch_on_stage)
        events.subscribe(events.LEAD_UPDATED, handlers.owner_edited)
        events.subscribe(events.MEMBER_ADDED, handlers.profile_for_member)
