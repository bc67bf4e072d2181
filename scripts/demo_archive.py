"""The demo's archive round trip (scripts/demo.sh): `keep` sets aside one stream_data day that the retention will
archive and drop (once: a later demo finds it kept), `range` prints that day's bounds, `compare` counts the rows
that differ between the day set aside and its restore, both ways (EXCEPT ALL), and fails unless there are none."""

from __future__ import annotations

import os
import sys

import psycopg

KEPT = "public.demo_archived_day"
RESTORED = "public.stream_data_restored"


def main(action: str) -> int:
    with psycopg.connect(os.environ["TSDB_DSN"], autocommit=True) as conn:
        conn.execute("SET TimeZone = 'UTC'")
        if action == "keep":
            # 40 days ago: past the dev stack's 30-day retention, so this run archives and drops its chunk.
            conn.execute(f"CREATE TABLE IF NOT EXISTS {KEPT} AS SELECT * FROM public.stream_data "
                         "WHERE ts >= date_trunc('day', now()) - interval '40 days' "
                         "AND ts < date_trunc('day', now()) - interval '39 days'")
            [(rows, day)] = conn.execute(f"SELECT count(*), min(date_trunc('day', ts))::date FROM {KEPT}").fetchall()
            print(f"{KEPT}: {rows} rows of {day}")
        elif action == "range":
            [(start, end)] = conn.execute(f"SELECT min(date_trunc('day', ts)), min(date_trunc('day', ts)) + "
                                          f"interval '1 day' FROM {KEPT}").fetchall()
            print(start.isoformat(), end.isoformat())
        else:
            [(missing, extra, restored)] = conn.execute(
                f"SELECT (SELECT count(*) FROM (SELECT * FROM {KEPT} EXCEPT ALL SELECT * FROM {RESTORED}) a), "
                f"(SELECT count(*) FROM (SELECT * FROM {RESTORED} EXCEPT ALL SELECT * FROM {KEPT}) b), "
                f"(SELECT count(*) FROM {RESTORED})").fetchall()
            print(f"{restored} rows restored; rows set aside but not restored: {missing}; rows restored but not set "
                  f"aside: {extra}: {missing + extra} differences")
            return 1 if missing + extra or not restored else 0  # nothing restored proves nothing
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
