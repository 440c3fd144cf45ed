from django.apps import AppConfig


class RoutingConfig(AppConfig):
    name = "routing"

    def ready(self):
        from leadcrm import audit, claims, events, policy
        from leads import navigation

        from . import handlers, privacy, selectors, tasks, views
        from .models import AssignmentRule, RepProfile, Team

        audit.register(AssignmentRule)
        audit.register(RepProfile)
        audit.register(Team, exclude={"turns_taken"}, related={"members": lambda team: sorted(
            str(member.rep) for member in team.memberships.select_related("rep__user"))})

        events.subscribe(events.LEAD_MQL, handlers.route_new_mqls, batch=True)
        events.subscribe(events.ACTIVITY_RECORDED, handlers.touch_on_activity)
        events.subscribe(events.LEAD_STAGE_CHANGED, handlers.touch_on_stage)
        events.subscribe(events.LEAD_UPDATED, handlers.owner_edited)
        events.subscribe(events.MEMBER_ADDED, handlers.profile_for_member)
        privacy.register()
        claims.register_sweeper("unrouted MQLs", tasks.enqueue_unrouted_mqls)
        navigation.register("queue", views.queue_steps)  # the lead page's Previous / Next through a queue
        policy.register_team_members(selectors.team_member_ids)  # a manager's team's deals (the pipeline board)
