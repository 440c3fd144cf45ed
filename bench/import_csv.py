"""Import benchmark: rows/s of a 100,000-row CSV import beside raw COPY of the same file.

    make bench-import                    (or: python bench/import_csv.py [--rows N] [--repeat N])

Each repetition, on the same database and connection:
  * raw COPY   - the CSV bytes COPYed as they are into a bare table of text columns (no checks,
                 no indexes): the bound the import is compared with;
  * SQL floor  - one hand-written INSERT ... SELECT of those rows into leads_lead plus their activities,
                 with no validation or merging, then rolled back: what the schema alone costs;
  * lead COPY  - the floor's leads, already in the lead table's shape, COPYed into a copy of leads_lead without,
                 then with, its indexes and constraints: what the table costs any loader, with nothing to check;
  * import     - what the `imports` worker runs (`leads.imports.run_import`): parse, validate, dedupe,
                 stage with COPY, create/merge leads and write their `imported` activities;
  * upload     - the checks done when the file is uploaded (`create_import`), shown separately.
The file is realistic rather than easy: mixed phone formats on half the rows, placeholders,
duplicates inside the file, 5% of rows matching existing leads (merged) and 1% invalid rows.
A throwaway organization is created for each repetition and removed afterwards.
"""

import argparse
import csv
import io
import os
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "leadcrm.settings")

import django  # noqa: E402

django.setup()

from django.core.files.uploadedfile import SimpleUploadedFile  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connection, transaction  # noqa: E402

from leadcrm import events  # noqa: E402
from leadcrm import services as core_services  # noqa: E402
from leadcrm.models import Organization  # noqa: E402
from leads import imports  # noqa: E402
from leads.models import Activity, ImportJob, Lead  # noqa: E402

HEADER = ["First Name", "Last Name", "E-mail Address", "Phone Number", "Company Name", "Job Title", "Country",
          "City", "Lead Source", "Industry", "Employees", "Website", "Tags"]
FIRST = ["Ada", "Grace", "Alan", "Edsger", "Barbara", "Donald", "Margaret", "Linus", "Ken", "Frances", "Zoë"]
LAST = ["Lovelace", "Hopper", "Turing", "Dijkstra", "Liskov", "Knuth", "Hamilton", "Torvalds", "Müller"]
TITLES = ["CTO", "VP Marketing", "Engineer", "Head of Sales", "Select", "", "Founder", "N/A"]
COUNTRIES = [("US", "Austin"), ("GB", "London"), ("DE", "Berlin"), ("FR", "Paris"), ("US", "Boston")]
SOURCES = ["webinar", "trade show", "--", "partner", "ebook download", ""]


def phone_for(i: int, country: str) -> str:
    n = 5550000 + i % 9999
    return {
        0: f"+1 415-{n // 10000:03d}-{n % 10000:04d}",
        1: f"(415) {n // 10000:03d}-{n % 10000:04d}" if country == "US" else f"+44 20 7946 {i % 10000:04d}",
        2: f"+49 30 {1000000 + i % 8999999}",
        3: f"+1{4155550000 + i % 9999}",
    }[i % 4]


def make_csv(rows: int, existing: int, seed: int = 7) -> bytes:
    rng = random.Random(seed)
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(HEADER)
    for i in range(rows):
        country, city = COUNTRIES[i % len(COUNTRIES)]
        if i % 100 == 0:
            email = f"broken-address-{i}"  # 1% invalid: reported, not imported
        elif i % 20 == 1:
            email = f"Existing{rng.randrange(existing)}@Bench.example"  # 5% merge into existing leads
        elif i % 50 == 2 and i > 2:
            email = f"lead{i - 1}@bench.example"  # 2% repeat an earlier row of the file
        else:
            email = f"lead{i}@bench.example"
        writer.writerow([
            rng.choice(FIRST), rng.choice(LAST), email, phone_for(i, country) if i % 2 == 0 else "",
            f"Company {i % 7919}", rng.choice(TITLES), country, city, rng.choice(SOURCES), "Software",
            str(10 + i % 5000), f"https://company{i % 7919}.example", "bench;2024" if i % 3 == 0 else "",
        ])
    return out.getvalue().encode()


class _RolledBack(Exception):
    pass


