"""Email templates: the merge-field sandbox, versions, the API and the editor."""

import pytest
from django.contrib.auth import get_user_model

from leadcrm.models import Role
from leads import services as lead_services
from nurturing import rendering, services
from nurturing.models import EmailTemplate, Sequence, SequenceStep, TemplateFolder, TemplateVersion

pytestmark = pytest.mark.django_db

HTML = '<p>Hi {{ lead.first_name|default:"there" }} of {{ lead.company }}</p><p>{{ owner.signature|linebreaksbr }}</p>'


def make_lead(org, **data):
    data = {"email": "grace@example.com", "first_name": "Grace", **data}
    return lead_services.capture_lead(organization_id=org.pk, data=data).lead


def make_template(org, **overrides):
    fields = {"name": "Welcome", "subject": "Hello {{ lead.first_name }}", "html": HTML,
              "text": "Hi {{ lead.first_name|default:'there' }}", **overrides}
    return services.create_template(organization_id=org.pk, **fields)


# ----------------------------------------------------------------------------------------------- sandbox


@pytest.mark.parametrize("source", [
    "{{ lead.__class__ }}",
    "{{ lead.__class__.__mro__ }}",
    "{% load static %}{% static 'x' %}",
    '{% include "x.html" %}',
    '{% extends "base.html" %}',
    "{{ lead.owner.password }}",
    "{{ lead.organization }}",
    "{{ lead.items }}",
    "{{ lead }}",
    "{% for item in lead %}{{ item }}{% endfor %}",
    '{% url "admin:index" %}',
    "{% csrf_token %}",
    "{{ settings.SECRET_KEY }}",
    "{% debug %}",
    '{% now "Y" %}',
    "{{ lead.first_name|pprint }}",
    "{{ lead.first_name|safe }}",
    "{% autoescape off %}{{ lead.first_name }}{% endautoescape %}",
    "{% if lead.owner.password %}x{% endif %}",
    "{% if lead.first_name == settings.SECRET_KEY %}x{% endif %}",
    "{{ lead.first_name|default:owner.password }}",
    "{% if lead.first_name %}unclosed",
])
def test_sandbox_refuses_escapes(source):
    with pytest.raises(rendering.TemplateProblem) as refused:
        rendering.check_template("Subject", source, "")
    assert list(refused.value.errors) == ["html"]
    assert refused.value.errors["html"][0]


def test_the_same_escape_is_refused_in_subject_and_text():
    with pytest.raises(rendering.TemplateProblem) as refused:
        rendering.check_template("{{ lead.owner.password }}", "<p>ok</p>", "{% load static %}")
    assert set(refused.value.errors) == {"subject", "text"}
    assert "lead.owner.password" in refused.value.errors["subject"][0]
    assert "{% load %}" in refused.value.errors["text"][0]


def test_html_only_filter_is_refused_in_text():
    with pytest.raises(rendering.TemplateProblem) as refused:
        rendering.check_template("Hi", "<p>x</p>", "{{ owner.signature|linebreaksbr }}")
    assert "HTML body only" in refused.value.errors["text"][0]


def test_every_documented_field_and_filter_is_accepted():
    body = " ".join("{{ " + name + "|default:'-'|upper }}" for name, _ in rendering.MERGE_FIELDS)
    conditional = "{% if lead.company %}at {{ lead.company|truncatechars:10 }}{% elif lead.city %}x{% else %}" \
                  "y{% endif %}{# note #}{% comment %}{% load x %}{% endcomment %}"
    rendering.check_template("Hi {{ lead.first_name|title }}", body + conditional, body)


def test_merge_fields_escaped_in_html_not_in_text(org):
    lead = make_lead(org, first_name='<script>alert("x")</script>', company="Tom & Jerry")
    version = TemplateVersion(subject="For {{ lead.company }}\nBcc: evil@example.com",
                              html="<p>{{ lead.first_name }} / {{ lead.company }}</p>",
                              text="{{ lead.first_name }} / {{ lead.company }}")
    rendered = rendering.render(version, lead, unsubscribe_url="https://x.test/u?a=1&b=2")

    assert rendered.html == "<p>&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; / Tom &amp; Jerry</p>"
    assert rendered.text == '<script>alert("x")</script> / Tom & Jerry'
    assert rendered.subject == "For Tom & Jerry Bcc: evil@example.com"  # one line: no header injection
    assert "\n" not in rendered.subject


