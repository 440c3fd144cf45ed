"""CSV import: upload checks, the column mapping, and the set-based load the worker runs.

Flow: `create_import` reads and checks the upload (encoding, header, row count) and stores the file
with a guessed mapping; `start_import` queues it (on commit); the `imports` worker calls `run_import`,
which reads the file in chunks, validates rows in Python with cheap checks, COPYs the valid ones into
a temporary staging table and creates or merges leads with a few set-based statements per chunk.
Each chunk commits together with the job's progress (`processed_rows` is the resume offset), so a
re-delivered task continues where the last commit left off and never imports a row twice.
"""

import csv
import io
import json
import logging
import queue
import re
import threading
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation

import pycountry
from django.conf import settings
from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.validators import EmailValidator, validate_email
from django.db import OperationalError, connection, transaction
from django.db.models import DateTimeField, ExpressionWrapper, F
from django.db.models.functions import Coalesce
from django.utils import timezone

from leadcrm import claims, currency, events, locks, rls
from leadcrm.csvutil import csv_response
from leadcrm.errors import Conflict, Invalid, TooLarge

from . import bulk_sql, import_files, selectors, services
from .models import (
    Activity,
    ActivityType,
    ConsentChannel,
    ConsentRecord,
    DealStatus,
    ImportJob,
    ImportKind,
    ImportRowError,
    ImportStatus,
    Lead,
    LifecycleStage,
    SourceType,
    Touch,
)

logger = logging.getLogger(__name__)

CHUNK_ROWS = 5000
PREVIEW_ROWS = 5
ERROR_PREVIEW = 100  # row errors kept on the job for the API/UI; all of them are in ImportRowError
MAX_CUSTOM_VALUE = 1000
MAX_TAGS = 100
MAX_COLUMNS = 500
DEADLOCK_RETRIES = 3

# ---------------------------------------------------------------------------------------------------------
# Targets a column can be mapped to, and the guess from common header spellings
# ---------------------------------------------------------------------------------------------------------

IGNORE = ""
CUSTOM = "custom"  # kept in custom_fields under a key made from the column's header (custom_key)
CUSTOM_PREFIX = "custom_fields."  # a stored mapping names the key: "custom_fields.favourite_colour"

TEXT_FIELDS = (
    "email", "first_name", "last_name", "phone", "job_title", "company", "industry", "website", "country",
    "region", "city", "timezone", "source_type", "source", "utm_source", "utm_medium", "utm_campaign",
    "utm_term", "utm_content", "external_id",
)
TARGETS = {
    "email": "Email", "external_id": "External id (the lead's id in your old system)", "first_name": "First name",
    "last_name": "Last name", "full_name": "Full name (split into first and last)", "phone": "Phone",
    "job_title": "Job title", "company": "Company", "industry": "Industry",
    "company_size": "Company size (employees)", "annual_revenue": "Annual revenue", "website": "Website",
    "country": "Country (name or ISO code)", "region": "Region / state", "city": "City", "timezone": "Time zone",
    "source_type": "Source type", "source": "Lead source", "utm_source": "UTM source", "utm_medium": "UTM medium",
    "utm_campaign": "UTM campaign", "utm_term": "UTM term", "utm_content": "UTM content",
    "tags": "Tags (separated by ; or ,)", "owner": "Owner (a member's email)",
    "consent_opt_in": "Opted in to marketing email (yes/no)", "unsubscribed": "Unsubscribed from email (yes/no)",
    "do_not_contact": "Do not contact (yes/no)",
    "created_at": "Created date (when the lead was created)", "lifecycle_stage": "Lifecycle stage",
    "stage_date": "Date the lead entered its lifecycle stage",
    "deal_status": "Deal outcome (won / lost)", "deal_amount": "Deal amount",
    "deal_currency": "Deal currency (USD, EUR…)",
    "deal_closed_at": "Deal close date", "deal_lost_reason": "Deal lost reason", "deal_name": "Deal name",
    CUSTOM: "Custom field",
}
# Targets that make an import a move of history (the past as it happened): its leads.history_imported event is
# taken by scoring alone, so no webhook, campaign join or nurture reacts to long-gone days.
HISTORY_TARGETS = frozenset({"created_at", "stage_date", "deal_status", "deal_closed_at"})
DEAL_TARGETS = ("deal_amount", "deal_currency", "deal_closed_at", "deal_lost_reason", "deal_name")

_ALIASES = {
    "email": "email emailaddress mail emailid workemail businessemail primaryemail contactemail leademail "
             "emailaddr",
    "external_id": "externalid id recordid leadid contactid crmid sourceid externalreference externalref",
    "first_name": "firstname first givenname forename fname",
    "last_name": "lastname last surname familyname lname",
    "full_name": "name fullname contactname contact leadname",
    "phone": "phone phonenumber telephone telephonenumber tel mobile mobilephone mobilenumber cell cellphone "
             "workphone businessphone phoneno directphone officephone",
    "job_title": "jobtitle title position role designation jobrole",
    "company": "company companyname organization organisation organizationname organisationname account "
               "accountname employer business businessname",
    "industry": "industry sector vertical",
    "company_size": "companysize employees numberofemployees noofemployees employeecount headcount "
                    "companyheadcount",
    "annual_revenue": "annualrevenue revenue companyrevenue",
    "website": "website web url companywebsite site homepage websiteurl companyurl",
    "country": "country countrycode countryregion countryname",
    "region": "region state province stateprovince stateregion county",
    "city": "city town locality",
    "timezone": "timezone tz",
    "source_type": "sourcetype leadsourcetype",
    "source": "leadsource source sourcedetail origin leadorigin",
    "utm_source": "utmsource",
    "utm_medium": "utmmedium",
    "utm_campaign": "utmcampaign campaign campaignname",
    "utm_term": "utmterm",
    "utm_content": "utmcontent",
    "tags": "tags tag labels label",
    "owner": "owner owneremail leadowner contactowner assignedto assignee salesrep rep ownedby",
    "consent_opt_in": "consent consentoptin optin optedin emailoptin marketingconsent marketingoptin",
    "unsubscribed": "unsubscribed unsubscribe emailoptout optedout optout hasoptedoutofemail",
    "do_not_contact": "donotcontact dnc donotcall",
    "created_at": "createdat createddate createdon createdtime datecreated created creationdate createdate",
    "lifecycle_stage": "lifecyclestage stage leadstage funnelstage",
    "stage_date": "stagedate stageenteredat stageentered dateenteredstage stagechangedate stagesince",
    "deal_status": "dealstatus dealoutcome outcome wonlost",
    "deal_amount": "dealamount amount dealvalue",
    "deal_currency": "dealcurrency currency currencycode",
    "deal_closed_at": "dealclosedate dealclosedat closedate closedat closeddate dealcloseddate wondate",
    "deal_lost_reason": "deallostreason lostreason closedlostreason reasonlost",
    "deal_name": "dealname opportunityname",
}
HEADER_GUESSES = {alias: field for field, aliases in _ALIASES.items() for alias in aliases.split()}
_NOT_ALNUM = re.compile(r"[^0-9a-z]+")
_KEY_CHARS = re.compile(r"[^a-z0-9]+")
KEY_PATTERN = re.compile(r"[a-z0-9_]{1,64}\Z")
CUSTOM_KEY_HELP = "Keys use lowercase letters, digits and _ only (“Favourite colour” becomes favourite_colour)."


def normalize_header(header: str) -> str:
    """`E-mail Address`, `email_address` and ` EMAIL ADDRESS ` all become `emailaddress`."""
    return _NOT_ALNUM.sub("", header.casefold())


def custom_key(text: str, fallback: str = "field") -> str:
    """A safe key for custom_fields (or an activity's properties) from a column header or a typed name:
    lowercase letters, digits and _, accents dropped. `Favourite Colour (2)` → `favourite_colour_2`."""
    plain = unicodedata.normalize("NFKD", text.casefold()).encode("ascii", "ignore").decode()
    return _KEY_CHARS.sub("_", plain).strip("_")[:64].strip("_") or fallback


def guess_target(header: str, guesses: dict | None = None) -> str:
    guesses = HEADER_GUESSES if guesses is None else guesses
    key = normalize_header(header)
    if key in guesses:
        return guesses[key]
    for prefix in ("lead", "contact", "primary", "work", "business", "company"):
        if key.startswith(prefix) and key[len(prefix):] in guesses:
            return guesses[key[len(prefix):]]
    return IGNORE


def guess_mapping(headers: list[str]) -> dict[str, str]:
    """Each lead field is guessed for at most one column (the first that looks like it). Columns left unguessed
    are not imported until the user says so (the mapping step lists them and offers each as a custom field)."""
    mapping, used = {}, set()
    for header in headers:
        target = guess_target(header)
        if target in used:
            target = IGNORE
        used.add(target)
        mapping[header] = target
    return mapping