def floor_sql(organization_id) -> tuple[str, dict]:
    """One statement writing the file's leads and their activities with no checks and no merging:
    the least the database itself must do for this import with the app's schema (indexes, FKs)."""
    params = {"org": organization_id}
    given = {
        "id": "gen_random_uuid()", "organization_id": "%(org)s::uuid", "email": "lower(c2)",
        **{name: f"coalesce(c{i}, '')" for name, i in (("first_name", 0), ("last_name", 1), ("company", 4),
           ("job_title", 5), ("country", 6), ("city", 7), ("source", 8), ("industry", 9), ("website", 11))},
        "company_size": "c10::integer",
        **{name: "''" for name in ("phone", "region", "timezone", "source_type", "utm_source", "utm_medium",
                                   "utm_campaign", "utm_term", "utm_content")},
        "first_touch": "'{}'::jsonb", "last_touch": "'{}'::jsonb", "stage_entered_at": "'{}'::jsonb",
        "tags": "'{}'::varchar(64)[]", "custom_fields": "'{}'::jsonb", "last_activity_at": "now()",
        "created_at": "now()", "updated_at": "now()",
    }
    lead_columns, lead_select = imports._insert_sql(Lead, given, params)
    activity_columns, activity_select = imports._insert_sql(Activity, {
        "id": "gen_random_uuid()", "organization_id": "%(org)s::uuid", "lead_id": "id", "type": "'imported'",
        "properties": "'{}'::jsonb", "occurred_at": "now()", "actor_id": "NULL", "created_at": "now()",
    }, params)
    sql = (
        f"WITH leads AS (INSERT INTO leads_lead ({lead_columns})"
        f" SELECT {lead_select} FROM (SELECT DISTINCT ON (lower(c2)) * FROM bench_raw_copy WHERE c2 LIKE '%%@%%') r"
        f" ON CONFLICT (organization_id, email) WHERE email <> '' DO NOTHING RETURNING id)"
        f" INSERT INTO leads_activity ({activity_columns}) SELECT {activity_select} FROM leads"
    )
    return sql, params


def bounds_seconds(data: bytes, organization_id) -> dict:
    """Seconds of the bounds, all rolled back: raw COPY of the file into a bare table; the hand-written SQL floor;
    and COPY of the same leads, already in the lead table's shape, into a copy of that table without and with its
    indexes and constraints (what the lead table costs any loader, before any check or merge)."""
    columns = ", ".join(f"c{i} text" for i in range(len(HEADER)))
    sql, params = floor_sql(organization_id)
    lead_columns = ", ".join(f.column for f in Lead._meta.concrete_fields if not f.generated)
    times = {}
    try:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(f"CREATE TABLE bench_raw_copy ({columns})")
            started = time.perf_counter()
            with cursor.cursor.copy("COPY bench_raw_copy FROM STDIN (FORMAT csv, HEADER true)") as copy:
                copy.write(data)
            times["raw"] = time.perf_counter() - started
            started = time.perf_counter()
            cursor.execute(sql, params)
            imports._refresh_statistics_if_outgrown(cursor, cursor.rowcount)  # as the import does per chunk
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")  # the foreign-key checks a commit would run
            times["floor"] = time.perf_counter() - started

            # the floor's leads, lead-shaped, in COPY's own format (not timed)
            cursor.execute(f"CREATE TABLE bench_lead_rows AS SELECT {lead_columns} FROM leads_lead "
                           "WHERE organization_id = %s AND created_at = now()", [organization_id])
            with cursor.cursor.copy("COPY bench_lead_rows TO STDOUT") as copy:
                lead_rows = b"".join(copy)
            cursor.execute("CREATE TABLE bench_lead_bare (LIKE leads_lead INCLUDING DEFAULTS)")
            cursor.execute("CREATE TABLE bench_lead_indexed (LIKE leads_lead INCLUDING ALL)")
            for table in ("bench_lead_bare", "bench_lead_indexed"):
                started = time.perf_counter()
                with cursor.cursor.copy(f"COPY {table} ({lead_columns}) FROM STDIN") as copy:
                    copy.write(lead_rows)
                times[table] = time.perf_counter() - started
            raise _RolledBack
    except _RolledBack:
        pass
    return times


def seed_existing(organization_id, count: int) -> None:
    """Leads the file will merge into (not timed)."""
    Lead.objects.bulk_create(
        [Lead(organization_id=organization_id, email=f"existing{i}@bench.example", company="Kept Co")
         for i in range(count)], batch_size=5000,
    )


