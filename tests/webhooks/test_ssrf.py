"""SSRF: endpoints that lead to loopback, private, link-local, metadata, multicast, reserved or unique-local addresses
are refused on save and again on every send — after redirects and when the DNS answer changes. These run with
WEBHOOKS_ALLOW_PRIVATE off (the default)."""

import pytest
from django.utils import timezone

from webhooks import net, services
from webhooks.models import Attempt, Delivery, Endpoint

from .conftest import Receiver

pytestmark = pytest.mark.django_db

FORBIDDEN = [
    "127.0.0.1", "127.8.9.10", "0.0.0.0", "10.1.2.3", "172.16.0.1", "192.168.1.1", "169.254.169.254",
    "100.64.0.1", "100.100.100.200", "224.0.0.1", "240.0.0.1", "255.255.255.255", "192.0.0.1", "198.18.0.1",
    "::1", "::", "fe80::1", "fc00::1", "fd00:ec2::254", "ff02::1", "::ffff:127.0.0.1", "::ffff:169.254.169.254",
    "::ffff:10.0.0.1", "2002:7f00:1::", "64:ff9b::a9fe:a9fe", "2001:db8::1",
]
PUBLIC = ["93.184.216.34", "8.8.8.8", "2606:4700:4700::1111", "::ffff:93.184.216.34"]


@pytest.mark.parametrize("address", FORBIDDEN)
def test_forbidden_addresses(address):
    assert net.forbidden(address)


@pytest.mark.parametrize("address", PUBLIC)
def test_public_addresses_pass(address):
    assert not net.forbidden(address)


@pytest.fixture(autouse=True)
def _defaults(settings):
    settings.WEBHOOKS_ALLOW_PRIVATE = False
    settings.WEBHOOKS_ALLOW_HTTP = False


@pytest.mark.parametrize("url", [
    "https://127.0.0.1/hook", "https://localhost/hook", "https://169.254.169.254/latest/meta-data/",
    "https://10.0.0.5/", "https://[::1]/", "https://[fe80::1]/", "https://[::ffff:127.0.0.1]/",
    "https://2130706433/", "https://0x7f.1/", "https://[fd00::1]/", "https://224.0.0.1/",
])
def test_saving_a_private_address_is_a_400_with_a_field_message(api, url):
    response = api.post("/api/v1/webhooks/", {"url": url, "events": ["lead.created"]}, format="json")
    assert response.status_code == 400, response.json()
    assert "private or reserved" in response.json()["errors"]["url"][0]
    assert not Endpoint.objects.exists()


def test_a_host_name_resolving_to_a_private_address_is_refused_even_among_public_ones(api, dns):
    dns["hooks.example"] = ["93.184.216.34", "10.0.0.7"]
    response = api.post("/api/v1/webhooks/", {"url": "https://hooks.example/in", "events": ["lead.created"]},
                        format="json")
    assert response.status_code == 400
    assert "10.0.0.7" in response.json()["errors"]["url"][0]


def test_changing_the_url_to_a_private_one_is_refused(api, dns):
    dns["hooks.example"] = ["93.184.216.34"]
    created = api.post("/api/v1/webhooks/", {"url": "https://hooks.example/in", "events": ["lead.created"]},
                       format="json")
    assert created.status_code == 201
    response = api.patch(f"/api/v1/webhooks/{created.json()['id']}/", {"url": "https://127.0.0.1/"}, format="json")
    assert response.status_code == 400 and "url" in response.json()["errors"]
    assert Endpoint.objects.get().url == "https://hooks.example/in"


def _delivery(org, url):
    endpoint = Endpoint.objects.create(organization=org, url=url, events=["lead.created"], secret="whsec_c2VjcmV0")
    return Delivery.objects.create(organization=org, endpoint=endpoint, message_id=services.new_message_id(),
                                   event_type="lead.created",
                                   payload={"type": "lead.created", "data": {}}, next_attempt_at=timezone.now())