def unmapped_columns(headers: list[str], mapping: dict, prefix: str = CUSTOM_PREFIX) -> list[dict]:
    """The columns a mapping leaves out, each with the custom target that would keep it."""
    return [{"column": header, "suggested_target": prefix + custom_key(header, f"column_{position}")}
            for position, header in enumerate(headers, start=1) if not mapping.get(header)]


# ---------------------------------------------------------------------------------------------------------
# Cell checks: cheap, compiled once, no ORM
# ---------------------------------------------------------------------------------------------------------

# Values forms and spreadsheets use for "nothing": compared after trimming punctuation and case.
PLACEHOLDERS = frozenset({
    "", "select", "select one", "please select", "choose", "choose one", "none", "null", "nil", "n/a", "n.a",
    "#n/a", "undefined", "unknown", "not provided", "not available", "nan", "blank", "empty",
})
_PLACEHOLDER_TRIM = " \t-–—_.()[]<>*'\""


def is_placeholder(value: str) -> bool:
    return len(value) <= 24 and value.casefold().strip(_PLACEHOLDER_TRIM) in PLACEHOLDERS


# Django's own email rules, as one pattern: an address it matches is valid for EmailValidator too;
# anything else (quoted local parts, IP literals, junk) gets the full validator's verdict.
_EMAIL_FAST = re.compile(
    r"[-!#$%&'*+/=?^_`{}|~0-9A-Z]+(\.[-!#$%&'*+/=?^_`{}|~0-9A-Z]+)*@"
    + EmailValidator.hostname_re + EmailValidator.domain_re + EmailValidator.tld_no_fqdn_re + r"\Z",
    re.IGNORECASE,
)
_WHOLE_NUMBER = re.compile(r"\d{1,10}(\.0*)?\Z")
_NUMBER_NOISE = re.compile(r"[\s,_$€£¥']|^[A-Za-z]{3}(?=\d)|(?<=\d)[A-Za-z]{3}$")
_TAG_SPLIT = re.compile(r"[;,]")

COUNTRY_ALIASES = {
    "united states": "US", "united states of america": "US", "usa": "US", "u.s.": "US", "u.s.a.": "US",
    "america": "US", "united kingdom": "GB", "uk": "GB", "u.k.": "GB", "great britain": "GB", "england": "GB",
    "scotland": "GB", "wales": "GB", "germany": "DE", "deutschland": "DE", "france": "FR", "spain": "ES",
    "españa": "ES", "italy": "IT", "italia": "IT", "netherlands": "NL", "the netherlands": "NL",
    "holland": "NL", "belgium": "BE", "switzerland": "CH", "austria": "AT", "sweden": "SE", "norway": "NO",
    "denmark": "DK", "finland": "FI", "ireland": "IE", "portugal": "PT", "poland": "PL", "canada": "CA",
    "mexico": "MX", "méxico": "MX", "brazil": "BR", "brasil": "BR", "argentina": "AR", "australia": "AU",
    "new zealand": "NZ", "india": "IN", "china": "CN", "japan": "JP", "south korea": "KR", "korea": "KR",
    "singapore": "SG", "israel": "IL", "south africa": "ZA", "united arab emirates": "AE", "uae": "AE",
    "czech republic": "CZ", "czechia": "CZ", "greece": "GR", "turkey": "TR", "türkiye": "TR",
}
# A consent column: anything else is refused, so a typo never opts someone in.
CONSENT_VALUES = {**dict.fromkeys(("yes", "y", "true", "1", "x", "opted in", "opt-in", "optin"), True),
                  **dict.fromkeys(("no", "n", "false", "0", "opted out", "opt-out", "optout"), False)}
SOURCE_TYPES = {**{value: value for value in SourceType.values},
                **{str(label).casefold(): value for value, label in SourceType.choices}}


STAGES = {
    **{value: value for value in LifecycleStage.values},
    **{str(label).casefold(): value for value, label in LifecycleStage.choices},
    # how other CRMs spell them (HubSpot's internal values among them)
    "marketing qualified lead": LifecycleStage.MQL, "marketingqualifiedlead": LifecycleStage.MQL,
    "sales accepted lead": LifecycleStage.SAL, "sales qualified lead": LifecycleStage.SQL,
    "salesqualifiedlead": LifecycleStage.SQL, "opp": LifecycleStage.OPPORTUNITY,
    "client": LifecycleStage.CUSTOMER, "unqualified": LifecycleStage.DISQUALIFIED,
    "nurture": LifecycleStage.RECYCLED,
}
DEAL_OUTCOMES = {**dict.fromkeys(("won", "closed won", "closed-won", "closedwon", "win", "w"), DealStatus.WON),
                 **dict.fromkeys(("lost", "closed lost", "closed-lost", "closedlost", "loss", "l"), DealStatus.LOST)}
MAX_COUNTRY_TEXT = 100
EARLIEST_DATE = datetime(1900, 1, 1, tzinfo=UTC)
DATE_HELP = "Use a date such as 2024-03-15, or a date and time such as 2024-03-15 14:30 or 2024-03-15T14:30:00Z"
_SLASHED_YMD = re.compile(r"(\d{4})/(\d{1,2})/(\d{1,2})(?=$|[ T])")
_DOTTED_DMY = re.compile(r"(\d{1,2})\.(\d{1,2})\.(\d{4})(?=$| )")
_countries: dict[str, str | None] = {}


def country_code(raw: str) -> str | None:
    """The ISO 3166 alpha-2 code for a code (DE, DEU), an English name (Germany, germany, Federal Republic of
    Germany) or a common local spelling (Deutschland); None when it names no country. Looked up before any
    length check: names are longer than codes."""
    key = raw.strip().casefold()
    if key not in _countries:
        code = COUNTRY_ALIASES.get(key)
        if code is None and len(key) <= MAX_COUNTRY_TEXT:
            try:
                code = pycountry.countries.lookup(key).alpha_2
            except LookupError:
                code = None
        if len(_countries) > 10_000:
            _countries.clear()
        _countries[key] = code
    return _countries[key]


def parse_when(raw: str, now: datetime) -> tuple[datetime | None, str | None]:
    """(an aware UTC time, None) or (None, why not). ISO dates and times (2024-03-15, 2024-03-15 14:30,
    2024-03-15T14:30:00+02:00), 2024/03/15 and 15.03.2024; a time without a zone is UTC. Day/month orders that
    could be read two ways (03/04/2024) are refused rather than guessed."""
    text = raw.strip()
    text = _SLASHED_YMD.sub(lambda m: f"{m[1]}-{int(m[2]):02d}-{int(m[3]):02d}", text, count=1)
    text = _DOTTED_DMY.sub(lambda m: f"{m[3]}-{int(m[2]):02d}-{int(m[1]):02d}", text, count=1)
    if text.endswith(("z", "Z")):
        text = text[:-1] + "+00:00"
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        return None, f"“{raw[:40]}” is not a date we can read. {DATE_HELP}."
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    value = value.astimezone(UTC)
    if value < EARLIEST_DATE:
        return None, "The date is before 1900."
    if value > now:
        return None, f"The date {value:%Y-%m-%d %H:%M} UTC is in the future."
    return value, None


def _max_length(field: str) -> int:
    return Lead._meta.get_field(field).max_length


MAX_LENGTHS = {field: _max_length(field) for field in TEXT_FIELDS}
MAX_LENGTHS["phone"] = 40  # the raw value; the stored E.164 form is shorter
MAX_LENGTHS["country"] = MAX_COUNTRY_TEXT  # a name, looked up: the stored code is two letters
FLAGS = ("consent_opt_in", "unsubscribed", "do_not_contact")
DATES = ("created_at", "stage_date", "deal_closed_at")
DEAL_TEXT = {"deal_lost_reason": 200, "deal_name": 200}
MAX_DEAL_AMOUNT = Decimal("999999999999.99")  # Deal.amount: 14 digits, 2 after the point


def _too_long(limit: int, value: str) -> str:
    return f"Ensure this value has at most {limit} characters (it has {len(value)})."


