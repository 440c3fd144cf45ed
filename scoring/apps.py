from django.apps import AppConfig


class ScoringConfig(AppConfig):
    name = "scoring"

    def ready(self):
        from leadcrm import audit, claims, events
        from leads import activity_types

        from . import handlers, privacy, tasks
        from .models import ScoringRule, ScoringSettings

        audit.register(ScoringRule)
        audit.register(ScoringSettings, exclude={
            "config_version", "scored_version", "recalc_status", "recalc_done", "recalc_total", "recalc_error",
            "recalc_started_at", "recalc_finished_at", "recalc_swept_until"},
            label=lambda settings: "Scoring and grading settings")

        # A capture always records a submission activity, so ACTIVITY_RECORDED covers new leads too.
        events.subscribe(events.ACTIVITY_RECORDED, handlers.score_after_activities, batch=True)
        events.subscribe(events.LEAD_UPDATED, handlers.score_after_update)
        events.subscribe(events.LEADS_CHANGED, handlers.score_after_bulk_change)
        events.subscribe(events.LEADS_IMPORTED, handlers.rescore_after_import)
        events.subscribe(events.LEADS_HISTORY_IMPORTED, handlers.rescore_after_import)
        events.subscribe(events.ORG_CREATED, handlers.set_up_scoring)
        privacy.register()
        claims.register_sweeper("re-scoring", tasks.enqueue_stalled_recalculations)
        claims.register_sweeper("predictive training", tasks.enqueue_abandoned_training)
        activity_types.register_usage_check(handlers.rules_using_activity_type)
