"""Cross-tenant matrix: another organization's key or user can neither see nor touch this org's rows.

Every tenant-owned endpoint is one row of ENDPOINTS. A row says how to call it with placeholders for
the victim's objects, and what the other tenant must get:

- "404": a detail endpoint — 404 (never 403), and nothing in the database changes;
- "absent": a list — it answers, but nothing of the victim appears in it;
- "rejected": a write that names a victim's object in its body — 400/404, and nothing is written;
- "rows-404": a bulk call naming victim objects in its rows — 200, every row's own status 404, nothing written.

Each row also runs as the owning organization (the control), so a mistyped URL that 404s for
everyone cannot pass as "isolated". test_every_tenant_api_route_is_in_the_matrix names any API
route that has no row yet.
"""

import re
from dataclasses import dataclass

import pytest
from django.apps import apps
from rest_framework.test import APIClient

from leadcrm import services as tenancy
from leadcrm.models import Membership, Role
from leads import activity_types, import_files, services
from leads.models import Account, Activity, Deal, Form, FormSubmission, ImportJob, ImportStatus, Lead
from scoring.models import ScoringRule, ScoringSettings

pytestmark = pytest.mark.django_db


@dataclass(frozen=True)
class Endpoint:
    name: str
    method: str
    path: str
    expect: str  # "404" | "absent" | "rejected" | "rows-404"
    body: dict | None = None
    api: bool = True  # API endpoint (key and session) or browser page (session only)
    marker: str = "{lead}"  # what must not appear in a list answer


