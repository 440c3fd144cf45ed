"""Everything that changes nurturing state; import it from here."""

from .templates import (
    UNCHANGED,
    TemplateInUse,
    TemplateRefused,
    create_folder,
    create_template,
    delete_folder,
    delete_template,
    latest_version,
    rename_folder,
    resolve_folder,
    update_template,
)

__all__ = [
    "UNCHANGED", "TemplateInUse", "TemplateRefused", "create_folder", "create_template", "delete_folder",
    "delete_template", "latest_version", "rename_folder", "resolve_folder", "update_template",
]

# --- sequences: saving, enrolment and exit; running them (dispatch); tracking what recipients do
from .dispatch import claim_and_run, deliver, next_allowed, sweep_stale, tick, track_links, wait_until  # noqa: E402
from .sequences import (  # noqa: E402
    DEFAULT_EXIT_STAGES,
    SequenceError,
    clean_sequence,
    delete_sequence,
    enroll,
    enroll_on_form,
    enroll_on_stage,
    enroll_segment_entries,
    exit_enrollment,
    exit_enrollments,
    exit_if_unreachable,
    exit_on_stage,
    save_sequence,
    stage_sequences,
)
from .tracking import (  # noqa: E402
    EMAIL_EVENTS,
    UnknownRecipient,
    make_token,
    message_for,
    read_token,
    record_click,
    record_email_event,
    record_open,
    unsubscribe,
)

__all__ += [
    "DEFAULT_EXIT_STAGES", "EMAIL_EVENTS", "SequenceError", "UnknownRecipient", "claim_and_run", "clean_sequence",
    "delete_sequence", "deliver", "enroll", "enroll_on_form", "enroll_on_stage", "enroll_segment_entries",
    "exit_enrollment", "exit_enrollments", "exit_if_unreachable", "exit_on_stage", "make_token", "message_for",
    "next_allowed", "read_token", "record_click", "record_email_event", "record_open", "save_sequence",
    "stage_sequences", "sweep_stale", "tick", "track_links", "unsubscribe", "wait_until",
]

# --- test emails to the signed-in member
from .test_emails import TestEmailFailed, TestEmailLimited, TestEmailRefused, send_test_email  # noqa: E402

__all__ += ["TestEmailFailed", "TestEmailLimited", "TestEmailRefused", "send_test_email"]
