"""Predictive scoring benchmark: training an org's conversion model, writing every lead's probability, and the
model's holdout AUC beside scikit-learn's own models on the same split.

    make bench-predictive                          (= python bench/predictive.py, 1,000,000 leads)
    make bench-predictive ARGS="--leads 100000"    (a quick run)

Builds a throwaway org set-based in SQL (INSERT ... SELECT over generate_series, in batches): N leads with a source
type, industry, country, utm_source, company size and two custom fields (`seats`, a number, and `plan`, a category),
webinar and page-view activities, and for 60% of them a known outcome (customer or disqualified, dated over two
years) drawn from a known model: a logistic one on those fields, plus one interaction (paid leads from software
companies convert more than the two effects alone say), which a logistic model without it cannot learn exactly.

Then, on one process as a worker runs it:

  * training - `predictive.train` (the Celery task's body): reading the outcomes and their features in SQL, the fit,
               the holdout metrics, and every lead's probability written in chunks; wall time of each part and the
               process's peak memory (ru_maxrss), against the goals (< 5 min, < 2 GB);
  * writing  - the probabilities again from NULL (`services.write_all_probabilities`, one UPDATE per chunk of
               10,000 leads evaluating the model in SQL) beside one hand-written
               `UPDATE leads_lead ... FROM (VALUES (id, probability, band), ...)` of the very same numbers, read back
               from ours (goal: ours at least 50% of the bound's leads/s); afterwards the two are compared lead by
               lead (zero differences);
  * accuracy - the app's holdout AUC beside scikit-learn's LogisticRegression (one-hot categories, standardised
               numbers, missing numbers imputed by the mean) and HistGradientBoostingClassifier (native categories)
               fitted directly on the same training rows and measured on the same holdout (goal: the app's AUC at
               least the better of the two minus 0.005), and the generator's own AUC (the best any model can do).

The rule score plays no part (the org's rules are not run over the benchmark's leads: every score is 0). The org is
deleted afterwards unless `--keep`. Prints `uptime` before and after: the machine is shared.
"""

import argparse
import os
import resource
import subprocess
import sys
import time
from pathlib import Path
from unittest import mock

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))  # the sibling benchmarks
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "leadcrm.settings")

import django  # noqa: E402

django.setup()

import numpy as np  # noqa: E402
import scoring_bulk  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connection, transaction  # noqa: E402
from django.utils import timezone  # noqa: E402
from sklearn.ensemble import HistGradientBoostingClassifier  # noqa: E402
from sklearn.impute import SimpleImputer  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402
from sklearn.metrics import roc_auc_score  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder, StandardScaler  # noqa: E402

from leadcrm import services as core_services  # noqa: E402
from leadcrm.models import Organization  # noqa: E402
from leads import imports  # noqa: E402
from leads.models import Lead  # noqa: E402
from scoring import predictive  # noqa: E402
from scoring import services as scoring  # noqa: E402
from scoring import tasks as scoring_tasks  # noqa: E402
from scoring.models import PredictiveModel  # noqa: E402

GOAL_SECONDS, GOAL_BYTES, GOAL_WRITE_SHARE, GOAL_AUC_MARGIN = 300, 2 * 1024**3, 0.5, 0.005