def test_missing_values_render_empty_and_default_applies(org):
    lead = make_lead(org, first_name="")
    version = TemplateVersion(subject='Hi {{ lead.first_name|default:"there" }}',
                              html="<p>[{{ lead.city }}][{{ owner.full_name }}]</p>", text="{{ owner.signature }}.")
    rendered = rendering.render(version, lead, unsubscribe_url="https://x.test/u")
    assert rendered.subject == "Hi there"
    assert rendered.html == "<p>[][]</p>"  # no city, no owner
    assert rendered.text == "."


def test_owner_signature_and_organization(org, member):
    owner = member(Role.REP)
    get_user_model().objects.filter(pk=owner.pk).update(first_name="Sam", last_name="Seller")
    lead = make_lead(org)
    type(lead).objects.filter(pk=lead.pk).update(owner=owner)
    lead = type(lead).objects.select_related("owner").get(pk=lead.pk)
    version = TemplateVersion(subject="{{ organization.name }}", html="<p>{{ owner.signature|linebreaksbr }}</p>",
                              text="{{ owner.signature }}\n{{ unsubscribe_url }}")
    rendered = rendering.render(version, lead, unsubscribe_url="https://x.test/u/abc")
    assert rendered.subject == "Acme"
    assert rendered.html == f"<p>Sam Seller<br>{owner.email}</p>"
    assert rendered.text == f"Sam Seller\n{owner.email}\nhttps://x.test/u/abc"


def test_rendered_html_is_a_plain_string(org):
    """Shown in a page of the app, an email's HTML must be escaped by default, never trusted as safe."""
    from django.template import engines

    rendered = rendering.preview("Hi", "<b>bold</b>", "", lead=None, organization=org)
    shown = engines["django"].from_string("{{ html }}").render({"html": rendered.html})
    assert shown == "&lt;b&gt;bold&lt;/b&gt;"


# ----------------------------------------------------------------------------------------------- services


def test_versions_increment_only_when_content_changes(org, member):
    author = member(Role.MARKETER)
    template = make_template(org, folder="Onboarding", actor=author)
    assert services.latest_version(template).number == 1
    assert template.folder.name == "Onboarding"

    services.update_template(template=template, name="Welcome!", subject="Hello {{ lead.first_name }}",
                             html=HTML, text="Hi {{ lead.first_name|default:'there' }}")
    assert services.latest_version(template).number == 1  # renamed only
    assert EmailTemplate.objects.get(pk=template.pk).name == "Welcome!"

    services.update_template(template=template, subject="New subject", html=HTML, text="", actor=author)
    latest = services.latest_version(template)
    assert (latest.number, latest.subject, latest.created_by) == (2, "New subject", author)
    assert list(template.versions.values_list("number", flat=True)) == [2, 1]


def test_refused_content_saves_nothing(org):
    template = make_template(org)
    with pytest.raises(rendering.TemplateProblem):
        services.update_template(template=template, subject="x", html="{{ lead.owner.password }}", text="")
    with pytest.raises(rendering.TemplateProblem) as refused:
        services.create_template(organization_id=org.pk, name="", subject="", html="{% debug %}", text="")
    assert set(refused.value.errors) == {"name", "subject", "html"}
    assert TemplateVersion.objects.count() == 1 and EmailTemplate.objects.count() == 1


def test_folders_match_names_case_insensitively(org):
    first = make_template(org, folder="Newsletters")
    second = make_template(org, name="Two", folder="newsletters")
    assert first.folder_id == second.folder_id
    with pytest.raises(services.TemplateRefused):
        services.create_folder(organization_id=org.pk, name="NEWSLETTERS")
    services.delete_folder(folder=first.folder)
    assert EmailTemplate.objects.filter(folder__isnull=True).count() == 2


