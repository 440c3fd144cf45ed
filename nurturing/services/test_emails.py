"""Test emails: a template (saved or still being edited) sent to the signed-in member, as a lead would get it.

It takes the real sending path — the sandboxed rendering, the organization's From and Reply-To, the mail server —
but it is no message to a lead: no Message row, nothing on a timeline, nothing in the numbers, no tracked links.
Each member may send NURTURE_TEST_EMAIL_RATE of them."""

import logging
from dataclasses import dataclass

from django.conf import settings
from django.core.mail import get_connection

from leadcrm import ratelimits
from leadcrm.errors import Conflict, DomainError, Invalid
from leadcrm.mailheaders import header_text, valid_address

from ..rendering import MAX_SUBJECT, merge_context, render_source, sample_context
from .dispatch import build_email

logger = logging.getLogger(__name__)

TEST_PREFIX = "[Test] "
RATE_SCOPE = "test-email"
# Links in a test lead nowhere that could unsubscribe anyone.
TEST_UNSUBSCRIBE_URL = "#unsubscribe-link-of-a-real-email"


class TestEmailRefused(Invalid):
    default_code = "test_email_refused"


class TestEmailLimited(DomainError):
    status = 429
    default_code = "rate_limited"


class TestEmailFailed(Conflict):
    default_code = "test_email_failed"


@dataclass(frozen=True)
class _SampleOwner:
    """The sample lead's owner, so a test with sample data shows the From of an owner's email too."""

    first_name: str
    last_name: str
    email: str

    def get_full_name(self) -> str:
        return f"{self.first_name} {self.last_name}".strip()


def send_test_email(*, organization, user, subject: str, html: str, text: str, lead=None) -> str:
    """Render the content for `lead` (None: the sample lead) and send it to `user`'s own address, its subject
    marked "[Test]". Returns the address. Raises TemplateProblem (content that cannot be rendered),
    TestEmailRefused (no address to send to), TestEmailLimited (too many just now) or TestEmailFailed (the mail
    server refused)."""
    to = valid_address(getattr(user, "email", ""))
    if not to:
        raise TestEmailRefused("Your account has no email address to send the test to.")
    if lead is None:
        context = sample_context(organization.name)
        owner = _SampleOwner(**{key: context["owner"][key] for key in ("first_name", "last_name", "email")})
    else:
        context = merge_context(lead, unsubscribe_url=TEST_UNSUBSCRIBE_URL, organization=organization)
        owner = lead.owner if lead.owner_id else None
    rendered = render_source(subject, html, text, context)  # content that cannot render costs no test
    wait = ratelimits.hit(RATE_SCOPE, str(user.pk), settings.NURTURE_TEST_EMAIL_RATE)
    if wait:
        raise TestEmailLimited(f"You have sent several test emails just now; try again in {wait} seconds.")
    email = build_email(subject=header_text(TEST_PREFIX + rendered.subject, MAX_SUBJECT), html=rendered.html,
                        text=rendered.text, to=to, organization=organization, owner=owner,
                        headers={"X-LeadCRM-Test": "yes"})
    try:
        email.connection = get_connection()
        email.send()
    except Exception as exc:  # noqa: BLE001 — any refusal of the mail server is said, not a server error
        logger.warning("A test email to %s could not be sent: %s", to, exc)
        raise TestEmailFailed("The mail server did not take the test email; try again in a moment.") from exc
    return to
