"""Capture by hosted and embedded forms: the marketer's pages, the public form, its defences, and the API."""

import os
import re
from datetime import timedelta
from types import SimpleNamespace

import pytest
from django.test import Client
from django.utils import timezone

from leadcrm import services as tenancy_services
from leadcrm.models import Role
from leads import services
from leads.models import Activity, Form, FormSubmission, Lead

pytestmark = pytest.mark.django_db

FIELD_ROWS = ["email", "first_name", "last_name", "phone", "company", "company_size", "country", "consent_opt_in"]


def settings_post(**overrides):
    """A valid POST for the browser form editor: shows email, first name and company, email required."""
    data = {
        "name": "Contact sales", "slug": "", "submit_label": "Send", "thank_you_message": "Thanks!",
        "redirect_url": "", "consent_text": "", "is_active": "on",
        "show_email": "on", "required_email": "on", "order_email": "1",
        "show_first_name": "on", "order_first_name": "2",
        "show_company": "on", "order_company": "3",
    }
    data.update(overrides)
    return {key: value for key, value in data.items() if value is not None}


@pytest.fixture
def capture_form(org):
    return Form.objects.create(
        organization=org, name="Contact sales", slug="contact-sales",
        fields=["email", "first_name", "last_name", "company", "phone", "country", "company_size"],
        required_fields=["email"],
        hidden_values={"source_type": "inbound", "source": "website", "tags": ["web"]},
        consent_text="Yes, email me about products.",
    )


@pytest.fixture
def public():
    """A visitor: no session, and a client that enforces CSRF like a real browser would."""
    return Client(enforce_csrf_checks=True, REMOTE_ADDR="203.0.113.7")


@pytest.fixture
def other_browser(other_org):
    client = Client()
    membership = tenancy_services.add_member(organization=other_org, email="marketer@rival.test",
                                             password="pw-member-123", role=Role.MARKETER)
    client.force_login(membership.user)
    return client


# --- browser: create, edit, detail ------------------------------------------------------------------------


def test_create_form_in_browser_with_ordered_fields_hidden_values_and_suggested_slug(browser, org):
    page = browser.get("/forms/new/")
    assert page.status_code == 200
    assert 'name="show_email"' in page.content.decode() and 'name="order_company_size"' in page.content.decode()

    response = browser.post("/forms/new/", settings_post(
        order_company="1", order_email="2", order_first_name="3", show_consent_opt_in="on",
        consent_text="Email me news", hv_source_type="paid", hv_source="google ads", hv_utm_campaign="spring",
        hv_tags="webinar,  q3 , webinar", redirect_url="https://example.com/thanks",
    ))
    form = Form.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/forms/{form.pk}/"
    assert form.organization == org
    assert form.slug == "contact-sales"  # suggested from the name
    assert form.fields == ["company", "email", "first_name", "consent_opt_in"]
    assert form.required_fields == ["email"]
    assert form.hidden_values == {"source_type": "paid", "source": "google ads", "utm_campaign": "spring",
                                  "tags": ["webinar", "q3"]}
    assert form.redirect_url == "https://example.com/thanks" and form.is_active

    # The same name again gets a free slug rather than an error.
    browser.post("/forms/new/", settings_post())
    assert set(Form.objects.values_list("slug", flat=True)) == {"contact-sales", "contact-sales-2"}


@pytest.mark.parametrize("overrides, message", [
    ({"show_email": None, "required_email": None}, "A form needs an email or a phone field."),
    ({"required_phone": "on"}, "Not on the form: phone."),
    ({"hv_source_type": "billboard"}, "Select a valid choice."),
    ({"hv_tags": "x" * 65}, "no more than 64 characters"),
    ({"redirect_url": "javascript:alert(1)"}, "Enter a valid URL."),
    ({"slug": "taken"}, "This slug is taken"),
    ({"slug": "not a slug!"}, "Enter a valid “slug”"),
    ({"name": ""}, "This field is required."),
    ({"order_email": "0"}, "greater than or equal to 1"),
])
def test_browser_form_errors_are_shown_inline_and_nothing_is_saved(browser, other_org, overrides, message):
    Form.objects.create(organization=other_org, name="Theirs", slug="taken", fields=["email"])
    response = browser.post("/forms/new/", settings_post(**overrides))
    assert response.status_code == 400
    assert message in response.content.decode()
    assert Form.objects.count() == 1


