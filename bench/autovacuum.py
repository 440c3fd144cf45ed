"""Autovacuum's work, for a benchmark run against a server where it is off.

Production servers vacuum and analyze with autovacuum. A server started without it (some CI servers are) never
does: dead rows pile up in the tables a run churns, and statements planned on missing statistics stay slow. The
foreign-key check of every new activity, planned while the lead table looks empty, walks a whole index of that
table instead of its primary key, so a run gets slower with every lead it captures. A benchmark on such a server
would measure the server's setting, not the app.

`Autovacuum(connection).start()` does nothing when the server's autovacuum is on. When it is off, a thread does
what autovacuum would: every `autovacuum_naptime` (and once at start), it VACUUMs or ANALYZEs each table that
crossed the server's own thresholds. It works over a connection of its own, named `bench-autovacuum`, so a
benchmark that counts the database's CPU counts this work as PostgreSQL's, as it would count autovacuum's.
"""

import threading

import psycopg
from psycopg import sql

APPLICATION = "bench-autovacuum"
SETTINGS = ("autovacuum_naptime", "autovacuum_vacuum_threshold", "autovacuum_vacuum_scale_factor",
            "autovacuum_vacuum_insert_threshold", "autovacuum_vacuum_insert_scale_factor",
            "autovacuum_analyze_threshold", "autovacuum_analyze_scale_factor")

# The tables past a threshold, as autovacuum's launcher decides (reltuples is -1 before the first look: none).
DUE = """
SELECT s.schemaname, s.relname,
       s.n_dead_tup > %(autovacuum_vacuum_threshold)s
                      + %(autovacuum_vacuum_scale_factor)s * greatest(c.reltuples, 0)
       OR s.n_ins_since_vacuum > %(autovacuum_vacuum_insert_threshold)s
                                 + %(autovacuum_vacuum_insert_scale_factor)s * greatest(c.reltuples, 0) AS vacuum,
       s.n_mod_since_analyze > %(autovacuum_analyze_threshold)s
                               + %(autovacuum_analyze_scale_factor)s * greatest(c.reltuples, 0) AS analyze
FROM pg_stat_user_tables s JOIN pg_class c ON c.oid = s.relid
"""


class Autovacuum:
    def __init__(self, connection):
        """`connection`: the benchmark's Django connection, whose database and credentials this uses."""
        self.params = {**connection.get_connection_params(), "application_name": APPLICATION, "autocommit": True}
        self.stopping = threading.Event()
        self.thread = None
        self.passes = self.vacuums = self.analyzes = 0

    def start(self) -> "Autovacuum":
        with psycopg.connect(**self.params) as conn:
            self.setting = conn.execute("SHOW autovacuum").fetchone()[0]
            self.thresholds = dict(conn.execute("SELECT name, setting::float FROM pg_settings WHERE name = ANY(%s)",
                                                [list(SETTINGS)]).fetchall())
        if self.setting != "on":
            self.thread = threading.Thread(target=self._run, name=APPLICATION, daemon=True)
            self.thread.start()
        return self

    def stop(self) -> None:
        self.stopping.set()
        if self.thread is not None:
            self.thread.join()

    def describe(self) -> str:
        if self.thread is None:
            return f"autovacuum {self.setting}"
        return (f"autovacuum off on the server: done in its place every {self.thresholds['autovacuum_naptime']:.0f} s "
                f"({self.passes} passes, {self.vacuums} vacuums, {self.analyzes} analyzes)")

    def _run(self) -> None:
        with psycopg.connect(**self.params) as conn:
            while True:
                self._pass(conn)
                if self.stopping.wait(self.thresholds["autovacuum_naptime"]):
                    return

    def _pass(self, conn) -> None:
        self.passes += 1
        for schema, table, vacuum, analyze in conn.execute(DUE, self.thresholds).fetchall():
            if self.stopping.is_set():
                return
            name = sql.Identifier(schema, table)
            if vacuum:
                conn.execute(sql.SQL("VACUUM (ANALYZE {}) {}").format(sql.SQL("ON" if analyze else "OFF"), name))
                self.vacuums += 1
            elif analyze:
                conn.execute(sql.SQL("ANALYZE {}").format(name))
            self.analyzes += analyze
