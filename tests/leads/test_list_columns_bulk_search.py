"""The leads list's chosen columns (remembered, in saved views, in the export), bulk actions on every lead that
matches the list, and the header's search over leads, accounts and deals."""

import csv
import io
import re
from html import unescape

import pytest
from django.db import connection
from django.http import QueryDict
from django.test.utils import CaptureQueriesContext

from campaigns import services as campaign_services
from campaigns.models import CampaignMember
from leadcrm import policy
from leadcrm import services as tenancy
from leadcrm.errors import Invalid
from leadcrm.models import Role
from leads import listing, services
from leads.models import Account, Deal, Lead, ListPreference, SavedView, SegmentMember

pytestmark = pytest.mark.django_db


def make(org, email, **fields):
    return Lead.objects.create(organization=org, email=email, **fields)


def headings(response) -> list[str]:
    html = response.content.decode()
    head = re.search(r"<thead>(.*?)</thead>", html, re.S).group(1)
    return [re.sub(r"<[^>]+>|[▲▼]", "", cell).strip() for cell in re.findall(r"<th scope=\"col\"[^>]*>(.*?)</th>",
                                                                              head, re.S)]


def csv_rows(response):
    assert response.status_code == 200 and response.streaming
    return list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode("utf-8-sig"))))


@pytest.fixture
def leads(org, member):
    rep = member(Role.REP, "rep@acme.test")
    return {
        "ada": make(org, "ada@example.com", first_name="Ada", last_name="Lovelace", company="Engines", grade="A",
                    job_title="Countess", tags=["=cmd|' /C calc'!A0"], owner=rep),
        "bob": make(org, "bob@example.com", first_name="Bob", company="Builders", grade="C", job_title="Builder"),
        "cy": make(org, "cy@example.com", first_name="Cy", company="Paint Co", grade="A", job_title="Painter"),
    }


# --- columns -------------------------------------------------------------------------------------------------


def test_the_default_columns_then_the_ones_the_query_names_in_the_lists_order(browser, leads):
    assert headings(browser.get("/leads/")) == ["Name", "Email", "Company", "Stage", "Score", "Grade", "Owner",
                                                "Created"]
    response = browser.get("/leads/?columns=tags&columns=job_title,email")
    assert headings(response) == ["Name", "Email", "Job title", "Tags"]  # the name always, in the list's order
    assert "Countess" in response.content.decode() and "Engines" not in response.content.decode()


def test_a_column_not_in_the_whitelist_is_refused_with_its_name(browser, leads):
    response = browser.get("/leads/?columns=name&columns=password_hash")
    assert response.status_code == 400
    html = response.content.decode()
    assert "Unknown column: password_hash" in html
    assert headings(response)[0] == "Name"  # the default columns, not a broken page
    with pytest.raises(Invalid):
        listing.clean_columns(["email", "owner__password"])


def test_the_choice_is_remembered_per_member_and_checked(client, org, member, leads):
    mia = member(Role.MARKETER, "mia@acme.test")
    max_ = member(Role.MANAGER, "max@acme.test")
    client.force_login(mia)
    response = client.post("/leads/columns/", {"columns": ["name", "company", "country", "tags"],
                                               "query": "grade=A&cursor=abc&columns=email"})
    assert response.status_code == 302 and response["Location"] == "/leads/?grade=A"
    assert headings(client.get(response["Location"])) == ["Name", "Company", "Country", "Tags"]
    assert headings(client.get("/leads/")) == ["Name", "Company", "Country", "Tags"]

    refused = client.post("/leads/columns/", {"columns": ["name", "owner__password"]})
    assert refused.status_code == 302  # back to the list with the message; the choice stays what it was
    assert ListPreference.objects.get(user=mia).columns == ["name", "company", "country", "tags"]
    assert "Unknown column" in client.get("/leads/").content.decode()

    client.force_login(max_)  # a colleague keeps their own
    assert headings(client.get("/leads/"))[:3] == ["Name", "Email", "Company"]


