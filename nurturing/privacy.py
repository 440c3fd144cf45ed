"""Nurturing's part of a privacy request: the emails sent to the lead and its enrolments. Erasing removes the
address, subject, links and errors of each email; the rows stay, so a sequence's numbers do not change."""

from leadcrm import privacy

from . import services
from .models import Enrollment, Message


def export(organization_id, lead_id) -> dict:
    messages = (Message.objects.for_org(organization_id).filter(lead_id=lead_id).order_by("created_at")
                .values("id", "to_email", "subject", "links", "status", "skip_reason", "error", "created_at", "sent_at",
                        "opened_at", "clicked_at", "bounced_at", "unsubscribed_at", "enrollment__sequence__name"))
    enrollments = (Enrollment.objects.for_org(organization_id).filter(lead_id=lead_id).order_by("enrolled_at")
                   .values("sequence__name", "status", "position", "next_run_at", "exit_reason", "enrolled_by",
                           "enrolled_at", "finished_at"))
    return {"messages": list(messages), "enrollments": list(enrollments)}


def erase(organization_id, lead_id) -> None:
    services.exit_enrollments(organization_id=organization_id, lead_ids=[lead_id], reason="erased")
    Message.objects.for_org(organization_id).filter(lead_id=lead_id).update(to_email="", subject="", links=[],
                                                                            error="")


def register() -> None:
    privacy.register("nurturing", exporter=export, eraser=erase)
