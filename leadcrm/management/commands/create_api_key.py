from django.core.management.base import BaseCommand, CommandError

from leadcrm import services
from leadcrm.models import Organization


class Command(BaseCommand):
    help = "Create an API key for an organization. The plain key is the last line of the output."

    def add_arguments(self, parser):
        parser.add_argument("slug")
        parser.add_argument("--name", required=True)

    def handle(self, slug, name, **options):
        organization = Organization.objects.filter(slug=slug).first()
        if organization is None:
            raise CommandError(f"No organization with slug {slug!r}.")
        api_key, plain = services.create_api_key(organization=organization, name=name)
        self.stdout.write(f"API key {api_key.name!r} (prefix {api_key.prefix}) for {slug}; it is shown only once:")
        self.stdout.write(plain)