class RowCleaner:
    """Turns one CSV record into lead values, or errors keyed by column header.

    Written for speed: one pass over the mapped columns, dict lookups and compiled patterns only. `owners` maps the
    organization's members' emails (lower case) to their user ids, read once per job.
    """

    def __init__(self, headers: list[str], mapping: dict[str, str], owners: dict | None = None, now=None):
        self.width = len(headers)
        self.columns = [
            (index, header, mapping[header]) for index, header in enumerate(headers) if mapping.get(header)
        ]
        self.owners = owners or {}
        self.now = now or timezone.now()
        self._phones: dict[tuple[str, str], str | None] = {}

    def clean(self, cells: list[str]) -> tuple[dict | None, dict | None]:
        if len(cells) != self.width and (
            len(cells) < self.width or any(cell.strip() for cell in cells[self.width:])
        ):
            return None, {"non_field_errors": [
                f"This row has {len(cells)} cells; the header has {self.width}. "
                "Check for unquoted commas or missing cells."
            ]}
        values: dict = {}
        errors: dict = {}
        where: dict = {}
        for index, header, target in self.columns:
            raw = cells[index].strip()
            if not raw or (len(raw) <= 24 and raw.casefold().strip(_PLACEHOLDER_TRIM) in PLACEHOLDERS):
                continue  # is_placeholder(), inlined: this runs for every cell
            if target in MAX_LENGTHS:
                if len(raw) > MAX_LENGTHS[target]:
                    errors[header] = [_too_long(MAX_LENGTHS[target], raw)]
                    continue
                if target == "email":
                    raw = raw.lower()
                    if not _EMAIL_FAST.match(raw) and not _valid_email(raw):
                        errors[header] = ["Enter a valid email address."]
                        continue
                elif target == "country":
                    code = raw.upper() if len(raw) == 2 and raw.upper() in _ALPHA_2 else country_code(raw)
                    if code is None:
                        errors[header] = [f"“{raw}” is not a country we know. Use its English name (Germany) or "
                                          "its ISO 3166 code (DE)."]
                        continue
                    raw = code
                elif target == "source_type":
                    value = SOURCE_TYPES.get(raw.casefold())
                    if value is None:
                        errors[header] = [f"Use one of: {', '.join(SourceType.values)}."]
                        continue
                    raw = value
                values[target] = raw
                where[target] = header
            elif target.startswith(CUSTOM_PREFIX):
                if len(raw) > MAX_CUSTOM_VALUE:
                    errors[header] = [_too_long(MAX_CUSTOM_VALUE, raw)]
                    continue
                values.setdefault("custom_fields", {})[target[len(CUSTOM_PREFIX):]] = raw
            elif target == "company_size":
                digits = _NUMBER_NOISE.sub("", raw)
                if not _WHOLE_NUMBER.match(digits) or int(float(digits)) > 2_147_483_647:
                    errors[header] = ["Enter a whole number of employees, such as 250."]
                    continue
                values[target] = int(float(digits))
            elif target == "annual_revenue":
                value = _decimal(_NUMBER_NOISE.sub("", raw))
                if value is None:
                    errors[header] = ["Enter an amount, such as 1250000 or 1,250,000.00."]
                    continue
                values[target] = value
            elif target == "tags":
                tags = list(dict.fromkeys(tag.strip() for tag in _TAG_SPLIT.split(raw) if tag.strip()))
                if any(len(tag) > 64 for tag in tags) or len(tags) > MAX_TAGS:
                    errors[header] = [f"At most {MAX_TAGS} tags of at most 64 characters each."]
                    continue
                values[target] = tags
            elif target in FLAGS:
                value = CONSENT_VALUES.get(raw.casefold())
                if value is None:
                    errors[header] = ["Use yes or no."]
                    continue
                values[target] = value
            elif target == "full_name":
                first, last = _split_name(raw)
                if len(first) > MAX_LENGTHS["first_name"] or len(last) > MAX_LENGTHS["last_name"]:
                    errors[header] = [_too_long(MAX_LENGTHS["first_name"], raw)]
                    continue
                values["_first"], values["_last"] = first, last
            elif target in DATES:
                value, problem = parse_when(raw, self.now)
                if problem:
                    errors[header] = [problem]
                    continue
                values[target] = value
                where[target] = header
            elif target == "lifecycle_stage":
                value = STAGES.get(raw.casefold())
                if value is None:
                    errors[header] = [f"“{raw[:40]}” is not a lifecycle stage; use one of: "
                                      f"{', '.join(LifecycleStage.values)}."]
                    continue
                values[target] = value
            elif target == "owner":
                owner_id = self.owners.get(raw.casefold())
                if owner_id is None:
                    errors[header] = [f"No member of this organization has the email “{raw[:254]}”. Invite them "
                                      "first, or leave the owner empty."]
                    continue
                values["owner_id"] = owner_id
            elif target == "deal_status":
                value = DEAL_OUTCOMES.get(raw.casefold())
                if value is None:
                    errors[header] = ["Use won or lost."]
                    continue
                values[target] = value
                where[target] = header
            elif target == "deal_amount":
                negative = raw.startswith("-") or (raw.startswith("(") and raw.endswith(")"))
                value = None if negative else _decimal(_NUMBER_NOISE.sub("", raw))
                if value is None or value > MAX_DEAL_AMOUNT:
                    errors[header] = ["A deal amount cannot be negative." if negative else
                                      f"Enter an amount of at most {MAX_DEAL_AMOUNT:,}." if value else
                                      "Enter an amount, such as 12500 or 12,500.00."]
                    continue
                values[target] = value
                where[target] = header
            elif target == "deal_currency":
                value = currency.normalise(raw)
                if value is None:
                    errors[header] = [currency.MESSAGE]
                    continue
                values[target] = value
            elif target in DEAL_TEXT:
                if len(raw) > DEAL_TEXT[target]:
                    errors[header] = [_too_long(DEAL_TEXT[target], raw)]
                    continue
                values[target] = raw
                where[target] = header
        if "_first" in values:  # a full name fills only the parts no other column gave
            values.setdefault("first_name", values.pop("_first"))
            values.setdefault("last_name", values.pop("_last"))
            values.pop("_first", None), values.pop("_last", None)
        if "phone" in values:
            phone = self._phone(values["phone"], values.get("country", ""))
            if phone is None:
                errors[where["phone"]] = ["Enter a valid phone number, with its country code (e.g. +14155550123)."]
            else:
                values["phone"] = phone
        if errors:
            return None, errors
        if not values.get("email") and not values.get("phone") and not values.get("external_id"):
            return None, {"non_field_errors": ["A lead needs an email address, a phone number or an external id."]}
        return _history(values, where)

    def header_of(self, target: str) -> str:
        """The column mapped to `target` (error messages are keyed by the user's column names)."""
        return next((header for _, header, mapped in self.columns if mapped == target), "non_field_errors")

    def _phone(self, raw: str, country: str) -> str | None:
        # The same number often repeats (switchboards); parsing is the slowest check, so remember it.
        key = (raw, country)
        if key not in self._phones:
            try:
                result = services.normalize_phone(raw, country)
            except services.PhoneNumberInvalid:
                result = None
            if len(self._phones) > 100_000:
                self._phones.clear()
            self._phones[key] = result
        return self._phones[key]


_ALPHA_2 = frozenset(country.alpha_2 for country in pycountry.countries) | {"XK"}  # Kosovo, used by many CRMs


def _history(values: dict, where: dict) -> tuple[dict | None, dict | None]:
    """The checks across a row's history columns, and its stage history: `stage_dates` {stage: ISO time} holds the
    stage the row gives at its date (else its created date) and, for a won deal, customer at the close date; stages
    earlier in the funnel get no invented dates."""
    created, stage, stage_date = values.get("created_at"), values.get("lifecycle_stage"), values.get("stage_date")
    errors = {}
    if stage_date is not None and stage is None:
        errors[where["stage_date"]] = ["A stage date needs the lifecycle stage it belongs to in the same row."]
    if stage_date is not None and created is not None and stage_date < created:
        errors[where["stage_date"]] = [f"The stage date ({stage_date:%Y-%m-%d}) is before the created date "
                                       f"({created:%Y-%m-%d})."]
    outcome = values.get("deal_status")
    if outcome is None:
        given = [where[target] for target in DEAL_TARGETS if target in where]
        if given:
            errors[given[0]] = ["Say whether the deal was won or lost in the deal outcome column."]
    else:
        column = where["deal_status"]
        closed = values.get("deal_closed_at")
        if outcome == DealStatus.WON and (values.get("deal_amount") is None or not values.get("deal_currency")
                                          or closed is None):
            errors[column] = ["A won deal needs its amount, currency and close date."]
        elif outcome == DealStatus.LOST and (not values.get("deal_lost_reason") or closed is None):
            errors[column] = ["A lost deal needs the reason it was lost and its close date."]
        elif values.get("deal_amount") is not None and not values.get("deal_currency"):
            errors[column] = ["Give the deal's currency with its amount."]
        elif not values.get("company"):
            errors[column] = ["A deal needs the lead's company: its account is named after it."]
        elif created is not None and closed < created:
            errors[where["deal_closed_at"]] = [f"The deal closed ({closed:%Y-%m-%d}) before the lead was created "
                                               f"({created:%Y-%m-%d})."]
    if errors:
        return None, errors
    if stage is not None or outcome == DealStatus.WON:
        dates = {}
        if stage is not None:
            dates[stage] = stage_date or created
        if outcome == DealStatus.WON:  # winning makes the lead a customer (conversion's rule), from that day
            values["lifecycle_stage"] = LifecycleStage.CUSTOMER
            dates.setdefault(LifecycleStage.CUSTOMER, values["deal_closed_at"])
        values["stage_dates"] = {name: at.isoformat() for name, at in dates.items() if at is not None}
    return values, None