ENDPOINTS = [
    # --- leads API
    Endpoint("leads-list", "get", "/api/v1/leads/", "absent"),
    Endpoint("leads-list-email-filter", "get", "/api/v1/leads/?email={lead_email}", "absent"),
    Endpoint("leads-list-search", "get", "/api/v1/leads/?search=Secrets", "absent"),
    Endpoint("lead-retrieve", "get", "/api/v1/leads/{lead}/", "404"),
    Endpoint("lead-patch", "patch", "/api/v1/leads/{lead}/", "404", body={"first_name": "Mallory"}),
    Endpoint("lead-delete", "delete", "/api/v1/leads/{lead}/", "404"),
    Endpoint("lead-timeline", "get", "/api/v1/leads/{lead}/activities/", "404"),
    Endpoint("lead-touches", "get", "/api/v1/leads/{lead}/touches/", "404"),
    # --- incremental sync: the change feeds and the deleted-leads feed ({deleted_lead} was deleted)
    Endpoint("leads-feed", "get", "/api/v1/leads/?ordering=updated_at", "absent"),
    Endpoint("leads-feed-updated-after", "get",
             "/api/v1/leads/?ordering=updated_at&updated_after=2000-01-01T00:00:00Z", "absent"),
    Endpoint("leads-deleted", "get", "/api/v1/leads/deleted/", "absent", marker="{deleted_lead}"),
    Endpoint("leads-deleted-since", "get", "/api/v1/leads/deleted/?since=2000-01-01T00:00:00Z", "absent",
             marker="{deleted_lead}"),
    Endpoint("accounts-feed", "get", "/api/v1/accounts/?ordering=updated_at", "absent", marker="{account}"),
    Endpoint("deals-feed", "get", "/api/v1/deals/?ordering=updated_at", "absent", marker="{deal}"),
    # --- bulk operations: another org's lead or deal in a row is that row's 404
    Endpoint("leads-bulk-update", "post", "/api/v1/leads/bulk-update/", "rows-404",
             body={"leads": [{"id": "{lead}", "first_name": "Mallory"}, {"id": "{lead2}", "city": "Evil"}]}),
    Endpoint("leads-bulk-stage", "post", "/api/v1/leads/bulk-stage/", "rows-404",
             body={"leads": [{"id": "{lead}", "stage": "opportunity"}]}),
    Endpoint("leads-bulk-convert", "post", "/api/v1/leads/bulk-convert/", "rows-404",
             body={"leads": [{"id": "{lead}", "deal": {"name": "Hijack", "amount": "10.00"}}]}),
    Endpoint("deals-bulk-close", "post", "/api/v1/deals/bulk-close/", "rows-404",
             body={"deals": [{"id": "{deal}", "status": "won"}]}),
    # --- privacy requests
    Endpoint("lead-export", "get", "/api/v1/leads/{lead}/export/", "404"),
    Endpoint("lead-erase", "post", "/api/v1/leads/{lead}/erase/", "404"),
    # --- qualification and conversion API
    Endpoint("lead-stage", "post", "/api/v1/leads/{lead}/stage/", "404", body={"stage": "opportunity"}),
    Endpoint("lead-convert", "post", "/api/v1/leads/{lead}/convert/", "404",
             body={"deal": {"name": "Hijack", "amount": "10.00"}}),
    Endpoint("leads-merge", "post", "/api/v1/leads/merge/", "rejected",
             body={"keep": "{lead}", "merge": ["{lead2}"]}),
    Endpoint("leads-duplicates", "get", "/api/v1/leads/duplicates/", "absent"),
    Endpoint("leads-tags", "post", "/api/v1/leads/tags/", "rejected", body={"add": ["pwned"], "leads": ["{lead}"]}),
    Endpoint("accounts-list", "get", "/api/v1/accounts/", "absent", marker="{account}"),
    Endpoint("account-retrieve", "get", "/api/v1/accounts/{account}/", "404"),
    Endpoint("account-patch", "patch", "/api/v1/accounts/{account}/", "404", body={"name": "Hijacked"}),
    Endpoint("account-put", "put", "/api/v1/accounts/{account}/", "404", body={"name": "Hijacked"}),
    Endpoint("deals-list", "get", "/api/v1/deals/", "absent", marker="{deal}"),
    Endpoint("deal-retrieve", "get", "/api/v1/deals/{deal}/", "404"),
    Endpoint("deal-patch", "patch", "/api/v1/deals/{deal}/", "404", body={"status": "won"}),
    # --- deal pipelines: the pipelines API, moves, the board and Settings → Pipelines
    Endpoint("deal-move", "post", "/api/v1/deals/{deal}/move/", "404",
             body={"stage": "{stage_proposal}", "expected_stage": "{stage_start}"}),
    Endpoint("pipelines-list", "get", "/api/v1/pipelines/", "absent", marker="{pipeline}"),
    Endpoint("pipeline-retrieve", "get", "/api/v1/pipelines/{pipeline}/", "404"),
    Endpoint("pipeline-patch", "patch", "/api/v1/pipelines/{pipeline}/", "404", body={"name": "Hijacked"}),
    Endpoint("pipeline-put", "put", "/api/v1/pipelines/{pipeline}/", "404", body={"name": "Hijacked", "stages": [
        {"name": "Open", "probability": 5}, {"name": "W", "probability": 100, "kind": "won"},
        {"name": "L", "probability": 0, "kind": "lost"}]}),
    Endpoint("pipeline-delete", "delete", "/api/v1/pipelines/{pipeline}/", "404"),
    Endpoint("report-forecast-foreign-pipeline", "get", "/api/v1/reports/forecast/?pipeline={pipeline}",
             "rejected"),
    Endpoint("report-pipeline-foreign-pipeline", "get", "/api/v1/reports/pipeline/?pipeline={pipeline}",
             "rejected"),
    Endpoint("ui-deal-board", "get", "/deals/board/", "absent", api=False, marker="Acme Secrets deal"),
    Endpoint("ui-deal-board-foreign-pipeline", "get", "/deals/board/?pipeline={pipeline}", "absent", api=False,
             marker="Acme Secrets renewals"),
    Endpoint("ui-deal-move", "post", "/deals/{deal}/move/", "404", api=False,
             body={"stage": "{stage_proposal}", "expected_stage": "{stage_start}"}),
    Endpoint("ui-pipelines", "get", "/settings/pipelines/", "absent", api=False, marker="Acme Secrets renewals"),
    Endpoint("ui-pipeline-edit", "get", "/settings/pipelines/{pipeline}/", "404", api=False),
    Endpoint("ui-pipeline-save", "post", "/settings/pipelines/{pipeline}/", "404", api=False,
             body={"name": "Hijacked", "stages-TOTAL_FORMS": "3", "stages-INITIAL_FORMS": "0",
                   "stages-0-name": "Open", "stages-0-probability": "5", "stages-0-kind": "open",
                   "stages-1-name": "W", "stages-1-probability": "100", "stages-1-kind": "won",
                   "stages-2-name": "L", "stages-2-probability": "0", "stages-2-kind": "lost"}),
    Endpoint("ui-pipeline-delete", "post", "/settings/pipelines/{pipeline}/delete/", "404", api=False),
    # --- activities API: naming another org's lead must not write to it
    Endpoint("activity-create-for-lead", "post", "/api/v1/activities/", "rejected",
             body={"lead": "{lead}", "type": "note", "properties": {"text": "hi"}}),
    # --- the org's own activity types
    Endpoint("activity-types-list", "get", "/api/v1/activity-types/", "absent", marker="{activity_type}"),
    Endpoint("activity-type-delete", "delete", "/api/v1/activity-types/{activity_type}/", "404"),
    Endpoint("ui-activity-types", "get", "/settings/activity-types/", "absent", api=False,
             marker="{activity_type}"),
    Endpoint("ui-activity-type-delete", "post", "/settings/activity-types/{activity_type}/delete/", "404",
             api=False),
    # --- forms API
    Endpoint("forms-list", "get", "/api/v1/forms/", "absent", marker="{form}"),
    Endpoint("form-retrieve", "get", "/api/v1/forms/{form}/", "404"),
    Endpoint("form-patch", "patch", "/api/v1/forms/{form}/", "404", body={"name": "Hijacked"}),
    Endpoint("form-put", "put", "/api/v1/forms/{form}/", "404",
             body={"name": "Hijacked", "fields": ["email"]}),
    Endpoint("form-delete", "delete", "/api/v1/forms/{form}/", "404"),
    Endpoint("form-submissions", "get", "/api/v1/forms/{form}/submissions/", "404"),
    # --- imports API
    Endpoint("imports-list", "get", "/api/v1/imports/", "absent", marker="{import}"),
    Endpoint("import-retrieve", "get", "/api/v1/imports/{import}/", "404"),
    Endpoint("import-errors-csv", "get", "/api/v1/imports/{import}/errors.csv", "404"),
    Endpoint("import-errors-csv-slash", "get", "/api/v1/imports/{import}/errors.csv/", "404"),
    # --- API keys API
    Endpoint("api-keys-list", "get", "/api/v1/api-keys/", "absent", marker="{key}"),
    Endpoint("api-key-retrieve", "get", "/api/v1/api-keys/{key}/", "404"),
    Endpoint("api-key-delete", "delete", "/api/v1/api-keys/{key}/", "404"),
    Endpoint("api-key-revoke", "post", "/api/v1/api-keys/{key}/revoke/", "404"),
    # --- audit log (the victim's routing rule was recorded when it was made)
    Endpoint("audit-log-list", "get", "/api/v1/audit-log/", "absent", marker="Acme Secrets routing"),
    Endpoint("audit-log-list-filtered", "get", "/api/v1/audit-log/?object_type=routing.assignmentrule", "absent",
             marker="Acme Secrets routing"),
    Endpoint("ui-audit-log", "get", "/audit/", "absent", api=False, marker="Acme Secrets routing"),
    # --- organization settings: each admin reads (and changes, tests/leadcrm/test_org_settings.py) their own
    Endpoint("ui-org-settings", "get", "/settings/organization/", "absent", api=False, marker="Acme"),
    # --- scoring API
    Endpoint("lead-score", "get", "/api/v1/leads/{lead}/score/", "404"),
    Endpoint("scoring-rules-list", "get", "/api/v1/scoring-rules/", "absent", marker="{rule}"),
    Endpoint("scoring-rule-retrieve", "get", "/api/v1/scoring-rules/{rule}/", "404"),
    Endpoint("scoring-rule-patch", "patch", "/api/v1/scoring-rules/{rule}/", "404", body={"points": 99}),
    Endpoint("scoring-rule-put", "put", "/api/v1/scoring-rules/{rule}/", "404",
             body={"name": "Hijacked", "kind": "fit", "points": 1, "condition": {"field": "city", "op": "is_empty"}}),
    Endpoint("scoring-rule-delete", "delete", "/api/v1/scoring-rules/{rule}/", "404"),
    Endpoint("scoring-rule-preview-replacing", "post", "/api/v1/scoring-rules/preview/", "rejected",
             body={"replaces": "{rule}", "name": "x", "kind": "fit", "points": 1,
                   "condition": {"field": "city", "op": "is_empty"}}),
    Endpoint("scoring-settings", "get", "/api/v1/scoring-settings/", "absent", marker="4321"),
    # --- predictive scoring ({predictive_version} is the victim's active model; 0.1234 a share on its holdout)
    Endpoint("predictive-state", "get", "/api/v1/predictive/", "absent", marker="{predictive_version}"),
    Endpoint("predictive-versions-list", "get", "/api/v1/predictive/versions/", "absent",
             marker="{predictive_version}"),
    Endpoint("predictive-version-retrieve", "get", "/api/v1/predictive/versions/{predictive_version}/", "404"),
    Endpoint("predictive-thresholds", "get", "/api/v1/predictive/thresholds/", "absent", marker="0.1234"),
    # the page shows the active version's AUC (0.81); suggest-rules, apply-rules and the threshold picker act on
    # the caller's own org and have their own test below
    Endpoint("ui-predictive", "get", "/scoring/predictive/", "absent", api=False, marker="0.810"),
    # --- segments API ({segment} is a static list holding the victim's lead, {dynamic} a segment of conditions)
    Endpoint("segments-list", "get", "/api/v1/segments/", "absent", marker="{segment}"),
    Endpoint("segments-list-counted", "get", "/api/v1/segments/?with_counts=1", "absent", marker="{dynamic}"),
    Endpoint("segment-retrieve", "get", "/api/v1/segments/{segment}/", "404"),
    Endpoint("segment-patch", "patch", "/api/v1/segments/{segment}/", "404", body={"name": "Hijacked"}),
    Endpoint("segment-put", "put", "/api/v1/segments/{segment}/", "404", body={"name": "Hijacked"}),
    Endpoint("segment-patch-definition", "patch", "/api/v1/segments/{dynamic}/", "404",
             body={"definition": {"all": [{"field": "score", "op": "gt", "value": 1}]}}),
    Endpoint("segment-delete", "delete", "/api/v1/segments/{segment}/", "404"),
    Endpoint("segment-leads", "get", "/api/v1/segments/{segment}/leads/", "404"),
    Endpoint("segment-leads-dynamic", "get", "/api/v1/segments/{dynamic}/leads/", "404"),
    Endpoint("segment-members", "post", "/api/v1/segments/{segment}/members/", "404", body={"add": ["{lead2}"]}),
    Endpoint("segments-preview-naming-a-list", "post", "/api/v1/segments/preview/", "rejected",
             body={"definition": {"all": [{"list": "{segment}", "member": True}]}}),
    Endpoint("segments-create-naming-a-list", "post", "/api/v1/segments/", "rejected",
             body={"name": "Peek", "definition": {"all": [{"list": "{segment}", "member": False}]}}),
    Endpoint("leads-tags-of-a-segment", "post", "/api/v1/leads/tags/", "rejected",
             body={"add": ["pwned"], "segment": "{dynamic}"}),
    # --- browser
    Endpoint("ui-leads-list", "get", "/leads/", "absent", api=False),
    Endpoint("ui-leads-search", "get", "/leads/?search=Secrets", "absent", api=False),
    Endpoint("ui-lead-detail", "get", "/leads/{lead}/", "404", api=False),
    Endpoint("ui-lead-export", "get", "/leads/{lead}/export/", "404", api=False),
    Endpoint("ui-leads-saved-views", "get", "/leads/", "absent", api=False, marker="Acme Secrets view"),
    Endpoint("ui-saved-view-open", "get", "/leads/?view={saved_view}", "404", api=False),
    Endpoint("ui-saved-view-delete", "post", "/leads/views/{saved_view}/delete/", "404", api=False),
    Endpoint("ui-lead-detail-from-list", "get", "/leads/{lead}/?from=list:search=Secrets", "404", api=False),
    Endpoint("ui-lead-detail-from-queue", "get", "/leads/{lead}/?from=queue:{queue_rep}", "404", api=False),
    Endpoint("ui-lead-log", "post", "/leads/{lead}/log/", "404", api=False,
             body={"type": "call", "outcome": "connected", "note": "pwned"}),
    Endpoint("ui-lead-details", "get", "/leads/{lead}/details/", "404", api=False),
    Endpoint("ui-lead-details-edit", "get", "/leads/{lead}/details/edit/", "404", api=False),
    Endpoint("ui-lead-details-edit-post", "post", "/leads/{lead}/details/edit/", "404", api=False,
             body={"first_name": "Mallory", "email": "victoria@acme.test", "phone": "+14155550100"}),
    Endpoint("ui-saved-view-open-with-columns", "get", "/leads/?view={saved_view}&columns=name&columns=tags", "404",
             api=False),
    # --- browser: bulk actions of the leads list (ticked leads, or all that match) and the header's search
    Endpoint("ui-leads-bulk-tag-ticked", "post", "/leads/bulk/", "rejected", api=False,
             body={"action": "tag_add", "tag": "pwned", "lead": ["{lead}", "{lead2}"]}),
    Endpoint("ui-leads-bulk-tag-all-matching", "post", "/leads/bulk/", "rejected", api=False,
             body={"action": "tag_add", "tag": "pwned", "scope": "matching", "query": "search=Secrets",
                   "confirm": "yes"}),
    Endpoint("ui-leads-bulk-into-a-victims-list", "post", "/leads/bulk/", "rejected", api=False,
             body={"action": "list_add", "list": "{segment}", "lead": ["{lead2}"], "confirm": "yes"}),
    Endpoint("ui-leads-bulk-all-matching-into-a-victims-list", "post", "/leads/bulk/", "rejected", api=False,
             body={"action": "list_add", "list": "{segment}", "scope": "matching", "query": "search=Secrets",
                   "confirm": "yes"}),
    Endpoint("ui-leads-bulk-campaign", "post", "/campaigns/add-leads/", "rejected", api=False,
             body={"campaign": "{campaign}", "lead": ["{lead2}"], "confirm": "yes"}),
    Endpoint("ui-leads-bulk-campaign-all-matching", "post", "/campaigns/add-leads/", "rejected", api=False,
             body={"campaign": "{campaign}", "scope": "matching", "query": "search=Secrets", "confirm": "yes"}),
    Endpoint("ui-search", "get", "/search/?q=Secrets", "absent", api=False),
    Endpoint("ui-search-accounts-and-deals", "get", "/search/?q=Secrets", "absent", api=False,
             marker="Acme Secrets deal"),
    Endpoint("ui-search-suggest", "get", "/search/suggest/?q=Secrets", "absent", api=False, marker="{account}"),
    Endpoint("ui-lead-erase", "get", "/leads/{lead}/erase/", "404", api=False),
    Endpoint("ui-lead-erase-post", "post", "/leads/{lead}/erase/", "404", api=False, body={"confirm": "erase"}),
    Endpoint("ui-forms-list", "get", "/forms/", "absent", api=False, marker="{form}"),
    Endpoint("ui-form-detail", "get", "/forms/{form}/", "404", api=False),
    Endpoint("ui-form-edit", "get", "/forms/{form}/edit/", "404", api=False),
    Endpoint("ui-form-edit-post", "post", "/forms/{form}/edit/", "404", api=False,
             body={"name": "Hijacked", "slug": "hijacked", "submit_label": "Send", "show_email": "on",
                   "required_email": "on", "is_active": "on"}),
    Endpoint("ui-imports-list", "get", "/imports/", "absent", api=False, marker="{import}"),
    Endpoint("ui-import-detail", "get", "/imports/{import}/", "404", api=False),
    Endpoint("ui-import-progress", "get", "/imports/{import}/progress/", "404", api=False),
    Endpoint("ui-import-errors-csv", "get", "/imports/{import}/errors.csv", "404", api=False),
    Endpoint("ui-api-keys-list", "get", "/settings/api-keys/", "absent", api=False, marker="{key}"),
    Endpoint("ui-api-key-revoke", "post", "/settings/api-keys/{key}/revoke/", "404", api=False),
    Endpoint("ui-roles-list", "get", "/settings/roles/", "absent", api=False, marker="queue.rep@acme.test"),
    Endpoint("ui-roles-change", "post", "/settings/roles/", "rejected", api=False,
             body={"membership": "{queue_membership}", "role": "manager"}),
    # --- browser: qualification and conversion
    Endpoint("ui-lead-stage", "post", "/leads/{lead}/stage/", "404", api=False, body={"stage": "opportunity"}),
    Endpoint("ui-lead-qualification", "post", "/leads/{lead}/qualification/", "404", api=False,
             body={"bant_budget": "pwned"}),
    Endpoint("ui-lead-convert", "get", "/leads/{lead}/convert/", "404", api=False),
    Endpoint("ui-lead-convert-post", "post", "/leads/{lead}/convert/", "404", api=False,
             body={"account_choice": "new", "account_name": "Hijack Inc", "deal_name": "Hijack", "amount": "10",
                   "currency": "USD"}),
    Endpoint("ui-deals-list", "get", "/deals/", "absent", api=False, marker="Acme Secrets deal"),
    Endpoint("ui-deals-list-of-account", "get", "/deals/?account={account}", "404", api=False),
    Endpoint("ui-deal-win", "post", "/deals/{deal}/win/", "404", api=False),
    Endpoint("ui-deal-lose", "get", "/deals/{deal}/lose/", "404", api=False),
    Endpoint("ui-deal-lose-post", "post", "/deals/{deal}/lose/", "404", api=False,
             body={"reason": "__other__", "other_reason": "pwned"}),
    Endpoint("ui-account-detail", "get", "/accounts/{account}/", "404", api=False),
    Endpoint("ui-duplicates", "get", "/leads/duplicates/", "absent", api=False),
    Endpoint("ui-duplicates-merge", "post", "/leads/duplicates/merge/", "rejected", api=False,
             body={"keep": "{lead}", "lead": ["{lead}", "{lead2}"], "confirm": "yes"}),
    Endpoint("ui-segments-list", "get", "/segments/", "absent", api=False, marker="{segment}"),
    Endpoint("ui-segment-detail", "get", "/segments/{segment}/", "404", api=False),
    Endpoint("ui-segment-detail-dynamic", "get", "/segments/{dynamic}/", "404", api=False),
    Endpoint("ui-segment-export", "get", "/segments/{dynamic}/export.csv", "404", api=False),
    Endpoint("ui-segment-edit", "get", "/segments/{dynamic}/edit/", "404", api=False),
    Endpoint("ui-segment-edit-post", "post", "/segments/{dynamic}/edit/", "404", api=False,
             body={"name": "Hijacked", "definition": '{{"all": [{{"field": "score", "op": "gt", "value": 1}}]}}'}),
    Endpoint("ui-list-edit-post", "post", "/segments/{segment}/edit/", "404", api=False, body={"name": "Hijacked"}),
    Endpoint("ui-segment-delete", "get", "/segments/{segment}/delete/", "404", api=False),
    Endpoint("ui-segment-delete-post", "post", "/segments/{dynamic}/delete/", "404", api=False),
    Endpoint("ui-segment-tags", "post", "/segments/{dynamic}/tags/", "404", api=False,
             body={"tag": "pwned", "action": "add"}),
    Endpoint("ui-segment-members", "post", "/segments/{segment}/members/", "404", api=False,
             body={"action": "add", "emails": "victoria@acme.test"}),
    Endpoint("ui-segment-add-to-list", "post", "/segments/{dynamic}/add-to-list/", "404", api=False,
             body={"list": "{segment}", "scope": "all"}),
    Endpoint("ui-segment-count-naming-a-list", "post", "/segments/count/", "rejected", api=False,
             body={"definition": '{{"all": [{{"list": "{segment}", "member": true}}]}}'}),
    # --- browser: distribution ({queue_rep} is a rep's user id, {lead2} waits in the pool of {queue_team})
    Endpoint("ui-lead-routing-card", "get", "/leads/{lead}/routing/", "404", api=False),
    Endpoint("ui-lead-route-now", "post", "/leads/{lead}/routing/route/", "404", api=False),
    Endpoint("ui-lead-reassign", "post", "/leads/{lead}/routing/reassign/", "404", api=False,
             body={"rep": "{queue_rep}"}),
    Endpoint("ui-queue-touch", "post", "/queue/leads/{lead}/touch/", "404", api=False, body={"type": "call"}),
    Endpoint("ui-queue-stage", "post", "/queue/leads/{lead}/stage/", "404", api=False,
             body={"stage": "disqualified", "reason": "Not a fit"}),
    Endpoint("ui-queue-of-rep", "get", "/queue/?rep={queue_rep}", "404", api=False),
    Endpoint("ui-pool", "get", "/queue/pool/", "absent", api=False, marker="{lead2}"),
    Endpoint("ui-pool-claim", "post", "/queue/pool/{lead2}/claim/", "404", api=False),
    Endpoint("ui-team", "get", "/team/", "absent", api=False, marker="Acme Secrets team"),
    Endpoint("ui-team-pause", "post", "/team/reps/{queue_rep}/availability/", "404", api=False,
             body={"available": "0"}),
    Endpoint("ui-leads-bulk-route", "post", "/leads/routing/bulk/", "rejected", api=False,
             body={"action": "route", "lead": ["{lead}", "{lead2}"]}),
    Endpoint("ui-leads-bulk-reassign", "post", "/leads/routing/bulk/", "rejected", api=False,
             body={"action": "reassign", "lead": ["{lead}"], "rep": "{queue_rep}"}),
    # --- browser: Settings → Routing ({queue_team} holds {queue_rep}; {routing_rule} pools leads in another team)
    Endpoint("ui-routing-rules", "get", "/settings/routing/", "absent", api=False, marker="Acme Secrets routing"),
    Endpoint("ui-routing-rule-edit", "get", "/settings/routing/rules/{routing_rule}/", "404", api=False),
    Endpoint("ui-routing-rule-edit-post", "post", "/settings/routing/rules/{routing_rule}/", "404", api=False,
             body={"name": "Hijacked", "strategy": "pool", "team": "{queue_team}", "max_reassignments": "2"}),
    Endpoint("ui-routing-rule-move", "post", "/settings/routing/rules/{routing_rule}/move/", "404", api=False,
             body={"direction": "down"}),
    Endpoint("ui-routing-rule-delete", "get", "/settings/routing/rules/{routing_rule}/delete/", "404", api=False),
    Endpoint("ui-routing-rule-delete-post", "post", "/settings/routing/rules/{routing_rule}/delete/", "404",
             api=False),
    Endpoint("ui-routing-rule-create-for-a-victims-team", "post", "/settings/routing/rules/new/", "rejected",
             api=False, body={"name": "Steal", "strategy": "round_robin", "team": "{queue_team}",
                              "max_reassignments": "2"}),
    Endpoint("ui-routing-rule-create-for-a-victims-rep", "post", "/settings/routing/rules/new/", "rejected",
             api=False, body={"name": "Steal", "strategy": "rep", "rep": "{queue_rep}", "max_reassignments": "2"}),
    Endpoint("ui-routing-rule-create-on-a-victims-segment", "post", "/settings/routing/rules/new/", "rejected",
             api=False, body={"name": "Steal", "segment": "{dynamic}", "strategy": "pool", "team": "{queue_team}",
                              "max_reassignments": "2"}),
    Endpoint("ui-routing-rule-create-naming-a-victims-list", "post", "/settings/routing/rules/new/", "rejected",
             api=False, body={"name": "Steal", "strategy": "pool", "team": "{queue_team}", "max_reassignments": "2",
                              "definition": '{{"all": [{{"list": "{segment}", "member": true}}]}}'}),
    Endpoint("ui-routing-teams", "get", "/settings/routing/teams/", "absent", api=False, marker="Acme Secrets team"),
    Endpoint("ui-routing-team-edit", "get", "/settings/routing/teams/{queue_team}/", "404", api=False),
    Endpoint("ui-routing-team-edit-post", "post", "/settings/routing/teams/{queue_team}/", "404", api=False,
             body={"name": "Hijacked", "members": ["{queue_rep}"]}),
    Endpoint("ui-routing-team-delete", "get", "/settings/routing/teams/{queue_team}/delete/", "404", api=False),
    Endpoint("ui-routing-team-delete-post", "post", "/settings/routing/teams/{queue_team}/delete/", "404",
             api=False),
    Endpoint("ui-routing-team-create-with-a-victims-rep", "post", "/settings/routing/teams/new/", "rejected",
             api=False, body={"name": "Poached", "members": ["{queue_rep}"]}),
    Endpoint("ui-routing-team-create-with-a-victims-manager", "post", "/settings/routing/teams/new/", "rejected",
             api=False, body={"name": "Poached", "manager": "{admin_user}"}),
    Endpoint("ui-routing-reps", "get", "/settings/routing/reps/", "absent", api=False, marker="queue.rep@acme.test"),
    Endpoint("ui-routing-rep-edit", "get", "/settings/routing/reps/{queue_rep}/", "404", api=False),
    Endpoint("ui-routing-rep-edit-post", "post", "/settings/routing/reps/{queue_rep}/", "404", api=False,
             body={"capacity": "1", "weight": "1", "available": "on"}),
    # --- distribution API ({routing_rule} pools leads in a team the admin is in; {pooled} waits there)
    Endpoint("reps-list", "get", "/api/v1/reps/", "absent", marker="queue.rep@acme.test"),
    Endpoint("rep-retrieve", "get", "/api/v1/reps/{queue_rep}/", "404"),
    Endpoint("rep-patch", "patch", "/api/v1/reps/{queue_rep}/", "404", body={"capacity": 1}),
    Endpoint("rep-put", "put", "/api/v1/reps/{queue_rep}/", "404", body={"capacity": 1}),
    Endpoint("teams-list", "get", "/api/v1/teams/", "absent", marker="Acme Secrets team"),
    Endpoint("team-retrieve", "get", "/api/v1/teams/{queue_team}/", "404"),
    Endpoint("team-patch", "patch", "/api/v1/teams/{queue_team}/", "404", body={"name": "Hijacked"}),
    Endpoint("team-put", "put", "/api/v1/teams/{queue_team}/", "404", body={"name": "Hijacked"}),
    Endpoint("team-delete", "delete", "/api/v1/teams/{queue_team}/", "404"),
    Endpoint("teams-create-with-a-victims-rep", "post", "/api/v1/teams/", "rejected",
             body={"name": "Poached", "members": ["{queue_rep}"]}),
    Endpoint("teams-create-with-a-victims-manager", "post", "/api/v1/teams/", "rejected",
             body={"name": "Poached", "manager": "{admin_user}"}),
    Endpoint("assignment-rules-list", "get", "/api/v1/assignment-rules/", "absent", marker="Acme Secrets routing"),
    Endpoint("assignment-rule-retrieve", "get", "/api/v1/assignment-rules/{routing_rule}/", "404"),
    Endpoint("assignment-rule-patch", "patch", "/api/v1/assignment-rules/{routing_rule}/", "404",
             body={"active": False}),
    Endpoint("assignment-rule-put", "put", "/api/v1/assignment-rules/{routing_rule}/", "404",
             body={"name": "Hijacked", "action": {"type": "pool", "team": "{queue_team}"}}),
    Endpoint("assignment-rule-delete", "delete", "/api/v1/assignment-rules/{routing_rule}/", "404"),
    Endpoint("assignment-rules-create-for-a-victims-team", "post", "/api/v1/assignment-rules/", "rejected",
             body={"name": "Steal", "action": {"type": "round_robin", "team": "{queue_team}"}}),
    Endpoint("assignment-rules-create-for-a-victims-rep", "post", "/api/v1/assignment-rules/", "rejected",
             body={"name": "Steal", "action": {"type": "rep", "rep": "{queue_rep}"}}),
    Endpoint("assignment-rules-create-on-a-victims-segment", "post", "/api/v1/assignment-rules/", "rejected",
             body={"name": "Steal", "segment": "{dynamic}", "action": {"type": "pool", "team": "{queue_team}"}}),
    Endpoint("lead-route", "post", "/api/v1/leads/{lead}/route/", "404"),
    Endpoint("lead-assignments", "get", "/api/v1/leads/{pooled}/assignments/", "404"),
    Endpoint("lead-touch", "post", "/api/v1/leads/{lead}/touch/", "404", body={"type": "call", "note": "pwned"}),
    Endpoint("leads-reassign", "post", "/api/v1/leads/reassign/", "rejected", body={"leads": ["{lead}"], "rep": None}),
    Endpoint("queue-of-a-victims-rep", "get", "/api/v1/queue/?rep={queue_rep}", "404"),
    Endpoint("lead-claim", "post", "/api/v1/leads/{pooled}/claim/", "404", api=False),  # a rep's session only
    # --- email templates API ({template} is in {template_folder}; previews must not render a victim's lead)
    Endpoint("templates-list", "get", "/api/v1/templates/", "absent", marker="{template}"),
    Endpoint("template-retrieve", "get", "/api/v1/templates/{template}/", "404"),
    Endpoint("template-patch", "patch", "/api/v1/templates/{template}/", "404", body={"name": "Hijacked"}),
    Endpoint("template-put", "put", "/api/v1/templates/{template}/", "404",
             body={"name": "Hijacked", "subject": "Hi", "html": "<p>pwned</p>", "text": ""}),
    Endpoint("template-delete", "delete", "/api/v1/templates/{template}/", "404"),
    Endpoint("template-versions", "get", "/api/v1/templates/{template}/versions/", "404"),
    Endpoint("template-preview", "post", "/api/v1/templates/{template}/preview/", "404", body={}),
    Endpoint("templates-preview-with-a-victims-lead", "post", "/api/v1/templates/preview/", "rejected",
             body={"lead": "{lead}", "subject": "{{{{ lead.email }}}}", "html": "<p>{{{{ lead.company }}}}</p>"}),
    Endpoint("template-folders-list", "get", "/api/v1/template-folders/", "absent", marker="Acme Secrets folder"),
    Endpoint("template-folder-retrieve", "get", "/api/v1/template-folders/{template_folder}/", "404"),
    Endpoint("template-folder-patch", "patch", "/api/v1/template-folders/{template_folder}/", "404",
             body={"name": "Hijacked"}),
    Endpoint("template-folder-put", "put", "/api/v1/template-folders/{template_folder}/", "404",
             body={"name": "Hijacked"}),
    Endpoint("template-folder-delete", "delete", "/api/v1/template-folders/{template_folder}/", "404"),
    # --- browser: email templates
    Endpoint("ui-templates-list", "get", "/emails/templates/", "absent", api=False, marker="{template}"),
    Endpoint("ui-template-edit", "get", "/emails/templates/{template}/", "404", api=False),
    Endpoint("ui-template-edit-post", "post", "/emails/templates/{template}/", "404", api=False,
             body={"name": "Hijacked", "subject": "Hi", "html": "<p>pwned</p>"}),
    Endpoint("ui-template-preview", "post", "/emails/templates/{template}/preview/", "404", api=False,
             body={"subject": "Hi", "html": "<p>x</p>"}),
    Endpoint("ui-template-preview-with-a-victims-lead", "post", "/emails/templates/preview/", "rejected",
             api=False, body={"lead": "{lead}", "subject": "Hi", "html": "<p>{{{{ lead.company }}}}</p>"}),
    Endpoint("ui-template-lead-options", "get", "/emails/templates/leads/?lead=victoria", "absent", api=False,
             marker="{lead_email}"),
    Endpoint("ui-template-versions", "get", "/emails/templates/{template}/versions/", "404", api=False),
    Endpoint("ui-template-delete", "get", "/emails/templates/{template}/delete/", "404", api=False),
    Endpoint("ui-template-delete-post", "post", "/emails/templates/{template}/delete/", "404", api=False),
    Endpoint("ui-template-folder-rename", "post", "/emails/templates/folders/{template_folder}/", "404", api=False,
             body={"name": "Hijacked"}),
    Endpoint("ui-template-test-email", "post", "/emails/templates/{template}/test/", "404", api=False,
             body={"subject": "Hi", "html": "<p>x</p>"}),
    Endpoint("ui-template-test-email-for-a-victims-lead", "post", "/emails/templates/test/", "rejected", api=False,
             body={"lead": "{lead}", "subject": "Hi", "html": "<p>{{{{ lead.company }}}}</p>"}),
    # --- campaigns API ({campaign} has the victim's lead as a member and a cost entry {cost_id})
    Endpoint("campaigns-list", "get", "/api/v1/campaigns/", "absent", marker="{campaign}"),
    Endpoint("campaign-retrieve", "get", "/api/v1/campaigns/{campaign}/", "404"),
    Endpoint("campaign-patch", "patch", "/api/v1/campaigns/{campaign}/", "404", body={"name": "Hijacked"}),
    Endpoint("campaign-put", "put", "/api/v1/campaigns/{campaign}/", "404", body={"name": "Hijacked"}),
    Endpoint("campaign-delete", "delete", "/api/v1/campaigns/{campaign}/", "404"),
    Endpoint("campaign-members", "get", "/api/v1/campaigns/{campaign}/members/", "404"),
    Endpoint("campaign-members-add", "post", "/api/v1/campaigns/{campaign}/members/", "404",
             body={"leads": ["{lead2}"]}),
    Endpoint("campaign-members-remove", "post", "/api/v1/campaigns/{campaign}/members/remove/", "404",
             body={"leads": ["{lead}"]}),
    Endpoint("campaign-member-delete", "delete", "/api/v1/campaigns/{campaign}/members/{lead_id}/", "404"),
    Endpoint("campaign-costs", "get", "/api/v1/campaigns/{campaign}/costs/", "404"),
    Endpoint("campaign-costs-add", "post", "/api/v1/campaigns/{campaign}/costs/", "404",
             body={"date": "2025-01-01", "amount": "5"}),
    Endpoint("campaign-cost-delete", "delete", "/api/v1/campaigns/{campaign}/costs/{cost_id}/", "404"),
    # --- sequences API ({sequence} has the victim's lead enrolled as {enrollment_id}; {message} was sent to the lead)
    Endpoint("sequences-list", "get", "/api/v1/sequences/", "absent", marker="{sequence}"),
    Endpoint("sequence-retrieve", "get", "/api/v1/sequences/{sequence}/", "404"),
    Endpoint("sequence-patch", "patch", "/api/v1/sequences/{sequence}/", "404", body={"name": "Hijacked"}),
    Endpoint("sequence-put", "put", "/api/v1/sequences/{sequence}/", "404", body={"name": "Hijacked", "steps": []}),
    Endpoint("sequence-delete", "delete", "/api/v1/sequences/{sequence}/", "404"),
    Endpoint("sequence-enroll", "post", "/api/v1/sequences/{sequence}/enroll/", "404", body={"leads": ["{lead2}"]}),
    Endpoint("sequence-enrollments", "get", "/api/v1/sequences/{sequence}/enrollments/", "404"),
    Endpoint("sequence-stats", "get", "/api/v1/sequences/{sequence}/stats/", "404"),
    Endpoint("sequence-enrollment-exit", "post", "/api/v1/sequences/{sequence}/enrollments/{enrollment_id}/exit/",
             "404", body={}),
    Endpoint("sequences-create-sending-a-victims-template", "post", "/api/v1/sequences/", "rejected",
             body={"name": "Steal", "steps": [{"type": "email", "template": "{template}"}]}),
    Endpoint("sequences-create-entering-a-victims-segment", "post", "/api/v1/sequences/", "rejected",
             body={"name": "Steal", "steps": [], "entry": {"segment": "{dynamic}"}}),
    Endpoint("sequences-create-branching-on-a-victims-list", "post", "/api/v1/sequences/", "rejected",
             body={"name": "Steal", "steps": [{"type": "branch", "condition": {"segment": "{segment}"}, "then": 1,
                                               "else": 1}]}),
    Endpoint("lead-messages", "get", "/api/v1/leads/{lead}/messages/", "404"),
    Endpoint("email-event-for-a-victims-message", "post", "/api/v1/email-events/", "rejected",
             body={"message_id": "{message}", "event": "bounce"}),
    Endpoint("email-event-for-a-victims-address", "post", "/api/v1/email-events/", "rejected",
             body={"email": "{lead_email}", "event": "complaint"}),
    # --- browser: sequences and the lead page's Emails card
    Endpoint("ui-sequences-list", "get", "/emails/sequences/", "absent", api=False, marker="{sequence}"),
    Endpoint("ui-sequence-detail", "get", "/emails/sequences/{sequence}/", "404", api=False),
    Endpoint("ui-sequence-edit", "get", "/emails/sequences/{sequence}/edit/", "404", api=False),
    Endpoint("ui-sequence-edit-post", "post", "/emails/sequences/{sequence}/edit/", "404", api=False,
             body={"name": "Hijacked", "entry_type": "manual", "step_count": "0", "action": "save"}),
    Endpoint("ui-sequence-step-test-email", "post", "/emails/sequences/{sequence}/edit/", "404", api=False,
             body={"name": "x", "entry_type": "manual", "step_count": "1", "s0-type": "email",
                   "s0-template": "{template}", "action": "test-0"}),
    Endpoint("ui-sequence-step-test-email-of-a-victims-template", "post", "/emails/sequences/new/", "rejected",
             api=False, body={"name": "x", "entry_type": "manual", "step_count": "1", "s0-type": "email",
                              "s0-template": "{template}", "action": "test-0"}),
    Endpoint("ui-sequence-enroll", "post", "/emails/sequences/{sequence}/enroll/", "404", api=False,
             body={"emails": "{lead_email}"}),
    Endpoint("ui-sequence-enrollment-exit", "post", "/emails/sequences/{sequence}/enrollments/{enrollment_id}/exit/",
             "404", api=False),
    Endpoint("ui-lead-emails-card", "get", "/emails/leads/{lead}/", "404", api=False),
    Endpoint("ui-lead-emails-enroll", "post", "/emails/leads/{lead}/enroll/", "404", api=False,
             body={"sequence": "{sequence}"}),
    # --- browser: campaigns
    Endpoint("ui-campaigns-list", "get", "/campaigns/", "absent", api=False, marker="{campaign}"),
    Endpoint("ui-campaign-detail", "get", "/campaigns/{campaign}/", "404", api=False),
    Endpoint("ui-campaign-edit", "get", "/campaigns/{campaign}/edit/", "404", api=False),
    Endpoint("ui-campaign-edit-post", "post", "/campaigns/{campaign}/edit/", "404", api=False,
             body={"name": "Hijacked", "channel": "event", "status": "active", "currency": "USD"}),
    Endpoint("ui-campaign-delete", "post", "/campaigns/{campaign}/delete/", "404", api=False),
    Endpoint("ui-campaign-cost-add", "post", "/campaigns/{campaign}/costs/", "404", api=False,
             body={"date": "2025-01-01", "amount": "5"}),
    Endpoint("ui-campaign-cost-delete", "post", "/campaigns/{campaign}/costs/{cost_id}/delete/", "404", api=False),
    Endpoint("ui-campaign-members-add", "post", "/campaigns/{campaign}/members/", "404", api=False,
             body={"emails": "{lead_email}", "status": "responded"}),
    Endpoint("ui-campaign-member-remove", "post", "/campaigns/{campaign}/members/{lead_id}/remove/", "404",
             api=False),
    Endpoint("ui-lead-campaigns-card", "get", "/leads/{lead}/campaigns/", "404", api=False),
    # --- reports API: another org's rows are never counted (markers from _report_victims and the routing rows)
    Endpoint("report-funnel", "get", "/api/v1/reports/funnel/?breakdown=source", "absent", marker="Acme Secrets fair"),
    Endpoint("report-speed-to-lead", "get", "/api/v1/reports/speed-to-lead/?breakdown=team", "absent",
             marker="Acme Secrets desk"),
    Endpoint("report-sales-cycle", "get", "/api/v1/reports/sales-cycle/?breakdown=lost_reason", "absent",
             marker="Acme Secrets pricing"),
    Endpoint("report-reps", "get", "/api/v1/reports/reps/", "absent", marker="queue.rep@acme.test"),
    Endpoint("report-sources", "get", "/api/v1/reports/sources/", "absent", marker="Acme Secrets fair"),
    Endpoint("report-campaigns", "get", "/api/v1/reports/campaigns/", "absent", marker="{campaign}"),
    Endpoint("report-score-calibration", "get", "/api/v1/reports/score-calibration/", "absent",
             marker="980 to 989"),
    # --- report pages
    Endpoint("ui-reports-dashboard", "get", "/reports/", "absent", api=False, marker="Acme Secrets fair"),
    Endpoint("ui-report-funnel", "get", "/reports/funnel/?breakdown=source", "absent", api=False,
             marker="Acme Secrets fair"),
    Endpoint("ui-report-speed-to-lead", "get", "/reports/speed-to-lead/?breakdown=team", "absent", api=False,
             marker="Acme Secrets desk"),
    Endpoint("ui-report-sales-cycle", "get", "/reports/sales-cycle/?breakdown=lost_reason", "absent", api=False,
             marker="Acme Secrets pricing"),
    Endpoint("ui-report-reps", "get", "/reports/reps/", "absent", api=False, marker="queue.rep@acme.test"),
    Endpoint("ui-report-sources", "get", "/reports/sources/", "absent", api=False, marker="Acme Secrets fair"),
    Endpoint("ui-report-campaigns", "get", "/reports/campaigns/", "absent", api=False,
             marker="Acme Secrets campaign"),
    Endpoint("ui-report-score-calibration", "get", "/reports/score-calibration/", "absent", api=False,
             marker="980 to 989"),
    # --- tasks ({task} is a call on the victim's lead)
    Endpoint("tasks-list", "get", "/api/v1/tasks/", "absent", marker="{task}"),
    Endpoint("tasks-list-by-lead", "get", "/api/v1/tasks/?lead={lead}", "absent", marker="{task}"),
    Endpoint("task-retrieve", "get", "/api/v1/tasks/{task}/", "404"),
    Endpoint("task-patch", "patch", "/api/v1/tasks/{task}/", "404", body={"note": "Hijacked"}),
    Endpoint("task-complete", "patch", "/api/v1/tasks/{task}/", "404", body={"done": True}),
    Endpoint("task-delete", "delete", "/api/v1/tasks/{task}/", "404"),
    Endpoint("task-create-on-lead", "post", "/api/v1/tasks/", "rejected",
             body={"lead": "{lead}", "due_at": "2030-01-01T09:00:00Z", "owner": "{admin_user}"}),
    Endpoint("task-create-on-deal", "post", "/api/v1/tasks/", "rejected",
             body={"deal": "{deal}", "due_at": "2030-01-01T09:00:00Z", "owner": "{admin_user}"}),
    Endpoint("tasks-bulk", "post", "/api/v1/tasks/bulk/", "rejected",
             body={"leads": ["{lead}"], "due_at": "2030-01-01T09:00:00Z", "owner": "{admin_user}"}),
    Endpoint("ui-task-new", "get", "/tasks/new/?lead={lead}", "404", api=False),
    Endpoint("ui-task-new-post", "post", "/tasks/new/", "404", api=False,
             body={"lead": "{lead}", "type": "call", "due_at": "2030-01-01T09:00"}),
    Endpoint("ui-task-new-deal", "get", "/tasks/new/?deal={deal}", "404", api=False),
    Endpoint("ui-task-done-page", "get", "/tasks/{task}/done/", "404", api=False),
    Endpoint("ui-task-done", "post", "/tasks/{task}/done/", "404", api=False, body={"outcome": "connected"}),
    Endpoint("ui-task-snooze", "post", "/tasks/{task}/snooze/", "404", api=False, body={"snooze": "1d"}),
    Endpoint("ui-task-delete", "post", "/tasks/{task}/delete/", "404", api=False),
    Endpoint("ui-lead-tasks-card", "get", "/leads/{lead}/tasks/", "404", api=False),
    Endpoint("ui-tasks-bulk", "post", "/tasks/bulk/", "404", api=False, body={"lead": ["{lead}"]}),
    # --- webhooks API ({webhook} has a delivery {delivery_id} about the victim's lead)
    Endpoint("webhooks-list", "get", "/api/v1/webhooks/", "absent", marker="{webhook}"),
    Endpoint("webhook-retrieve", "get", "/api/v1/webhooks/{webhook}/", "404"),
    Endpoint("webhook-patch", "patch", "/api/v1/webhooks/{webhook}/", "404", body={"description": "Hijacked"}),
    Endpoint("webhook-delete", "delete", "/api/v1/webhooks/{webhook}/", "404"),
    Endpoint("webhook-rotate-secret", "post", "/api/v1/webhooks/{webhook}/rotate-secret/", "404"),
    Endpoint("webhook-deliveries", "get", "/api/v1/webhooks/{webhook}/deliveries/", "404"),
    Endpoint("webhook-delivery-replay", "post", "/api/v1/webhooks/{webhook}/deliveries/{delivery_id}/replay/", "404"),
    # --- browser: webhooks (admins)
    Endpoint("ui-webhooks-list", "get", "/settings/webhooks/", "absent", api=False, marker="hooks.acme-secrets.test"),
    Endpoint("ui-webhook-detail", "get", "/settings/webhooks/{webhook}/", "404", api=False),
    Endpoint("ui-webhook-edit", "get", "/settings/webhooks/{webhook}/edit/", "404", api=False),
    Endpoint("ui-webhook-edit-post", "post", "/settings/webhooks/{webhook}/edit/", "404", api=False,
             body={"url": "https://93.184.216.34/stolen", "events": ["lead.created"], "active": "on"}),
    Endpoint("ui-webhook-disable", "post", "/settings/webhooks/{webhook}/active/", "404", api=False,
             body={"active": "0"}),
    Endpoint("ui-webhook-rotate", "post", "/settings/webhooks/{webhook}/rotate/", "404", api=False),
    Endpoint("ui-webhook-test", "post", "/settings/webhooks/{webhook}/test/", "404", api=False),
    Endpoint("ui-webhook-delete", "get", "/settings/webhooks/{webhook}/delete/", "404", api=False),
    Endpoint("ui-webhook-delete-post", "post", "/settings/webhooks/{webhook}/delete/", "404", api=False),
    Endpoint("ui-webhook-delivery", "get", "/settings/webhooks/{webhook}/deliveries/{delivery_id}/", "404",
             api=False),
    Endpoint("ui-webhook-delivery-replay", "post", "/settings/webhooks/{webhook}/deliveries/{delivery_id}/replay/",
             "404", api=False),
]