def test_a_saved_view_keeps_its_columns_and_a_change_shows_until_it_is_saved(browser, leads):
    response = browser.post("/leads/views/", {"name": "Titles", "query": "grade=A&columns=job_title&columns=name"})
    view = SavedView.objects.get()
    assert view.query == "grade=A&columns=name&columns=job_title"
    opened = browser.get(response["Location"])
    assert headings(opened) == ["Name", "Job title"]
    sort_link = unescape(re.search(r'<a href="(\?[^"]+)" class="sort">Name', opened.content.decode()).group(1))
    assert "columns=job_title" in sort_link  # sorting the view keeps its columns
    # Changing the columns while the view is open shows them on the view, and Save keeps them.
    changed = browser.post("/leads/columns/", {"columns": ["name", "grade"], "view": str(view.pk),
                                               "query": "grade=A"})
    assert changed["Location"] == f"/leads/?view={view.pk}&columns=name&columns=grade"
    page = browser.get(changed["Location"])
    assert headings(page) == ["Name", "Grade"]
    save_form = page.content.decode().split('action="/leads/views/"')[1]
    query = unescape(re.search(r'name="query" value="([^"]*)"', save_form).group(1))
    browser.post("/leads/views/", {"name": "Titles", "query": query})
    view.refresh_from_db()
    assert QueryDict(view.query).getlist("columns") == ["name", "grade"]
    assert headings(browser.get(f"/leads/?view={view.pk}")) == ["Name", "Grade"]


def test_a_saved_view_with_an_unknown_column_is_not_saved(browser, leads):
    response = browser.post("/leads/views/", {"name": "Bad", "query": "columns=ssn"}, follow=True)
    assert "Unknown column" in response.content.decode()
    assert not SavedView.objects.exists()


def test_export_holds_the_shown_columns_formula_safe(browser, leads):
    rows = csv_rows(browser.get("/leads/export.csv?grade=A&ordering=email&columns=name&columns=tags"
                                "&columns=job_title"))
    assert rows[0] == ["id", "first_name", "last_name", "job_title", "tags"]
    assert [row[1] for row in rows[1:]] == ["Ada", "Cy"]
    assert rows[1][4] == "'=cmd|' /C calc'!A0"  # a tag is text in the spreadsheet, never a formula
    # The list's Export link names the columns shown, so the download matches the page.
    page = browser.get("/leads/?columns=name&columns=country").content.decode()
    link = unescape(re.search(r'href="(/leads/export\.csv\?[^"]+)"', page).group(1))
    assert csv_rows(browser.get(link))[0] == ["id", "first_name", "last_name", "country"]


def test_export_without_columns_uses_the_remembered_ones_and_refuses_unknown_ones(browser, leads):
    user = browser.get("/leads/").wsgi_request.user
    services.remember_columns(organization_id=leads["ada"].organization_id, user=user, columns=["score", "owner"])
    rows = csv_rows(browser.get("/leads/export.csv?ordering=email"))
    assert rows[0] == ["id", "first_name", "last_name", "score", "owner"]
    assert rows[1][4] == "rep@acme.test"
    assert browser.get("/leads/export.csv?columns=bogus").status_code == 302


def test_every_column_renders_and_exports(browser, leads):
    everything = "&".join(f"columns={column.key}" for column in listing.COLUMNS)
    response = browser.get(f"/leads/?{everything}")
    assert headings(response) == [column.label for column in listing.COLUMNS]
    rows = csv_rows(browser.get(f"/leads/export.csv?{everything}"))
    assert len(rows[0]) == len(rows[1]) == 1 + sum(len(column.export) for column in listing.COLUMNS)


def test_list_query_count_does_not_grow_with_rows_or_columns(browser, org):
    def count(url):
        with CaptureQueriesContext(connection) as ctx:
            assert browser.get(url).status_code == 200
        return len(ctx.captured_queries)

    for i in range(3):
        make(org, f"a{i}@example.com")
    everything = "&".join(f"columns={column.key}" for column in listing.COLUMNS)
    few = count(f"/leads/?{everything}")
    for i in range(3, 60):  # past one page: the "select all that match" count joins in
        make(org, f"a{i}@example.com", tags=["x"])
    many = count(f"/leads/?{everything}")
    assert many <= few + 1


# --- bulk actions on all that match ----------------------------------------------------------------------------


