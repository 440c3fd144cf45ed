"""Every page at phone width (390 x 844): the page itself never scrolls sideways (a wide table scrolls inside its
own box), its heading and main action are on screen, and the header's links fold behind a Menu button that works
by keyboard. An admin walks the app through the menu and the links on its pages; a rep works the queue and the
pool. Each page is saved at phone and at desktop width under test-artifacts/screenshots/."""

import re

import pytest

from campaigns import services as campaign_services
from campaigns.models import MemberStatus
from leadcrm import services as tenancy
from leadcrm.models import Membership, Role
from leads import import_files, services
from leads.models import Account, Deal, Form, FormSubmission, ImportJob, ImportStatus, Lead
from nurturing import services as nurturing_services
from routing import services as routing_services
from routing.models import LeadRouting, RepProfile
from webhooks import services as webhook_services
from webhooks.models import Endpoint as WebhookEndpoint

try:
    from playwright.sync_api import expect
except ImportError:  # without Playwright the browser fixtures skip these tests (or fail them in CI) and say why
    expect = None

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 900}
REP_EMAIL, REP_PASSWORD = "maximiliana.wolfeschlegelsteinhausen@acme.test", "pw-member-123"
LONG_NAMES = [
    ("Maximiliana", "Wolfeschlegelsteinhausenbergerdorff",
     "maximiliana.wolfeschlegelsteinhausenbergerdorff@an-unusually-long-company-domain.example.com",
     "Wolfeschlegelsteinhausenbergerdorff Precision Engineering International GmbH & Co. KG"),
    ("Bartholomew", "Featherstonehaugh-Cholmondeley",
     "bartholomew.featherstonehaugh-cholmondeley@consolidated-holdings.example.org",
     "Featherstonehaugh <Holdings> & Sons"),
    ("Ana", "Li", "ana@li.example", "Li Co"),
]

# Pages whose remaining width problem belongs to work in progress elsewhere (their views and templates are being
# changed by others) would be named here with the reason; the test still opens and photographs them.
KNOWN_WIDE: dict[str, str] = {}