def test_template_used_by_a_sequence_cannot_be_deleted(org):
    template = make_template(org)
    sequence = Sequence.objects.create(organization=org, name="Onboarding drip")
    SequenceStep.objects.create(organization=org, sequence=sequence, position=0, type="email", template=template)
    with pytest.raises(services.TemplateInUse) as refused:
        services.delete_template(template=template)
    assert "“Onboarding drip”" in refused.value.message and refused.value.code == "template_in_use"
    assert EmailTemplate.objects.filter(pk=template.pk).exists()


# ----------------------------------------------------------------------------------------------- API


def test_api_create_update_versions_and_delete(api):
    response = api.post("/api/v1/templates/", {"name": "Welcome", "folder": "Onboarding",
                                               "subject": "Hi {{ lead.first_name }}", "html": HTML,
                                               "text": "Hi"}, format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["folder"], body["version"], body["versions"], body["html"]) == ("Onboarding", 1, 1, HTML)

    response = api.patch(f"/api/v1/templates/{body['id']}/", {"subject": "Hello {{ lead.first_name }}"},
                         format="json")
    assert response.status_code == 200
    assert (response.json()["version"], response.json()["versions"]) == (2, 2)
    assert response.json()["html"] == HTML  # the parts not sent are kept

    response = api.patch(f"/api/v1/templates/{body['id']}/", {"folder": None}, format="json")
    assert (response.json()["folder"], response.json()["version"]) == (None, 2)

    versions = api.get(f"/api/v1/templates/{body['id']}/versions/").json()["results"]
    assert [(v["number"], v["subject"]) for v in versions] == [(2, "Hello {{ lead.first_name }}"),
                                                               (1, "Hi {{ lead.first_name }}")]
    listed = api.get("/api/v1/templates/").json()["results"]
    assert [row["name"] for row in listed] == ["Welcome"]

    assert api.delete(f"/api/v1/templates/{body['id']}/").status_code == 204
    assert api.get(f"/api/v1/templates/{body['id']}/").status_code == 404


def test_api_refuses_sandbox_escapes_with_field_messages(api):
    response = api.post("/api/v1/templates/", {"name": "Bad", "subject": "{{ settings.SECRET_KEY }}",
                                               "html": "{% include 'x' %}", "text": "{{ lead.__class__ }}"},
                        format="json")
    assert response.status_code == 400
    errors = response.json()["errors"]
    assert set(errors) == {"subject", "html", "text"}
    assert EmailTemplate.objects.count() == 0
    response = api.post("/api/v1/templates/", {"name": "Bad", "subject": "x", "html": "y", "version": 3},
                        format="json")
    assert response.status_code == 400 and "version" in response.json()["errors"]


def test_api_delete_of_a_template_in_use_is_a_conflict(org, api):
    template = make_template(org)
    sequence = Sequence.objects.create(organization=org, name="Drip")
    SequenceStep.objects.create(organization=org, sequence=sequence, position=0, type="email", template=template)
    response = api.delete(f"/api/v1/templates/{template.pk}/")
    assert response.status_code == 409
    assert "Drip" in response.json()["detail"]


def test_api_preview_with_a_lead(org, api):
    lead = make_lead(org, first_name="<b>Grace</b>", company="Navy")
    template = make_template(org)
    response = api.post(f"/api/v1/templates/{template.pk}/preview/", {"lead": str(lead.pk)}, format="json")
    assert response.status_code == 200
    assert response.json()["subject"] == "Hello <b>Grace</b>"
    assert "Hi &lt;b&gt;Grace&lt;/b&gt; of Navy" in response.json()["html"]

    response = api.post(f"/api/v1/templates/{template.pk}/preview/",
                        {"lead": str(lead.pk), "subject": "Draft for {{ lead.company }}"}, format="json")
    assert response.json()["subject"] == "Draft for Navy"
    assert services.latest_version(template).subject == "Hello {{ lead.first_name }}"  # nothing saved

    response = api.post("/api/v1/templates/preview/", {"subject": "Hi {{ lead.first_name }}", "html": "<p/>"},
                        format="json")
    assert response.json()["subject"] == "Hi Ada"  # the sample lead

    response = api.post(f"/api/v1/templates/{template.pk}/preview/", {"html": "{{ lead.owner.password }}"},
                        format="json")
    assert response.status_code == 400 and "html" in response.json()["errors"]