CASES = [
    pytest.param(endpoint, actor, id=f"{endpoint.name}-{actor}")
    for endpoint in ENDPOINTS
    for actor in (("key", "session") if endpoint.api else ("session",))
]


@pytest.fixture
def victim(org):
    """One of every tenant-owned object in `org`, the organization under attack."""
    lead = services.capture_lead(
        organization_id=org.pk,
        data={"email": "victoria@acme.test", "first_name": "Victoria", "company": "Acme Secrets"},
    ).lead
    services.record_activity(organization_id=org.pk, lead=lead, type="note", properties={"text": "secret"})
    Lead.objects.filter(pk=lead.pk).update(phone="+14155550100", lifecycle_stage="sql")
    twin = services.capture_lead(organization_id=org.pk, data={"phone": "+14155550100", "first_name": "Vic"}).lead
    account = Account.objects.create(organization=org, name="Acme Secrets Inc")
    deal = Deal.objects.create(organization=org, account=account, lead=lead, name="Acme Secrets deal", amount=5)
    form = Form.objects.create(organization=org, name="Acme contact", slug="acme-contact", fields=["email"])
    FormSubmission.objects.create(organization=org, form=form, lead=lead, data={"email": lead.email})
    job = ImportJob.objects.create(
        organization=org, filename="acme.csv", file=import_files.upload(b"email\nbad\n"), headers=["email"],
        mapping={"email": "email"}, status=ImportStatus.DONE, total_rows=1, processed_rows=1, failed_count=1,
        errors=[{"row": 2, "errors": {"email": ["Enter a valid email address."]}}],
    )
    key, _ = tenancy.create_api_key(organization=org, name="acme website")
    rule = ScoringRule.objects.create(organization=org, name="Acme Secrets rule", kind="fit", points=5,
                                      condition={"field": "company", "op": "contains", "value": "Secrets"})
    ScoringSettings.objects.filter(organization=org).update(mql_score=4321)
    mailing = services.create_segment(organization_id=org.pk, name="Acme Secrets list", kind="static")
    services.add_to_list(segment=mailing, leads=Lead.objects.filter(pk=lead.pk))
    dynamic = services.create_segment(organization_id=org.pk, name="Acme Secrets segment", definition={
        "all": [{"field": "company", "op": "contains", "value": "Secrets"}]})
    from routing import services as routing_services
    from routing.models import LeadRouting, RepProfile

    queue_membership = tenancy.add_member(organization=org, email="queue.rep@acme.test", password=None,
                                          role=Role.REP)
    queue_rep = queue_membership.user
    queue_team = routing_services.save_team(organization_id=org.pk, data={
        "name": "Acme Secrets team", "members": [RepProfile.objects.get(organization=org, user=queue_rep)],
        "manager": Membership.objects.get(organization=org, role=Role.ADMIN).user})
    LeadRouting.objects.create(organization=org, lead=twin, team=queue_team, pooled=True)
    admin_user = Membership.objects.get(organization=org, role=Role.ADMIN).user
    deleted_lead = services.capture_lead(organization_id=org.pk, data={"email": "deleted@acme.test"}).lead
    deleted_lead_id = str(deleted_lead.pk)
    services.delete_lead(lead=deleted_lead)
    saved_view = services.save_view(organization_id=org.pk, owner=admin_user, name="Acme Secrets view",
                                     query="search=Secrets", shared=True)
    desk = routing_services.save_team(organization_id=org.pk, data={
        "name": "Acme Secrets desk", "members": [RepProfile.objects.create(organization=org, user=admin_user)]})
    routing_rule = routing_services.save_rule(organization_id=org.pk, data={
        "name": "Acme Secrets routing", "strategy": "pool", "team": desk})
    pooled = services.capture_lead(organization_id=org.pk, data={"email": "pooled@acme.test"}).lead
    routing_services.route_lead(organization_id=org.pk, lead_id=pooled.pk)
    from nurturing import services as nurturing_services

    template = nurturing_services.create_template(
        organization_id=org.pk, name="Acme Secrets template", folder="Acme Secrets folder",
        subject="Hi {{ lead.first_name }}", html="<p>Acme Secrets offer</p>", text="Acme Secrets offer")
    activity_type = activity_types.create(organization_id=org.pk, key="acme_secret_type", label="Acme secret")
    return {"lead": str(lead.pk), "lead_email": lead.email, "saved_view": str(saved_view.pk),
            "activity_type": activity_type.key,
            "deleted_lead": deleted_lead_id,
            "form": str(form.pk), "import": str(job.pk),
            "key": key.prefix, "rule": str(rule.pk), "lead2": str(twin.pk), "account": str(account.pk),
            "deal": str(deal.pk), "segment": str(mailing.pk), "dynamic": str(dynamic.pk),
            "queue_rep": str(queue_rep.pk), "queue_membership": str(queue_membership.pk),
            "queue_team": str(queue_team.pk), "admin_user": str(admin_user.pk),
            "routing_rule": str(routing_rule.pk), "pooled": str(pooled.pk),
            "template": str(template.pk), "template_folder": str(template.folder_id),
            **_campaign_victims(org, lead), **_sequence_victims(org, lead), **_report_victims(org, account),
            **_webhook_victims(org, lead), **_predictive_victims(org), **_task_victims(org, lead, admin_user),
            **_pipeline_victims(org)}