def test_edit_form_in_browser(browser, capture_form):
    page = browser.get(f"/forms/{capture_form.pk}/edit/").content.decode()
    assert 'value="contact-sales"' in page
    assert 'name="show_company" id="id_show_company" aria-label="Show Company" checked' in page
    assert re.search(r'name="show_job_title" id="id_show_job_title" aria-label="Show Job title"\s*>', page)
    assert 'value="inbound" selected' in page and 'value="web"' in page  # hidden values shown for editing

    response = browser.post(f"/forms/{capture_form.pk}/edit/", settings_post(
        name="Talk to us", slug="contact-sales", is_active=None, show_phone="on", order_phone="4",
    ))
    assert response.status_code == 302
    capture_form.refresh_from_db()
    assert capture_form.name == "Talk to us" and not capture_form.is_active
    assert capture_form.fields == ["email", "first_name", "company", "phone"]
    assert capture_form.hidden_values == {}  # cleared in the editor

    bad = browser.post(f"/forms/{capture_form.pk}/edit/", settings_post(show_email=None, required_email=None))
    assert bad.status_code == 400 and "A form needs an email or a phone field." in bad.content.decode()
    capture_form.refresh_from_db()
    assert capture_form.fields == ["email", "first_name", "company", "phone"]


def test_detail_shows_public_url_and_both_embed_snippets(browser, capture_form):
    page = browser.get(f"/forms/{capture_form.pk}/").content.decode()
    assert 'href="http://testserver/f/contact-sales/"' in page
    assert ("&lt;iframe src=&quot;http://testserver/f/contact-sales/&quot; title=&quot;Contact sales&quot;"
            in page)
    assert "&lt;script src=&quot;http://testserver/f/contact-sales/embed.js&quot; async&gt;&lt;/script&gt;" in page


def test_form_name_with_markup_is_escaped_in_the_snippet_and_page(browser, capture_form):
    capture_form.name = '"><script>alert(1)</script>'
    capture_form.save()
    page = browser.get(f"/forms/{capture_form.pk}/").content.decode()
    assert "<script>alert(1)</script>" not in page
    # escaped once for the snippet itself, once more to show it as text
    assert "title=&quot;&amp;quot;&amp;gt;&amp;lt;script&amp;gt;" in page


def test_form_list_shows_forms_with_submission_counts(browser, org, capture_form, public):
    Form.objects.create(organization=org, name="Newsletter", slug="newsletter", fields=["email"])
    public.post("/f/contact-sales/", {"email": "a@example.com"})
    public.post("/f/contact-sales/", {"email": "b@example.com"})
    page = browser.get("/forms/").content.decode()
    assert "Contact sales" in page and "Newsletter" in page
    assert re.search(r"Contact sales</a></td>.*?<td>2</td>", page, re.S)