@pytest.fixture
def crowd(org, other_org, member):
    """Twelve A-grade and eight C-grade leads here, and A-grade leads of another org with the same names."""
    rep = member(Role.REP, "crowd.rep@acme.test")
    made = {"a": [make(org, f"a{i}@example.com", first_name="Anna", grade="A", owner=rep if i < 3 else None)
                  for i in range(12)],
            "c": [make(org, f"c{i}@example.com", first_name="Carl", grade="C") for i in range(8)],
            "rival": [make(other_org, f"a{i}@example.com", first_name="Anna", grade="A") for i in range(5)],
            "rep": rep}
    return made


def tagged(tag):
    return set(Lead.objects.filter(tags__contains=[tag]).values_list("pk", flat=True))


def test_all_that_match_asks_with_the_count_then_tags_exactly_those(browser, crowd):
    body = {"action": "tag_add", "tag": "vip", "scope": "matching", "query": "grade=A&ordering=email&cursor=x",
            "next": "/leads/?grade=A"}
    asked = browser.post("/leads/bulk/", body)
    assert asked.status_code == 200 and not tagged("vip")
    html = asked.content.decode()
    assert "<strong>12 leads</strong>" in html and "Grade: A" in html and "(12 leads)" in html

    done = browser.post("/leads/bulk/", {**body, "confirm": "yes"})
    assert done.status_code == 302 and done["Location"] == "/leads/?grade=A"
    assert tagged("vip") == {lead.pk for lead in crowd["a"]}  # not the C grades, not the other org's A grades

    browser.post("/leads/bulk/", {**body, "action": "tag_remove", "query": "search=a1", "confirm": "yes"})
    assert tagged("vip") == {lead.pk for lead in crowd["a"] if not lead.email.startswith("a1")}


def test_all_that_match_with_the_search_box_and_no_filter(browser, crowd):
    browser.post("/leads/bulk/", {"action": "tag_add", "tag": "carl", "scope": "matching", "query": "search=carl",
                                  "confirm": "yes"})
    assert tagged("carl") == {lead.pk for lead in crowd["c"]}


def test_applying_to_all_that_match_takes_the_same_queries_for_few_or_many(browser, org, crowd):
    body = {"action": "tag_add", "scope": "matching", "confirm": "yes"}
    with CaptureQueriesContext(connection) as few:
        browser.post("/leads/bulk/", {**body, "tag": "one", "query": "grade=C"})
    for i in range(60):
        make(org, f"more{i}@example.com", grade="C")
    with CaptureQueriesContext(connection) as many:
        browser.post("/leads/bulk/", {**body, "tag": "two", "query": "grade=C"})
    assert len(tagged("two")) == 68
    assert len(many.captured_queries) == len(few.captured_queries)
    updates = [query["sql"] for query in many.captured_queries if query["sql"].lstrip().startswith("UPDATE")]
    assert len(updates) == 1  # one statement, not one per lead


def test_ticked_leads_are_tagged_at_once_and_another_orgs_are_never_found(browser, crowd):
    mine = [str(lead.pk) for lead in crowd["c"][:2]]
    response = browser.post("/leads/bulk/", {"action": "tag_add", "tag": "t", "lead": mine})
    assert response.status_code == 302 and tagged("t") == {lead.pk for lead in crowd["c"][:2]}
    theirs = [str(lead.pk) for lead in crowd["rival"]]
    assert browser.post("/leads/bulk/", {"action": "tag_add", "tag": "x", "lead": theirs}).status_code == 404
    # Mixed: only the org's own lead changes.
    browser.post("/leads/bulk/", {"action": "tag_add", "tag": "y", "lead": [mine[0], theirs[0]]})
    assert tagged("y") == {crowd["c"][0].pk}


def test_the_selection_is_what_the_member_may_see(org, crowd):
    """Reps see their own leads (policy.visible): all that match is never more than that."""
    rep = policy.Principal(role=Role.REP, user=crowd["rep"])
    visible = policy.visible(rep, Lead.objects.for_org(org))
    picked = listing.selection(visible, QueryDict("scope=matching&query=grade%3DA"))
    assert set(picked.leads.values_list("pk", flat=True)) == {lead.pk for lead in crowd["a"][:3]}
    ticked = listing.selection(visible, QueryDict("&".join(f"lead={lead.pk}" for lead in crowd["a"][:5])))
    assert ticked.leads.count() == 3