def _valid_email(value: str) -> bool:
    try:
        validate_email(value)
    except DjangoValidationError:
        return False
    return len(value) <= 254


def _decimal(text: str) -> Decimal | None:
    try:
        value = Decimal(text)
    except InvalidOperation:
        return None
    if not value.is_finite() or value < 0 or value >= Decimal("1e14"):
        return None
    return value.quantize(Decimal("0.01"))


def _split_name(value: str) -> tuple[str, str]:
    """`Ada Lovelace` and `Lovelace, Ada` both give ("Ada", "Lovelace")."""
    if "," in value:
        last, _, first = value.partition(",")
        return first.strip(), last.strip()
    first, _, last = value.partition(" ")
    return first.strip(), last.strip()


# ---------------------------------------------------------------------------------------------------------
# Upload: read, check, store
# ---------------------------------------------------------------------------------------------------------


class ImportRejected(Invalid):
    """The upload or mapping cannot be used; `errors` is {field: [messages]} for the user."""

    default_code = "invalid_import"

    def __init__(self, errors: dict):
        super().__init__(errors=errors)


class ImportTooLarge(ImportRejected, TooLarge):
    default_code = "file_too_large"


def _reject(message: str, field: str = "file"):
    raise ImportRejected({field: [message]})


def decode(data: bytes) -> tuple[str, str]:
    """(text, encoding). UTF-8 (with or without BOM) and BOM-marked UTF-16 are read as such; other bytes
    fall back to Windows-1252, what Excel on Windows writes for "CSV" — shown to the user on the job."""
    if data.startswith(b"PK\x03\x04") or data.startswith(b"\xd0\xcf\x11\xe0"):
        _reject("This is an Excel workbook, not a CSV file. In Excel choose File › Save As › CSV UTF-8.")
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            return data.decode("utf-16"), "utf-16"
        except UnicodeDecodeError:
            _reject("The file says it is UTF-16 but is not valid UTF-16 text.")
    try:
        text, encoding = data.decode("utf-8-sig"), "utf-8"
    except UnicodeDecodeError:
        try:
            text, encoding = data.decode("cp1252"), "cp1252"
        except UnicodeDecodeError:
            _reject("The file is not UTF-8 text. Save it as “CSV UTF-8” and upload it again.")
    if "\x00" in text:
        _reject("The file contains NUL bytes, so it is not a text CSV file. Save it as “CSV UTF-8”.")
    return text, encoding


def detect_delimiter(text: str) -> str:
    """The separator the header line uses most: comma, semicolon (European Excel), tab or pipe."""
    first_line = text[:65536].split("\n", 1)[0]
    counts = {sep: first_line.count(sep) for sep in (",", ";", "\t", "|")}
    best = max(counts, key=counts.get)
    return best if counts[best] > counts[","] else ","


def _reader(text: str, delimiter: str):
    """(row_number, cells) for every non-blank record; row numbers count as a spreadsheet does."""
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=False)
    row_number = 0
    for cells in reader:
        row_number += 1
        if cells and (len(cells) > 1 or cells[0].strip()):
            yield row_number, cells


def unique_headers(cells: list[str]) -> list[str]:
    headers, seen = [], set()
    for position, cell in enumerate(cells, start=1):
        base = cell.strip() or f"Column {position}"
        name, n = base, 1
        while name in seen:
            n += 1
            name = f"{base} ({n})"
        seen.add(name)
        headers.append(name)
    return headers


def inspect_csv(data: bytes) -> dict:
    """Checks a whole upload before it is stored: encoding, header, and that every record parses."""
    if not data.strip():
        _reject("The file is empty.")
    text, encoding = decode(data)
    delimiter = detect_delimiter(text)
    records = _reader(text, delimiter)
    total, preview, header_cells = 0, [], None
    last_read = 0
    try:
        for last_read, cells in records:  # noqa: B007 (read after the loop when a record is broken)
            if header_cells is None:
                header_cells = cells
                continue
            total += 1
            if len(preview) < PREVIEW_ROWS:
                preview.append(cells)
    except csv.Error as exc:
        _reject(f"Row {last_read + 1} cannot be read as CSV ({exc}).")
    if header_cells is None:
        _reject("The file is empty.")
    if not any(cell.strip() for cell in header_cells):
        _reject("The first row must name the columns (for example Email, First Name, Company).")
    if any(_EMAIL_FAST.match(cell.strip()) for cell in header_cells):
        _reject("The first row looks like data (it holds an email address). Add a header row that names "
                "the columns, such as Email, First Name, Company.")
    if total == 0:
        _reject("The file has a header row but no data rows.")
    if len(header_cells) > MAX_COLUMNS:
        _reject(f"The file has {len(header_cells)} columns; at most {MAX_COLUMNS} can be imported.")
    return {"encoding": encoding, "delimiter": delimiter, "headers": unique_headers(header_cells),
            "preview": preview, "total_rows": total}


@dataclass(frozen=True)
class Kind:
    """What the rows of an import are: the targets a column may have, the guesses from headers, the target that
    keeps any column under a key of its own (`custom`, stored as `prefix` + key), what an unguessed column
    becomes, and the checks of a whole mapping."""

    targets: dict
    guesses: dict
    custom: str
    prefix: str
    custom_label: str
    unguessed: str
    check: Callable[[dict], list[str]]


def _check_lead_mapping(used: dict) -> list[str]:
    problems = []
    if not {"email", "phone", "external_id"} & set(used):
        problems.append("Map a column to email or phone (or external id): every lead needs one of them.")
    if "stage_date" in used and "lifecycle_stage" not in used:
        problems.append("Map a Lifecycle stage column too: the stage date says when the lead entered it.")
    deal = [target for target in DEAL_TARGETS if target in used]
    if deal and "deal_status" not in used:
        problems.append(f"Map a Deal outcome column (won / lost) too: “{used[deal[0]]}” describes a deal.")
    if "deal_status" in used and "company" not in used:
        problems.append("Map a Company column too: a won or lost deal's account is named after the lead's company.")
    return problems


LEAD_KIND = Kind(targets=TARGETS, guesses=HEADER_GUESSES, custom=CUSTOM, prefix=CUSTOM_PREFIX,
                 custom_label="Custom field", unguessed=IGNORE, check=_check_lead_mapping)


def kind_of(kind) -> Kind:
    if kind == ImportKind.ACTIVITIES:
        from .activity_imports import ACTIVITY_KIND  # it builds on this module

        return ACTIVITY_KIND
    return LEAD_KIND


def guess_kind_mapping(headers: list[str], kind) -> dict[str, str]:
    """guess_mapping for an import kind: each target for at most one column; a column no header spelling names
    becomes the kind's `unguessed` target (activities: a property under the column's key)."""
    spec = kind_of(kind)
    if spec is LEAD_KIND:
        return guess_mapping(headers)
    mapping, used = {}, set()
    for position, header in enumerate(headers, start=1):
        target = guess_target(header, spec.guesses)
        if target in used:
            target = IGNORE
        elif not target and spec.unguessed == spec.custom:
            target = spec.prefix + custom_key(header, f"column_{position}")
        used.add(target)
        mapping[header] = target
    return mapping


def target_label(target: str, kind=ImportKind.LEADS) -> str:
    spec = kind_of(kind)
    if target.startswith(spec.prefix):
        return f"{spec.custom_label}: {target}"
    return str(spec.targets.get(target, target))


def validate_mapping(headers: list[str], mapping, kind=ImportKind.LEADS) -> dict[str, str]:
    """A clean {header: target} from user input (a dict or its JSON text); raises ImportRejected. A column sent as
    `custom` (activities: `property`) is kept under the key made from its header; `custom_fields.<key>`
    (`properties.<key>`) names the key."""
    spec = kind_of(kind)
    noun = "a lead field" if spec is LEAD_KIND else "an activity field"
    if isinstance(mapping, str):
        try:
            mapping = json.loads(mapping)
        except ValueError:
            mapping = None
    if not isinstance(mapping, dict):
        _reject('Send the mapping as a JSON object: {"CSV header": "lead field"}.', field="mapping")
    problems, clean, used = [], {}, {}
    positions = {header: position for position, header in enumerate(headers, start=1)}
    for header, target in mapping.items():
        target = (target or "").strip() if isinstance(target, str) or target is None else target
        if target in ("ignore", "skip"):
            target = IGNORE
        if header not in positions:
            problems.append(f"“{header}” is not a column of this file.")
            continue
        if not isinstance(target, str):
            problems.append(f"“{target}” (for “{header}”) is not {noun}; use one of: {', '.join(spec.targets)}.")
            continue
        if target == spec.custom:
            target = spec.prefix + custom_key(header, f"column_{positions[header]}")
        elif target.startswith(spec.prefix):
            if not KEY_PATTERN.match(target[len(spec.prefix):]):
                problems.append(f"“{target[len(spec.prefix):]}” (for “{header}”) cannot be a key. {CUSTOM_KEY_HELP}")
                continue
        elif target and target not in spec.targets:
            problems.append(f"“{target}” (for “{header}”) is not {noun}; use one of: {', '.join(spec.targets)}, "
                            f"or {spec.prefix}<key>.")
            continue
        if target:
            if target in used:
                problems.append(f"Both “{used[target]}” and “{header}” are mapped to {target}; choose one.")
                continue
            used[target] = header
        clean[header] = target
    if not problems:
        problems += spec.check(used)
    if problems:
        raise ImportRejected({"mapping": problems})
    return clean


