"""Everything that changes leads, one module per concern; import them from here."""

from .capture import (
    MERGEABLE_FIELDS,
    CaptureResult,
    PhoneNumberInvalid,
    assign_owner,
    assign_owners,
    capture_lead,
    delete_lead,
    is_empty,
    normalize_email,
    normalize_phone,
    record_activity,
    submit_form,
    track_activity,
    update_lead,
)
from .conversion import DealClosed, convert_lead, lose_deal, record_closed_deals, update_deal, win_deal
from .lifecycle import (
    MQL_FROM_STAGES,
    StageMoveRefused,
    check_move,
    move_stage,
    promote_to_mql,
    reasons,
    required_bant,
    set_up_organization,
    update_qualification,
)
from .merge import MergeRefused, emit_leads_changed, merge_leads, tag_leads
from .privacy import LeadErased, check_changeable, erase_lead, export_lead
from .saved_views import delete_view, remember_columns, save_view
from .touches import log_touch

__all__ = [
    "DealClosed", "MergeRefused", "convert_lead", "emit_leads_changed", "lose_deal", "merge_leads", "tag_leads",
    "record_closed_deals", "update_deal", "win_deal",
    "MERGEABLE_FIELDS", "MQL_FROM_STAGES", "assign_owner", "assign_owners", "CaptureResult", "PhoneNumberInvalid",
    "StageMoveRefused",
    "capture_lead",
    "check_move", "delete_lead", "is_empty", "move_stage", "normalize_email", "normalize_phone", "promote_to_mql",
    "reasons", "record_activity", "required_bant", "set_up_organization", "submit_form", "track_activity",
    "update_lead", "update_qualification", "LeadErased", "check_changeable", "erase_lead", "export_lead",
    "delete_view", "remember_columns", "save_view", "log_touch",
]
from .segments import (  # noqa: E402
    MEMBERS_LIMIT,
    NotAStaticList,
    SegmentInUse,
    UnknownLeads,
    add_to_list,
    clean_definition,
    create_segment,
    delete_segment,
    leads_by_emails,
    leads_by_ids,
    remove_from_list,
    segment_counts,
    segment_q,
    segments_using,
    segments_using_list,
    update_segment,
)

__all__ += [
    "MEMBERS_LIMIT", "NotAStaticList", "SegmentInUse", "UnknownLeads", "add_to_list", "clean_definition",
    "create_segment", "delete_segment", "leads_by_emails", "leads_by_ids", "remove_from_list", "segment_counts",
    "segment_q", "segments_using", "segments_using_list", "update_segment",
]
from .tombstones import purge_tombstones, record_removal  # noqa: E402

__all__ += ["purge_tombstones", "record_removal"]
from .conversion import StageChanged, move_deal  # noqa: E402
from .pipelines import (  # noqa: E402
    DEFAULT_STAGES,
    PipelineInUse,
    delete_pipeline,
    enter_stage,
    save_pipeline,
    set_up_pipelines,
)

__all__ += ["DEFAULT_STAGES", "PipelineInUse", "StageChanged", "delete_pipeline", "enter_stage", "move_deal",
            "save_pipeline", "set_up_pipelines"]