def _task_victims(org, lead, owner):
    from datetime import timedelta

    from django.utils import timezone

    from agenda import services as agenda_services

    task = agenda_services.create_task(organization_id=org.pk, lead=lead, type="call", owner_id=owner.pk,
                                       due_at=timezone.now() + timedelta(hours=1), note="Acme Secrets call")
    return {"task": str(task.pk)}


def _pipeline_victims(org):
    """A second pipeline (without deals, so the owner may change or delete it); the victim's deal sits in the
    first stage of the default pipeline."""
    from leads.models import Stage

    renewals = services.save_pipeline(organization_id=org.pk, name="Acme Secrets renewals", stages=[
        {"name": "Due", "probability": 40}, {"name": "Renewed", "probability": 100, "kind": "won"},
        {"name": "Churned", "probability": 0, "kind": "lost"}])
    stages = Stage.objects.for_org(org).filter(pipeline__is_default=True)
    return {"pipeline": str(renewals.pk), "stage_start": str(stages.get(name="Qualification").pk),
            "stage_proposal": str(stages.get(name="Proposal").pk)}


def _predictive_victims(org):
    from scoring.models import PredictiveModel, PredictiveStatus

    model = {"features": [{"source": "lead", "name": "industry", "kind": "category", "levels": {"secrets": 0.5},
                           "other": 0.0}], "intercept": -1.0, "band_cutoffs": [0.8, 0.6, 0.4, 0.2]}
    version = PredictiveModel.objects.create(
        organization=org, version=1, status=PredictiveStatus.READY, model=model, metrics={"auc": 0.81},
        thresholds=[{"threshold": 0.5, "handed_off": 0.1234, "precision": 0.5, "recall": 0.5}])
    ScoringSettings.objects.filter(organization=org).update(predictive_model=version)
    return {"predictive_version": str(version.pk)}


