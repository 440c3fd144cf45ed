"""Celery's broker: Redis (the default, REDIS_URL) or RabbitMQ (CELERY_BROKER_URL=amqp://…).

The queues are the same on both: one per concern (DESIGN §5). On RabbitMQ they are quorum queues (replicated,
durable, the type RabbitMQ recommends for work that must not be lost), and every publish waits for the broker's
confirmation, so a task the web process handed over is on the broker's disk, not in a socket buffer. Redis ignores
the queue type.

Quorum queues do not support the global prefetch (basic.qos global) Celery used to set: Celery detects them
(worker_detect_quorum_queues, on by default) and sets the prefetch per consumer, and countdowns/ETAs go through
RabbitMQ's native delayed delivery instead of being held by the worker. acks_late (settings) fits both brokers: a
task is acknowledged after it ran, and a killed worker's unacknowledged tasks go back to the queue — at once on
RabbitMQ (its channel closes), after the visibility timeout on Redis.

This module imports nothing from Django, so settings.py can use it.
"""

from kombu import Exchange, Queue

QUEUE_NAMES = ("capture", "scoring", "routing", "nurturing", "webhooks", "imports", "default")
AMQP_SCHEMES = ("amqp", "amqps", "pyamqp")


def is_amqp(url: str) -> bool:
    return url.split("://", 1)[0].lower() in AMQP_SCHEMES


def task_queues() -> list[Queue]:
    """The queues, each on a topic exchange of its name (RabbitMQ's native delayed delivery, which countdowns use
    with quorum queues, routes through topic exchanges only); quorum on RabbitMQ."""
    return [Queue(name, Exchange(name, type="topic"), routing_key=name, queue_arguments={"x-queue-type": "quorum"})
            for name in QUEUE_NAMES]


def transport_options(url: str, *, visibility_timeout: int) -> dict:
    """kombu's transport options for the broker at `url`. Both fail fast when the broker is down: a web request
    enqueuing work must not hang on it (the work is in the outbox, and the beat retries it)."""
    if is_amqp(url):
        return {
            "confirm_publish": True,  # publisher confirms: a publish returns once RabbitMQ has the message
            "connect_timeout": 1,
            "max_retries": 1,
        }
    return {
        "visibility_timeout": visibility_timeout,
        "unacked_restore_interval": min(10, visibility_timeout),
        "socket_connect_timeout": 1,
        "socket_timeout": 5,
        "max_retries": 1,
    }