def test_submissions_are_listed_newest_first_with_links_to_leads_and_keyset_pages(browser, org, capture_form,
                                                                                   django_assert_max_num_queries):
    lead = services.capture_lead(organization_id=org.pk, data={"email": "old@example.com"}).lead
    newest = services.capture_lead(organization_id=org.pk, data={"email": "new@example.com"}).lead
    now = timezone.now()
    rows = [FormSubmission(organization=org, form=capture_form, lead=lead, data={"email": "old@example.com"})
            for _ in range(55)]
    FormSubmission.objects.bulk_create(rows)
    # created_at is auto_now_add: spread them out so the order is unambiguous
    for index, row in enumerate(rows):
        FormSubmission.objects.filter(pk=row.pk).update(created_at=now - timedelta(minutes=index + 1))
    FormSubmission.objects.create(organization=org, form=capture_form, lead=newest, data={"email": "new@example.com"})

    with django_assert_max_num_queries(10):
        page = browser.get(f"/forms/{capture_form.pk}/")
    html = page.content.decode()
    assert html.index("new@example.com") < html.index("old@example.com")
    assert f'href="/leads/{newest.pk}/"' in html
    assert html.count(f'href="/leads/{lead.pk}/"') == 49  # page of 50, newest first
    older = re.search(r'href="([^"]+)" rel="next"', html).group(1).replace("&amp;", "&")
    second = browser.get(older).content.decode()
    assert second.count(f'href="/leads/{lead.pk}/"') == 6 and "new@example.com" not in second


def test_detail_query_count_does_not_grow_with_submissions(browser, org, capture_form,
                                                           django_assert_max_num_queries):
    def add(count):
        for index in range(count):
            lead = Lead.objects.create(organization=org, email=f"l{Lead.objects.count()}-{index}@example.com")
            FormSubmission.objects.create(organization=org, form=capture_form, lead=lead, data={})

    add(2)
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as few:
        browser.get(f"/forms/{capture_form.pk}/")
    add(30)
    with django_assert_max_num_queries(len(few.captured_queries)):
        assert browser.get(f"/forms/{capture_form.pk}/").content.decode().count("/leads/") >= 32


def test_other_org_and_reps_get_404_on_form_pages(other_browser, client, member, capture_form):
    for url in (f"/forms/{capture_form.pk}/", f"/forms/{capture_form.pk}/edit/"):
        assert other_browser.get(url).status_code == 404
    assert other_browser.post(f"/forms/{capture_form.pk}/edit/", settings_post(name="Hijacked")).status_code == 404
    assert "Contact sales" not in other_browser.get("/forms/").content.decode()
    capture_form.refresh_from_db()
    assert capture_form.name == "Contact sales"

    client.force_login(member(Role.REP))
    assert client.get(f"/forms/{capture_form.pk}/").status_code == 403
    assert client.get("/forms/").status_code == 403


def test_form_pages_need_login(client, capture_form):
    response = client.get(f"/forms/{capture_form.pk}/")
    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")


# --- the public form --------------------------------------------------------------------------------------


def test_public_page_needs_no_login_may_be_framed_and_shows_only_the_form(public, capture_form):
    response = public.get("/f/contact-sales/?utm_source=google&utm_campaign=spring",
                          HTTP_REFERER="https://partner.example/blog?x=1")
    assert response.status_code == 200
    assert "X-Frame-Options" not in response
    html = response.content.decode()
    for name in ("email", "first_name", "company", "phone", "consent_opt_in"):
        assert f'name="{name}"' in html
    assert "Yes, email me about products." in html
    assert '<input type="hidden" name="utm_source" value="google">' in html
    assert '<input type="hidden" name="utm_campaign" value="spring">' in html
    assert '<input type="hidden" name="referrer" value="https://partner.example/blog?x=1">' in html
    assert 'name="comment_body"' in html and 'class="hp" aria-hidden="true"' in html  # the honeypot
    assert "Log out" not in html and "/leads/" not in html  # none of the app's chrome


def test_public_post_creates_lead_submission_and_activity(public, org, capture_form):
    response = public.post("/f/contact-sales/", {
        "email": " Ada@Example.com ", "first_name": "Ada", "company": "Analytical Engines", "phone": "",
        "consent_opt_in": "on", "country": "gb", "company_size": "12",
    })
    assert response.status_code == 200
    assert "We will be in touch" in response.content.decode() or "Thank you" in response.content.decode()
    lead = Lead.objects.get()
    assert lead.organization == org and lead.email == "ada@example.com" and lead.company_size == 12
    assert lead.country == "GB"
    assert (lead.source_type, lead.source, lead.tags) == ("inbound", "website", ["web"])  # hidden values
    assert lead.consent_opt_in and lead.consent_at is not None
    submission = FormSubmission.objects.get()
    assert submission.lead == lead and submission.created_lead and submission.ip_address == "203.0.113.7"
    assert submission.data["first_name"] == "Ada" and submission.data["consent_text"] == capture_form.consent_text
    activity = Activity.objects.get(lead=lead)
    assert activity.type == "form_submission" and activity.properties["form_id"] == str(capture_form.pk)


