"""The sequence editor as a builder: steps added, moved and removed as htmx partials (nothing saved), each step in
words, the exit condition edited with the segments' condition builder (no JSON box), every refusal next to its
input and a refused save that changes nothing."""

import json

import pytest

from leadcrm.models import Role
from leads import services as lead_services
from nurturing import forms_sequences, services
from nurturing.forms_sequences import wait_words
from nurturing.models import Sequence
from tests.nurturing.test_sequences_ui import editor_post, make_sequence, make_template

pytestmark = pytest.mark.django_db

HTMX = {"HTTP_HX_REQUEST": "true"}


@pytest.mark.parametrize(("amount", "unit", "business", "words"), [
    ("1", "days", False, "Wait 1 day"),
    ("3", "days", False, "Wait 3 days"),
    ("2", "days", True, "Wait 2 business days"),
    ("1", "hours", False, "Wait 1 hour"),
    ("36", "hours", False, "Wait 36 hours"),
    ("4", "hours", True, "Wait 4 hours (on a weekday)"),
    ("0", "days", False, "No wait: the next step runs at once"),
    ("", "days", False, "Wait: enter the number of days"),
    ("soon", "hours", False, "Wait: enter the number of hours"),
    ("-2", "days", False, "Wait: enter the number of days"),
])
def test_a_wait_in_words(amount, unit, business, words):
    assert wait_words(amount, unit, business) == words


def test_the_editor_has_no_json_box_and_shows_each_step_in_words(org, browser):
    welcome = make_template(org, "<b>Welcome</b>")
    sequence = make_sequence(org, [{"type": "email", "template": str(welcome.pk)}, {"type": "wait", "days": 3},
                                   {"type": "wait", "hours": 1, "business_days": True}],
                             exit={"stages": ["customer"],
                                   "condition": {"all": [{"field": "score", "op": "gte", "value": 80}]}})
    html = browser.get(f"/emails/sequences/{sequence.pk}/edit/").content.decode()
    assert "<textarea" not in html and "JSON" not in html
    assert 'id="s0-words">Send “&lt;b&gt;Welcome&lt;/b&gt;”</span>' in html
    assert 'id="s1-words">Wait 3 days</span>' in html
    assert 'id="s2-words">Wait 1 hour (on a weekday)</span>' in html
    # the condition builder of the segments page, holding the saved condition; its output a hidden input
    assert 'data-segment-builder data-output="id_exit_condition"' in html
    assert '<option value="score" data-kind="number" selected>' in html
    assert '<option value="gte" selected>' in html
    hidden = html.split('name="exit_condition"', 1)[1].split(">", 1)[0]
    assert json.loads(hidden.split('value="', 1)[1].split('"', 1)[0].replace("&quot;", '"')) == {
        "all": [{"field": "score", "op": "gte", "value": 80}]}
    # and the sequence's page says the same in words
    page = browser.get(f"/emails/sequences/{sequence.pk}/").content.decode()
    assert "Wait 3 days" in page and "Score is at least 80" in page


def test_adding_a_step_with_htmx_answers_only_the_steps_and_saves_nothing(org, browser):
    template = make_template(org)
    post = editor_post([{"type": "email", "template": str(template.pk)}], action="add-wait")
    response = browser.post("/emails/sequences/new/", post, **HTMX)
    assert response.status_code == 200
    html = response.content.decode()
    assert "<html" not in html and "<nav" not in html
    assert html.lstrip().startswith('<section id="sequence-steps"')
    assert 'data-focus="s1-amount"' in html and 'name="step_count" value="2"' in html
    assert 'id="s1-words">Wait: enter the number of days</span>' in html
    assert 'hx-swap-oob="true">Step 2 added: wait.</p>' in html
    assert not Sequence.objects.exists()


@pytest.mark.parametrize(("action", "focus", "said"), [
    ("remove-1", "step-2", "Step 2 removed; 2 steps left."),
    ("remove-2", "step-2", "Step 3 removed; 2 steps left."),
    ("up-2", "s1-up", "Step 3 is now step 2."),
    ("up-1", "step-1", "Step 2 is now step 1."),
    ("down-0", "s1-down", "Step 1 is now step 2."),
])
def test_moving_and_removing_with_htmx_say_where_the_focus_goes(org, browser, action, focus, said):
    template = make_template(org)
    steps = [{"type": "email", "template": str(template.pk)}, {"type": "wait", "amount": "2", "unit": "days"},
             {"type": "notify_owner", "message": "Call"}]
    html = browser.post("/emails/sequences/new/", editor_post(steps, action=action), **HTMX).content.decode()
    assert f'data-focus="{focus}"' in html
    assert f'hx-swap-oob="true">{said}</p>' in html
    assert not Sequence.objects.exists()


def test_typing_a_wait_refreshes_its_words(org, browser):
    steps = [{"type": "wait", "amount": "2", "unit": "hours"}]
    html = browser.post("/emails/sequences/new/", editor_post(steps, action="refresh"), **HTMX).content.decode()
    assert 'id="s0-words">Wait 2 hours</span>' in html


def test_the_step_buttons_work_without_scripts_too(org, browser):
    template = make_template(org)
    response = browser.post("/emails/sequences/new/", editor_post(
        [{"type": "email", "template": str(template.pk)}], action="add-branch"))
    html = response.content.decode()
    assert response.status_code == 200 and "<html" in html  # the whole editor, unsaved
    assert 'name="s1-condition"' in html and not Sequence.objects.exists()