def test_reps_have_no_bulk_actions_but_planning_tasks(client, crowd):
    client.force_login(crowd["rep"])
    page = client.get("/leads/").content.decode()
    assert "Add task…" in page  # tasks on their own leads (agenda), nothing org-wide
    assert "Add tag" not in page and "Add to campaign" not in page and "Route now" not in page
    response = client.post("/leads/bulk/", {"action": "tag_add", "tag": "x", "scope": "matching", "query": "",
                                            "confirm": "yes"})
    assert response.status_code == 403 and not tagged("x")
    assert client.post("/campaigns/add-leads/", {"scope": "matching", "query": ""}).status_code == 403


@pytest.mark.parametrize(("body", "problem"), [
    ({"action": "tag_add", "tag": "x", "scope": "matching", "query": "score_min=lots"}, "Enter a number"),
    ({"action": "tag_add", "tag": "x", "scope": "matching", "query": "columns=ssn"}, "Unknown column"),
    ({"action": "tag_add", "tag": "", "scope": "matching", "query": ""}, "Give a tag"),
    ({"action": "explode", "tag": "x", "scope": "matching", "query": ""}, "Choose what to do"),
    ({"action": "tag_add", "tag": "x"}, "Select at least one lead"),
    ({"action": "tag_add", "tag": "x", "lead": ["not-a-uuid"]}, "Unknown lead"),
])
def test_bad_bulk_input_is_a_400_page_and_changes_nothing(browser, crowd, body, problem):
    response = browser.post("/leads/bulk/", {**body, "confirm": "yes"})
    assert response.status_code == 400 and problem in response.content.decode()
    assert not tagged("x")


def test_all_that_match_goes_into_a_static_list_chosen_on_the_confirm_page(browser, org, crowd):
    target = services.create_segment(organization_id=org.pk, name="Call list", kind="static")
    body = {"action": "list_add", "scope": "matching", "query": "grade=C"}
    asked = browser.post("/leads/bulk/", body)
    assert asked.status_code == 200 and "Call list" in asked.content.decode() and "<strong>8 leads</strong>" in \
        asked.content.decode()
    assert not SegmentMember.objects.exists()
    assert browser.post("/leads/bulk/", {**body, "list": "", "confirm": "yes"}).status_code == 400
    done = browser.post("/leads/bulk/", {**body, "list": str(target.pk), "confirm": "yes"})
    assert done.status_code == 302
    assert set(SegmentMember.objects.values_list("lead_id", flat=True)) == {lead.pk for lead in crowd["c"]}


def test_all_that_match_joins_a_campaign(browser, org, other_org, crowd):
    campaign = campaign_services.save_campaign(organization_id=org.pk, data={"name": "Spring fair"})
    theirs = campaign_services.save_campaign(organization_id=other_org.pk, data={"name": "Rival fair"})
    body = {"scope": "matching", "query": "grade=A&search=a1"}
    asked = browser.post("/campaigns/add-leads/", body)
    assert asked.status_code == 200 and "Spring fair" in asked.content.decode()
    assert "Rival fair" not in asked.content.decode()
    assert browser.post("/campaigns/add-leads/", {**body, "campaign": str(theirs.pk), "confirm": "yes"}
                        ).status_code == 400
    assert browser.post("/campaigns/add-leads/", {**body, "campaign": str(campaign.pk), "confirm": "yes"}
                        ).status_code == 302
    joined = set(CampaignMember.objects.filter(campaign=campaign).values_list("lead_id", flat=True))
    assert joined == {lead.pk for lead in crowd["a"] if lead.email.startswith("a1")}


def test_the_list_offers_select_all_with_the_count_past_one_page(browser, org, crowd):
    for i in range(50):
        make(org, f"page{i}@example.com", grade="A")
    html = browser.get("/leads/?grade=A").content.decode()
    assert "All 50 leads on this page are selected." in html
    assert "Select all 62 leads that match" in html
    assert 'name="query" value="grade=A"' in html
    assert "leads that match" not in browser.get("/leads/?grade=C").content.decode()  # one page: ticking is enough


# --- header search ---------------------------------------------------------------------------------------------