def is_historical(job: ImportJob) -> bool:
    """An import of the past: activities with their times, or leads with their created, stage or deal dates."""
    return job.kind == ImportKind.ACTIVITIES or bool(HISTORY_TARGETS & set(job.mapping.values()))


def create_import(*, organization_id, upload, created_by, mapping, kind=ImportKind.LEADS) -> ImportJob:
    """Check and store an uploaded CSV. With `mapping` (dict or JSON) it is validated and kept; without,
    the guessed mapping is stored for the user to review. The job waits in `mapping` until started."""
    if kind not in ImportKind.values:
        _reject(f"Choose what the file holds: {' or '.join(ImportKind.values)}.", field="kind")
    limit = settings.MAX_IMPORT_BYTES
    too_large = ImportTooLarge({"file": [f"The file is larger than {limit // (1024 * 1024)} MB; split it into "
                                         "smaller files."]})
    if upload.size is not None and upload.size > limit:
        raise too_large
    data = upload.read(limit + 1)
    if len(data) > limit:
        raise too_large
    info = inspect_csv(data)
    headers = info["headers"]
    clean = (guess_kind_mapping(headers, kind) if mapping in (None, "", {})
             else validate_mapping(headers, mapping, kind))
    return ImportJob.objects.create(
        organization_id=organization_id, created_by=created_by, filename=(upload.name or "import.csv")[:255],
        kind=kind, file=import_files.upload(data), encoding=info["encoding"], delimiter=info["delimiter"],
        headers=headers, preview=info["preview"], mapping=clean, total_rows=info["total_rows"],
        status=ImportStatus.MAPPING,
    )


def set_mapping(*, job: ImportJob, mapping) -> ImportJob:
    """Replace the mapping of a job still waiting for one."""
    clean = validate_mapping(job.headers, mapping, job.kind)
    updated = ImportJob.objects.for_org(job.organization_id).filter(pk=job.pk, status=ImportStatus.MAPPING)\
        .update(mapping=clean)
    if not updated:
        message = "This import has already started; its mapping can no longer change."
        raise Conflict(message, errors={"mapping": [message]}, code="import_started")
    job.mapping = clean
    return job


def start_import(*, job: ImportJob) -> ImportJob:
    """Queue the import (once, on commit). The stored mapping must pass its kind's checks (every lead needs an
    email, phone or external id column); it is stored as checked (custom columns with their keys)."""
    clean = validate_mapping(job.headers, job.mapping, job.kind)
    with transaction.atomic():
        updated = ImportJob.objects.for_org(job.organization_id).filter(pk=job.pk, status=ImportStatus.MAPPING)\
            .update(status=ImportStatus.QUEUED, mapping=clean)
        if updated:
            job.mapping = clean
            job.status = ImportStatus.QUEUED
            job_id, organization_id = str(job.pk), str(job.organization_id)

            def enqueue():
                from .tasks import run_import as task

                try:
                    task.delay(job_id, organization_id=organization_id)
                except Exception:  # broker down: say so on the job rather than leave it queued forever
                    logger.exception("import %s could not be queued", job_id)
                    fail_import(job_id, "The import could not be queued because the task queue is unavailable. "
                                        "Upload the file again in a few minutes.")

            transaction.on_commit(enqueue)
    return job


# ---------------------------------------------------------------------------------------------------------
# The worker: parse + validate chunks (in a helper thread, so Python overlaps the database's work),
# then load each chunk with set-based SQL in its own transaction.
# ---------------------------------------------------------------------------------------------------------


class _Chunk:
    __slots__ = ("rows_seen", "staged", "errors", "valid_rows", "external_ids", "deals")

    def __init__(self):
        self.rows_seen = 0  # non-blank records consumed (the resume offset moves by this much)
        self.staged: list[dict] = []
        self.errors: list[tuple[int, list, dict]] = []
        self.valid_rows = 0
        self.external_ids = False  # whether a staged row names a lead by external id (one more lookup)
        self.deals = False  # whether a staged row closes a deal (three more statements)


def _chunks(text: str, delimiter: str, cleaner: RowCleaner, skip: int):
    """Yield _Chunk objects of up to CHUNK_ROWS records, starting after `skip` data records."""
    records = _reader(text, delimiter)
    next(records, None)  # header
    seen = 0
    chunk, by_email = _Chunk(), {}
    external_rows: dict[str, int] = {}  # external id -> the row that gave it, across the file
    for row_number, cells in records:
        seen += 1
        if seen <= skip:
            continue
        chunk.rows_seen += 1
        values, errors = cleaner.clean(cells)
        external_id = values.get("external_id") if values else None
        if external_id:
            first = external_rows.setdefault(external_id, row_number)
            if first != row_number:
                errors = {cleaner.header_of("external_id"): [
                    f"The external id “{external_id}” is also in row {first} of this file; each lead's must be "
                    "its own."]}
        email = values.get("email") if values and not errors else None
        existing = by_email.get(email) if email else None
        if existing is not None and external_id and existing.get("external_id", external_id) != external_id:
            errors = {cleaner.header_of("email"): [
                f"This email is also in row {existing['_rows'][0]} of this file, with another external id."]}
        elif existing is not None and values.get("deal_status") and existing.get("deal_status"):
            errors = {cleaner.header_of("deal_status"): [
                f"This email's deal is in row {existing['_rows'][0]} of this file already: one deal per lead "
                "in a file (import further deals from another file)."]}
        if errors:
            chunk.errors.append((row_number, cells, errors))
        else:
            chunk.valid_rows += 1
            chunk.external_ids = chunk.external_ids or bool(external_id)
            chunk.deals = chunk.deals or "deal_status" in values
            if existing is None:
                values["_rows"] = [row_number]
                chunk.staged.append(values)
                if email:
                    by_email[email] = values
            else:  # the same email twice in this chunk: one staged lead, filled like a merge
                _merge_values(existing, values, row_number)
        if chunk.rows_seen >= CHUNK_ROWS:
            yield chunk
            chunk, by_email = _Chunk(), {}
    if chunk.rows_seen:
        yield chunk


def _merge_values(into: dict, values: dict, row_number: int) -> None:
    into["_rows"].append(row_number)
    for key, value in values.items():
        if key == "tags" and "tags" in into:
            into["tags"] = list(dict.fromkeys([*into["tags"], *value]))
        elif key == "custom_fields" and "custom_fields" in into:
            into["custom_fields"] = {**value, **into["custom_fields"]}
        elif key == "stage_dates" and "stage_dates" in into:
            into["stage_dates"] = {**value, **into["stage_dates"]}
        elif key == "created_at" and "created_at" in into:  # the lead existed since the earliest
            into[key] = min(into[key], value)
        elif key in FLAGS:  # any row's opt-in (or opt-out) counts, as in a merge
            into[key] = into.get(key) or value
        elif key not in into:
            into[key] = value


def _prefetch(iterator, depth: int = 2):
    """Run `iterator` in a helper thread, `depth` items ahead. Validation is pure Python, the load mostly
    waits on PostgreSQL (releasing the GIL), so the two overlap on separate cores."""
    items: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()
    done = object()

    def produce():
        try:
            for item in iterator:
                while not stop.is_set():
                    try:
                        items.put(("item", item), timeout=0.2)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            items.put(("end", done))
        except BaseException as exc:  # handed to the consumer, which re-raises it
            items.put(("error", exc))

    thread = threading.Thread(target=produce, name="import-parse", daemon=True)
    thread.start()
    try:
        while True:
            kind, item = items.get()
            if kind == "end":
                return
            if kind == "error":
                raise item
            yield item
    finally:
        stop.set()
        while thread.is_alive():  # unblock a producer waiting on a full queue
            try:
                items.get(timeout=0.05)
            except queue.Empty:
                pass
        thread.join()


# Staged columns, in COPY order. Text columns hold '' for "no value" so merges can test `= ''`.
STAGE_TEXT = TEXT_FIELDS
_NO_TAGS: list = []  # shared, never mutated
STAGE_HISTORY = ("owner_id", "unsubscribed", "do_not_contact", "created_at", "lifecycle_stage", "stage_dates",
                 "deal_status", "deal_amount", "deal_currency", "deal_closed_at", "deal_lost_reason", "deal_name")
STAGE_COLUMNS = ("row_numbers", *STAGE_TEXT, "company_size", "annual_revenue", "tags", "custom_fields", "consent",
                 *STAGE_HISTORY)
