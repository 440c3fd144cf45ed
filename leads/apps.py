from django.apps import AppConfig


class LeadsConfig(AppConfig):
    name = "leads"

    def ready(self):
        from django.db.models.signals import post_delete

        from leadcrm import audit, claims, events

        from . import import_files, tasks
        from .models import ImportJob, Pipeline
        from .services import lifecycle, pipelines, privacy

        events.subscribe(events.ORG_CREATED, lifecycle.set_up_organization)
        events.subscribe(events.ORG_CREATED, pipelines.set_up_pipelines)
        audit.register(Pipeline, related={"stages": pipelines.stages_in_words})
        claims.register_sweeper("imports", tasks.enqueue_abandoned_imports)
        privacy.register_parts()
        post_delete.connect(import_files.discard_with_job, sender=ImportJob, dispatch_uid="import-file-cleanup")
