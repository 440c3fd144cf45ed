import random
from datetime import datetime, timedelta

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import transaction
from django.utils import timezone

from leadcrm import services as tenancy_services
from leadcrm.models import Organization, Role
from leads import services
from leads.models import Account, Activity, ActivityType, Deal, DealStatus, Form, Lead

DEMO_SLUG = "demo"
DEMO_PASSWORD = "demo12345"
FIRST = ["Ava", "Liam", "Maya", "Noah", "Zoe", "Ethan", "Ines", "Lucas", "Sofia", "Omar", "Hana", "Jonas", "Priya",
         "Mateo", "Chloe", "Ravi", "Elena", "Kenji", "Amara", "Felix"]
LAST = ["Nguyen", "Smith", "Garcia", "Müller", "Rossi", "Kowalski", "Okafor", "Tanaka", "Silva", "Dubois", "Novak",
        "Haddad", "Johansson", "Patel", "O'Brien"]
COMPANIES = [
    ("Northwind Traders", "retail", 120, "US"), ("Globex", "manufacturing", 2400, "US"),
    ("Initech", "software", 350, "US"), ("Umbrella Health", "healthcare", 5200, "GB"),
    ("Hooli", "software", 12000, "US"), ("Stark Logistics", "logistics", 800, "DE"),
    ("Acme Finance", "financial services", 60, "FR"), ("Wayne Energy", "energy", 9000, "US"),
    ("Tyrell Labs", "biotech", 45, "NL"), ("Cyberdyne", "software", 1500, "JP"),
    ("Soylent Foods", "food", 300, "BR"), ("Vandelay Industries", "manufacturing", 95, "CA"),
]
TITLES = ["Marketing Manager", "VP Sales", "CTO", "Head of Growth", "Operations Director", "CEO", "Analyst",
          "Procurement Lead", "IT Manager", "Founder"]
SOURCES = [("paid", "google-ads"), ("organic", "blog"), ("inbound", "website"), ("referral", "partner"),
           ("outbound", "cold-email")]
PAGES = ["/", "/pricing", "/features", "/blog/lead-scoring-101", "/case-studies", "/demo", "/docs"]
# The sales history of the demo: how far each of 40 older leads got (stages after "lead"), then its deal.
HISTORY = ([["mql"]] * 8 + [["mql", "sal"]] * 8 + [["mql", "sal", "sql"]] * 6
           + [["mql", "sal", "sql", "opportunity"]] * 6 + [["mql", "sal", "sql", "opportunity", "customer"]] * 12)
LOST_REASONS = ["Too expensive", "Chose a competitor", "No budget this year"]


# People have names: the header, the team page, notifications and the audit log read better with them.
DEMO_NAMES = {"admin@demo.test": ("Avery", "Morgan"), "manager@demo.test": ("Jordan", "Ellis"),
              "marketer@demo.test": ("Priya", "Shah"), "rep@demo.test": ("Sam", "Carter"),
              "rep2@demo.test": ("Riley", "Chen")}


def name_demo_users() -> None:
    for email, (first, last) in DEMO_NAMES.items():
        get_user_model().objects.filter(username=email, first_name="").update(first_name=first, last_name=last)