@pytest.fixture
def full_org(org, member, site):
    """An org with something on every page: leads with long names routed to a rep's queue and one waiting in the
    pool, a deal, a campaign with members and a cost, a segment and a static list, a template and a sequence with
    an enrollment, a finished import with errors, a form with a submission, a webhook with a delivery, a key."""
    admin = Membership.objects.get(organization=org, role=Role.ADMIN).user
    rep = member(Role.REP, REP_EMAIL)
    team = routing_services.save_team(organization_id=org.pk, data={
        "name": "Inside sales — Europe, Middle East and Africa",
        "members": [RepProfile.objects.get(organization=org, user=rep)], "manager": admin})
    routing_services.save_rule(organization_id=org.pk, data={
        "name": "Everything to inside sales", "strategy": "round_robin", "team": team, "sla_minutes": 15})
    leads = []
    for first, last, email, company in LONG_NAMES:
        lead = services.capture_lead(organization_id=org.pk, data={
            "email": email, "first_name": first, "last_name": last, "company": company,
            "job_title": "Vice President of Worldwide Strategic Partnerships", "source": "website"}).lead
        routing_services.route_lead(organization_id=org.pk, lead_id=lead.pk)
        leads.append(lead)
    Lead.objects.filter(pk=leads[0].pk).update(lifecycle_stage="mql", score=72, grade="A", temperature="hot")
    pooled = services.capture_lead(organization_id=org.pk, data={
        "email": "waiting.in.the.pool.for.a.very.long.time@pool-of-leads.example.com", "first_name": "Penelope",
        "last_name": "Poolsworth-Waitingham", "company": "Unclaimed Opportunities Unlimited"}).lead
    LeadRouting.objects.update_or_create(lead=pooled, defaults={"organization": org, "team": team, "pooled": True})

    account = Account.objects.create(organization=org, name=LONG_NAMES[0][3])
    Deal.objects.create(organization=org, account=account, lead=leads[0], owner=rep, amount=125000,
                        name="Multi-year platform licence for all European subsidiaries")
    campaign = campaign_services.save_campaign(organization_id=org.pk, data={
        "name": "Spring trade fair in Frankfurt — follow-ups and demos", "utm_campaign": "spring-fair-frankfurt",
        "budget": 25000})
    campaign_services.add_members(campaign=campaign, leads=Lead.objects.filter(pk__in=[lead.pk for lead in leads]),
                                  status=MemberStatus.RESPONDED)
    campaign_services.add_cost(campaign=campaign, date="2026-03-01", amount=4800, note="Booth, stand and travel")
    services.create_segment(organization_id=org.pk, name="Engineering companies in the DACH region", definition={
        "all": [{"field": "company", "op": "contains", "value": "Engineering"}]})
    mailing = services.create_segment(organization_id=org.pk, name="Fair visitors", kind="static")
    services.add_to_list(segment=mailing, leads=Lead.objects.filter(pk__in=[lead.pk for lead in leads]))
    template = nurturing_services.create_template(
        organization_id=org.pk, name="Thank you for visiting our stand", folder="Trade fairs",
        subject="Thanks for stopping by, {{ lead.first_name }}", html="<p>Thanks for visiting.</p>",
        text="Thanks for visiting.")
    sequence = nurturing_services.save_sequence(organization_id=org.pk, data={
        "name": "Trade fair follow-up over three weeks", "steps": [{"type": "email", "template": str(template.pk)}]})
    nurturing_services.enroll(sequence=sequence, leads=[leads[1].pk])
    ImportJob.objects.create(
        organization=org, filename="trade-fair-badge-scans-frankfurt-2026-final-v2.csv",
        file=import_files.upload(b"email\nbad\n"),
        headers=["email"], mapping={"email": "email"}, status=ImportStatus.DONE, total_rows=1, processed_rows=1,
        failed_count=1, errors=[{"row": 2, "errors": {"email": ["Enter a valid email address."]}}])
    form = Form.objects.create(organization=org, name="Request a demo", slug="request-a-demo",
                               fields=["email", "first_name"])
    FormSubmission.objects.create(organization=org, form=form, lead=leads[0], data={"email": leads[0].email})
    # Saved directly: the URL check would resolve the made-up host.
    WebhookEndpoint.objects.create(organization=org, url="https://hooks.example.com/incoming/leadcrm/production/"
                                   "a-long-path-segment", events=["lead.updated"], secret="whsec_c2VjcmV0")
    webhook_services.deliveries_for_lead(organization_id=org.pk, event_type="lead.updated", lead_id=leads[0].pk,
                                         data={"changed_fields": ["company"]})
    tenancy.create_api_key(organization=org, name="Website contact form on the marketing site")
    return {"leads": leads, "pooled": pooled}


# The outermost elements that reach past the right edge, to say in a failure what makes a page too wide.
WIDE_ELEMENTS = """(limit) => {
  const wide = [];
  for (const element of document.querySelectorAll("body *")) {
    if (element.getBoundingClientRect().right <= limit + 0.5) continue;
    if (wide.some((outer) => outer.contains(element))) continue;
    let inScrollBox = false;
    for (let up = element.parentElement; up; up = up.parentElement) {
      if (["auto", "scroll"].includes(getComputedStyle(up).overflowX)) { inScrollBox = true; break; }
    }
    if (!inScrollBox) wide.push(element);
  }
  return wide.map((e) => e.tagName.toLowerCase() + (e.id ? "#" + e.id : "") +
    (e.className && typeof e.className === "string" ? "." + e.className.trim().split(/\\s+/).join(".") : "") +
    " (" + Math.round(e.getBoundingClientRect().right) + " px)").slice(0, 6);
}"""