def test_api_preview_refuses_another_orgs_lead(org, other_org, api):
    stranger = make_lead(other_org, email="secret@rival.test", first_name="Secret")
    template = make_template(org)
    for path in (f"/api/v1/templates/{template.pk}/preview/", "/api/v1/templates/preview/"):
        response = api.post(path, {"lead": str(stranger.pk), "subject": "{{ lead.email }}", "html": "x"},
                            format="json")
        assert response.status_code == 400
        assert response.json() == {"errors": {"lead": ["No such lead in this organization."]}, "code": "invalid"}


def test_api_list_query_count_does_not_grow(org, api, django_assert_max_num_queries):
    for number in range(3):
        make_template(org, name=f"T{number}", folder=f"F{number}")
    with django_assert_max_num_queries(8):
        few = api.get("/api/v1/templates/")
    for number in range(3, 15):
        make_template(org, name=f"T{number}", folder=f"F{number}")
    with django_assert_max_num_queries(8):
        many = api.get("/api/v1/templates/")
    assert len(many.json()["results"]) == 15 and len(few.json()["results"]) == 3


def test_api_folders(api, org):
    response = api.post("/api/v1/template-folders/", {"name": "Promos"}, format="json")
    assert response.status_code == 201
    folder = response.json()
    assert api.post("/api/v1/template-folders/", {"name": "promos"}, format="json").status_code == 400
    response = api.patch(f"/api/v1/template-folders/{folder['id']}/", {"name": "Offers"}, format="json")
    assert response.json()["name"] == "Offers"
    assert api.delete(f"/api/v1/template-folders/{folder['id']}/").status_code == 204
    assert TemplateFolder.objects.count() == 0


def test_reps_have_no_template_api(org, client, member):
    client.force_login(member(Role.REP))
    assert client.get("/api/v1/templates/").status_code == 403


# ----------------------------------------------------------------------------------------------- browser


def test_ui_list_groups_by_folder_and_escapes(org, browser, django_assert_max_num_queries):
    make_template(org, name="<i>Spring</i> promo", folder="Promos")
    make_template(org, name="Loose one")
    with django_assert_max_num_queries(10):
        response = browser.get("/emails/templates/")
    page = response.content.decode()
    assert response.status_code == 200
    assert "&lt;i&gt;Spring&lt;/i&gt; promo" in page and "<i>Spring</i>" not in page
    assert page.index("Promos") < page.index("Spring") < page.index("Not in a folder") < page.index("Loose one")


def test_ui_create_edit_and_history(org, browser):
    response = browser.post("/emails/templates/new/", {"name": "Welcome", "folder": "Onboarding",
                                                       "subject": "Hi {{ lead.first_name }}", "html": HTML,
                                                       "text": "Hi"})
    template = EmailTemplate.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/emails/templates/{template.pk}/"
    response = browser.post(f"/emails/templates/{template.pk}/", {"name": "Welcome", "folder": "Onboarding",
                                                                 "subject": "Changed", "html": HTML, "text": "Hi"})
    assert response.status_code == 302
    page = browser.get(f"/emails/templates/{template.pk}/versions/").content.decode()
    assert "Version 2" in page and "Version 1" in page and "Changed" in page
    page = browser.get(f"/emails/templates/{template.pk}/").content.decode()
    assert "Version 2" in page and "lead.first_name" in page  # the merge-field list


def test_ui_save_shows_errors_per_field(org, browser):
    response = browser.post("/emails/templates/new/", {"name": "Bad", "subject": "{{ lead.owner.password }}",
                                                       "html": "{% load static %}", "text": ""})
    assert response.status_code == 400
    form = response.context["form"]
    assert "lead.owner.password" in form.errors["subject"][0]
    assert "{% load %}" in form.errors["html"][0]
    assert EmailTemplate.objects.count() == 0


