from django.core.management.base import BaseCommand, CommandError

from leadcrm import services


class Command(BaseCommand):
    help = "Create an organization with an admin membership (creating the user if needed)."

    def add_arguments(self, parser):
        parser.add_argument("slug")
        parser.add_argument("--name", required=True)
        parser.add_argument("--owner-email", required=True)
        parser.add_argument("--owner-password", required=True)

    def handle(self, slug, name, owner_email, owner_password, **options):
        try:
            organization = services.create_organization(
                slug=slug, name=name, owner_email=owner_email, owner_password=owner_password
            )
        except services.OrganizationExists as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(f"Created organization {organization.slug} ({organization.name}); admin {owner_email}")
