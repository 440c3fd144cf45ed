"""Browser tests: Playwright drives the system's Chromium (headless) against pytest-django's live server, with a
real Celery worker on the same test database and a real SMTP server for the mail the app sends.

Without Chromium (or Playwright) these tests are skipped on a developer machine, and fail in CI (CI=true), where
`.ci/run` installs the browser from the distribution's packages.
"""

import itertools
import re
import shutil
from pathlib import Path

import pytest

SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"
TIMEOUT_MS = 15_000




@pytest.fixture
def site(live_server, settings, monkeypatch):
    """The live server's address; links in emails (the app's and the worker's) point at it."""
    settings.SITE_URL = live_server.url
    monkeypatch.setenv("SITE_URL", live_server.url)
    return live_server.url


@pytest.fixture
def e2e_worker(smtp_server, site, start_worker):
    """A real worker started after the mail server and the site address, so it mails there and links here."""
    return start_worker()


@pytest.fixture
def page(chromium, site):
    context = chromium.new_context(base_url=site, viewport={"width": 1280, "height": 900})
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    try:
        yield page
    finally:
        context.close()


@pytest.fixture
def shot(page, request):
    """shot("name") saves a full-page PNG as test-artifacts/screenshots/<test>/NN-name.png."""
    folder = SCREENSHOTS / re.sub(r"[^\w.-]+", "_", request.node.name)
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    numbers = itertools.count(1)

    def take(name: str) -> Path:
        path = folder / f"{next(numbers):02d}-{name}.png"
        page.screenshot(path=str(path), full_page=True)
        return path

    return take


@pytest.fixture
def login(page):
    """login(email, password): signs in through the login form and lands on the role's home page."""

    def sign_in(email: str, password: str):
        page.goto("/accounts/login/")
        page.fill("#id_username", email)
        page.fill("#id_password", password)
        page.click("main button[type=submit]")
        page.wait_for_url(re.compile(r"/(queue|reports(/marketing|/sales)?|leads)/$"))

    return sign_in
