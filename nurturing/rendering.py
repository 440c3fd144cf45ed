"""Email templates in a sandbox: Django's template language cut down to merge fields, `{% if %}` and a few
harmless filters, rendered over a plain dict built from the lead (never a model instance).

A template is checked before it is saved (`check_template`) and again before it is rendered (compiled templates
are cached by content, so the check costs once per version). The sandbox holds even if a check were skipped: the
engine has no loaders and no tag that reads files, the database or settings, and the context holds only strings.
"""

from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache

from django.template import Context, Engine, Library, TemplateSyntaxError, defaultfilters, defaulttags
from django.template.base import Lexer, Node, TextNode, TokenType, Variable, VariableNode
from django.template.defaulttags import CommentNode, IfNode, TemplateLiteral

from leadcrm.errors import Invalid
from leadcrm.mailheaders import header_text

PARTS = ("subject", "html", "text")
MAX_SUBJECT = 300
MAX_BODY = 200_000

# The merge fields, documented in the editor: (name, what it holds). Nothing else is reachable.
MERGE_FIELDS: tuple[tuple[str, str], ...] = (
    ("lead.first_name", "The lead's first name"),
    ("lead.last_name", "The lead's last name"),
    ("lead.full_name", "First and last name"),
    ("lead.email", "The lead's email address"),
    ("lead.company", "Company name"),
    ("lead.job_title", "Job title"),
    ("lead.industry", "Industry"),
    ("lead.city", "City"),
    ("lead.country", "Country (ISO code, e.g. DE)"),
    ("lead.website", "Company website"),
    ("lead.phone", "Phone number"),
    ("owner.first_name", "The lead owner's first name (empty when the lead has no owner)"),
    ("owner.last_name", "The owner's last name"),
    ("owner.full_name", "The owner's full name"),
    ("owner.email", "The owner's email address"),
    ("owner.signature", "The owner's name and email on two lines (use |linebreaksbr in HTML)"),
    ("organization.name", "Your organization's name"),
    ("unsubscribe_url", "The lead's personal unsubscribe link"),
)
FIELD_PATHS = frozenset(tuple(name.split(".")) for name, _ in MERGE_FIELDS)
LEAD_FIELDS = tuple(name.split(".")[1] for name, _ in MERGE_FIELDS if name.startswith("lead."))

ALLOWED_TAGS = ("if", "elif", "else", "endif", "comment", "endcomment")
# Filters that only reshape a string; nothing that marks text safe, loads, or reaches other objects.
ALLOWED_FILTERS = ("default", "default_if_none", "upper", "lower", "title", "capfirst", "truncatechars",
                   "truncatewords", "date", "linebreaksbr", "urlencode")
HTML_ONLY_FILTERS = ("linebreaksbr",)

SANDBOX_LIBRARY = Library()
SANDBOX_LIBRARY.tag("if", defaulttags.do_if)
SANDBOX_LIBRARY.tag("comment", defaulttags.comment)
for _name in ALLOWED_FILTERS:
    SANDBOX_LIBRARY.filters[_name] = defaultfilters.register.filters[_name]


class SandboxEngine(Engine):
    """No loaders (so no include/extends), no libraries to {% load %}, and only the sandbox's tags and filters."""

    def get_template_builtins(self, builtins):
        return [SANDBOX_LIBRARY]

    def get_template_libraries(self, libraries):
        return {}


ENGINE = SandboxEngine(loaders=[], libraries={}, builtins=[], autoescape=True, debug=False, string_if_invalid="")


class TemplateProblem(Invalid):
    """A template that cannot be saved or rendered; `errors` maps a part (subject, html, text) to messages."""

    default_code = "invalid_template"

    def __init__(self, errors: dict[str, list[str]]):
        super().__init__(errors=errors)


@dataclass(frozen=True)
class Rendered:
    subject: str
    html: str
    text: str


# ----------------------------------------------------------------------------------------------- checking


def _field_list() -> str:
    return ", ".join(name for name, _ in MERGE_FIELDS)


