"""The Content-Security-Policy breaks no page: Chromium reports every violation (a `securitypolicyviolation` event)
while pages with htmx, Chart.js, the email preview iframe, Swagger UI, the admin and the framed public form load and
run their scripts."""

import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from leadcrm import services
from leadcrm.models import Role
from leads.models import Form, Lead
from tests.nurturing.test_sequences import make_template

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

# Collects violations from the start of every document, frames included.
WATCH = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", function (event) {
  window.__cspViolations.push(event.violatedDirective + " " + event.blockedURI + " " + (event.sample || ""));
});
"""


@pytest.fixture
def setup(db):
    org = services.create_organization(slug="csp", name="CSP", owner_email="owner@csp.test",
                                       owner_password="pw-csp-123")
    user = services.add_member(organization=org, email="admin@csp.test", password="pw-admin-123",
                               role=Role.ADMIN).user
    user.is_staff = True
    user.save()
    lead = Lead.objects.create(organization=org, email="ada@example.com", first_name="Ada", company="Acme")
    form = Form.objects.create(organization=org, name="Contact", slug="contact", fields=["email"],
                               required_fields=["email"])
    template = make_template(org, html='<div style="color:#c00"><p>Hello {{ lead.first_name }}</p>'
                                       '<img src="https://example.com/logo.png" alt=""></div>')
    return {"lead": lead, "form": form, "template": template}


@pytest.fixture
def host_page(page):
    """host_page(html): opens `html` as a page of another site, served from another local port (a page the browser
    made up itself would count as public, and Chromium keeps public pages from framing local addresses)."""
    servers = []

    def open_page(html: str):
        body = f"<!doctype html>{html}".encode()

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                self.send_response(200)
                self.send_header("Content-Type", "text/html")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        page.goto(f"http://127.0.0.1:{server.server_port}/landing")

    yield open_page
    for server in servers:
        server.shutdown()
        server.server_close()


def _violations(page):
    found = []
    for frame in page.frames:
        try:
            found += frame.evaluate("window.__cspViolations || []")
        except Exception:  # a sandboxed srcdoc frame cannot be read; its violations show in the console
            pass
    return found


def test_pages_run_under_the_policy_without_violations(page, login, setup, site):
    console = []
    page.on("console", lambda message: console.append(message.text))
    page.add_init_script(WATCH)
    login("admin@csp.test", "pw-admin-123")
    paths = ["/leads/", f"/leads/{setup['lead'].pk}/", f"/forms/{setup['form'].pk}/", "/forms/new/",
             "/reports/", "/scoring/rules/new/", "/emails/templates/new/", "/campaigns/", "/settings/api-keys/",
             "/api/docs/", "/admin/", "/admin/scoring/scoringrule/add/", "/reports/marketing/", "/reports/sales/",
             "/settings/webhooks/", "/settings/webhooks/new/", "/audit/", f"/leads/{setup['lead'].pk}/erase/",
             "/emails/sequences/new/", "/settings/organization/"]
    paths.append(f"/emails/templates/{setup['template'].pk}/")
    for path in paths:
        page.goto(path)
        page.wait_for_load_state("networkidle")
        assert _violations(page) == [], path
    # htmx did its work (the charts on the dashboard are drawn by static/js/app.js with Chart.js).
    page.goto("/reports/")
    page.wait_for_load_state("networkidle")
    assert page.evaluate("!!window.htmx && !!window.Chart")
    page.goto("/api/docs/")
    page.wait_for_selector(".swagger-ui .information-container", timeout=15_000)
    assert not [line for line in console if "Content Security Policy" in line], console


def test_the_public_form_works_framed_by_another_site(page, setup, site, host_page):
    console = []
    page.on("console", lambda message: console.append(message.text))
    page.add_init_script(WATCH)
    # Another site frames the form the way the iframe snippet does.
    host_page(f'<iframe id="f" src="{site}/f/contact/" style="width:600px;height:600px"></iframe>')
    frame = page.frame_locator("#f")
    frame.locator("input[name=email]").fill("framed@example.com")
    frame.locator("button[type=submit]").click()
    frame.locator("article[role=status]").wait_for()
    assert Lead.objects.filter(email="framed@example.com").exists()
    assert not [line for line in console if re.search("Content Security Policy|frame-ancestors", line)], console


def test_other_pages_refuse_to_be_framed(page, setup, site, host_page):
    console = []
    page.on("console", lambda message: console.append(message.text))
    host_page(f'<iframe id="f" src="{site}/accounts/login/"></iframe>')
    page.wait_for_timeout(1500)
    assert any("frame-ancestors" in line or "X-Frame-Options" in line for line in console), console