def cleanup(organization: Organization) -> None:
    with connection.cursor() as cursor:
        # The touch table has no index that starts with lead_id, so each deleted lead's foreign-key check reads the
        # whole table, dead rows included: empty it of this org's rows and vacuum it before the leads go.
        cursor.execute("DELETE FROM leads_touch WHERE organization_id = %s", [organization.pk])
        cursor.execute("VACUUM leads_touch")
        # On a fresh database autovacuum has not looked at the tables yet: without statistics the foreign-key
        # checks of the deletes below may be planned as scans, one per deleted lead.
        cursor.execute("ANALYZE leads_lead, leads_activity, leads_touch, leads_importrowerror")
    with transaction.atomic(), connection.cursor() as cursor:
        for table in ("leads_activity", "leads_consentrecord", "leads_deal", "leads_account", "leads_importrowerror",
                      "leads_lead"):
            cursor.execute(f"DELETE FROM {table} WHERE organization_id = %s", [organization.pk])
    users = [m.user for m in organization.memberships.select_related("user")]
    organization.delete()
    for user in users:
        user.delete()


def once(data: bytes, rows: int, existing: int, run: int) -> dict:
    slug = f"bench-import-{os.getpid()}-{run}"
    organization = core_services.create_organization(
        slug=slug, name="Import benchmark", owner_email=f"{slug}@bench.example", owner_password=None,
    )
    try:
        seed_existing(organization.pk, existing)
        bounds = bounds_seconds(data, organization.pk)
        started = time.perf_counter()
        with transaction.atomic():
            job = imports.create_import(
                organization_id=organization.pk, created_by=None, mapping=None,
                upload=SimpleUploadedFile("bench.csv", data, content_type="text/csv"),
            )
            imports.start_import(job=job)
        upload = time.perf_counter() - started
        started = time.perf_counter()
        imports.run_import(import_id=job.pk)
        work = time.perf_counter() - started
        job = ImportJob.objects.get(pk=job.pk)
        assert job.status == "done", job.error_message
        assert job.processed_rows == rows
        return {**bounds, "upload": upload, "work": work, "created": job.created_count,
                "merged": job.merged_count, "failed": job.failed_count}
    finally:
        cleanup(organization)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--existing", type=int, default=5_000)
    args = parser.parse_args()

    call_command("migrate", verbosity=0)
    # A throwaway org's import must not queue follow-up work (scoring etc.) for consumers.
    events._handlers.pop(events.LEADS_IMPORTED, None)

    data = make_csv(args.rows, args.existing)
    print(f"CSV: {args.rows:,} rows, {len(HEADER)} columns, {len(data) / 1e6:.1f} MB; "
          f"{args.existing:,} existing leads; PostgreSQL {connection.cursor().connection.info.server_version}; "
          f"{os.cpu_count()} CPUs")
    results = [once(data, args.rows, args.existing, run) for run in range(args.repeat)]
    first = results[0]
    print(f"outcome: {first['created']:,} created, {first['merged']:,} merged, {first['failed']:,} failed")

    def median(key):
        return statistics.median(r[key] for r in results)

    raw, floor, upload, work = median("raw"), median("floor"), median("upload"), median("work")
    total = upload + work

    def line(label, seconds, note=""):
        print(f"{label:<50}{seconds:8.3f}  {args.rows / seconds:10,.0f}   {note}")

    print(f"\n{'median of ' + str(args.repeat) + ' run(s)':<50} seconds      rows/s")
    line("raw COPY into a bare table (the bound)", raw)
    line("SQL floor: INSERT leads + activities, no checks", floor, f"{100 * raw / floor:5.1f}% of raw COPY")
    line("import: worker (run_import)", work, f"{100 * raw / work:5.1f}% of raw COPY, "
         f"{100 * floor / work:5.1f}% of the SQL floor")
    line("import: upload checks + worker", total, f"{100 * raw / total:5.1f}% of raw COPY")
    print("goal: import at least 25% of raw COPY's rows/s")
    bare, indexed = median("bench_lead_bare"), median("bench_lead_indexed")
    print("\nwhat the lead table costs any loader (the floor's leads, already lead-shaped, no activities):")
    line("COPY into a copy of the lead table, no indexes", bare, f"{100 * raw / bare:5.1f}% of raw COPY")
    line("COPY into a copy with its indexes, constraints", indexed, f"{100 * raw / indexed:5.1f}% of raw COPY; "
         f"the import is at {100 * indexed / work:5.1f}% of it")


if __name__ == "__main__":
    main()