def test_thank_you_message_is_shown_escaped(public, capture_form):
    capture_form.thank_you_message = "Thanks <b>friend</b>\nSee you"
    capture_form.save()
    html = public.post("/f/contact-sales/", {"email": "a@example.com"}).content.decode()
    assert "Thanks &lt;b&gt;friend&lt;/b&gt;<br>See you" in html


def test_same_email_merges_into_the_existing_lead(public, capture_form):
    public.post("/f/contact-sales/", {"email": "ada@example.com", "first_name": "Ada"})
    response = public.post("/f/contact-sales/", {"email": "ADA@example.com", "first_name": "Augusta",
                                                 "company": "Engines"})
    assert response.status_code == 200
    lead = Lead.objects.get()
    assert lead.first_name == "Ada" and lead.company == "Engines"
    assert list(FormSubmission.objects.order_by("created_at").values_list("created_lead", flat=True)) == [True, False]
    assert lead.activities.filter(type="form_submission").count() == 2


def test_utm_and_referrer_become_first_and_last_touch(public, capture_form):
    page = public.get("/f/contact-sales/?utm_source=google&utm_medium=cpc&utm_campaign=spring",
                      HTTP_REFERER="https://blog.example/post").content.decode()
    carried = dict(re.findall(r'<input type="hidden" name="([a-z_]+)" value="([^"]*)">', page))
    public.post("/f/contact-sales/", {"email": "ada@example.com", **carried})
    lead = Lead.objects.get()
    assert lead.first_touch["utm_source"] == "google" and lead.first_touch["referrer"] == "https://blog.example/post"
    assert lead.first_touch["form"] == "contact-sales" and "at" in lead.first_touch
    assert (lead.utm_source, lead.utm_medium, lead.utm_campaign) == ("google", "cpc", "spring")
    assert FormSubmission.objects.get().referrer == "https://blog.example/post"

    # A later visit from a newsletter: last touch moves, first touch and filled UTM fields stay.
    public.post("/f/contact-sales/?utm_source=newsletter&utm_term=crm", {"email": "ada@example.com"},
                HTTP_REFERER="https://mail.example/")
    lead.refresh_from_db()
    assert lead.first_touch["utm_source"] == "google"
    assert lead.last_touch["utm_source"] == "newsletter" and lead.last_touch["referrer"] == "https://mail.example/"
    assert lead.utm_source == "google" and lead.utm_term == "crm"  # only empty UTM fields are filled


def test_own_page_is_not_recorded_as_referrer(public, capture_form):
    public.post("/f/contact-sales/", {"email": "a@example.com"}, HTTP_REFERER="http://testserver/f/contact-sales/")
    assert FormSubmission.objects.get().referrer == ""
    assert "referrer" not in Lead.objects.get().first_touch


def test_hidden_utm_values_of_the_form_win_over_the_address(public, capture_form):
    capture_form.hidden_values = {**capture_form.hidden_values, "utm_campaign": "brand"}
    capture_form.save()
    public.post("/f/contact-sales/", {"email": "a@example.com", "utm_campaign": "other", "utm_source": "x"})
    lead = Lead.objects.get()
    assert lead.utm_campaign == "brand" and lead.utm_source == "x"
    assert lead.first_touch["utm_campaign"] == "other"  # the touch records what the visit carried


