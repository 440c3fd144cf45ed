"""REST API of leads, one module per concern (thin: validation in serializers, work in services)."""

from .activity_types import ActivityTypeViewSet
from .capture import ActivityViewSet, FormViewSet, LeadViewSet
from .imports import ImportViewSet
from .lifecycle import AccountViewSet, DealViewSet

__all__ = ["AccountViewSet", "ActivityTypeViewSet", "ActivityViewSet", "DealViewSet", "FormViewSet", "ImportViewSet",
           "LeadViewSet"]
from .segments import SegmentViewSet  # noqa: E402

__all__ += ["SegmentViewSet"]
from .pipelines import PipelineViewSet  # noqa: E402

__all__ += ["PipelineViewSet"]
