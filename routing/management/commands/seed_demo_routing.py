from django.core.management.base import BaseCommand, CommandError

from leadcrm import services as tenancy_services
from leadcrm.models import Organization, Role

from ... import services
from ...models import AssignmentRule, Team

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
        reps = list(services.rep_profiles_for(organization.pk, ["rep@demo.test", "rep2@demo.test"]))
        for rep in reps:  # the seeded rep already owns dozens of leads
            services.update_rep(profile=rep, data={"capacity": 150})
        manager = organization.memberships.get(user__email="manager@demo.test").user
        team = services.save_team(organization_id=organization.pk,
                                  data={"name": "Inbound sales", "manager": manager, "members": reps})
        if not AssignmentRule.objects.for_org(organization).exists():
            services.save_rule(organization_id=organization.pk, data={
                "name": "Every sales-ready lead", "strategy": "round_robin", "team": team, "is_fallback": True,
                "sla_minutes": 15, "max_reassignments": 2})
        self.stdout.write("Demo routing: team 'Inbound sales' (rep@, rep2@demo.test), round robin, 15-minute SLA.")
