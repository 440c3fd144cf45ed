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
