"""ISO 4217 currencies (from pycountry): the codes money may carry, and the choices of the pickers."""

import pycountry
from django import forms

CODES = frozenset(currency.alpha_3 for currency in pycountry.currencies)
# "EUR — Euro", sorted by code, for <select>s: a typed "dollars" can no longer be cut to "dol" by the browser.
CHOICES = sorted((currency.alpha_3, f"{currency.alpha_3} — {currency.name}") for currency in pycountry.currencies)
MESSAGE = "Choose a currency by its ISO 4217 code, such as USD or EUR."


def normalise(code) -> str | None:
    """The upper-case code if it is a real ISO 4217 currency, else None."""
    code = (code or "").strip().upper()
    return code if code in CODES else None


class CurrencyField(forms.ChoiceField):
    """A picker of every ISO 4217 currency; a code typed in lower case (a form posted by a script) is taken too."""

    def __init__(self, **kwargs):
        super().__init__(choices=CHOICES, **kwargs)

    def to_python(self, value):
        return super().to_python(value).strip().upper()
