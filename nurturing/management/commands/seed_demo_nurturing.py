from django.core.management.base import BaseCommand, CommandError

from leadcrm.models import Organization

from ... import services
from ...models import EmailTemplate

DEMO_SLUG = "demo"
GREETING = '{{ lead.first_name|default:"there" }}'


class Command(BaseCommand):
    help = "Give the demo organization (made by seed_demo) a welcome email and a drip sequence. Safe to re-run."

    def handle(self, **options):
        organization = Organization.objects.filter(slug=DEMO_SLUG).first()
        if organization is None:
            raise CommandError("Run seed_demo first.")
        if EmailTemplate.objects.for_org(organization).exists():
            self.stdout.write("Demo emails already set up.")
            return
        welcome = services.create_template(
            organization_id=organization.pk, name="Welcome", folder="Onboarding",
            subject=f"Welcome, {GREETING}",
            html=(f"<p>Hi {GREETING},</p><p>Thanks for your interest in {{{{ organization.name }}}}. "
                  '<a href="https://example.com/guide">Read our getting-started guide</a>.</p>'
                  "<p>{{ owner.signature|linebreaksbr }}</p>"
                  '<p><small><a href="{{ unsubscribe_url }}">Unsubscribe</a></small></p>'),
            text=(f"Hi {GREETING},\n\nThanks for your interest in {{{{ organization.name }}}}. Our guide: "
                  "https://example.com/guide\n\n{{ owner.signature }}\n\nUnsubscribe: {{ unsubscribe_url }}\n"),
        )
        follow_up = services.create_template(
            organization_id=organization.pk, name="Case study", folder="Onboarding",
            subject="How teams like {{ lead.company|default:\"yours\" }} use us",
            html=(f"<p>Hi {GREETING},</p><p>Here is how a team like yours got started: "
                  '<a href="https://example.com/case-study">read the case study</a>.</p>'
                  '<p><small><a href="{{ unsubscribe_url }}">Unsubscribe</a></small></p>'),
            text=(f"Hi {GREETING},\n\nA case study: https://example.com/case-study\n\n"
                  "Unsubscribe: {{ unsubscribe_url }}\n"),
        )
        services.save_sequence(organization_id=organization.pk, data={
            "name": "New lead welcome", "active": True, "entry": {"manual": True},
            "exit": {"stages": ["sql", "opportunity", "customer"]}, "allow_reenrollment": False,
            "steps": [
                {"type": "email", "template": str(welcome.pk)},
                {"type": "wait", "days": 2, "business_days": True},
                {"type": "branch", "condition": {"opened_last": True}, "then": 3, "else": 4},
                {"type": "notify_owner"},
                {"type": "email", "template": str(follow_up.pk)},
            ],
        })
        self.stdout.write("Demo emails: templates 'Welcome' and 'Case study', sequence 'New lead welcome'.")