class Walk:
    """Opens pages as a person does at phone width, and checks and photographs each one."""

    def __init__(self, page, shot):
        self.page, self.shot, self.problems, self.seen = page, shot, [], []

    def menu(self, *names):
        """Open the header's Menu, open a group by its name if given, and follow the link."""
        page = self.page
        page.get_by_role("button", name="Menu").click()
        panel = page.locator("#nav-panel")
        expect(panel).to_be_visible()
        for group in names[:-1]:
            panel.locator("summary", has_text=group).click()
        # a link may carry a count after its name (the queue's badge)
        panel.get_by_role("link", name=re.compile(rf"^{re.escape(names[-1])}(\s|$)")).first.click()
        page.wait_for_load_state()

    def on_screen(self, name, locator, what):
        expect(locator).to_be_visible()
        box = locator.bounding_box()
        if box["x"] < 0 or box["x"] + box["width"] > PHONE["width"] + 0.5:
            self.problems.append(f"{name}: {what} is off screen ({box['x']:.0f}..{box['x'] + box['width']:.0f} px)")

    def check(self, name, primary=None):
        """The page fits in 390 px, its heading (and main action) are on screen; then photograph it twice."""
        page = self.page
        page.wait_for_load_state()
        self.seen.append(name)
        self.on_screen(name, page.locator("main h1").first, "the heading")
        if primary is not None:
            self.on_screen(name, primary, "the main action")
        width = page.evaluate("document.documentElement.scrollWidth")
        if width > PHONE["width"] and name not in KNOWN_WIDE:
            wide = ", ".join(page.evaluate(WIDE_ELEMENTS, PHONE["width"]))
            self.problems.append(f"{name}: the page is {width} px wide: {wide}")
        self.shot(f"{name}-phone")
        page.set_viewport_size(DESKTOP)
        self.shot(f"{name}-desktop")
        page.set_viewport_size(PHONE)

    def first_row_link(self):
        """Follow the first link of the page's first table, as a person opens an item of a list."""
        self.page.locator("main table tbody a").first.click()
        self.page.wait_for_load_state()

    def action(self, name):
        return self.page.locator("main").get_by_role("link", name=name).or_(
            self.page.locator("main").get_by_role("button", name=name)).first


def test_the_header_folds_behind_a_menu_that_works_by_keyboard(full_org, page, login, shot):
    page.set_viewport_size(PHONE)
    login("owner@acme.test", "pw-acme-123")
    toggle = page.get_by_role("button", name="Menu")
    panel = page.locator("#nav-panel")
    expect(toggle).to_be_visible()
    expect(toggle).to_have_attribute("aria-expanded", "false")
    expect(panel).to_be_hidden()
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    shot("menu-closed")

    toggle.focus()
    page.keyboard.press("Enter")
    expect(toggle).to_have_attribute("aria-expanded", "true")
    log_out = panel.get_by_role("button", name=re.compile("^Log out"))
    expect(log_out).to_be_visible()
    box = log_out.bounding_box()
    assert box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"]
    page.keyboard.press("Tab")  # the first link of the menu comes next
    assert page.evaluate("document.activeElement.textContent.trim()") == "Leads"
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    shot("menu-open")
    page.keyboard.press("Escape")
    expect(panel).to_be_hidden()
    assert page.evaluate("document.activeElement.classList.contains('nav-toggle')")

    # A group of the menu opens in place, inside the screen, and its links are followed by keyboard.
    page.keyboard.press("Enter")
    panel.locator("summary", has_text="Settings").click()
    keys = panel.get_by_role("link", name="API keys")
    expect(keys).to_be_visible()
    box = keys.bounding_box()
    assert box["x"] + box["width"] <= PHONE["width"]
    shot("menu-settings-open")
    keys.focus()
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r"/settings/api-keys/$"))
    expect(page.locator("main h1")).to_have_text("API keys")

    # At desktop width the links are one bar and there is no Menu button.
    page.set_viewport_size(DESKTOP)
    expect(toggle).to_be_hidden()
    expect(panel.get_by_role("link", name="Leads", exact=True)).to_be_visible()
    shot("desktop-bar")

    # Log out is reachable at phone width.
    page.set_viewport_size(PHONE)
    toggle.click()
    log_out.click()
    page.wait_for_url(re.compile(r"/accounts/(login|logout)/"))


