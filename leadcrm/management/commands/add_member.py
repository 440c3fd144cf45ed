from django.core.management.base import BaseCommand, CommandError

from leadcrm import services
from leadcrm.models import Organization, Role


class Command(BaseCommand):
    help = "Add a user (created if needed) to an organization with a role."

    def add_arguments(self, parser):
        parser.add_argument("slug")
        parser.add_argument("--email", required=True)
        parser.add_argument("--password", required=True)
        parser.add_argument("--role", required=True, choices=Role.values)

    def handle(self, slug, email, password, role, **options):
        organization = Organization.objects.filter(slug=slug).first()
        if organization is None:
            raise CommandError(f"No organization with slug {slug!r}.")
        services.add_member(organization=organization, email=email, password=password, role=role)
        self.stdout.write(f"{email} is now {role} of {slug}")