def test_an_exit_condition_from_the_builder_is_saved_and_an_empty_one_is_none(org, browser):
    template = make_template(org)
    steps = [{"type": "email", "template": str(template.pk)}]
    condition = {"any": [{"field": "score", "op": "gte", "value": 50}, {"activity": "email_click"}]}
    assert browser.post("/emails/sequences/new/", editor_post(
        steps, name="With", exit_condition=json.dumps(condition))).status_code == 302
    assert Sequence.objects.get(name="With").exit_condition == condition
    assert browser.post("/emails/sequences/new/", editor_post(
        steps, name="Without", exit_condition='{"all": []}')).status_code == 302
    assert Sequence.objects.get(name="Without").exit_condition == {}


def test_a_bad_exit_condition_is_a_form_error_and_the_builder_keeps_it(org, browser):
    template = make_template(org)
    response = browser.post("/emails/sequences/new/", editor_post(
        [{"type": "email", "template": str(template.pk)}],
        exit_condition='{"all": [{"field": "score", "op": "contains", "value": "x"}]}'))
    assert response.status_code == 400
    html = response.content.decode()
    errors = html.split('id="exit-condition-errors"', 1)[1].split("</ul>", 1)[0]
    assert "contains" in errors or "score" in errors
    assert '<option value="score" data-kind="number" selected>' in html  # shown as posted, to be fixed
    assert not Sequence.objects.exists()


def test_a_refused_change_to_a_saved_sequence_changes_nothing(org, browser):
    first, second = make_template(org, "First"), make_template(org, "Second")
    sequence = make_sequence(org, [{"type": "email", "template": str(first.pk)}, {"type": "wait", "days": 1}],
                             name="Kept")
    before = list(sequence.steps.order_by("position").values_list("pk", "type", "template_id", "config"))
    # a valid new name and a valid first step, but the new third step is not
    response = browser.post(f"/emails/sequences/{sequence.pk}/edit/", editor_post(
        [{"type": "email", "template": str(second.pk)}, {"type": "wait", "amount": "5", "unit": "days"},
         {"type": "wait", "amount": "99999", "unit": "days"}], name="Renamed"))
    assert response.status_code == 400
    assert "Days: A whole number from 0 to 365." in response.content.decode().split('id="step-3"', 1)[1]
    sequence.refresh_from_db()
    assert sequence.name == "Kept"
    assert list(sequence.steps.order_by("position").values_list("pk", "type", "template_id", "config")) == before


def test_a_save_that_fails_while_writing_the_steps_leaves_the_sequence_as_it_was(org, browser, monkeypatch):
    """Settings and steps are written in one transaction: a failure after the settings leaves neither."""
    from nurturing.services import sequences as sequence_services

    template = make_template(org)
    sequence = make_sequence(org, [{"type": "email", "template": str(template.pk)}], name="Whole")

    def broken(*args, **kwargs):
        raise RuntimeError("the database went away mid-save")

    monkeypatch.setattr(sequence_services, "_save_steps", broken)
    browser.raise_request_exception = False
    response = browser.post(f"/emails/sequences/{sequence.pk}/edit/", editor_post(
        [{"type": "email", "template": str(template.pk)}, {"type": "wait", "amount": "1", "unit": "days"}],
        name="Half"))
    assert response.status_code == 500
    sequence.refresh_from_db()
    assert sequence.name == "Whole" and sequence.steps.count() == 1


# ----------------------------------------------------------------------------------------------- test from a step


def test_send_me_a_test_from_an_email_step_arrives_and_saves_nothing(org, member, client, smtp_server):
    client.force_login(member(Role.MARKETER, "mara@acme.test"))
    template = make_template(org, "Welcome")
    sequence = make_sequence(org, [{"type": "email", "template": str(template.pk)}], name="Untouched")
    steps = [{"type": "wait", "amount": "1", "unit": "days"}, {"type": "email", "template": str(template.pk)}]
    response = client.post(f"/emails/sequences/{sequence.pk}/edit/",
                           editor_post(steps, name="Not saved", action="test-1"), **HTMX)
    assert response.status_code == 200
    assert "Test sent to <strong>mara@acme.test</strong>: “Welcome” with sample data." in response.content.decode()
    [received] = smtp_server.messages
    assert (received["To"], received["Subject"]) == ("mara@acme.test", "[Test] Hello")
    sequence.refresh_from_db()
    assert sequence.name == "Untouched" and sequence.steps.count() == 1


def test_a_step_test_that_cannot_be_sent_says_why(org, browser, mailoutbox):
    response = browser.post("/emails/sequences/new/", editor_post([{"type": "email", "template": ""}],
                                                                   action="test-0"), **HTMX)
    assert response.status_code == 400
    result = response.content.decode().split('id="s0-test-message"', 1)[1]
    assert "Test not sent: Choose the step&#x27;s template first." in result
    wait = browser.post("/emails/sequences/new/", editor_post([{"type": "wait", "amount": "1", "unit": "days"}],
                                                               action="test-0"), **HTMX)
    assert wait.status_code == 400
    assert mailoutbox == []


def test_a_step_test_of_another_orgs_template_sends_nothing(org, other_org, browser, mailoutbox):
    theirs = services.create_template(organization_id=other_org.pk, name="Rival", subject="Secret", html="<p>x</p>",
                                      text="x")
    response = browser.post("/emails/sequences/new/", editor_post(
        [{"type": "email", "template": str(theirs.pk)}], action="test-0"), **HTMX)
    assert response.status_code == 400 and mailoutbox == []


def test_the_step_words_name_segments_and_targets(org):
    segment = lead_services.create_segment(organization_id=org.pk, name="Trials", definition={
        "all": [{"field": "company", "op": "contains", "value": "Trial"}]})
    row = {**forms_sequences.blank_row("branch"), "condition": "segment", "segment": str(segment.pk), "then": "3",
           "else": "end"}
    assert forms_sequences.step_words(row, templates={}, segments={str(segment.pk): "Trials"}) == (
        "If the lead is in the segment “Trials”, go to step 3; else to the end")