def test_control_characters_in_tracking_values_are_dropped_not_a_500(public, capture_form):
    response = public.post("/f/contact-sales/", {"email": "a@example.com", "utm_source": "goo\x00gle\x07",
                                                 "referrer": "https://x.example/\x00" + "a" * 2000})
    assert response.status_code == 200
    lead = Lead.objects.get()
    assert lead.utm_source == "google" and len(FormSubmission.objects.get().referrer) == 1000


def test_redirect_url_answers_303(public, capture_form):
    capture_form.redirect_url = "https://example.com/thanks"
    capture_form.save()
    response = public.post("/f/contact-sales/", {"email": "a@example.com"})
    assert response.status_code == 303 and response["Location"] == "https://example.com/thanks"
    assert Lead.objects.count() == 1


def test_honeypot_looks_like_success_but_stores_nothing(public, capture_form):
    response = public.post("/f/contact-sales/", {"email": "bot@example.com", "comment_body": "buy pills"})
    assert response.status_code == 200
    assert capture_form.thank_you_message in response.content.decode()
    assert Lead.objects.count() == 0 and FormSubmission.objects.count() == 0 and Activity.objects.count() == 0


@pytest.fixture
def frozen_clock(monkeypatch):
    """Fix django-ratelimit's clock, so a window edge never falls in the middle of a test."""
    clock = SimpleNamespace(now=1_700_000_000.0)
    monkeypatch.setattr("django_ratelimit.core.time", SimpleNamespace(time=lambda: clock.now))
    return clock


def test_rate_limit_per_address_and_form_answers_429_with_retry_after(public, settings, org, capture_form,
                                                                      frozen_clock):
    settings.FORM_RATE_LIMIT = "2/h"
    other_form = Form.objects.create(organization=org, name="Other", slug="other", fields=["email"])
    for index in range(2):
        assert public.post("/f/contact-sales/", {"email": f"v{index}@example.com"}).status_code == 200
    blocked = public.post("/f/contact-sales/", {"email": "v3@example.com"})
    assert blocked.status_code == 429
    assert 0 < int(blocked["Retry-After"]) <= 3600
    assert "Please wait a moment" in blocked.content.decode()
    assert "X-Frame-Options" not in blocked  # shown inside the iframe too
    assert not Lead.objects.filter(email="v3@example.com").exists()
    # Honeypot posts count too, and are blocked the same way.
    assert public.post("/f/contact-sales/", {"email": "x@example.com", "comment_body": "spam"}).status_code == 429
    # Another address, and another form from the same address, are not affected; viewing is never limited.
    assert Client(REMOTE_ADDR="198.51.100.9").post("/f/contact-sales/", {"email": "n@example.com"}).status_code == 200
    assert public.post(f"/f/{other_form.slug}/", {"email": "o@example.com"}).status_code == 200
    assert public.get("/f/contact-sales/").status_code == 200
    # Once the window has passed, the address may submit again.
    frozen_clock.now += int(blocked["Retry-After"]) + 1
    assert public.post("/f/contact-sales/", {"email": "later@example.com"}).status_code == 200


@pytest.mark.skipif(bool(os.environ.get("FORM_RATE_LIMIT")), reason="FORM_RATE_LIMIT is set in the environment")
def test_by_default_an_address_may_send_30_submissions_a_minute(public, capture_form, frozen_clock):
    # Honeypot posts count like real ones and store nothing, which keeps this quick.
    statuses = [public.post("/f/contact-sales/", {"email": "b@example.com", "comment_body": "x"}).status_code
                for _ in range(31)]
    assert statuses == [200] * 30 + [429]
    assert 0 < int(public.post("/f/contact-sales/", {"email": "b@example.com"})["Retry-After"]) <= 60


