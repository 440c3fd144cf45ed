from datetime import datetime, timedelta

from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from leadcrm import services as tenancy_services
from leadcrm.models import Organization, Role
from leads.management.commands.seed_demo import name_demo_users
from leads.models import Lead

from ... import services
from ...models import Assignment, AssignmentReason, AssignmentRule, LeadRouting, Team

DEMO_SLUG = "demo"
DEMO_PASSWORD = "demo12345"


class Command(BaseCommand):
    help = "Give the demo organization (made by seed_demo) a sales team and round-robin routing. Safe to re-run."

    def handle(self, **options):
        organization = Organization.objects.filter(slug=DEMO_SLUG).first()
        if organization is None:
            raise CommandError("Run seed_demo first.")
        if Team.objects.for_org(organization).exists():
            self.stdout.write("Demo routing already set up.")
            return
        tenancy_services.add_member(organization=organization, email="rep2@demo.test", password=DEMO_PASSWORD,
                                    role=Role.REP)
        name_demo_users()
        reps = list(services.rep_profiles_for(organization.pk, ["rep@demo.test", "rep2@demo.test"]))
        for rep in reps:  # the seeded rep already owns dozens of leads
            services.update_rep(profile=rep, data={"capacity": 150})
        manager = organization.memberships.get(user__email="manager@demo.test").user
        team = services.save_team(organization_id=organization.pk,
                                  data={"name": "Inbound sales", "manager": manager, "members": reps})
        rule = AssignmentRule.objects.for_org(organization).first() or services.save_rule(
            organization_id=organization.pk, data={
                "name": "Every sales-ready lead", "strategy": "round_robin", "team": team, "is_fallback": True,
                "sla_minutes": 15, "max_reassignments": 2})
        _routing_history(organization, team, rule)
        self.stdout.write("Demo routing: team 'Inbound sales' (rep@, rep2@demo.test), round robin, 15-minute SLA.")


@transaction.atomic
def _routing_history(organization, team, rule):
    """How the demo's past MQLs (seed_demo gave them stages and an owner) were routed: assigned a few minutes after
    they qualified, with the rule's deadline, and first touched within it about half the time."""
    past = Lead.objects.for_org(organization).filter(owner__isnull=False, stage_entered_at__has_key="mql",
                                                     routing__isnull=True).order_by("pk")
    for number, lead in enumerate(past):
        mql_at = datetime.fromisoformat(lead.stage_entered_at["mql"])
        assigned_at = mql_at + timedelta(minutes=2 + number % 6)
        due = assigned_at + timedelta(minutes=rule.sla_minutes or 15)
        touched = assigned_at + timedelta(minutes=(4, 9, 22, 35, 12, 70)[number % 6])
        LeadRouting.objects.create(organization=organization, lead=lead, rule=rule, team=team, mql_at=mql_at,
                                   first_assigned_at=assigned_at, assigned_at=assigned_at, first_touch_at=touched,
                                   first_sla_due_at=due)
        assignment = Assignment.objects.create(
            organization=organization, lead=lead, rep_id=lead.owner_id, team=team, rule=rule, rule_name=rule.name,
            strategy=rule.strategy, reason=AssignmentReason.RULE, sla_due_at=due)
        Assignment.objects.filter(pk=assignment.pk).update(created_at=assigned_at)