def _webhook_victims(org, lead):
    from webhooks import services as webhook_services
    from webhooks.models import Endpoint as WebhookEndpoint

    # Saved directly: the URL check would resolve the made-up host.
    endpoint = WebhookEndpoint.objects.create(organization=org, url="https://hooks.acme-secrets.test/in",
                                              events=["lead.updated"], secret="whsec_c2VjcmV0")
    delivery_id, = webhook_services.deliveries_for_lead(organization_id=org.pk, event_type="lead.updated",
                                                        lead_id=lead.pk, data={"changed_fields": ["company"]})
    return {"webhook": str(endpoint.pk), "delivery_id": str(delivery_id)}


def _campaign_victims(org, lead):
    from campaigns import services as campaign_services
    from campaigns.models import MemberStatus

    campaign = campaign_services.save_campaign(organization_id=org.pk, data={
        "name": "Acme Secrets campaign", "utm_campaign": "acme-secrets", "budget": 100})
    campaign_services.add_members(campaign=campaign, leads=Lead.objects.filter(pk=lead.pk),
                                  status=MemberStatus.RESPONDED)
    cost = campaign_services.add_cost(campaign=campaign, date="2025-01-01", amount=10, note="Acme Secrets booth")
    return {"campaign": str(campaign.pk), "lead_id": str(lead.pk), "cost_id": str(cost.pk)}


