"""Roles and API keys in the browser, by clicking: an admin changes a member's role on the Roles page; a marketer
makes a key for their integration, is refused an admin key, and the key they got acts as a marketer."""

import re

import pytest
from rest_framework.test import APIClient

from leadcrm import services
from leadcrm.models import ApiKey, Membership, Role

try:
    from playwright.sync_api import expect
except ImportError:  # without Playwright the browser fixtures skip these tests (or fail them in CI) and say why
    expect = None

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def test_an_admin_changes_a_members_role(org, page, login, shot):
    services.add_member(organization=org, email="sam@acme.test", password="pw-sam-12345", role=Role.REP)
    login("owner@acme.test", "pw-acme-123")
    page.locator("summary", has_text="Settings").click()
    page.get_by_role("link", name="Roles").click()
    expect(page.locator("h1")).to_have_text("Roles")
    expect(page.locator("table.policy")).to_contain_text("Erase a lead's personal data")
    shot("roles")

    page.get_by_label("Role of sam@acme.test").select_option(label="Manager")
    page.locator("tr", has_text="sam@acme.test").get_by_role("button", name="Change").click()
    expect(page.locator(".messages")).to_contain_text("sam@acme.test is now Manager")
    expect(page.get_by_label("Role of sam@acme.test")).to_have_value("manager")
    shot("changed")
    assert Membership.objects.get(organization=org, user__email="sam@acme.test").role == Role.MANAGER

    page.get_by_label("Role of owner@acme.test").select_option(label="Sales rep")
    page.locator("tr", has_text="owner@acme.test").get_by_role("button", name="Change").click()
    expect(page.locator("tr", has_text="owner@acme.test")).to_contain_text("at least one admin")
    assert Membership.objects.get(organization=org, user__email="owner@acme.test").role == Role.ADMIN


def test_a_marketer_makes_a_key_of_their_own_role(org, page, login, shot):
    services.add_member(organization=org, email="mia@acme.test", password="pw-mia-12345", role=Role.MARKETER)
    login("mia@acme.test", "pw-mia-12345")
    page.locator("summary", has_text="Settings").click()
    expect(page.get_by_role("link", name="Webhooks")).to_have_count(0)  # the menu offers what the role may open
    page.get_by_role("link", name="API keys").click()

    page.get_by_label("Key name").fill("Newsletter sync")
    page.get_by_label("Role").select_option(label="Admin")
    page.get_by_role("button", name="Create key").click()
    expect(page.locator("small.error")).to_contain_text("may give a key only a role")
    shot("refused-admin-key")
    assert not ApiKey.objects.filter(organization=org).exists()

    page.get_by_label("Role").select_option(label="Marketer")
    page.get_by_role("button", name="Create key").click()
    plain = page.locator("#new-key").inner_text().strip()
    row = page.locator("tr", has_text="Newsletter sync")
    expect(row).to_contain_text("Marketer")
    expect(row).to_contain_text("mia@acme.test")
    shot("key-made")

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {plain}")
    assert client.get("/api/v1/leads/").status_code == 200
    assert client.get("/api/v1/audit-log/").status_code == 403  # a marketer's key is no admin
    assert re.fullmatch(r"\w+\.\w+", plain)
