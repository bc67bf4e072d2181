"""Job health: what is wrong with the declared lifecycle policies and their TimescaleDB jobs, for `lifecycle
health` (a CI step or a liveness check: its exit status says healthy or not) and `lifecycle status`.

Four signals, each a Problem:
- failing:     a declared policy's last runs by the runner (lifecycle_executions, dry runs aside) failed;
- stuck:       a declared policy has not run successfully although it was due more than a grace period ago;
- job_failing: TimescaleDB's scheduler reports the policy job's last run failed (job_stats, job_errors);
- job_stuck:   a scheduled job's next start lies more than a grace period in the past.
The scheduler's figures exist only where a scheduler runs (not on the embedded server); the runner's always.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any

import psycopg
from psycopg.rows import dict_row

KINDS = ("failing", "stuck", "job_failing", "job_stuck")


@dataclass(frozen=True)
class Problem:
    kind: str             # one of KINDS
    subject: str          # the policy name, or "job <id>"
    hypertable: str
    stack: str | None
    since: datetime | None
    detail: str

    def describe(self) -> str:
        where = f" (stack {self.stack})" if self.stack else ""
        return f"{self.kind}: {self.subject} on {self.hypertable}{where}: {self.detail}"

    def as_record(self) -> dict[str, Any]:
        record = asdict(self)
        record["since"] = self.since.isoformat() if self.since else None
        return record


# One row per live declaration: consecutive failures since its last success, when it was last due.
# A never-run policy is due from its registration; `grace` defaults to one schedule interval.
_POLICIES = """
WITH live AS (
    SELECT s.*, coalesce(s.schedule_interval, lifecycle._try_interval(s.parameters ->> 'schedule_interval'),
                         interval '1 day') AS every
      FROM lifecycle.lifecycle_policy_status s
     WHERE s.enabled
       AND (%(stack)s::text IS NULL OR s.stack = %(stack)s OR s.environment = %(stack)s
            OR split_part(s.stack, '/', 2) = %(stack)s)
)
SELECT l.policy_name, l.hypertable, l.kind, l.stack, l.registered_at, l.every, l.last_error,
       ok.finished_at AS last_success,
       (SELECT count(*) FROM lifecycle.lifecycle_executions x
         WHERE x.policy_name = l.policy_name AND (x.stack IS NULL OR x.stack = l.stack)
           AND NOT x.dry_run AND x.status = 'failed'
           AND x.started_at > coalesce(ok.finished_at, '-infinity')) AS failures,
       (SELECT min(x.started_at) FROM lifecycle.lifecycle_executions x
         WHERE x.policy_name = l.policy_name AND (x.stack IS NULL OR x.stack = l.stack)
           AND NOT x.dry_run AND x.status = 'failed'
           AND x.started_at > coalesce(ok.finished_at, '-infinity')) AS failing_since,
       greatest(coalesce(ok.finished_at, l.registered_at), l.registered_at) + l.every AS due_at,
       now() AS now
  FROM live l
  LEFT JOIN LATERAL (
      SELECT max(x.finished_at) AS finished_at FROM lifecycle.lifecycle_executions x
       WHERE x.policy_name = l.policy_name AND (x.stack IS NULL OR x.stack = l.stack)
         AND NOT x.dry_run AND x.status = 'succeeded') ok ON true
 ORDER BY l.hypertable, l.policy_name
"""

# TimescaleDB's own record of the policy jobs it scheduled (user jobs on hypertables only).
_JOBS = """
SELECT j.job_id, format('%%I.%%I', j.hypertable_schema, j.hypertable_name) AS hypertable, j.proc_name,
       j.scheduled, j.schedule_interval, s.last_run_status, s.last_run_started_at, s.next_start, s.job_status,
       s.total_failures, now() AS now,
       (SELECT e.err_message FROM timescaledb_information.job_errors e
         WHERE e.job_id = j.job_id ORDER BY e.finish_time DESC LIMIT 1) AS last_error
  FROM timescaledb_information.jobs j
  JOIN timescaledb_information.job_stats s ON s.job_id = j.job_id
 WHERE j.job_id >= 1000 AND j.hypertable_name IS NOT NULL
   AND (%(jobs)s::int[] IS NULL OR j.job_id = ANY (%(jobs)s::int[]))
 ORDER BY j.job_id
