import datetime
from decimal import Decimal

from django.core.management.base import BaseCommand, CommandError
from django.db.models import OuterRef, Subquery
from django.utils import timezone

from leadcrm.models import Organization
from leads.models import Lead

from ... import services
from ...models import Campaign, CampaignMember


class Command(BaseCommand):
    help = "Give the demo organization (made by seed_demo) two campaigns with costs and members. Safe to re-run."

    def handle(self, **options):
        organization = Organization.objects.filter(slug="demo").first()
        if organization is None:
            raise CommandError("Run seed_demo first.")
        if Campaign.objects.for_org(organization).exists():
            self.stdout.write("Demo campaigns already set up.")
            return
        today = timezone.localdate()
        for name, channel, source, budget, costs in (
            ("Search ads, Q4", "paid_ads", "google-ads", "5000.00", ("1200.00", "1350.50")),
            ("Partner referrals", "referral", "partner", "1000.00", ("400.00",)),
        ):
            campaign = services.save_campaign(organization_id=organization.pk, data={
                "name": name, "channel": channel, "status": "active", "start": today - datetime.timedelta(days=45),
                "budget": Decimal(budget), "currency": "USD"})
            for weeks, amount in enumerate(costs):
                services.add_cost(campaign=campaign, date=today - datetime.timedelta(weeks=4 - weeks),
                                  amount=Decimal(amount), note="Monthly spend")
            services.add_members(campaign=campaign, leads=Lead.objects.for_org(organization).filter(source=source),
                                 status="responded")
            # They responded when they were captured (the demo's leads are spread over the last 90 days).
            CampaignMember.objects.for_org(organization).filter(campaign=campaign).update(joined_at=Subquery(
                Lead.objects.filter(pk=OuterRef("lead_id")).values("created_at")[:1]))
        self.stdout.write("Demo campaigns: 'Search ads, Q4' and 'Partner referrals'.")
