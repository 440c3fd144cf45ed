"""Bulk recalculation (versions, progress, edits made while it runs), tenant isolation, score snapshots,
nightly decay, and a new org's default scoring set-up."""

from datetime import timedelta
from types import SimpleNamespace

import pytest
from django.utils import timezone

from leadcrm import services as org_services
from leads.models import Lead
from scoring import services
from scoring.models import RecalculationStatus, ScoreSnapshot, ScoringRule, ScoringSettings

from . import (
    add_activity,
    behavior,
    fit,
    make_lead,
    numbers,
    score_org,
    set_rules,
)

pytestmark = pytest.mark.django_db

NOW = timezone.now()


def settings_of(org) -> ScoringSettings:
    return ScoringSettings.objects.get(organization=org)


def assert_current(org):
    settings = settings_of(org)
    assert settings.scored_version == settings.config_version > 0
    assert settings.recalc_status == RecalculationStatus.IDLE
    assert settings.recalc_percent == 100
    assert settings.recalc_done == settings.recalc_total == Lead.objects.for_org(org).count()
    assert settings.recalc_error == ""
    assert settings.recalc_finished_at is not None


@pytest.fixture
def scored_org(org):
    """Seven leads: industries a to g; lead i has i downloads. Rules give nothing yet."""
    set_rules(org)
    leads = []
    for i, industry in enumerate("abcdefg"):
        lead = make_lead(org, industry=industry)
        for _ in range(i):
            add_activity(lead, "download")
        leads.append(lead)
    return org, leads


def test_recalculation_brings_every_lead_current(scored_org):
    org, leads = scored_org
    set_rules(org, fit(5, {"field": "industry", "op": "in", "value": ["a", "c", "e"]}),
              behavior(3, {"activity_type": "download"}))
    services.request_recalculation(organization_id=org.pk)
    queued = settings_of(org)
    assert queued.recalc_status == RecalculationStatus.QUEUED
    assert queued.scored_version < queued.config_version

    services.recalculate_organization(organization_id=org.pk)
    for i, lead in enumerate(leads):
        assert numbers(lead)["score"] == 3 * i + (5 if lead.industry in "ace" else 0)
    assert_current(org)


def test_recalculation_in_chunks_covers_every_lead(scored_org, monkeypatch):
    org, leads = scored_org
    monkeypatch.setattr(services, "RECALC_CHUNK", 2)
    chunks = []
    score_leads = services.score_leads

    def counting(**kwargs):
        chunks.append(kwargs["scope"])
        return score_leads(**kwargs)

    monkeypatch.setattr(services, "score_leads", counting)
    set_rules(org, behavior(1, {"activity_type": "download"}))
    services.request_recalculation(organization_id=org.pk)
    services.recalculate_organization(organization_id=org.pk)
    assert len(chunks) == 4  # 7 leads, 2 at a time
    assert [numbers(lead)["score"] for lead in leads] == list(range(7))
    assert_current(org)


def test_recalculating_a_current_org_does_nothing(scored_org, monkeypatch):
    org, _ = scored_org
    services.request_recalculation(organization_id=org.pk)
    services.recalculate_organization(organization_id=org.pk)
    calls = []
    monkeypatch.setattr(services, "score_leads", lambda **kwargs: calls.append(kwargs))
    services.recalculate_organization(organization_id=org.pk)
    assert calls == []
    assert_current(org)