LEADS_SQL_FROM = """
FROM (
    SELECT *, 1 / (1 + exp(-(
            -1.1 + (ARRAY[0.0, 0.3, -0.7, 1.1, 0.6])[st]
            + (ARRAY[0.6, -0.5, 0.2, -0.1, 0.0, -0.4])[ind]
            + (ARRAY[0.2, 0.1, 0.0, -0.2, -0.3, 0.1])[ctry]
            + 0.35 * (ln(1 + size) - 4) + 0.03 * (seats - 30) + (ARRAY[0.0, 0.3, 0.5])[plan]
            + 0.8 * ln(1 + webinars) + 0.15 * ln(1 + views)
            + CASE WHEN st = 5 AND ind = 1 THEN 0.5 ELSE 0 END))) AS truth
    FROM (
        SELECT i, 1 + floor(random() * 5)::int AS st, 1 + floor(random() * 6)::int AS ind,
               1 + floor(random() * 6)::int AS ctry, 1 + floor(random() * 4)::int AS utm,
               floor(exp(1.6 + random() * 7))::int AS size, floor(random() * 60)::int AS seats,
               1 + floor(random() * 3)::int AS plan, floor(-ln(1 - random()) * 0.8)::int AS webinars,
               floor(random() * 6)::int AS views, random() AS has_outcome, random() AS draw, random() AS age
        FROM generate_series(%(first)s::int, %(last)s::int) AS i
    ) r
) g
"""
OUTCOME = "CASE WHEN has_outcome < 0.6 THEN CASE WHEN draw < truth THEN 'customer' ELSE 'disqualified' END END"
OUTCOME_AT = "(%(anchor)s::timestamptz - age * interval '730 days')"
LEAD_EXPRESSIONS = {
    "id": "gen_random_uuid()",
    "organization_id": "%(org)s::uuid",
    "email": "'p' || i || '@' || %(domain)s",
    "first_name": "'Lead'",
    "last_name": "i::text",
    "company": "'Company ' || (i %% 50000)",
    "source_type": "(ARRAY['organic', 'inbound', 'outbound', 'referral', 'paid'])[st]",
    "industry": "(ARRAY['Software', 'Retail', 'Finance', 'Healthcare', 'Manufacturing', 'Education'])[ind]",
    "country": "(ARRAY['US', 'GB', 'DE', 'FR', 'IN', 'BR'])[ctry]",
    "utm_source": "(ARRAY['google', 'linkedin', 'newsletter', ''])[utm]",
    "company_size": "size",
    "custom_fields": "jsonb_build_object('seats', seats, 'plan', (ARRAY['free', 'pro', 'enterprise'])[plan])",
    "lifecycle_stage": f"coalesce({OUTCOME}, 'lead')",
    "stage_entered_at": f"CASE WHEN {OUTCOME} IS NULL THEN '{{}}'::jsonb "
                        f"ELSE jsonb_build_object({OUTCOME}, {OUTCOME_AT}) END",
    "last_activity_at": "%(anchor)s", "created_at": "%(anchor)s", "updated_at": "%(anchor)s",
}
# Leads and their activities (before the outcome, or recent for open leads) in one statement per batch; the
# generator's probability is kept aside, for the best possible AUC.
BATCH_SQL = """
WITH g AS MATERIALIZED (SELECT * {source}),
leads AS (INSERT INTO leads_lead ({columns}) SELECT {select} FROM g RETURNING id, email),
kept AS (INSERT INTO pg_temp.bench_truth
         SELECT l.id, g.truth FROM leads l JOIN g ON l.email = 'p' || g.i || '@' || %(domain)s RETURNING id)
INSERT INTO leads_activity (id, organization_id, lead_id, type, properties, occurred_at, actor_id, created_at)
SELECT gen_random_uuid(), %(org)s::uuid, l.id, a.type, '{{}}'::jsonb,
       CASE WHEN g.has_outcome < 0.6 THEN {outcome_at} ELSE %(anchor)s::timestamptz END
       - (1 + random() * 60) * interval '1 day', NULL, %(anchor)s
FROM leads l JOIN g ON l.email = 'p' || g.i || '@' || %(domain)s
CROSS JOIN LATERAL (SELECT 'webinar_attended' AS type FROM generate_series(1, g.webinars)
                    UNION ALL SELECT 'page_view' FROM generate_series(1, g.views)) a
"""


def uptime() -> str:
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True, check=False).stdout.strip()
    except OSError:
        return "(uptime not available)"


def create_org() -> Organization:
    slug = f"bench-predictive-{os.getpid()}"
    return core_services.create_organization(slug=slug, name="Predictive benchmark",
                                             owner_email=f"{slug}@bench.invalid", owner_password=None)


def build(organization: Organization, leads: int, anchor) -> None:
    params = {"org": str(organization.pk), "domain": f"{organization.slug}.bench.invalid", "anchor": anchor}
    columns, select = imports._insert_sql(Lead, LEAD_EXPRESSIONS, params)
    sql = BATCH_SQL.format(columns=columns, select=select, source=LEADS_SQL_FROM, outcome_at=OUTCOME_AT)
    started = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute("CREATE TEMP TABLE IF NOT EXISTS bench_truth (id uuid PRIMARY KEY, truth float8)")
        cursor.execute("SELECT setseed(0.29)")
        scoring_bulk.insert_in_batches(cursor, sql, params, leads, started)
    converted, lost = predictive.outcome_counts(organization.pk)
    print(f"; {converted:,} converted and {lost:,} lost, in {time.perf_counter() - started:.0f} s")


def peak_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # kilobytes on Linux


def train(org) -> tuple[PredictiveModel, dict]:
    """The worker's task body, timed by part: the training transaction, then the probabilities."""
    parts = {}
    original = scoring.write_all_probabilities

    def timed_writing(**kwargs):
        parts["training"] = time.perf_counter() - started
        begun = time.perf_counter()
        result = original(**kwargs)
        parts["writing"] = time.perf_counter() - begun
        return result

    with mock.patch.object(scoring_tasks.train_model, "delay"):
        version = predictive.request_training(organization_id=org)
    with mock.patch.object(scoring, "write_all_probabilities", timed_writing):
        started = time.perf_counter()
        predictive.train(organization_id=org, version_id=version.pk)
        parts["total"] = time.perf_counter() - started
    return PredictiveModel.objects.get(pk=version.pk), parts