class Command(BaseCommand):
    help = "Create the demo organization with users of each role, a form, leads and activities. Safe to re-run."

    def handle(self, **options):
        organization = Organization.objects.filter(slug=DEMO_SLUG).first()
        if organization is None:
            organization = tenancy_services.create_organization(
                slug=DEMO_SLUG, name="Demo Inc.", owner_email="admin@demo.test", owner_password=DEMO_PASSWORD
            )
        for role in (Role.MANAGER, Role.MARKETER, Role.REP):
            tenancy_services.add_member(organization=organization, email=f"{role}@demo.test",
                                        password=DEMO_PASSWORD, role=role)
        name_demo_users()
        Form.objects.get_or_create(
            slug="demo-contact",
            defaults={
                "organization": organization, "name": "Contact sales",
                "fields": ["first_name", "last_name", "email", "company", "job_title", "phone"],
                "required_fields": ["email"],
                "hidden_values": {"source_type": "inbound", "source": "website contact form"},
                "consent_text": "I agree to receive emails about Demo Inc. products. Unsubscribe at any time.",
            },
        )
        if organization.leads.exists():
            self.stdout.write("Demo organization already seeded.")
            return
        rep = organization.memberships.get(role=Role.REP).user
        self._seed_leads(organization, rep)
        self._seed_history(organization, rep)
        self.stdout.write(f"Seeded demo organization with {organization.leads.count()} leads. "
                          f"Logins: admin|manager|marketer|rep@demo.test, password {DEMO_PASSWORD}")

    @transaction.atomic
    def _seed_leads(self, organization, rep):
        rng = random.Random(42)
        now = timezone.now()
        for index in range(200):
            first, last = rng.choice(FIRST), rng.choice(LAST)
            company, industry, size, country = rng.choice(COMPANIES)
            source_type, source = rng.choice(SOURCES)
            domain = company.lower().replace(" ", "") + ".example"
            result = services.capture_lead(
                organization_id=organization.pk, channel="seed",
                data={
                    "email": f"{first}.{last}.{index}@{domain}".lower().replace("'", ""),
                    "first_name": first, "last_name": last, "company": company, "industry": industry,
                    "company_size": size, "country": country, "job_title": rng.choice(TITLES),
                    "source_type": source_type, "source": source, "utm_source": source,
                    "consent_opt_in": rng.random() < 0.7,
                },
            )
            # Spread the demo over the last 90 days, a third of it already with the rep.
            created_at = now - timedelta(days=rng.randint(0, 90), minutes=rng.randint(0, 1440))
            Lead.objects.filter(pk=result.lead.pk).update(
                created_at=created_at, owner=rep if index % 3 == 0 else None,
                first_touch={**result.lead.first_touch, "at": created_at.isoformat()},
                last_touch={**result.lead.last_touch, "at": created_at.isoformat()},
                stage_entered_at={"lead": created_at.isoformat()},
            )
            result.lead.activities.update(occurred_at=created_at)
            activities = [
                Activity(organization=organization, lead=result.lead, type=ActivityType.PAGE_VIEW,
                         properties={"url": rng.choice(PAGES)},
                         occurred_at=created_at + (now - created_at) * rng.random())
                for _ in range(rng.randint(1, 8))
            ]
            Activity.objects.bulk_create(activities)
            Lead.objects.filter(pk=result.lead.pk).update(last_activity_at=max(a.occurred_at for a in activities))

    @transaction.atomic
    def _seed_history(self, organization, rep):
        """Leads that went further, with their stage times, owner and deals, so the reports have a past to show:
        MQL a few hours after capture, a step every few days, half the opportunities lost, the customers won."""
        rng = random.Random(7)
        now = timezone.now()
        older = Lead.objects.for_org(organization).filter(created_at__lt=now - timedelta(days=30)).order_by("pk")
        for lead, path in zip(older[:len(HISTORY)], HISTORY, strict=False):
            at, stages = lead.created_at + timedelta(hours=rng.randint(1, 8)), dict(lead.stage_entered_at)
            for stage in path:
                stages[stage] = min(at, now - timedelta(hours=1)).isoformat()
                at += timedelta(days=rng.randint(2, 6), hours=rng.randint(0, 12))
            Lead.objects.filter(pk=lead.pk).update(lifecycle_stage=path[-1], stage_entered_at=stages, owner=rep)
            if "opportunity" not in path:
                continue
            account, _ = Account.objects.get_or_create(organization=organization, name=lead.company)
            lost = "customer" not in path and rng.random() < 0.5
            status = DealStatus.WON if "customer" in path else DealStatus.LOST if lost else DealStatus.OPEN
            deal = Deal.objects.create(
                organization=organization, account=account, lead=lead, owner=rep, name=f"{lead.company} subscription",
                amount=rng.choice([4800, 9600, 12000, 24000, 36000]), status=status,
                lost_reason=rng.choice(LOST_REASONS) if lost else "",
                closed_at={DealStatus.WON: datetime.fromisoformat(stages.get("customer", now.isoformat())),
                           DealStatus.LOST: min(at, now)}.get(status))
            Deal.objects.filter(pk=deal.pk).update(created_at=stages["opportunity"])