@pytest.mark.parametrize("edit", ["points", "new rule", "delete", "settings"])
def test_a_change_made_while_recalculating_is_not_lost(scored_org, monkeypatch, edit):
    org, leads = scored_org
    (rule,) = set_rules(org, behavior(1, {"activity_type": "download"}))
    services.request_recalculation(organization_id=org.pk)
    monkeypatch.setattr(services, "RECALC_CHUNK", 2)
    score_leads = services.score_leads
    calls = []

    def edit_once(**kwargs):
        result = score_leads(**kwargs)
        calls.append(kwargs["scope"])
        if len(calls) == 2:  # between the second and third chunk of the first pass
            if edit == "points":
                services.save_rule(organization_id=org.pk, rule=rule, points=10)
            elif edit == "new rule":
                services.save_rule(organization_id=org.pk, name="fit", kind="fit", points=100,
                                   condition={"field": "industry", "op": "eq", "value": "a"})
            elif edit == "delete":
                services.delete_rule(rule=rule)
            else:
                services.update_settings(organization_id=org.pk, temperature_bands={"hot": 2, "warm": 1})
        return result

    monkeypatch.setattr(services, "score_leads", edit_once)
    services.recalculate_organization(organization_id=org.pk)

    scores = [numbers(lead)["score"] for lead in leads]
    if edit == "points":
        assert scores == [10 * i for i in range(7)]
    elif edit == "new rule":
        assert scores == [100, 1, 2, 3, 4, 5, 6]
    elif edit == "delete":
        assert scores == [0] * 7
    else:
        assert [numbers(lead)["temperature"] for lead in leads] == ["cold", "warm", "hot", "hot", "hot", "hot", "hot"]
    assert len(calls) > 4  # the first pass stopped and a second one ran over every chunk
    assert_current(org)


def test_an_edit_during_the_last_chunk_is_not_lost(scored_org, monkeypatch):
    org, leads = scored_org
    (rule,) = set_rules(org, behavior(1, {"activity_type": "download"}))
    services.request_recalculation(organization_id=org.pk)
    score_leads = services.score_leads
    calls = []

    def edit_once(**kwargs):  # one chunk: the edit lands after the only chunk, before the pass is marked done
        calls.append(kwargs["scope"])
        result = score_leads(**kwargs)
        if len(calls) == 1:
            services.save_rule(organization_id=org.pk, rule=rule, points=2)
        return result

    monkeypatch.setattr(services, "score_leads", edit_once)
    services.recalculate_organization(organization_id=org.pk)
    assert len(calls) == 2
    assert [numbers(lead)["score"] for lead in leads] == [2 * i for i in range(7)]
    assert_current(org)