def _check_variable(variable, problems: list[str]) -> None:
    if not isinstance(variable, Variable) or variable.lookups is None:
        return  # a literal: "there", 10
    path = tuple(variable.lookups)
    if path not in FIELD_PATHS:
        problems.append(f"Unknown merge field “{variable.var}”. Available: {_field_list()}.")


def _check_expression(expression, part: str, problems: list[str]) -> None:
    _check_variable(expression.var, problems)
    for func, args in expression.filters:
        name = getattr(func, "_filter_name", func.__name__)
        if name not in ALLOWED_FILTERS:  # cannot happen with the sandbox library; kept as a second wall
            problems.append(f"The filter “{name}” is not allowed.")
        if part != "html" and name in HTML_ONLY_FILTERS:
            problems.append(f"The filter “{name}” makes HTML; use it in the HTML body only.")
        for is_variable, argument in args:
            if is_variable:
                _check_variable(argument, problems)


def _check_condition(condition, part: str, problems: list[str]) -> None:
    if condition is None:  # {% else %}
        return
    if isinstance(condition, TemplateLiteral):
        _check_expression(condition.value, part, problems)
        return
    for side in (getattr(condition, "first", None), getattr(condition, "second", None)):
        if side is not None:
            _check_condition(side, part, problems)


def _check_nodes(nodes, part: str, problems: list[str]) -> None:
    for node in nodes:
        if isinstance(node, (TextNode, CommentNode)):
            continue
        if isinstance(node, VariableNode):
            _check_expression(node.filter_expression, part, problems)
        elif isinstance(node, IfNode):
            for condition, nodelist in node.conditions_nodelists:
                _check_condition(condition, part, problems)
                _check_nodes(nodelist, part, problems)
        elif isinstance(node, Node):
            problems.append(f"“{type(node).__name__}” is not allowed.")


def _check_tags(source: str, problems: list[str]) -> None:
    """Name refused tags plainly, before the parser says something about libraries nobody can load here."""
    in_comment = False
    for token in Lexer(source).tokenize():
        if token.token_type != TokenType.BLOCK:
            continue
        name = token.contents.split()[0] if token.contents.split() else ""
        if in_comment:
            in_comment = name != "endcomment"
            continue
        if name == "comment":
            in_comment = True
        elif name not in ALLOWED_TAGS:
            problems.append(f"Line {token.lineno}: the tag {{% {name} %}} is not allowed; only "
                            "{% if %}…{% elif %}…{% else %}…{% endif %} and comments are.")


@lru_cache(maxsize=512)
def _compile(part: str, source: str):
    """The compiled template of one part, or the list of problems with it (cached by content)."""
    problems: list[str] = []
    if "\x00" in source:
        return None, ["Null characters are not allowed."]
    _check_tags(source, problems)
    if problems:
        return None, problems
    try:
        template = ENGINE.from_string(source)
    except TemplateSyntaxError as exc:
        message = str(exc)
        if message.startswith("Invalid filter"):
            message = f"{message.rstrip('.')}. Allowed filters: {', '.join(ALLOWED_FILTERS)}."
        return None, [message]
    except RecursionError:
        return None, ["The template is nested too deeply."]
    _check_nodes(template.nodelist, part, problems)
    if problems:
        return None, list(dict.fromkeys(problems))
    return template, []


def _compiled(subject: str, html: str, text: str) -> dict:
    errors: dict[str, list[str]] = {}
    templates = {}
    for part, source, limit in (("subject", subject, MAX_SUBJECT), ("html", html, MAX_BODY),
                                ("text", text, MAX_BODY)):
        if not isinstance(source, str):
            errors[part] = ["Must be text."]
            continue
        if len(source) > limit:
            errors[part] = [f"At most {limit} characters."]
            continue
        template, problems = _compile(part, source)
        if problems:
            errors[part] = problems
        templates[part] = template
    if not (subject or "").strip() and "subject" not in errors:
        errors["subject"] = ["A subject is required."]
    if not (html or "").strip() and "html" not in errors:
        errors["html"] = ["An HTML body is required."]
    if errors:
        raise TemplateProblem(errors)
    return templates