_TOUCH_FIELDS = ("utm_source", "utm_medium", "utm_campaign", "utm_term", "utm_content", "source")


def _owner_type() -> str:
    return Lead._meta.get_field("owner").target_field.rel_db_type(connection)


def _stage_ddl() -> str:
    return (
        "DROP TABLE IF EXISTS pg_temp.leads_import_stage; "
        "CREATE TEMP TABLE leads_import_stage ("
        " row_numbers integer[] NOT NULL, "
        + " ".join(f"{name} text NOT NULL," for name in STAGE_TEXT)
        + " company_size integer, annual_revenue numeric(16, 2), tags varchar(64)[] NOT NULL,"
        " custom_fields jsonb NOT NULL, consent boolean NOT NULL,"
        f" owner_id {_owner_type()}, unsubscribed boolean NOT NULL, do_not_contact boolean NOT NULL,"
        " created_at timestamptz, lifecycle_stage text NOT NULL, stage_dates jsonb NOT NULL,"
        " deal_status text NOT NULL, deal_amount numeric(14, 2), deal_currency text NOT NULL,"
        " deal_closed_at timestamptz, deal_lost_reason text NOT NULL, deal_name text NOT NULL,"
        " new_id uuid NOT NULL DEFAULT gen_random_uuid(), lead_id uuid,"
        " created boolean NOT NULL DEFAULT false) ON COMMIT DROP"
    )


ERROR_COLUMNS = 'organization_id, job_id, row_number, "values", errors'
ERROR_STAGE_DDL = (
    "DROP TABLE IF EXISTS pg_temp.leads_import_error_stage; "
    "CREATE TEMP TABLE leads_import_error_stage (organization_id uuid NOT NULL, job_id uuid NOT NULL, "
    "row_number integer NOT NULL, \"values\" jsonb NOT NULL, errors jsonb NOT NULL) ON COMMIT DROP"
)


def _stage_tuple(values: dict) -> tuple:
    get = values.get
    custom, dates = get("custom_fields"), get("stage_dates")
    return (
        values["_rows"], *[get(name, "") for name in STAGE_TEXT], get("company_size"), get("annual_revenue"),
        get("tags") or _NO_TAGS, json.dumps(custom) if custom else "{}", bool(get("consent_opt_in")),
        get("owner_id"), bool(get("unsubscribed")), bool(get("do_not_contact")), get("created_at"),
        get("lifecycle_stage", ""), json.dumps(dates) if dates else "{}", get("deal_status", ""), get("deal_amount"),
        get("deal_currency", ""), get("deal_closed_at"), get("deal_lost_reason", ""), get("deal_name", ""),
    )


def _q(name: str) -> str:
    return connection.ops.quote_name(name)


# When a staged row's lead came: its created date (history), else now; as a time and as capture's ISO text.
_WHEN = "COALESCE(s.created_at, %(now)s)"
_WHEN_ISO = "COALESCE(to_jsonb(s.created_at) #>> '{}', %(now_iso)s::text)"


def _touch_sql() -> str:
    """The first/last-touch object capture builds from UTM fields and source (NULL when none is set)."""
    any_set = " OR ".join(f"s.{f} <> ''" for f in _TOUCH_FIELDS)
    pairs = ", ".join(f"'{f}', NULLIF(s.{f}, '')" for f in _TOUCH_FIELDS)
    return f"CASE WHEN {any_set} THEN jsonb_strip_nulls(jsonb_build_object({pairs}, 'at', {_WHEN_ISO})) END"


_default_sql = bulk_sql.default_sql
_insert_sql = bulk_sql.insert_sql


def _lead_insert_sql(params: dict) -> str:
    params["stage"] = str(Lead._meta.get_field("lifecycle_stage").get_default())
    given = {
        "id": "s.new_id", "organization_id": "%(org)s::uuid",
        **{name: f"s.{name}" for name in STAGE_TEXT},
        "company_size": "s.company_size", "annual_revenue": "s.annual_revenue", "tags": "s.tags",
        "custom_fields": "s.custom_fields", "first_touch": "COALESCE(s.touch, '{}'::jsonb)",
        "last_touch": "COALESCE(s.touch, '{}'::jsonb)",
        # the stage the row gives (else the default) since its created date (else now), then the row's own dates
        "lifecycle_stage": "COALESCE(NULLIF(s.lifecycle_stage, ''), %(stage)s::text)",
        "stage_entered_at": f"jsonb_build_object(COALESCE(NULLIF(s.lifecycle_stage, ''), %(stage)s::text), {_WHEN_ISO})"
                            " || s.stage_dates",
        "last_activity_at": "%(now)s", "created_at": _WHEN, "updated_at": "%(now)s",
        "consent_opt_in": "s.consent", "consent_at": "CASE WHEN s.consent THEN %(now)s END",
        "owner_id": "s.owner_id", "unsubscribed": "s.unsubscribed", "do_not_contact": "s.do_not_contact",
    }
    columns, select = _insert_sql(Lead, given, params)
    table = _q(Lead._meta.db_table)
    # No conflict target: a row whose email or external id another lead took meanwhile is matched after this.
    return (
        f"WITH inserted AS ("
        f" INSERT INTO {table} ({columns})"
        f" SELECT {select} FROM (SELECT s.*, {_touch_sql()} AS touch FROM pg_temp.leads_import_stage s"
        f"  WHERE s.lead_id IS NULL) s"
        f" ON CONFLICT DO NOTHING RETURNING id)"
        f" UPDATE pg_temp.leads_import_stage s SET lead_id = s.new_id, created = true"
        f" FROM inserted WHERE inserted.id = s.new_id"
    )


# Leads are looked up with `= ANY(ARRAY(...))`: that is always an index probe per staged row, never a
# scan of the organization's leads, even when its statistics are stale (a new org's first big import).
MATCH_SQL = (
    "UPDATE pg_temp.leads_import_stage s SET lead_id = l.id FROM {table} l"
    " WHERE s.lead_id IS NULL AND s.email <> '' AND l.organization_id = %(org)s::uuid"
    " AND l.email = ANY(ARRAY(SELECT email FROM pg_temp.leads_import_stage"
    "  WHERE lead_id IS NULL AND email <> ''))"
    " AND l.email = s.email AND l.email <> ''"
)
# Before anything is inserted: rows naming a lead by its id in the other system belong to that lead.
MATCH_EXTERNAL_SQL = (
    "UPDATE pg_temp.leads_import_stage s SET lead_id = l.id FROM {table} l"
    " WHERE s.lead_id IS NULL AND s.external_id <> '' AND l.organization_id = %(org)s::uuid"
    " AND l.external_id = ANY(ARRAY(SELECT external_id FROM pg_temp.leads_import_stage"
    "  WHERE lead_id IS NULL AND external_id <> ''))"
    " AND l.external_id = s.external_id AND l.external_id <> ''"
)