def test_an_admin_opens_every_page_at_phone_width(full_org, page, login, shot):
    page.set_viewport_size(PHONE)
    login("owner@acme.test", "pw-acme-123")
    walk = Walk(page, shot)
    main = page.locator("main")
    walk.check("home")

    walk.menu("Leads")
    walk.check("leads")
    main.get_by_role("link", name=re.compile("Maximiliana")).first.click()
    walk.check("lead-detail")

    walk.menu("Deals")
    walk.check("deals")
    main.get_by_role("link", name=LONG_NAMES[0][3]).first.click()
    walk.check("account")

    walk.menu("Queue")
    walk.check("admin-queue")
    walk.menu("Pool")
    walk.check("admin-pool")
    walk.menu("Team")
    walk.check("team")
    walk.menu("Reports")
    walk.check("reports")
    report_nav = main.locator("nav.report-nav")
    for name in report_nav.locator("a").all_inner_texts():
        report_nav.get_by_role("link", name=name, exact=True).click()
        walk.check("report-" + re.sub(r"\W+", "-", name.lower()).strip("-"))

    walk.menu("Marketing", "Campaigns")
    walk.check("campaigns", walk.action("New campaign"))
    walk.first_row_link()
    walk.check("campaign-detail")
    walk.menu("Marketing", "Campaigns")
    walk.action("New campaign").click()
    walk.check("campaign-new", main.get_by_role("button", name=re.compile("^(Save|Create)")).first)

    walk.menu("Marketing", "Forms")
    walk.check("forms", walk.action("New form"))
    walk.first_row_link()
    walk.check("form-detail")
    walk.menu("Marketing", "Forms")
    walk.action("New form").click()
    walk.check("form-new")

    walk.menu("Marketing", "Imports")
    walk.check("imports")
    walk.first_row_link()
    walk.check("import-detail")
    walk.menu("Marketing", "Imports")
    walk.action(re.compile("^(New import|Import a CSV)")).click()
    walk.check("import-upload")

    walk.menu("Marketing", "Segments")
    walk.check("segments", walk.action("New segment"))
    main.get_by_role("link", name="Engineering companies in the DACH region").click()
    walk.check("segment-detail")
    walk.menu("Marketing", "Segments")
    main.get_by_role("link", name="Fair visitors").click()
    walk.check("static-list-detail")
    walk.menu("Marketing", "Segments")
    walk.action("New segment").click()
    walk.check("segment-new")

    walk.menu("Marketing", "Scoring")
    walk.check("scoring")
    walk.first_row_link()
    walk.check("scoring-rule-edit")

    walk.menu("Marketing", "Emails")
    walk.check("templates", walk.action(re.compile("^New (email )?template")))
    walk.first_row_link()
    walk.check("template-edit")
    walk.menu("Marketing", "Sequences")
    walk.check("sequences", walk.action("New sequence"))
    walk.first_row_link()
    walk.check("sequence-detail")
    main.get_by_role("link", name="Edit", exact=True).click()
    walk.check("sequence-edit", main.get_by_role("button", name="Save sequence"))

    walk.menu("Settings", "Organization")
    walk.check("org-settings", main.get_by_role("button", name="Save settings"))
    walk.menu("Settings", "API keys")
    walk.check("api-keys", main.get_by_role("button", name="Create key"))
    walk.menu("Settings", "Webhooks")
    walk.check("webhooks", walk.action(re.compile("^(New|Add) (webhook|endpoint)")))
    walk.first_row_link()
    walk.check("webhook-detail")
    walk.menu("Settings", "Roles")
    walk.check("roles")
    walk.menu("Settings", "Audit log")
    walk.check("audit-log")
    walk.menu("Settings", "Activity types")
    walk.check("activity-types", main.get_by_role("button", name="Add type"))
    walk.menu("Settings", "Routing")
    walk.check("routing-rules", walk.action("New rule"))
    walk.first_row_link()
    walk.check("routing-rule-edit", main.get_by_role("button", name="Save rule"))
    routing_tabs = main.get_by_role("navigation", name="Routing settings")
    routing_tabs.get_by_role("link", name="Teams").click()
    walk.check("routing-teams", walk.action("New team"))
    walk.first_row_link()
    walk.check("routing-team-edit", main.get_by_role("button", name="Save team"))
    routing_tabs.get_by_role("link", name="Rep profiles").click()
    walk.check("routing-reps")
    walk.first_row_link()
    walk.check("routing-rep-edit", main.get_by_role("button", name="Save profile"))

    assert not walk.problems, "\n".join(walk.problems)