def test_ui_preview_escapes_the_email_into_the_frame(org, browser):
    make_lead(org, email="grace@example.com", first_name='"><script>alert(1)</script>')
    response = browser.post("/emails/templates/preview/", {
        "lead": "grace@example.com", "subject": "Hi {{ lead.first_name }}",
        "html": '<p class="x">{{ lead.first_name }}</p>', "text": "{{ lead.first_name }}"}, HTTP_HX_REQUEST="true")
    page = response.content.decode()
    assert response.status_code == 200
    assert "<script>" not in page
    # the frame's document is the email's HTML, escaped once for the attribute (so twice for the lead's text)
    assert 'srcdoc="&lt;p class=&quot;x&quot;&gt;&amp;quot;&amp;gt;&amp;lt;script&amp;gt;' in page
    assert "&quot;&gt;&lt;script&gt;alert(1)&lt;/script&gt;</pre>" in page  # plain text, escaped once


def test_ui_preview_reports_problems_and_unknown_leads(org, other_org, browser):
    make_lead(other_org, email="secret@rival.test", first_name="Secret")
    response = browser.post("/emails/templates/preview/", {"subject": "x", "html": "{% debug %}"},
                            HTTP_HX_REQUEST="true")
    assert "{% debug %} is not allowed" in response.content.decode()
    response = browser.post("/emails/templates/preview/", {"lead": "secret@rival.test", "subject": "x",
                                                           "html": "{{ lead.first_name }}"}, HTTP_HX_REQUEST="true")
    page = response.content.decode()
    assert "No lead in this organization matches" in page and "Secret" not in page


def test_ui_delete_refused_while_in_use(org, browser):
    template = make_template(org)
    sequence = Sequence.objects.create(organization=org, name="Drip")
    step = SequenceStep.objects.create(organization=org, sequence=sequence, position=0, type="email",
                                       template=template)
    response = browser.post(f"/emails/templates/{template.pk}/delete/")
    assert response.status_code == 409 and "Drip" in response.content.decode()
    step.delete()
    response = browser.post(f"/emails/templates/{template.pk}/delete/")
    assert response.status_code == 302 and not EmailTemplate.objects.exists()


def test_ui_is_not_for_reps(org, client, member):
    template = make_template(org)
    client.force_login(member(Role.REP))
    assert client.get("/emails/templates/").status_code == 403
    assert client.get(f"/emails/templates/{template.pk}/").status_code == 403
    assert "Emails" not in client.get("/leads/").content.decode()


def test_ui_nav_has_emails_for_marketers(browser):
    assert '/emails/templates/' in browser.get("/leads/").content.decode()


def test_ui_lead_options_match_a_part_of_any_field_of_the_orgs_leads_only_and_at_most_ten(org, other_org, browser,
                                                                                           django_assert_max_num_queries):
    make_lead(org, email="grace@navy.test", first_name="Grace", last_name="Hopper", company="US Navy")
    make_lead(other_org, email="grace@rival.test", first_name="Grace", last_name="Hopperton")
    for number in range(12):
        make_lead(org, email=f"many{number}@bulk.test", first_name="Many")
    for query, found in [("hopp", ["grace@navy.test"]), ("NAVY", ["grace@navy.test"]), ("s nav", ["grace@navy.test"]),
                         ("ace@nav", ["grace@navy.test"]), ("rival", []), ("\x00", [])]:
        page = browser.get("/emails/templates/leads/", {"lead": query}).content.decode()
        assert [value for value in found if f'data-value="{value}"' in page] == found, query
        assert "rival.test" not in page
    with django_assert_max_num_queries(8):
        page = browser.get("/emails/templates/leads/", {"lead": "bulk"}).content.decode()
    assert page.count('role="option"') == 10


def test_ui_preview_with_a_typed_name_naming_one_lead(org, browser):
    make_lead(org, email="grace@navy.test", first_name="Grace", last_name="Hopper")
    make_lead(org, email="alan@example.test", first_name="Alan", last_name="Hopkins")
    content = {"subject": "Hi {{ lead.first_name }}", "html": "<p>x</p>"}
    one = browser.post("/emails/templates/preview/", {**content, "lead": "hopper"}, HTTP_HX_REQUEST="true")
    assert "Hi Grace" in one.content.decode()
    two = browser.post("/emails/templates/preview/", {**content, "lead": "hop"}, HTTP_HX_REQUEST="true")
    assert "No lead in this organization matches" in two.content.decode()  # two leads match: the member picks one
