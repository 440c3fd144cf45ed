"""Signatures follow Standard Webhooks: checked against the specification's published vector, and the README's
verification example accepts ours and refuses tampering."""

import time

from webhooks import signing

from .readme_example import verify_webhook_from_readme

# The test vector of the Standard Webhooks specification.
VECTOR_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
VECTOR_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
VECTOR_TIMESTAMP = 1614265330
VECTOR_BODY = b'{"test": 2432232314}'
VECTOR_SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def test_known_vector():
    assert signing.sign(VECTOR_SECRET, VECTOR_ID, VECTOR_TIMESTAMP, VECTOR_BODY) == VECTOR_SIGNATURE


def test_new_secrets_are_random_whsec_keys_of_24_bytes():
    first, second = signing.new_secret(), signing.new_secret()
    assert first.startswith("whsec_") and first != second
    assert len(signing.secret_key(first)) == 24


def test_readme_example_accepts_our_signature_and_refuses_tampering():
    verify = verify_webhook_from_readme()
    secret, now = signing.new_secret(), int(time.time())
    body = b'{"type":"lead.created","timestamp":"2026-01-01T00:00:00+00:00","data":{}}'
    headers = signing.headers(secret, "msg_abc", now, body)
    assert verify(secret, headers, body)
    assert not verify(secret, headers, body + b" ")
    assert not verify(signing.new_secret(), headers, body)
    assert not verify(secret, {**headers, "webhook-id": "msg_other"}, body)
    old = signing.headers(secret, "msg_abc", now - 3600, body)
    assert not verify(secret, old, body)
    # Several signatures (a receiver mid-rotation may see two): any v1 match passes.
    both = {**headers, "webhook-signature": "v1,AAAA " + headers["webhook-signature"]}
    assert verify(secret, both, body)