def test_ipv6_addresses_share_a_limit_per_64_block(settings, capture_form, frozen_clock):
    settings.FORM_RATE_LIMIT = "1/h"
    assert Client(REMOTE_ADDR="2001:db8::1").post("/f/contact-sales/", {"email": "a@example.com"}).status_code == 200
    assert Client(REMOTE_ADDR="2001:db8::2").post("/f/contact-sales/", {"email": "b@example.com"}).status_code == 429
    assert Client(REMOTE_ADDR="2001:db8:1::1").post("/f/contact-sales/",
                                                     {"email": "c@example.com"}).status_code == 200


def test_rate_limited_view_named_in_settings_answers_429(rf, settings):
    from django.utils.module_loading import import_string

    view = import_string(settings.RATELIMIT_VIEW)
    response = view(rf.get("/"), None)
    assert response.status_code == 429 and response["Retry-After"] == "60"


def test_body_over_1_mib_is_refused_with_413(public, capture_form):
    response = public.post("/f/contact-sales/", {"email": "a@example.com", "first_name": "x" * (1024 * 1024)})
    assert response.status_code == 413
    assert Lead.objects.count() == 0


def test_unknown_and_inactive_forms_are_404(public, capture_form):
    assert public.get("/f/nope/").status_code == 404
    assert public.get("/f/nope/embed.js").status_code == 404
    capture_form.is_active = False
    capture_form.save()
    assert public.get("/f/contact-sales/").status_code == 404
    assert public.post("/f/contact-sales/", {"email": "a@example.com"}).status_code == 404
    assert public.get("/f/contact-sales/embed.js").status_code == 404
    assert Lead.objects.count() == 0


def test_embed_script_injects_an_iframe_of_the_form(public, capture_form):
    response = public.get("/f/contact-sales/embed.js")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/javascript")
    body = response.content.decode()
    assert 'var formUrl = "http://testserver/f/contact\\u002Dsales/"' in body  # escapejs-encoded "-"
    assert 'document.createElement("iframe")' in body and '"utm_source"' in body and '"referrer"' in body


@pytest.mark.parametrize("data, field, message", [
    ({"email": "not-an-email"}, "email", "Enter a valid email address."),
    ({"email": ""}, "email", "This field is required."),
    ({"email": "a@example.com", "first_name": "x" * 101}, "first_name", "at most 100 characters"),
    ({"email": "a@example.com", "company_size": "lots"}, "company_size", "A valid integer is required."),
    ({"email": "a@example.com", "company_size": "99999999999999"}, "company_size", "less than or equal to"),
    ({"email": "a@example.com", "phone": "12"}, "phone", "Enter a valid phone number"),
    ({"email": "a@example.com", "country": "1x"}, "country", "two-letter ISO 3166"),
    ({"email": "a@example.com", "first_name": "Ada\x00"}, "first_name", "Null characters are not allowed."),
])
def test_bad_input_re_renders_the_form_with_errors_and_stores_nothing(public, capture_form, data, field, message):
    response = public.post("/f/contact-sales/", data)
    assert response.status_code == 400
    html = response.content.decode()
    assert message in html
    assert f'id="id_{field}_error"' in html  # next to its input
    assert 'name="email"' in html  # the form is shown again
    assert Lead.objects.count() == 0 and FormSubmission.objects.count() == 0 and Activity.objects.count() == 0


def test_required_consent_must_be_ticked(public, capture_form):
    capture_form.required_fields = ["email", "consent_opt_in"]
    capture_form.fields = [*capture_form.fields, "consent_opt_in"]
    capture_form.save()
    response = public.post("/f/contact-sales/", {"email": "a@example.com"})
    assert response.status_code == 400 and "Please tick this box to continue." in response.content.decode()
    assert Lead.objects.count() == 0


def test_phone_only_form_needs_email_or_phone_and_stores_e164(public, org):
    Form.objects.create(organization=org, name="Call me", slug="call-me", fields=["phone", "email", "country"])
    empty = public.post("/f/call-me/", {"phone": "", "email": ""})
    assert empty.status_code == 400
    assert "A lead needs an email address or a phone number." in empty.content.decode()
    assert public.post("/f/call-me/", {"phone": "(415) 555-0123", "country": "US"}).status_code == 200
    assert Lead.objects.get().phone == "+14155550123"


