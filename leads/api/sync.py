"""REST API of incremental sync: the change feed's documentation and the deleted-leads feed (leadcrm/sync.py)."""

from django_filters.rest_framework import DjangoFilterBackend
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.decorators import action

from leadcrm import policy
from leadcrm.sync import ChangeFeedPagination

from ..filters import TombstoneFilter
from ..models import LeadTombstone, TombstoneReason

# Fewer, larger pages for a full copy: each request's fixed cost (the key, the query's planning) is paid per
# 2,000 rows instead of per 500.
LEAN_FEED_PAGE_SIZE = 2_000

# What every change-feed list says about it in the API docs (the guarantee, in the words of the README).
FEED_DOC = """

**Incremental sync.** `?ordering=updated_at` (optionally `&updated_after=<ISO 8601 time>`) makes this list a
change feed: every row changed after that instant arrives exactly once, in `updated_at` order within each answer,
and every answer carries a `sync_token`. Follow `next` while it is there, store the `sync_token` of the last page,
and poll again later with `?sync_token=<it>` (same filters): you get whatever changed since, including changes made
by transactions that committed after your last poll with an earlier `updated_at` — the feed holds a change back
until every transaction that could still commit before it has ended, so nothing is skipped. A row changed again
comes again, with its latest values. Polling with the last row's `updated_at` instead is not safe. Removed leads
are in `GET /api/v1/leads/deleted/`.

**Page size.** The feed takes `page_size` up to 2,000 for JSON in UTC (an API key's answers; other lists and the
browsable API stay at 500). A page holds fewer rows when their JSON passes 4 MB (leads with large custom fields), with
`next` as usual: follow `next`, never count rows."""


class LeanFeedPagination(ChangeFeedPagination):
    """The lists of leads, deals and accounts. An integration copying them through the change feed may take pages
    of up to LEAN_FEED_PAGE_SIZE when PostgreSQL writes the page (leadcrm/jsonrows.py, which also ends a page at
    PAGE_BYTES of JSON); other orderings, and the feed served through the serializer, up to max_page_size."""

    def get_page_size(self, request):
        if self.feed and self.page_loader is not None:
            self.max_page_size = LEAN_FEED_PAGE_SIZE
        return super().get_page_size(request)


class TombstonePagination(ChangeFeedPagination):
    """The deleted-leads feed is always a change feed, in the order the leads went."""

    ordering = "deleted_at"
    time_field = "deleted_at"

    def feed_requested(self, request, queryset, view) -> bool:
        return True

    def get_ordering(self, request, queryset, view):
        return ("deleted_at", "pk")

    def get_schema_operation_parameters(self, view):
        # The deleted feed has one order; `ordering` means nothing here.
        return [parameter for parameter in super().get_schema_operation_parameters(view)
                if parameter["name"] != "ordering"]


class TombstoneSerializer(serializers.ModelSerializer):
    id = serializers.UUIDField(source="lead_id", read_only=True, help_text="The lead's id")
    reason = serializers.ChoiceField(choices=TombstoneReason.choices, read_only=True, help_text=(
        "deleted; merged (into `merged_into`: move what you hold to that lead); erased (the person asked to be "
        "forgotten: drop their data; the anonymous lead stays in the lead list, for reports)"))

    class Meta:
        model = LeadTombstone
        fields = ["id", "deleted_at", "reason", "merged_into"]
        read_only_fields = fields


class DeletedActions:
    """The deleted-leads feed, mixed into the LeadViewSet."""

    @extend_schema(responses=TombstoneSerializer(many=True))
    @action(detail=False, methods=["get"], pagination_class=TombstonePagination, filterset_class=TombstoneFilter,
            filter_backends=[DjangoFilterBackend])
    def deleted(self, request):
        """Leads removed after `since` (ISO 8601): deleted, merged into another lead (`merged_into`), or erased on
        request, oldest first, with the change feed's `sync_token` (see the lead list): poll with
        `?sync_token=<it>` and every removal arrives exactly once, even one committed late. Kept for
        SYNC_TOMBSTONE_RETENTION_DAYS (90 by default): a copy that polls less often must copy all leads again."""
        page = self.paginate_queryset(self.filter_queryset(self.get_queryset()))
        return self.get_paginated_response(TombstoneSerializer(page, many=True).data)

    def tombstones(self):
        """The tombstones of the leads the caller may see (whose leads they were, as the lead list decides)."""
        return policy.visible(policy.principal_of(self.request), LeadTombstone.objects.for_org(self.organization))