@pytest.fixture
def findable(org, other_org, member):
    rep = member(Role.REP, "finder.rep@acme.test")
    own = make(org, "zed@example.com", first_name="Zed", last_name="Quartz", company="Quartz Mining", owner=rep)
    other = make(org, "zora@example.com", first_name="Zora", company="Quartzite Ltd")
    account = Account.objects.create(organization=org, name="Quartz Holdings")
    deal = Deal.objects.create(organization=org, account=account, lead=other, name="Quartz renewal", amount=10)
    make(other_org, "rival@quartz.test", first_name="Rival", company="Quartz Rival")
    rival_account = Account.objects.create(organization=other_org, name="Quartz Rival Inc")
    Deal.objects.create(organization=other_org, account=rival_account, name="Quartz Rival deal", amount=1)
    return {"rep": rep, "own": own, "other": other, "account": account, "deal": deal}


def test_search_finds_leads_accounts_and_deals_of_the_org_only(browser, findable):
    response = browser.get("/search/?q=quartz")
    html = response.content.decode()
    assert response.status_code == 200
    for text in ("Zed Quartz", "Zora", "Quartz Holdings", "Quartz renewal"):
        assert text in html
    assert f'href="/leads/{findable["own"].pk}/"' in html
    assert f'href="/accounts/{findable["account"].pk}/"' in html
    assert "Rival" not in html and "rival" not in html
    for q in ("zed@example", "MINING", "holdings", "renewal"):
        assert "Quartz" in browser.get(f"/search/?q={q}").content.decode(), q


def test_a_rep_finds_only_what_they_may_see(client, findable):
    client.force_login(findable["rep"])
    html = client.get("/search/?q=quartz").content.decode()
    assert "Zed Quartz" in html
    assert "Zora" not in html and "Quartz Holdings" not in html and "Quartz renewal" not in html


def test_search_output_is_escaped_and_odd_input_is_no_error(browser, org):
    make(org, "x@example.com", first_name="<script>alert(1)</script>", company="Evil<b>Co")
    html = browser.get("/search/?q=<script>").content.decode()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html and "<script>alert(1)" not in html
    for q in ("%", "_", "a\x00b", "x" * 5000, "'; DROP TABLE leads_lead; --"):
        assert browser.get("/search/", {"q": q}).status_code == 200
    assert "Type at least 2 characters" in browser.get("/search/?q=x").content.decode()
    assert browser.get("/search/?q=%25").content.decode().count("/leads/") <= 2  # % is a character, not a wildcard


def test_suggest_shows_the_top_hits_and_a_link_to_all(browser, org, findable):
    for i in range(8):
        make(org, f"quartz{i}@example.com", first_name=f"Q{i}")
    html = browser.get("/search/suggest/?q=quartz").content.decode()
    assert html.count('href="/leads/') == 5 and "Quartz Holdings" in html
    assert 'href="/search/?q=quartz"' in html
    assert browser.get("/search/suggest/?q=q").content.decode().strip() == ""


def test_search_queries_do_not_grow_with_hits(browser, org):
    def count():
        with CaptureQueriesContext(connection) as ctx:
            assert browser.get("/search/?q=needle").status_code == 200
        return len(ctx.captured_queries)

    account = Account.objects.create(organization=org, name="Needle Co")
    make(org, "n0@example.com", first_name="Needle")
    Deal.objects.create(organization=org, account=account, name="Needle deal", amount=1)
    few = count()
    for i in range(1, 30):
        owner = tenancy.add_member(organization=org, email=f"o{i}@acme.test", password=None, role="rep").user
        account = Account.objects.create(organization=org, name=f"Needle {i}", owner=owner)
        make(org, f"n{i}@example.com", first_name="Needle", owner=owner)
        Deal.objects.create(organization=org, account=account, name=f"Needle deal {i}", amount=1, owner=owner)
    assert count() == few


def test_search_reads_the_trigram_indexes(org):
    """Accounts and deals have org-first trigram indexes on their names, as leads have on name, email, company."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT indexname, indexdef FROM pg_indexes WHERE indexname IN "
                       "('account_org_search', 'deal_org_search', 'lead_org_search')")
        found = dict(cursor.fetchall())
    assert set(found) == {"account_org_search", "deal_org_search", "lead_org_search"}
    for definition in found.values():
        assert re.search(r"USING gin \(organization_id, search_text gin_trgm_ops\)", definition), definition
    query = str(Account.objects.for_org(org).filter(search_text__contains="QUARTZ").query)
    assert '"search_text"::text LIKE' in query or '"search_text" LIKE' in query