def clear(org) -> None:
    with connection.cursor() as cursor:
        cursor.execute("UPDATE leads_lead SET conversion_probability = NULL, predictive_band = '' "
                       "WHERE organization_id = %s", [org])
        cursor.execute("VACUUM (ANALYZE) leads_lead")


def writing(org) -> dict:
    """Ours from NULL, then the hand-written VALUES statement of the same numbers from NULL; compared after."""
    clear(org)
    started = time.perf_counter()
    scoring.write_all_probabilities(organization_id=org)
    ours = time.perf_counter() - started
    with connection.cursor() as cursor:
        cursor.execute("DROP TABLE IF EXISTS pg_temp.bench_ours")
        cursor.execute("CREATE TEMP TABLE bench_ours AS SELECT id, conversion_probability AS p, predictive_band AS b"
                       " FROM leads_lead WHERE organization_id = %s", [org])
        cursor.execute("SELECT id, p, b FROM pg_temp.bench_ours")
        rows = cursor.fetchall()
    values = ", ".join(f"('{pk}'::uuid, {probability}::numeric, '{band}')" for pk, probability, band in rows)
    bound_sql = (f"UPDATE leads_lead l SET conversion_probability = v.p, predictive_band = v.b, updated_at = now() "
                 f"FROM (VALUES {values}) v(id, p, b) WHERE l.id = v.id AND l.organization_id = %s")
    clear(org)
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL jit = off")
        started = time.perf_counter()
        cursor.execute(bound_sql, [org])
        bound = time.perf_counter() - started
        written = cursor.rowcount
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FILTER (WHERE (o.p, o.b) IS DISTINCT FROM (l.conversion_probability, "
                       "l.predictive_band)) FROM leads_lead l JOIN pg_temp.bench_ours o ON o.id = l.id "
                       "WHERE l.organization_id = %s", [org])
        differing = cursor.fetchone()[0]
    return {"leads": len(rows), "ours": ours, "bound": bound, "written": written, "differing": differing}


def accuracy(org, version: PredictiveModel) -> dict:
    """scikit-learn's own models on the rows the app trained on, split where the app split them."""
    params = predictive._outcome_params(org)
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(predictive.PLAN_FOR_SETS)
        features = predictive._discover(cursor, params)
        rows = predictive._training_rows(cursor, params, features)
        cursor.execute("SELECT to_regclass('pg_temp.bench_truth') IS NOT NULL")
        truth = None
        if cursor.fetchone()[0]:  # built in this process: the generator's probabilities are known
            cursor.execute("SELECT id, truth FROM pg_temp.bench_truth")
            truth = dict(cursor.fetchall())
    holdout_size = max(1, round(len(rows) * predictive.HOLDOUT_SHARE))
    categories = [i for i, feature in enumerate(features) if feature["kind"] == "category"]
    numbers = [i for i, feature in enumerate(features) if feature["kind"] == "number"]

    def frame(part):
        cats = np.array([[str(row[4 + i]) for i in categories] for row in part], dtype=object)
        nums = np.array([[np.nan if row[4 + i] is None else float(row[4 + i]) for i in numbers] for row in part],
                        dtype=float)
        return cats, nums

    train, holdout = rows[:-holdout_size], rows[-holdout_size:]
    (cats_train, nums_train), (cats_holdout, nums_holdout) = frame(train), frame(holdout)
    y_train = np.array([row[1] for row in train], dtype=int)
    y_holdout = np.array([row[1] for row in holdout], dtype=int)
    found = {"holdout": len(holdout), "training": len(train)}

    started = time.perf_counter()
    onehot = OneHotEncoder(handle_unknown="ignore", sparse_output=False).fit(cats_train)
    scaled = make_pipeline(SimpleImputer(), StandardScaler()).fit(nums_train)
    design = lambda cats, nums: np.hstack([onehot.transform(cats), scaled.transform(nums)])  # noqa: E731
    logistic = LogisticRegression(max_iter=2000).fit(design(cats_train, nums_train), y_train)
    found["logistic"] = roc_auc_score(y_holdout, logistic.predict_proba(design(cats_holdout, nums_holdout))[:, 1])
    found["logistic_seconds"] = time.perf_counter() - started

    started = time.perf_counter()
    ordinal = OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1).fit(cats_train)
    coded = lambda cats, nums: np.hstack([ordinal.transform(cats), nums])  # noqa: E731
    boosting = HistGradientBoostingClassifier(categorical_features=list(range(len(categories))), random_state=0)
    boosting.fit(coded(cats_train, nums_train), y_train)
    found["boosting"] = roc_auc_score(y_holdout, boosting.predict_proba(coded(cats_holdout, nums_holdout))[:, 1])
    found["boosting_seconds"] = time.perf_counter() - started
    found["generator"] = roc_auc_score(y_holdout, [truth[row[0]] for row in holdout]) if truth else None
    found["app"] = version.metrics["auc"]
    return found


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--leads", type=int, default=1_000_000)
    parser.add_argument("--keep", action="store_true", help="keep the benchmark org")
    parser.add_argument("--accuracy-of", metavar="SLUG",
                        help="only the accuracy part, for the model an org built by an earlier run (kept) trained")
    parser.add_argument("--skip-accuracy", action="store_true",
                        help="leave out the scikit-learn comparison (minutes at 1,000,000 leads)")
    args = parser.parse_args()
    call_command("migrate", verbosity=0)
    print(f"machine before: {uptime()}")
    if args.accuracy_of:
        organization = Organization.objects.get(slug=args.accuracy_of)
        report_accuracy(accuracy(organization.pk, predictive.active_model(organization.pk)), {})
        print(f"\nmachine after: {uptime()}")
        return
    organization = create_org()
    org = organization.pk
    try:
        print(f"Building {args.leads:,} leads with outcomes …")
        build(organization, args.leads, timezone.now())
        baseline = peak_bytes()
        version, parts = train(org)
        peak = peak_bytes()
        metrics = version.metrics
        print(f"\nModel v{version.version}: {version.status}, {version.positives:,} converted / "
              f"{version.negatives:,} lost, {len(version.model['features'])} features")
        print(f"  training (outcomes read in SQL, fit, holdout metrics): {parts['training']:.1f} s")
        print(f"  every lead's probability written: {parts['writing']:.1f} s")
        print(f"  training goal < {GOAL_SECONDS} s   {'met' if parts['training'] < GOAL_SECONDS else 'NOT met'}")
        print(f"  whole task, every probability written: {parts['total']:.1f} s")
        print(f"  peak memory of the process: {peak / 1024**2:,.0f} MB (after building: {baseline / 1024**2:,.0f} MB)"
              f"   goal < {GOAL_BYTES / 1024**3:.0f} GB   {'met' if peak < GOAL_BYTES else 'NOT met'}")

        written = writing(org)
        ours_rate, bound_rate = written["leads"] / written["ours"], written["leads"] / written["bound"]
        share = ours_rate / bound_rate
        print(f"\nWriting {written['leads']:,} probabilities from NULL:")
        print(f"  ours (one UPDATE per {scoring.RECALC_CHUNK:,} leads, the model in SQL): {written['ours']:.1f} s, "
              f"{ours_rate:,.0f} leads/s")
        print(f"  bound (one hand-written UPDATE … FROM (VALUES …) of the same numbers): {written['bound']:.1f} s, "
              f"{bound_rate:,.0f} leads/s ({written['written']:,} rows)")
        print(f"  ours / bound: {share:.0%}   goal >= {GOAL_WRITE_SHARE:.0%}   "
              f"{'met' if share >= GOAL_WRITE_SHARE else 'NOT met'}   leads differing: {written['differing']}")

        if not args.skip_accuracy:
            report_accuracy(accuracy(org, version), metrics)
    finally:
        print(f"\nmachine after: {uptime()}")
        if not args.keep:
            Organization.objects.filter(pk=org).delete()


def report_accuracy(found: dict, metrics: dict) -> None:
    """The AUCs side by side, and the goal."""
    best = max(found["logistic"], found["boosting"])
    print(f"\nHoldout AUC ({found['holdout']:,} most recent outcomes; {found['training']:,} trained on):")
    print(f"  the app (stored as data, evaluated in SQL): {found['app']:.4f}")
    print(f"  scikit-learn LogisticRegression: {found['logistic']:.4f} ({found['logistic_seconds']:.1f} s)")
    print(f"  scikit-learn HistGradientBoostingClassifier: {found['boosting']:.4f} "
          f"({found['boosting_seconds']:.1f} s)")
    if found["generator"] is not None:
        print(f"  the generator's own probabilities (the best possible): {found['generator']:.4f}")
    print(f"  app - better of the two: {found['app'] - best:+.4f}   goal >= -{GOAL_AUC_MARGIN}   "
          f"{'met' if found['app'] >= best - GOAL_AUC_MARGIN else 'NOT met'}")
    print(f"  rule score's AUC on the same holdout: {metrics.get('rule_auc')} (no rules run in this benchmark)")


if __name__ == "__main__":
    main()