def test_a_dns_answer_that_changes_after_saving_is_checked_again_at_send(org, settings, dns, receiver):
    settings.WEBHOOKS_ALLOW_HTTP = True
    dns["hooks.example"] = ["93.184.216.34"]
    endpoint = services.create_endpoint(organization_id=org.pk, data={
        "url": f"http://hooks.example:{receiver.port}/in", "events": ["lead.created"]})
    delivery = _delivery(org, endpoint.url)
    dns["hooks.example"] = ["127.0.0.1"]  # rebinding: now it points at this machine, where the receiver listens

    attempt = services.send_delivery(delivery_id=delivery.pk)

    assert attempt.status_code is None and "private or reserved" in attempt.error
    assert receiver.requests == []
    delivery.refresh_from_db()
    assert delivery.status == "pending" and delivery.attempt_count == 1  # retried later, checked again then


def _treat_as_public(monkeypatch, address):
    """This machine's receiver stands in for a public host; every other address is judged as usual."""
    real = net.forbidden
    monkeypatch.setattr(net, "forbidden", lambda a: False if a == address else real(a))


def test_sending_connects_to_the_checked_address_with_the_urls_host_and_one_lookup(org, settings, dns, receiver,
                                                                                    monkeypatch):
    settings.WEBHOOKS_ALLOW_HTTP = True
    _treat_as_public(monkeypatch, "127.0.0.1")
    dns["hooks.example"] = ["127.0.0.1"]
    delivery = _delivery(org, f"http://hooks.example:{receiver.port}/in?x=1")
    dns.lookups.clear()

    attempt = services.send_delivery(delivery_id=delivery.pk)

    assert attempt.status_code == 200, attempt.error
    assert dns.lookups == ["hooks.example"]  # checked and connected with one answer: no second lookup to race
    assert receiver.requests[0]["headers"]["host"] == f"hooks.example:{receiver.port}"
    assert receiver.requests[0]["path"] == "/in?x=1"


@pytest.mark.parametrize("location", [
    "http://169.254.169.254/latest/meta-data/", "http://127.0.0.2:{port}/internal", "http://internal.example:{port}/",
    "http://[::ffff:127.0.0.2]:{port}/", "file:///etc/passwd",
])
def test_a_redirect_to_a_private_address_is_not_followed(org, settings, dns, receiver, monkeypatch, location):
    settings.WEBHOOKS_ALLOW_HTTP = True
    _treat_as_public(monkeypatch, "127.0.0.1")
    internal = Receiver(host="127.0.0.2")  # what an attacker would like to reach
    try:
        dns["hooks.example"], dns["internal.example"] = ["127.0.0.1"], ["127.0.0.2"]
        receiver.status, receiver.headers = 307, {"Location": location.format(port=internal.port)}
        delivery = _delivery(org, f"http://hooks.example:{receiver.port}/in")

        attempt = services.send_delivery(delivery_id=delivery.pk)

        assert len(receiver.requests) == 1 and internal.requests == []
        assert attempt.error.startswith("Refused"), attempt.error
        assert Delivery.objects.get(pk=delivery.pk).status == "pending"
    finally:
        internal.close()


def test_public_redirects_are_followed_with_each_hop_checked_up_to_the_limit(org, settings, dns, receiver,
                                                                           monkeypatch):
    settings.WEBHOOKS_ALLOW_HTTP = True
    settings.WEBHOOKS_MAX_REDIRECTS = 3
    _treat_as_public(monkeypatch, "127.0.0.1")
    dns["hooks.example"] = ["127.0.0.1"]
    receiver.respond = lambda path: ((308, b"", {"Location": f"/hop{int(path[-1]) + 1}"}) if path != "/hop2"
                                     else (204, b"", {}))
    delivery = _delivery(org, f"http://hooks.example:{receiver.port}/hop0")
    dns.lookups.clear()

    attempt = services.send_delivery(delivery_id=delivery.pk)

    assert attempt.status_code == 204 and attempt.url.endswith("/hop2")
    assert [r["path"] for r in receiver.requests] == ["/hop0", "/hop1", "/hop2"]
    assert len({r["body"] for r in receiver.requests}) == 1  # the same signed body on every hop
    assert dns.lookups == ["hooks.example"] * 3

    receiver.requests.clear()
    receiver.respond = lambda path: (302, b"", {"Location": f"/again{len(receiver.requests)}"})
    second = _delivery(org, f"http://hooks.example:{receiver.port}/loop")
    attempt = services.send_delivery(delivery_id=second.pk)
    assert len(receiver.requests) == 4 and "More than 3 redirects" in attempt.error
    assert Attempt.objects.filter(delivery=second).count() == 1