def _merge_sql() -> str:
    """Fill the existing leads' empty fields from the staged rows; never blank a filled one
    (services._merge_into, set-based)."""
    mergeable = [f for f in services.MERGEABLE_FIELDS if f in STAGE_TEXT]
    sets, changed = [], []
    for f in mergeable:
        sets.append(f"{f} = CASE WHEN l.{f} = '' THEN s.{f} ELSE l.{f} END")
        changed.append(f"(l.{f} = '' AND s.{f} <> '')")
    for f in ("company_size", "annual_revenue"):
        sets.append(f"{f} = COALESCE(l.{f}, s.{f})")
        changed.append(f"(l.{f} IS NULL AND s.{f} IS NOT NULL)")
    new_tags = "ARRAY(SELECT t FROM unnest(s.tags) WITH ORDINALITY AS u(t, n) WHERE t <> ALL(l.tags) ORDER BY n)"
    sets.append(f"tags = l.tags || {new_tags}::varchar(64)[]")
    changed.append("NOT (s.tags <@ l.tags)")
    # Custom values fill only keys the lead has empty: the lead's non-empty values win.
    kept = ("(SELECT COALESCE(jsonb_object_agg(k, v), '{}'::jsonb) FROM jsonb_each(l.custom_fields) AS e(k, v)"
            " WHERE v NOT IN ('\"\"'::jsonb, 'null'::jsonb, '[]'::jsonb, '{}'::jsonb))")
    sets.append(f"custom_fields = l.custom_fields || s.custom_fields || {kept}")
    changed.append(f"(s.custom_fields - ARRAY(SELECT jsonb_object_keys({kept}))) <> '{{}}'::jsonb")
    # Matched by external id, a lead without an email takes the row's, unless another lead has it.
    sets.append("email = CASE WHEN l.email = '' AND s.email <> '' AND NOT EXISTS"
                f" (SELECT FROM {_q(Lead._meta.db_table)} x WHERE x.organization_id = l.organization_id"
                " AND x.email = s.email) THEN s.email ELSE l.email END")
    changed.append("(l.email = '' AND s.email <> '')")
    sets.append("external_id = CASE WHEN l.external_id = '' THEN s.external_id ELSE l.external_id END")
    changed.append("(l.external_id = '' AND s.external_id <> '')")
    sets.append("owner_id = COALESCE(l.owner_id, s.owner_id)")
    changed.append("(l.owner_id IS NULL AND s.owner_id IS NOT NULL)")
    for flag in ("unsubscribed", "do_not_contact"):  # an opt-out is never lost
        sets.append(f"{flag} = l.{flag} OR s.{flag}")
        changed.append(f"(s.{flag} AND NOT l.{flag})")
    # History: the lead existed since the earliest date anyone knew of; a stage date fills a stage without one; a
    # won deal makes the lead a customer (conversion's rule).
    sets.append("created_at = LEAST(l.created_at, COALESCE(s.created_at, l.created_at))")
    changed.append("s.created_at < l.created_at")
    sets.append("stage_entered_at = s.stage_dates || l.stage_entered_at")
    changed.append("EXISTS (SELECT FROM jsonb_object_keys(s.stage_dates) AS k(stage)"
                   " WHERE NOT l.stage_entered_at ? k.stage)")
    sets.append(f"lifecycle_stage = CASE WHEN s.deal_status = '{DealStatus.WON}' THEN '{LifecycleStage.CUSTOMER}'"
                " ELSE l.lifecycle_stage END")
    changed.append(f"(s.deal_status = '{DealStatus.WON}' AND l.lifecycle_stage <> '{LifecycleStage.CUSTOMER}')")
    # Touches keep their order in time: an older one (history) may become the first, never the last.
    sets.append("first_touch = CASE WHEN s.touch IS NOT NULL AND (l.first_touch = '{}'::jsonb"
                " OR s.touch ->> 'at' < COALESCE(l.first_touch ->> 'at', '')) THEN s.touch ELSE l.first_touch END")
    sets.append("last_touch = CASE WHEN s.touch IS NOT NULL AND (l.last_touch = '{}'::jsonb"
                " OR NOT s.touch ->> 'at' < COALESCE(l.last_touch ->> 'at', '')) THEN s.touch ELSE l.last_touch END")
    changed.append("s.touch IS NOT NULL")
    sets.append("consent_opt_in = l.consent_opt_in OR s.consent")
    sets.append("consent_at = COALESCE(l.consent_at, CASE WHEN s.consent THEN %(now)s END)")
    changed.append("(s.consent AND NOT l.consent_opt_in)")
    sets.append("last_activity_at = GREATEST(l.last_activity_at, %(now)s)")
    sets.append(f"updated_at = CASE WHEN {' OR '.join(changed)} THEN %(now)s ELSE l.updated_at END")
    return (
        f"UPDATE {_q(Lead._meta.db_table)} l SET {', '.join(sets)}"
        f" FROM (SELECT s.*, {_touch_sql()} AS touch FROM pg_temp.leads_import_stage s"
        f" WHERE s.lead_id IS NOT NULL AND NOT s.created) s"
        f" WHERE l.id = s.lead_id AND l.organization_id = %(org)s::uuid"
        f" AND l.id = ANY(ARRAY(SELECT lead_id FROM pg_temp.leads_import_stage WHERE lead_id IS NOT NULL"
        f"  AND NOT created))"
    )


def _activity_insert_sql(params: dict) -> str:
    # The names of the fields the row gave, sorted, as capture records them.
    present = {f: f"s.{f} <> ''" for f in STAGE_TEXT}
    present |= {"company_size": "s.company_size IS NOT NULL", "annual_revenue": "s.annual_revenue IS NOT NULL",
                "tags": "cardinality(s.tags) > 0", "custom_fields": "s.custom_fields <> '{}'::jsonb",
                "consent_opt_in": "s.consent", "owner": "s.owner_id IS NOT NULL", "unsubscribed": "s.unsubscribed",
                "do_not_contact": "s.do_not_contact", "created_at": "s.created_at IS NOT NULL",
                "lifecycle_stage": "s.lifecycle_stage <> ''", "stage_entered_at": "s.stage_dates <> '{}'::jsonb",
                "deal": "s.deal_status <> ''"}
    flags = ", ".join(f"CASE WHEN {test} THEN '{name}' END" for name, test in sorted(present.items()))
    fields = f"to_jsonb(array_remove(ARRAY[{flags}], NULL))"
    properties = (
        "jsonb_build_object('channel', 'import', 'import_id', %(job)s::text, 'filename', %(filename)s::text,"
        f" 'rows', to_jsonb(s.row_numbers), 'merged', NOT s.created, 'fields', {fields})"
    )
    given = {
        "id": "gen_random_uuid()", "organization_id": "%(org)s::uuid", "lead_id": "s.lead_id",
        "type": f"'{ActivityType.IMPORTED.value}'", "properties": properties, "occurred_at": "%(now)s",
        "actor_id": f"%(actor)s::{Activity._meta.get_field('actor').db_type(connection)}", "created_at": "%(now)s",
    }
    columns, select = _insert_sql(Activity, given, params)
    return (f"INSERT INTO {_q(Activity._meta.db_table)} ({columns})"
            f" SELECT {select} FROM pg_temp.leads_import_stage s WHERE s.lead_id IS NOT NULL")


def _touch_insert_sql(params: dict) -> str:
    """Each imported row is a touch of its lead, with the row's source and UTM fields, named by the import."""
    given = {
        "id": "gen_random_uuid()", "organization_id": "%(org)s::uuid", "lead_id": "s.lead_id",
        "occurred_at": _WHEN, "channel": "'import'", "import_id": "%(job)s::uuid",
        **{name: f"left(s.{name}, 200)" for name in _TOUCH_FIELDS},
    }
    columns, select = _insert_sql(Touch, given, params)
    return (f"INSERT INTO {_q(Touch._meta.db_table)} ({columns})"
            f" SELECT {select} FROM pg_temp.leads_import_stage s WHERE s.lead_id IS NOT NULL")


# The won and lost deals of the staged rows, as conversion.record_closed_deals reads them.
DEAL_ROWS_SQL = (
    "SELECT lead_id, deal_name AS name, deal_amount AS amount, deal_currency AS currency, deal_status AS status,"
    " deal_closed_at AS closed_at, deal_lost_reason AS lost_reason FROM pg_temp.leads_import_stage"
    " WHERE lead_id IS NOT NULL AND deal_status <> ''"
)


def _consent_insert_sql(params: dict) -> str:
    """A consent record for each row that opted in: given by this import (there is no text a file shows)."""
    given = {
        "id": "gen_random_uuid()", "organization_id": "%(org)s::uuid", "lead_id": "s.lead_id",
        "given_at": "%(now)s", "channel": f"'{ConsentChannel.IMPORT.value}'", "source": "%(job)s::text",
        "text": "''", "ip_address": "NULL",
    }
    columns, select = _insert_sql(ConsentRecord, given, params)
    return (f"INSERT INTO {_q(ConsentRecord._meta.db_table)} ({columns})"
            f" SELECT {select} FROM pg_temp.leads_import_stage s WHERE s.consent AND s.lead_id IS NOT NULL")


def _is_deadlock(exc: Exception) -> bool:
    return getattr(exc.__cause__, "sqlstate", None) == "40P01"


def _load_chunk(job: ImportJob, chunk, offset: int, preview: list, load_once=None) -> bool:
    """Load one chunk and move the job's offset, in one transaction. False when another delivery of
    this task has moved the offset (it owns the job now)."""
    for attempt in range(1, DEADLOCK_RETRIES + 1):
        try:
            with transaction.atomic():
                return (load_once or _load_chunk_once)(job, chunk, offset, preview)
        except OperationalError as exc:
            if not _is_deadlock(exc) or attempt == DEADLOCK_RETRIES:
                raise
            logger.warning("import %s: deadlock on chunk at row offset %s, retrying", job.pk, offset)
    return False


def _refresh_statistics_if_outgrown(cursor, created: int) -> None:
    """While PostgreSQL's statistics still call the lead table (nearly) empty, the foreign-key check of each new
    activity, run at commit, looks its lead up through `lead_org_id` instead of the primary key (at size zero both
    cost the same), a walk of the whole index per row: the first big import into a new database slowed from seconds
    to minutes. When a chunk adds more leads than the statistics know of, take them again first (autovacuum
    would, but only later). leads_analyze_lead() is the table owner's: the app role may not ANALYZE."""
    cursor.execute("SELECT leads_analyze_lead() FROM pg_class WHERE oid = %s::regclass AND reltuples < %s",
                   [Lead._meta.db_table, created])