def test_values_sent_are_kept_after_an_error(public, capture_form):
    html = public.post("/f/contact-sales/?utm_source=ads", {
        "email": "bad", "first_name": "Ada", "utm_source": "ads", "referrer": "https://r.example/",
    }).content.decode()
    assert 'value="Ada"' in html
    assert '<input type="hidden" name="utm_source" value="ads">' in html
    assert '<input type="hidden" name="referrer" value="https://r.example/">' in html


def test_non_utf8_body_is_a_400_with_a_form_error(public, capture_form):
    response = public.post("/f/contact-sales/", data=b"email=a%40example.com&first_name=Ad%E9",
                           content_type="application/x-www-form-urlencoded")
    assert response.status_code == 400
    assert "not valid UTF-8" in response.content.decode()
    raw = public.post("/f/contact-sales/", data=b"email=a%40example.com&company=Caf\xe9",
                      content_type="application/x-www-form-urlencoded")
    assert raw.status_code == 400
    assert Lead.objects.count() == 0
    # Properly encoded text goes through.
    for body in (b"email=a%40example.com&company=Caf%C3%A9", "email=a%40example.com&company=Café".encode()):
        ok = public.post("/f/contact-sales/", data=body, content_type="application/x-www-form-urlencoded")
        assert ok.status_code == 200
    assert Lead.objects.get().company == "Café"


def test_misconfigured_hidden_values_fail_cleanly(public, capture_form):
    Form.objects.filter(pk=capture_form.pk).update(hidden_values={"source_type": "billboard"})
    response = public.post("/f/contact-sales/", {"email": "a@example.com"})
    assert response.status_code == 400
    assert "Please let the site owner know." in response.content.decode()
    assert Lead.objects.count() == 0


def test_visitors_cannot_set_fields_a_form_may_not_show(public, member, capture_form):
    rep = member(Role.REP)
    # Stored by other means than the editor (admin, shell): the public form still ignores them.
    Form.objects.filter(pk=capture_form.pk).update(fields=[*capture_form.fields, "owner", "lifecycle_stage"],
                                                   hidden_values={"owner": rep.pk, "source": "web"})
    assert 'name="owner"' not in public.get("/f/contact-sales/").content.decode()
    response = public.post("/f/contact-sales/", {"email": "a@example.com", "owner": rep.pk,
                                                 "lifecycle_stage": "customer"})
    assert response.status_code == 200
    lead = Lead.objects.get()
    assert lead.owner is None and lead.lifecycle_stage == "lead" and lead.source == "web"


def test_markup_in_a_name_is_stored_as_given_and_escaped_when_shown(public, browser, capture_form):
    name = '<script>alert("x")</script>'
    assert public.post("/f/contact-sales/", {"email": "x@example.com", "first_name": name}).status_code == 200
    lead = Lead.objects.get()
    assert lead.first_name == name
    escaped = "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;"
    lead_page = browser.get(f"/leads/{lead.pk}/").content.decode()
    submissions_page = browser.get(f"/forms/{capture_form.pk}/").content.decode()
    for html in (lead_page, submissions_page):
        assert name not in html
        assert escaped in html


# --- API ----------------------------------------------------------------------------------------------------