def _report_victims(org, account):
    """A lead with a source and a score of its own and a lost deal, so each report shows something only the
    victim's org has."""
    from django.utils import timezone

    lead = services.capture_lead(organization_id=org.pk, data={"email": "fair@acme.test",
                                                                "source": "Acme Secrets fair"}).lead
    Lead.objects.filter(pk=lead.pk).update(score=987)
    Deal.objects.create(organization=org, account=account, lead=lead, name="Acme Secrets lost deal", amount=1,
                        status="lost", lost_reason="Acme Secrets pricing", closed_at=timezone.now())
    return {}


def _sequence_victims(org, lead):
    from nurturing import services as nurturing_services
    from nurturing.models import Enrollment, Message

    # A template of its own, so the template rows above can still delete theirs.
    template = nurturing_services.create_template(organization_id=org.pk, name="Acme Secrets drip email",
                                                  subject="Hi", html="<p>Hi</p>", text="Hi")
    sequence = nurturing_services.save_sequence(organization_id=org.pk, data={
        "name": "Acme Secrets drip", "steps": [{"type": "email", "template": str(template.pk)}]})
    nurturing_services.enroll(sequence=sequence, leads=[lead.pk])
    message = Message.objects.create(organization=org, lead=lead, to_email=lead.email, subject="Acme Secrets",
                                     status="sent")
    return {"sequence": str(sequence.pk), "enrollment_id": str(Enrollment.objects.get(sequence=sequence).pk),
            "message": str(message.pk)}