def test_a_rep_works_the_queue_and_the_pool_at_phone_width(full_org, page, login, shot):
    page.set_viewport_size(PHONE)
    login(REP_EMAIL, REP_PASSWORD)
    walk = Walk(page, shot)
    expect(page.locator("main h1")).to_have_text("My queue")
    row = page.locator(f"#q-{full_org['leads'][0].pk}")
    # Each lead is a card: what to log (a call first), the note, Log and Accept are all on screen.
    walk.check("queue", row.get_by_role("button", name="Log"))
    walk.on_screen("queue", row.locator("select[name=type]"), "the call/log choice")
    walk.on_screen("queue", row.get_by_role("button", name=re.compile("^Accept")), "Accept")
    row.locator("select[name=type]").select_option("call")
    row.locator("input[name=note]").fill("Left a voicemail")
    row.get_by_role("button", name="Log").click()
    expect(row).to_contain_text("Call logged for")
    row.get_by_role("button", name=re.compile("^Accept")).click()
    expect(row).to_contain_text("moved to Sales accepted")
    walk.check("queue-after-accept")

    walk.menu("Pool")
    walk.check("pool", page.get_by_role("button", name=re.compile("^Claim")).first)
    walk.menu("Queue")
    page.locator("main").get_by_role("link", name="Notifications").click()
    walk.check("notifications")
    walk.menu("Leads")
    walk.check("rep-leads")
    walk.menu("Deals")
    walk.check("rep-deals")
    assert not walk.problems, "\n".join(walk.problems)


def test_a_manager_works_the_team_pool_and_a_lead_at_phone_width(full_org, page, login, shot, member):
    """A manager's day at 390 px: the team's load, the pool of the team they manage, reports, and a lead's page with
    its details edited in place and an activity logged."""
    manager = member(Role.MANAGER, "mira.manager@acme.test")
    team = routing_services.save_team(organization_id=manager.memberships.first().organization_id, data={
        "name": "Field sales — Germany, Austria and Switzerland",
        "members": list(RepProfile.objects.filter(user__email=REP_EMAIL)), "manager": manager})
    LeadRouting.objects.filter(lead=full_org["pooled"]).update(team=team)
    page.set_viewport_size(PHONE)
    login("mira.manager@acme.test", "pw-member-123")
    walk = Walk(page, shot)
    main = page.locator("main")
    walk.menu("Team")
    walk.check("manager-team")
    walk.menu("Pool")
    walk.check("manager-pool", page.get_by_role("link", name=re.compile("Penelope")).first)
    walk.menu("Reports")
    walk.check("manager-reports")
    walk.menu("Leads")
    walk.check("manager-leads")
    main.get_by_role("link", name=re.compile("Maximiliana")).first.click()
    walk.check("manager-lead", main.get_by_role("button", name=re.compile("^Log")).first)
    main.get_by_role("button", name="Edit contact and company details").click()
    expect(main.locator("input[name=phone]")).to_be_visible()
    walk.check("manager-lead-edit", main.get_by_role("button", name="Save").first)
    assert not walk.problems, "\n".join(walk.problems)