def test_a_failed_recalculation_says_so(scored_org, monkeypatch):
    org, _ = scored_org
    services.request_recalculation(organization_id=org.pk)

    def broken(**kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(services, "score_leads", broken)
    with pytest.raises(RuntimeError):
        services.recalculate_organization(organization_id=org.pk)
    settings = settings_of(org)
    assert settings.recalc_status == RecalculationStatus.FAILED
    assert "disk full" in settings.recalc_error
    assert settings.scored_version < settings.config_version


def test_one_orgs_rules_never_change_another_orgs_leads(org, other_org):
    rule = {"field": "industry", "op": "eq", "value": "Software"}
    set_rules(org, fit(50, rule), behavior(10, {"activity_type": "download"}))
    set_rules(other_org, fit(-5, rule))
    mine = make_lead(org, industry="Software", email="same@example.test")
    theirs = make_lead(other_org, industry="Software", email="same@example.test")
    add_activity(mine, "download")
    add_activity(theirs, "download")

    services.request_recalculation(organization_id=org.pk)
    services.recalculate_organization(organization_id=org.pk)
    score_org(org)
    services.score_lead(organization_id=org.pk, lead_id=theirs.pk)  # another org's lead: out of scope
    assert numbers(mine)["score"] == 60
    assert numbers(theirs)["score"] == 0 and numbers(theirs)["grade"] == ""
    assert not ScoreSnapshot.objects.filter(lead=theirs).exists()
    assert settings_of(other_org).config_version == 0

    services.request_recalculation(organization_id=other_org.pk)
    services.recalculate_organization(organization_id=other_org.pk)
    assert numbers(theirs)["score"] == -5
    assert numbers(mine)["score"] == 60


def test_snapshots_are_written_only_when_the_score_changes(org):
    set_rules(org, behavior(10, {"activity_type": "download"}),
              grade_bands={"A": 40, "B": 30, "C": 15, "D": 0}, temperature_bands={"hot": 60, "warm": 25})
    lead, idle = make_lead(org), make_lead(org)
    add_activity(lead, "download", at=NOW)
    score_org(org, now=NOW)
    first = ScoreSnapshot.objects.get(lead=lead)
    assert (first.score, first.fit_score, first.behavior_score, first.recorded_at) == (10, 0, 10, NOW)
    assert first.organization_id == org.pk
    assert not ScoreSnapshot.objects.filter(lead=idle).exists()  # 0 before, 0 after

    score_org(org)
    services.score_lead(organization_id=org.pk, lead_id=lead.pk)
    assert ScoreSnapshot.objects.filter(lead=lead).count() == 1

    # the grade and temperature change, the score does not: the lead is updated, no snapshot
    ScoringSettings.objects.filter(organization=org).update(temperature_bands={"hot": 10, "warm": 5})
    score_org(org)
    assert numbers(lead)["temperature"] == "hot"
    assert ScoreSnapshot.objects.filter(lead=lead).count() == 1

    add_activity(lead, "download")
    services.score_lead(organization_id=org.pk, lead_id=lead.pk)
    assert list(ScoreSnapshot.objects.filter(lead=lead).order_by("recorded_at").values_list("score", flat=True)) \
        == [10, 20]


def test_apply_decay_rescores_only_orgs_with_a_half_life(org, other_org, monkeypatch,
                                                         django_capture_on_commit_callbacks):
    for organization, half_life in ((org, 10), (other_org, None)):
        set_rules(organization, behavior(10, {"activity_type": "download"}), decay_half_life_days=half_life)
        lead = make_lead(organization)
        add_activity(lead, "download", at=NOW, days_ago=10)
        score_org(organization, now=NOW - timedelta(days=10))  # scored when the download was new
    ScoringSettings.objects.update(scored_version=10, config_version=10)
    assert set(Lead.objects.values_list("score", flat=True)) == {10}

    enqueued = []

    def run_now(organization_id):  # the task, run in process
        enqueued.append(organization_id)
        services.recalculate_organization(organization_id=organization_id)

    monkeypatch.setattr("scoring.tasks.recalculate", SimpleNamespace(delay=run_now))
    with django_capture_on_commit_callbacks(execute=True):
        assert services.apply_decay() == 1
    assert enqueued == [str(org.pk)]
    assert Lead.objects.for_org(org).get().score == 5
    assert Lead.objects.for_org(other_org).get().score == 10
    assert settings_of(org).config_version == 11
    assert settings_of(other_org).config_version == 10
    assert_current(org)


# ----------------------------------------------------------------------------------------------- set-up


def test_a_new_org_gets_the_default_rules_and_settings(db):
    organization = org_services.create_organization(slug="fresh", name="Fresh", owner_email="owner@fresh.test",
                                                    owner_password="pw-fresh-123")
    settings = settings_of(organization)
    for name, value in services.DEFAULT_SETTINGS.items():
        assert getattr(settings, name) == value
    assert settings.recalc_status == RecalculationStatus.IDLE

    rules = {rule.name: rule for rule in ScoringRule.objects.for_org(organization)}
    assert set(rules) == {name for name, *_ in services.DEFAULT_RULES}
    for name, kind, points, condition, cap, window in services.DEFAULT_RULES:
        rule = rules[name]
        assert (rule.kind, rule.points, rule.condition, rule.max_occurrences, rule.window_days, rule.active) == (
            kind, points, condition, cap, window, True)
        services.clean_rule(kind=kind, condition=condition, points=points, max_occurrences=cap, window_days=window)
    assert {rule.kind for rule in rules.values()} == {"fit", "behavior"}

    services.setup_organization(organization_id=organization.pk)  # again: nothing doubles
    assert ScoringRule.objects.for_org(organization).count() == len(services.DEFAULT_RULES)


def test_the_default_rules_score_a_typical_lead(org):
    lead = make_lead(org, industry="Software", company_size=200, job_title="Head of Growth", company="Acme")
    add_activity(lead, "form_submission")
    add_activity(lead, "page_view", properties={"url": "https://acme.test/pricing"})
    services.score_lead(organization_id=org.pk, lead_id=lead.pk)
    # fit 20 + 15 + 15 = 50 (grade A at 40), behaviour 15 + 10; 75 is hot and over the MQL threshold
    assert numbers(lead) == {"fit_gained": 50, "fit_lost": 0, "behavior_gained": 25, "behavior_lost": 0,
                             "fit_score": 50, "behavior_score": 25, "score": 75, "grade": "A", "temperature": "hot"}
    lead.refresh_from_db()
    assert lead.lifecycle_stage == "mql"