"""


def _has_lifecycle_schema(conn: psycopg.Connection) -> bool:
    row = conn.execute("SELECT to_regclass('lifecycle.policy_declarations') IS NOT NULL").fetchone()
    return bool(row and row[0])


def _stack_job_ids(conn: psycopg.Connection, stack: str) -> list[int]:
    rows = conn.execute("SELECT job_id FROM lifecycle.policy_declarations WHERE enabled AND job_id IS NOT NULL "
                        "AND (lifecycle._stack_label(project, stack) = %(s)s OR stack = %(s)s "
                        "OR environment = %(s)s)", {"s": stack}).fetchall()
    return [r[0] for r in rows]


def policy_problems(rows: list[dict[str, Any]], *, failures: int = 1, grace: timedelta | None = None) -> list[Problem]:
    """The problems of the declared policies, from the rows of _POLICIES (pure: tested without a database)."""
    found = []
    for r in rows:
        if r["failures"] >= failures:
            found.append(Problem("failing", r["policy_name"], r["hypertable"], r["stack"], r["failing_since"],
                                 f"its last {r['failures']} run(s) failed: {r['last_error'] or 'no error recorded'}"))
            continue  # a failing policy is overdue too: one problem says it
        late_by = r["now"] - r["due_at"]
        if late_by > (grace if grace is not None else r["every"]):
            last = (f"last success {r['last_success']:%Y-%m-%d %H:%M}" if r["last_success"]
                    else "never ran successfully")
            found.append(Problem("stuck", r["policy_name"], r["hypertable"], r["stack"], r["due_at"],
                                 f"due since {r['due_at']:%Y-%m-%d %H:%M} ({_span(late_by)} ago, runs every "
                                 f"{_span(r['every'])}); {last}"))
    return found


def job_problems(rows: list[dict[str, Any]], *, grace: timedelta | None = None) -> list[Problem]:
    found = []
    for r in rows:
        subject = f"job {r['job_id']} ({r['proc_name']})"
        if r["last_run_status"] == "Failed":
            found.append(Problem("job_failing", subject, r["hypertable"], None, r["last_run_started_at"],
                                 f"TimescaleDB's last run failed ({r['total_failures']} failures in all): "
                                 f"{r['last_error'] or 'no error recorded in job_errors'}"))
        elif (r["scheduled"] and r["next_start"] is not None and r["job_status"] != "Running"
              and r["next_start"] != datetime.max.replace(tzinfo=r["next_start"].tzinfo)
              and r["now"] - r["next_start"] > (grace if grace is not None else r["schedule_interval"])):
            found.append(Problem("job_stuck", subject, r["hypertable"], None, r["next_start"],
                                 f"scheduled to start at {r['next_start']:%Y-%m-%d %H:%M}, "
                                 f"{_span(r['now'] - r['next_start'])} ago, and has not"))
    return found


def check(conn: psycopg.Connection, *, stack: str | None = None, failures: int = 1,
          grace: timedelta | None = None, every_job: bool = False) -> list[Problem]:
    """Everything wrong now, in the declared policies (when the lifecycle schema is installed) and in the
    TimescaleDB jobs: of `stack`'s declarations when a stack is given, unless `every_job` (a caller that
    knows its own job id, as a provider does at refresh, needs no declarations to find it)."""
    found: list[Problem] = []
    jobs: list[int] | None = None
    with conn.cursor(row_factory=dict_row) as cur:
        if _has_lifecycle_schema(conn):
            found += policy_problems(cur.execute(_POLICIES, {"stack": stack}).fetchall(), failures=failures,
                                     grace=grace)
            if stack is not None and not every_job:
                jobs = _stack_job_ids(conn, stack)
        elif stack is not None and not every_job:
            jobs = []  # no declarations: no job belongs to the stack
        found += job_problems(cur.execute(_JOBS, {"jobs": jobs}).fetchall(), grace=grace)
    return found


def _span(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if abs(seconds) >= size:
            return f"{seconds / size:.1f}{unit}".replace(".0", "")
    return f"{seconds}s"


HEADERS = ["problem", "policy / job", "hypertable", "stack", "since", "detail"]


def rows_of(problems: list[Problem]) -> list[tuple[Any, ...]]:
    return [(p.kind, p.subject, p.hypertable, p.stack or "", p.since.strftime("%Y-%m-%d %H:%M") if p.since else "",
             p.detail) for p in problems]
