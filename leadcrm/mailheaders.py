"""Email header text built from data people typed (a lead's name in a subject, a display name).

A header is one line: a CR or LF in it would start another header, so Django refuses to send it
(`BadHeaderError`) and the email is lost. Other control characters (the rest of C0 and C1, U+2028/U+2029
line and paragraph separators) are no better in a header. Every header built from such data goes through
`header_text`, which turns each run of them into one space, so the email still goes out and reads the same.
"""

import re

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]+")
_SPACES = re.compile(r" {2,}")


def header_text(value, max_length: int | None = None) -> str:
    """`value` as one clean header line, cut to `max_length` characters when given."""
    text = _SPACES.sub(" ", _CONTROL.sub(" ", str(value))).strip()
    return text[:max_length].rstrip() if max_length is not None else text


MAX_DISPLAY_NAME = 100


def sending_address() -> str:
    """The one address the app sends from (DEFAULT_FROM_EMAIL's, the address the mail provider has verified)."""
    from email.utils import parseaddr

    from django.conf import settings

    return parseaddr(settings.DEFAULT_FROM_EMAIL)[1] or "no-reply@localhost"


def valid_address(value) -> str:
    """`value` as one email address, or "" when it is none."""
    from django.core.exceptions import ValidationError
    from django.core.validators import validate_email

    address = header_text(value or "")
    try:
        validate_email(address)
    except ValidationError:
        return ""
    return address


def sender(organization, owner=None) -> tuple[str, list[str]]:
    """(From, Reply-To) of an email to a lead of `organization`.

    The From address is always the sending address. Its name is the organization's sender name (else its name);
    when the organization sends "from the lead's owner" and the lead has one, the owner's name, with replies going
    to the owner (a lead without an owner gets the organization's). Every part passes through `header_text`, so
    names people typed cannot add a header line."""
    from email.headerregistry import Address

    name = header_text(getattr(organization, "email_sender_name", "") or getattr(organization, "name", ""),
                       MAX_DISPLAY_NAME)
    reply_to: list[str] = []
    if owner is not None and getattr(organization, "email_from_owner", False):
        owner_name = header_text(owner.get_full_name(), MAX_DISPLAY_NAME)
        owner_email = valid_address(owner.email)
        name = owner_name or name  # an owner without a name: the organization's name, replies still to them
        if owner_email:
            reply_to = [owner_email]
    # Address quotes a name with commas or quotes in it; Django encodes a non-ASCII one when it sends.
    return str(Address(display_name=name, addr_spec=sending_address())), reply_to