@pytest.fixture
def attacker_objects(other_org):
    """The other org has objects of its own, so its lists are not trivially empty."""
    lead = services.capture_lead(organization_id=other_org.pk,
                                 data={"email": "victor@rival.test", "first_name": "Victor"}).lead
    form = Form.objects.create(organization=other_org, name="Rival contact", slug="rival-contact",
                               fields=["email"])
    FormSubmission.objects.create(organization=other_org, form=form, lead=lead, data={})
    ImportJob.objects.create(organization=other_org, filename="rival.csv", file=import_files.upload(b"email\n"),
                             status=ImportStatus.DONE)
    return {"lead": str(lead.pk)}


def _client(org, actor):
    """A client acting for `org`: with one of its API keys, or signed in as its admin."""
    client = APIClient()
    if actor == "key":
        _, plain = tenancy.create_api_key(organization=org, name=f"{actor} client")
        client.credentials(HTTP_AUTHORIZATION=f"Api-Key {plain}")
    else:
        client.force_login(Membership.objects.get(organization=org, role=Role.ADMIN).user)
    return client


def _fill(value, ids):
    if isinstance(value, str):
        return value.format(**ids)
    if isinstance(value, dict):
        return {k: _fill(v, ids) for k, v in value.items()}
    if isinstance(value, list):
        return [_fill(v, ids) for v in value]
    return value


def _call(client, endpoint, ids):
    path = _fill(endpoint.path, ids)
    body = _fill(endpoint.body, ids)
    if endpoint.api:
        return getattr(client, endpoint.method)(path, body, format="json")
    return getattr(client, endpoint.method)(path, body or {})


def snapshot():
    """Every row of every tenant-owned table of every org, so 'nothing changed' covers writes anywhere."""
    tables = {}
    for model in apps.get_models():
        if model._meta.app_label not in TENANT_APPS or not _has_field(model, "organization"):
            continue
        rows = []
        for row in model.objects.values():
            # the caller's own key gets last_used_at stamped; that is not a change to anyone's data
            row.pop("last_used_at", None)
            rows.append(repr(sorted((k, bytes(v) if isinstance(v, memoryview) else v) for k, v in row.items())))
        tables[model._meta.label] = sorted(rows)
    return tables


TENANT_APPS = {"leadcrm", "leads", "scoring", "nurturing", "routing", "campaigns", "webhooks", "reports", "agenda"}


def _has_field(model, name):
    return any(f.name == name for f in model._meta.get_fields())


@pytest.mark.parametrize(("endpoint", "actor"), CASES)
def test_other_tenant_cannot_reach(endpoint, actor, org, other_org, victim, attacker_objects):
    attacker = _client(other_org, actor)
    before = snapshot()

    response = _call(attacker, endpoint, victim)

    assert response.status_code != 500
    marker = endpoint.marker.format(**victim)
    if endpoint.expect == "404":
        assert response.status_code == 404, (response.status_code, response.content[:300])
    elif endpoint.expect == "absent":
        assert response.status_code == 200, (response.status_code, response.content[:300])
        content = response.content.decode()
        assert marker not in content
        assert "victoria@acme.test" not in content and "Acme Secrets" not in content
    elif endpoint.expect == "rejected":
        assert response.status_code in (400, 404), (response.status_code, response.content[:300])
    elif endpoint.expect == "rows-404":
        assert response.status_code == 200, (response.status_code, response.content[:300])
        assert {row["status"] for row in response.json()["results"]} == {404}, response.content[:300]
    assert snapshot() == before, "another tenant's request changed data"

    # Control: the owning org, same request. It must reach the object (else the row proves nothing).
    owner = _client(org, actor)
    response = _call(owner, endpoint, victim)
    assert response.status_code < 400, (response.status_code, response.content[:300])
    if endpoint.expect == "absent":
        assert marker in response.content.decode()
    if endpoint.expect == "rows-404":
        assert all(row["status"] < 400 for row in response.json()["results"]), response.content[:300]