def check_template(subject: str, html: str, text: str) -> None:
    """Raise TemplateProblem unless every part parses, uses only allowed tags and filters, and names only the
    documented merge fields; a trial render with the sample lead catches what fails only when rendered."""
    _render_parts(_compiled(subject, html, text), sample_context())


# ----------------------------------------------------------------------------------------------- context


def _text(value) -> str:
    return "" if value is None else str(value)


def merge_context(lead, *, unsubscribe_url: str, organization=None) -> dict:
    """The only data a template sees: strings copied out of the lead, its owner and its organization."""
    lead_values = {name: _text(getattr(lead, name, "")) for name in LEAD_FIELDS}
    lead_values["full_name"] = " ".join(part for part in (lead.first_name, lead.last_name) if part)
    owner = lead.owner if lead.owner_id else None
    owner_values = {}
    if owner is not None:
        full_name = owner.get_full_name().strip()
        owner_values = {
            "first_name": _text(owner.first_name), "last_name": _text(owner.last_name), "full_name": full_name,
            "email": _text(owner.email),
            "signature": "\n".join(line for line in (full_name, owner.email) if line),
        }
    organization = organization if organization is not None else lead.organization
    return {"lead": lead_values, "owner": owner_values, "organization": {"name": _text(organization.name)},
            "unsubscribe_url": unsubscribe_url}


def sample_context(organization_name: str = "Your organization") -> dict:
    """A made-up lead for previews when no real lead is chosen (and for the trial render of check_template)."""
    return {
        "lead": {"first_name": "Ada", "last_name": "Lovelace", "full_name": "Ada Lovelace",
                 "email": "ada@example.com", "company": "Analytical Engines Ltd", "job_title": "Head of Research",
                 "industry": "Software", "city": "London", "country": "GB", "website": "https://example.com",
                 "phone": "+442071234567"},
        "owner": {"first_name": "Sam", "last_name": "Seller", "full_name": "Sam Seller", "email": "sam@example.com",
                  "signature": "Sam Seller\nsam@example.com"},
        "organization": {"name": organization_name},
        "unsubscribe_url": "https://example.com/unsubscribe/sample",
    }


# ----------------------------------------------------------------------------------------------- rendering


def _render_parts(templates: dict, context: Mapping) -> Rendered:
    try:
        subject = templates["subject"].render(Context(context, autoescape=False))
        html = templates["html"].render(Context(context, autoescape=True))
        text = templates["text"].render(Context(context, autoescape=False))
    except Exception as exc:  # a filter that chokes on a value; reported, never a crash of the caller
        raise TemplateProblem({"html": [f"The template fails to render: {exc.__class__.__name__}: {exc}"]}) from exc
    # A subject is one header line: newlines from a merge field or the template must not start another header.
    subject = header_text(subject, MAX_SUBJECT)
    # Plain strings, not the engine's "safe" ones: shown in a page of the app, an email's HTML must be escaped.
    return Rendered(subject=subject, html=str.__str__(html), text=str.__str__(text))


def render_source(subject: str, html: str, text: str, context: Mapping) -> Rendered:
    """Check and render unsaved content over a context (merge_context or sample_context)."""
    return _render_parts(_compiled(subject, html, text), context)


def render(version, lead, *, unsubscribe_url: str, organization=None) -> Rendered:
    """Render a template version (anything with subject, html and text) for the lead."""
    context = merge_context(lead, unsubscribe_url=unsubscribe_url, organization=organization)
    return render_source(version.subject, version.html, version.text, context)


def preview(subject: str, html: str, text: str, *, lead=None, organization=None) -> Rendered:
    """What the editor shows: the content rendered for a chosen lead, or for the sample lead."""
    if lead is None:
        name = organization.name if organization is not None else "Your organization"
        return render_source(subject, html, text, sample_context(name))
    return render_source(subject, html, text,
                        merge_context(lead, unsubscribe_url="#unsubscribe-preview", organization=organization))