def _load_chunk_once(job: ImportJob, chunk: _Chunk, offset: int, preview: list) -> bool:
    current = ImportJob.objects.select_for_update().filter(pk=job.pk).values_list("status", "processed_rows").first()
    if current != (ImportStatus.RUNNING, offset):
        return False
    now = timezone.now()
    params = {"org": job.organization_id, "job": str(job.pk), "filename": job.filename, "now": now,
              "now_iso": now.isoformat(), "actor": job.created_by_id}
    created = 0
    with connection.cursor() as cursor:
        if chunk.staged:
            cursor.execute(_stage_ddl())
            with cursor.cursor.copy(
                f"COPY pg_temp.leads_import_stage ({', '.join(STAGE_COLUMNS)}) FROM STDIN"
            ) as copy:
                for values in chunk.staged:
                    copy.write_row(_stage_tuple(values))
            if chunk.external_ids:
                cursor.execute(MATCH_EXTERNAL_SQL.format(table=_q(Lead._meta.db_table)), params)
            cursor.execute(_lead_insert_sql(params), params)
            created = cursor.rowcount
            _refresh_statistics_if_outgrown(cursor, created)
            cursor.execute(MATCH_SQL.format(table=_q(Lead._meta.db_table)), params)
            cursor.execute(_merge_sql(), params)
            # one statement: each row's touch and its activity
            cursor.execute(f"WITH touches AS ({_touch_insert_sql(params)}) {_activity_insert_sql(params)}", params)
            cursor.execute(_consent_insert_sql(params), params)
            if chunk.deals:
                services.record_closed_deals(rows_sql=DEAL_ROWS_SQL, params=params)
        if chunk.errors:
            # COPY cannot load a table under row-level security: stage the rows, then one INSERT ... SELECT.
            cursor.execute(ERROR_STAGE_DDL)
            with cursor.cursor.copy(f"COPY pg_temp.leads_import_error_stage ({ERROR_COLUMNS}) FROM STDIN") as copy:
                for row_number, cells, errors in chunk.errors:
                    copy.write_row((job.organization_id, job.pk, row_number, json.dumps(cells), json.dumps(errors)))
            cursor.execute(f"INSERT INTO {_q(ImportRowError._meta.db_table)} ({ERROR_COLUMNS}) "
                           f"SELECT {ERROR_COLUMNS} FROM pg_temp.leads_import_error_stage")
    # Rows of one email inside the chunk share a staged lead: the first created it, the rest merged.
    created_rows = created
    room = ERROR_PREVIEW - len(preview)
    if room > 0 and chunk.errors:
        preview.extend({"row": row, "errors": errors} for row, _, errors in chunk.errors[:room])
    update = {
        "processed_rows": F("processed_rows") + chunk.rows_seen,
        "created_count": F("created_count") + created_rows,
        "merged_count": F("merged_count") + (chunk.valid_rows - created_rows),
        "failed_count": F("failed_count") + len(chunk.errors),
    }
    if room > 0 and chunk.errors:
        update["errors"] = preview
    ImportJob.objects.filter(pk=job.pk).update(**update)
    return True


def _claim(import_id) -> ImportJob | None:
    """Mark a queued job running (or pick up a running one after a crash); None when there is nothing to do."""
    with transaction.atomic():
        job = (ImportJob.objects.select_for_update().filter(pk=import_id).first())
        if job is None or job.status not in (ImportStatus.QUEUED, ImportStatus.RUNNING):
            return None
        if job.status == ImportStatus.QUEUED:
            job.status = ImportStatus.RUNNING
            job.started_at = timezone.now()
            job.save(update_fields=["status", "started_at"])
    return job


def run_import(*, import_id) -> None:
    """The worker's entry point: idempotent, resumable, safe to deliver twice. While it runs it holds a lock on the
    job: a second delivery (the broker's redelivery, a sweeper) leaves a running import alone, and a worker that
    dies frees it, so the sweeper can hand the job to another."""
    with locks.try_lock(locks.IMPORT, import_id) as acquired:
        if not acquired:
            logger.info("import %s is running elsewhere", import_id)
            return
        _claim_and_run(import_id)


def abandoned_imports(*, older_than, limit: int = 100) -> list:
    """Jobs queued or running for longer than `older_than` (a timedelta) that no worker holds: their task never
    ran, or its worker died. Each is claimed for `older_than` (so a job whose new task waits in the queue is not
    re-enqueued again meanwhile). Running them again resumes from the last committed chunk."""
    now = timezone.now()
    # Due once it has been queued or running this long, or once the last sweep's lease ran out.
    due = Coalesce("swept_until", ExpressionWrapper(Coalesce("started_at", "created_at") + older_than,
                                                    output_field=DateTimeField()))
    found = []
    for organization_id in selectors.organizations_with_stale_imports(now - older_than):  # each under its own scope
        with rls.scope(organization_id):
            waiting = ImportJob.objects.for_org(organization_id).filter(
                status__in=(ImportStatus.QUEUED, ImportStatus.RUNNING))
            found += [(row.pk, organization_id) for row in claims.claim(
                waiting, due=due, lease_field="swept_until", limit=limit, lease=older_than, now=now)]
    return [(pk, organization_id) for pk, organization_id in found if not locks.is_held(locks.IMPORT, pk)]


def _claim_and_run(import_id) -> None:
    job = _claim(import_id)
    if job is None:
        return
    try:
        _run(job)
    except OperationalError:
        raise  # database trouble: the task retries later and resumes from the committed offset
    except Exception as exc:
        logger.exception("import %s failed", job.pk)
        fail_import(job.pk, f"The import stopped unexpectedly ({exc.__class__.__name__}). Rows before the stop were "
                   "imported; the rest were not. Try again, or contact support if it happens again.")


def fail_import(import_id, message: str) -> None:
    """Record that a job stopped for good (never undoes a finished one)."""
    ImportJob.objects.filter(pk=import_id).exclude(status=ImportStatus.DONE).update(
        status=ImportStatus.FAILED, error_message=message, finished_at=timezone.now()
    )


def _run(job: ImportJob) -> None:
    text = import_files.read(job.file.name).decode(job.encoding if job.encoding != "utf-8" else "utf-8-sig")
    offset = job.processed_rows
    preview = list(job.errors)
    if job.kind == ImportKind.ACTIVITIES:
        from . import activity_imports

        cleaner = activity_imports.ActivityRowCleaner(
            job.headers, job.mapping, types=activity_imports.importable_activity_types(
                organization_id=job.organization_id))
        chunks = _prefetch(activity_imports.chunks(text, job.delimiter, cleaner, skip=offset))
        load_once = activity_imports.load_chunk_once
    else:
        owners = selectors.member_ids_by_email(job.organization_id) if "owner" in job.mapping.values() else {}
        cleaner = RowCleaner(job.headers, job.mapping, owners=owners)
        chunks = _prefetch(_chunks(text, job.delimiter, cleaner, skip=offset))
        load_once = _load_chunk_once
    try:
        for chunk in chunks:
            if not _load_chunk(job, chunk, offset, preview, load_once):
                logger.info("import %s: another worker is running it; stopping", job.pk)
                return
            offset += chunk.rows_seen
    except csv.Error as exc:
        fail_import(job.pk, f"The file could not be read after row {offset + 1} ({exc}). Rows before it were imported.")
        return
    finally:
        chunks.close()
    with transaction.atomic():
        # The file is no longer needed once every row is in (failed rows keep their cells in row_errors).
        finished = ImportJob.objects.filter(pk=job.pk, status=ImportStatus.RUNNING, processed_rows=offset).update(
            status=ImportStatus.DONE, finished_at=timezone.now(), total_rows=offset, file=""
        )
        if finished:
            import_files.discard_on_commit(job.file.name)
            # History is re-scored (its activities count at their real times) but starts nothing else: no
            # webhooks, campaign joins or nurture for days long gone. Only scoring takes the history event.
            event = events.LEADS_HISTORY_IMPORTED if is_historical(job) else events.LEADS_IMPORTED
            events.emit(event, organization_id=job.organization_id, import_id=job.pk)


# ---------------------------------------------------------------------------------------------------------
# Error report
# ---------------------------------------------------------------------------------------------------------


def _error_text(errors: dict) -> str:
    return "; ".join(
        " ".join(messages) if column == "non_field_errors" else f"{column}: {' '.join(messages)}"
        for column, messages in errors.items()
    )


def error_report_response(job: ImportJob):
    """Every failed row: its number, its cells as given and why (formula-looking cells neutralised)."""
    width = len(job.headers)
    rows = (
        ImportRowError.objects.for_org(job.organization_id).filter(job=job).order_by("row_number")
        .values_list("row_number", "values", "errors").iterator(chunk_size=2000)
    )

    def lines():
        for row_number, values, errors in rows:
            cells = list(values[:width]) + [""] * (width - len(values))
            extra = values[width:]
            message = _error_text(errors)
            if any(cell.strip() for cell in extra):
                message += f" (extra cells: {' | '.join(extra)})"
            yield [row_number, *cells, message]

    return csv_response(f"import-{job.pk}-errors.csv", ["row", *job.headers, "errors"], lines())