def test_api_form_crud(api, org):
    created = api.post("/api/v1/forms/", {
        "name": "Webinar sign-up", "fields": ["email", "first_name", "email"], "required_fields": ["email"],
        "hidden_values": {"source_type": "paid", "utm_content": "banner", "tags": [" webinar "]},
    }, format="json")
    assert created.status_code == 201, created.json()
    body = created.json()
    assert body["slug"] == "webinar-sign-up" and body["fields"] == ["email", "first_name"]
    assert body["hidden_values"] == {"source_type": "paid", "utm_content": "banner", "tags": ["webinar"]}
    assert body["embed_url"] == "http://testserver/f/webinar-sign-up/"
    assert body["embed_script_url"] == "http://testserver/f/webinar-sign-up/embed.js"
    assert Form.objects.get().organization == org

    listed = api.get("/api/v1/forms/").json()
    assert [f["id"] for f in listed["results"]] == [body["id"]]
    assert api.get(f"/api/v1/forms/{body['id']}/").json()["name"] == "Webinar sign-up"

    patched = api.patch(f"/api/v1/forms/{body['id']}/", {"is_active": False, "submit_label": "Join"}, format="json")
    assert patched.status_code == 200 and patched.json()["is_active"] is False
    assert api.delete(f"/api/v1/forms/{body['id']}/").status_code == 204
    assert Form.objects.count() == 0


@pytest.mark.parametrize("payload, field", [
    ({"name": "x", "fields": ["first_name"]}, "fields"),
    ({"name": "x", "fields": ["email", "owner"]}, "fields"),
    ({"name": "x", "fields": []}, "fields"),
    ({"name": "x", "fields": ["email"], "required_fields": ["phone"]}, "required_fields"),
    ({"name": "x", "fields": ["email"], "hidden_values": {"owner": 1}}, "hidden_values"),
    ({"name": "x", "fields": ["email"], "hidden_values": {"source_type": "billboard"}}, "hidden_values"),
    ({"name": "x", "fields": ["email"], "hidden_values": {"utm_source": "u" * 201}}, "hidden_values"),
    ({"name": "x", "fields": ["email"], "slug": "taken"}, "slug"),
    ({"name": "x", "fields": ["email"], "slug": "no spaces"}, "slug"),
    ({"name": "x", "fields": ["email"], "redirect_url": "ftp//nope"}, "redirect_url"),
    ({"name": "x", "fields": ["email"], "color": "red"}, "color"),
    ({"fields": ["email"]}, "name"),
])
def test_api_form_validation(api, other_org, payload, field):
    Form.objects.create(organization=other_org, name="Theirs", slug="taken", fields=["email"])
    response = api.post("/api/v1/forms/", payload, format="json")
    assert response.status_code == 400
    assert field in response.json()["errors"]
    assert Form.objects.count() == 1


def test_api_patch_cannot_drop_a_required_field(api, capture_form):
    response = api.patch(f"/api/v1/forms/{capture_form.pk}/", {"fields": ["phone"]}, format="json")
    assert response.status_code == 400 and "required_fields" in response.json()["errors"]


def test_api_lists_submissions_newest_first(api, public, capture_form):
    public.post("/f/contact-sales/", {"email": "first@example.com"})
    public.post("/f/contact-sales/", {"email": "second@example.com", "first_name": "Bo"})
    response = api.get(f"/api/v1/forms/{capture_form.pk}/submissions/")
    assert response.status_code == 200
    results = response.json()["results"]
    second = Lead.objects.get(email="second@example.com")
    assert [r["lead"] for r in results] == [str(second.pk), str(Lead.objects.get(email="first@example.com").pk)]
    assert results[0]["data"]["first_name"] == "Bo" and results[0]["created_lead"] is True


def test_api_other_org_cannot_see_or_change_forms(other_api, capture_form):
    base = f"/api/v1/forms/{capture_form.pk}/"
    assert other_api.get(base).status_code == 404
    assert other_api.get(base + "submissions/").status_code == 404
    assert other_api.patch(base, {"name": "Hijacked"}, format="json").status_code == 404
    assert other_api.delete(base).status_code == 404
    assert other_api.get("/api/v1/forms/").json()["results"] == []
    capture_form.refresh_from_db()
    assert capture_form.name == "Contact sales"


def test_api_rep_session_cannot_manage_forms(client, member, capture_form):
    client.force_login(member(Role.REP))
    assert client.get("/api/v1/forms/").status_code == 403
    assert client.get(f"/api/v1/forms/{capture_form.pk}/").status_code == 403