def test_every_tenant_api_route_is_in_the_matrix():
    """A new tenant-owned API route must get a row above (or this test names it)."""
    from leadcrm.urls import router

    # POSTs that create in the caller's own org name no victim object; they have their own tests below.
    own_org_creates = {"template.create", "template-folder.create",
                       "lead.create", "lead.bulk", "form.create", "import.create", "api-key.create",
                       "scoring-rule.create", "campaign.create", "sequence.create", "webhook.create",
                       "activity-type.create", "pipeline.create"}
    lookups = {"account": "{account}", "deal": "{deal}", "lead": "{lead}", "form": "{form}", "import": "{import}",
               "api-key": "{key}", "scoring-rule": "{rule}", "segment": "{segment}", "rep": "{queue_rep}",
               "team": "{queue_team}", "assignment-rule": "{routing_rule}", "template": "{template}",
               "template-folder": "{template_folder}", "campaign": "{campaign}",
               "sequence": "{sequence}", "webhook": "{webhook}", "activity-type": "{activity_type}",
               "predictive-version": "{predictive_version}", "task": "{task}", "pipeline": "{pipeline}"}
    covered = {(e.method, e.path.split("?")[0]) for e in ENDPOINTS if e.api}
    missing = []
    for prefix, viewset, basename in router.registry:
        for route in router.get_routes(viewset):
            url = route.url.strip("^$").format(prefix=prefix, lookup=lookups.get(basename, "{id}"),
                                               trailing_slash="/")
            url = re.sub(r"\(\?P<(\w+)>[^)]*\)", r"{\1}", url)  # members/(?P<lead_id>…) -> members/{lead_id}
            for method, action in route.mapping.items():
                if not hasattr(viewset, action) or f"{basename}.{action}" in own_org_creates:
                    continue
                if (method, f"/api/v1/{url}") not in covered:
                    missing.append(f"{method.upper()} /api/v1/{url} ({basename}.{action})")
    assert not missing, f"add these routes to ENDPOINTS: {missing}"


# --- cross-tenant writes that legitimately succeed must stay inside the writer's org


def test_capturing_a_victims_email_creates_a_separate_lead(org, other_org, victim, other_api):
    before = Lead.objects.for_org(org).get(pk=victim["lead"])
    response = other_api.post("/api/v1/leads/", {"email": "VICTORIA@acme.test", "first_name": "Mallory",
                                                 "company": "Evil"}, format="json")
    assert response.status_code == 201  # not 200: there is nothing to merge with in the rival org
    assert response.json()["id"] != victim["lead"]
    assert Lead.objects.for_org(other_org).filter(email="victoria@acme.test").count() == 1
    after = Lead.objects.get(pk=victim["lead"])
    assert (after.first_name, after.company, after.updated_at) == (before.first_name, before.company,
                                                                    before.updated_at)
    assert after.activities.count() == 2  # the capture and the note; nothing from the rival


def test_bulk_with_a_victims_email_stays_in_the_callers_org(org, other_org, victim, other_api):
    response = other_api.post("/api/v1/leads/bulk/", {"leads": [{"email": victim["lead_email"],
                                                                  "last_name": "Evil"}]}, format="json")
    assert response.status_code == 200
    assert response.json()["results"][0]["status"] == 201
    assert Lead.objects.get(pk=victim["lead"]).last_name == ""


def test_activity_by_email_of_a_victims_lead_creates_the_lead_in_the_callers_org(org, other_org, victim,
                                                                                 other_api):
    response = other_api.post("/api/v1/activities/", {"email": victim["lead_email"], "type": "page_view"},
                              format="json")
    assert response.status_code == 201
    assert response.json()["lead"] != victim["lead"]
    assert response.json()["lead_created"] is True
    assert Activity.objects.filter(lead_id=victim["lead"]).count() == 2


def test_owner_from_another_org_is_rejected(org, other_org, victim, api):
    outsider = Membership.objects.get(organization=other_org).user
    response = api.patch(f"/api/v1/leads/{victim['lead']}/", {"owner": outsider.pk}, format="json")
    assert response.status_code == 400
    assert "owner" in response.json()["errors"]
    assert Lead.objects.get(pk=victim["lead"]).owner_id is None
    created = api.post("/api/v1/leads/", {"email": "new@acme.test", "owner": outsider.pk}, format="json")
    assert created.status_code == 400
    assert not Lead.objects.filter(email="new@acme.test").exists()


def test_previous_and_next_never_step_into_another_org(org, other_org, victim, attacker_objects, client):
    """The lead page's steps through a list or queue stay in the member's org, whatever the link says."""
    from urllib.parse import quote

    neighbour = services.capture_lead(organization_id=other_org.pk, data={"email": "vince@rival.test"}).lead
    client.force_login(Membership.objects.get(organization=other_org, role=Role.ADMIN).user)
    for origin in ("list:", "list:search=V", "queue", f"queue:{victim['queue_rep']}", f"queue:{victim['admin_user']}"):
        response = client.get(f"/leads/{attacker_objects['lead']}/?from={quote(origin, safe='')}")
        assert response.status_code == 200, origin
        html = response.content.decode()
        for victims_lead in (victim["lead"], victim["lead2"], victim["pooled"]):
            assert victims_lead not in html, origin
        assert "Victoria" not in html and "acme.test" not in html, origin
        if origin.startswith("list"):
            assert f"/leads/{neighbour.pk}/?from=" in html, origin  # the steps do work, within the org


def test_idempotency_keys_are_per_org(org, other_org, api, other_api):
    headers = {"HTTP_IDEMPOTENCY_KEY": "shared-key-1"}
    mine = api.post("/api/v1/leads/", {"email": "same@example.com"}, format="json", **headers)
    theirs = other_api.post("/api/v1/leads/", {"email": "same@example.com"}, format="json", **headers)
    assert mine.status_code == theirs.status_code == 201
    assert "Idempotent-Replayed" not in theirs
    assert mine.json()["id"] != theirs.json()["id"]
    assert Lead.objects.for_org(other_org).filter(pk=theirs.json()["id"]).exists()


def test_switching_to_an_org_you_do_not_belong_to_is_404(client, org, other_org):
    client.force_login(Membership.objects.get(organization=org).user)
    response = client.post("/org/switch/", {"organization": str(other_org.pk)})
    assert response.status_code == 404
    assert client.session.get("active_organization_id") != str(other_org.pk)


def test_admin_of_one_org_cannot_open_another_orgs_lead_in_django_admin(client, org, other_org, victim):
    admin_user = Membership.objects.get(organization=other_org, role=Role.ADMIN).user
    assert admin_user.is_staff
    client.force_login(admin_user)
    response = client.get(f"/admin/leads/lead/{victim['lead']}/change/")
    assert response.status_code in (302, 404)
    assert b"Victoria" not in response.content
    changelist = client.get("/admin/leads/lead/")
    assert changelist.status_code == 200
    assert b"victoria@acme.test" not in changelist.content



def test_the_operator_routes_name_no_organization_or_lead(org, other_org, settings):
    """/metrics, /readyz and /healthz answer across orgs: they carry counts and states, never an org's ids or data."""
    settings.METRICS_TOKEN = "operator-token"
    secret = Lead.objects.create(organization=org, email="secret-person@acme.test", stage_entered_at={})
    for tenant in (org, other_org):
        _, plain = tenancy.create_api_key(organization=tenant, name="ops")
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Api-Key {plain}")
        client.get(f"/api/v1/leads/{secret.pk}/")
    operator = APIClient()
    text = "".join(operator.get(path, HTTP_AUTHORIZATION="Bearer operator-token").content.decode()
                   for path in ("/metrics", "/readyz", "/healthz"))
    assert "leadcrm_http_request_duration_seconds" in text  # the control: the page was read
    for value in (str(org.pk), str(other_org.pk), str(secret.pk), "secret-person", org.slug, other_org.slug):
        assert value not in text


def test_predictive_advice_reads_and_writes_only_the_callers_org(org, other_org, api, other_api, client):
    """Suggested rules, threshold advice and the picks learn from and change the caller's org alone."""
    from scoring import predictive
    from tests.scoring.test_predictive import _outcomes, _train

    _outcomes(org, 300)
    _train(org.pk)
    mine = api.get("/api/v1/predictive/thresholds/").json()
    # the rival has no model of its own: nothing to advise from, whatever the victim has
    assert other_api.post("/api/v1/predictive/suggest-rules/").status_code == 409
    theirs = other_api.get("/api/v1/predictive/thresholds/").json()
    assert theirs["score_results"] == [] and theirs["results"] == [] and mine["score_results"]

    _outcomes(other_org, 200, seed=3, prefix="rival")
    _train(other_org.pk)
    suggestion = other_api.post("/api/v1/predictive/suggest-rules/").json()
    assert suggestion["preview"]["leads"] == 200 and suggestion["holdout_size"] == 40
    assert other_api.get("/api/v1/predictive/thresholds/").json()["holdout_size"] == 40

    victim_rules = set(ScoringRule.objects.for_org(org).values_list("pk", "active", "points"))
    victim_mql = ScoringSettings.objects.get(organization=org).mql_score
    saved = other_api.post("/api/v1/predictive/apply-rules/", {"rules": suggestion["rules"]}, format="json")
    assert saved.status_code == 201
    client.force_login(Membership.objects.get(organization=other_org, role=Role.ADMIN).user)
    assert client.post("/scoring/predictive/threshold/", {"recall": "50"}).status_code == 302
    assert set(ScoringRule.objects.for_org(org).values_list("pk", "active", "points")) == victim_rules
    assert ScoringSettings.objects.get(organization=org).mql_score == victim_mql
    assert predictive.active_model(org.pk).version == 1
