"""Job health and alerts, for real: failing and stuck policies in a real TimescaleDB, `lifecycle health` as a
CI step, and alerts received by a real HTTP server started by the test."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest

from lifecycle_resources.errors import LifecycleError
from lifecycle_resources.runner import alerts, health
from lifecycle_resources.runner.manager import DataLifecycleManager
from tests.conftest import REPO, sql_run
from tests.test_manager import registered_table

SECRET_PATH = "/services/T0000/B0000/s3cr3t-t0ken"


class Receiver:
    """A real HTTP server on a free local port that records what is POSTed to it."""

    def __init__(self, status: int = 200) -> None:
        received: list[dict] = []
        self.received = received

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers["Content-Length"]))
                received.append({"path": self.path, "type": self.headers["Content-Type"],
                                 "json": json.loads(body)})
                self.send_response(status)
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: object) -> None:
                pass

        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}{SECRET_PATH}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as r:
        yield r


def lifecycle(dsn: str, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("LIFECYCLE_ALERT")}
    return subprocess.run([sys.executable, "-m", "lifecycle_resources.cli", *args],
                          capture_output=True, text=True, cwd=REPO, timeout=300,
                          env={**base, "TSDB_DSN": dsn, "NO_COLOR": "1", **(env or {})})


def failing_policy(dsn: str, schema: str) -> tuple[str, str]:
    """A declared retention policy whose every run fails (its drop_after is not an interval), run once."""
    name, env = registered_table(dsn, schema)
    sql_run(dsn, "SELECT lifecycle.register_lifecycle_policy(%s, %s, 'retention', "
                 "'{\"drop_after\": \"not an interval\"}', NULL, 'proj', 'test', %s)", (name, f"{schema}.ticks", env))
    [run] = DataLifecycleManager(dsn).run(policy=name)
    assert run.status == "failed"
    return name, env


pytestmark = pytest.mark.integration


def test_health_healthy_policy_exits_zero(tsdb_dsn: str, lifecycle_schema: None, schema: str) -> None:
    name, env = registered_table(tsdb_dsn, schema)
    assert DataLifecycleManager(tsdb_dsn).run(policy=name)[0].status == "succeeded"
    out = lifecycle(tsdb_dsn, "health", "--stack", env)
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout.strip() == f"healthy (stack {env})"
    assert out.stderr == ""


def test_health_failing_policy_exits_non_zero_and_alerts(tsdb_dsn: str, lifecycle_schema: None, schema: str,
                                                         receiver: Receiver) -> None:
    name, env = failing_policy(tsdb_dsn, schema)
    out = lifecycle(tsdb_dsn, "health", "--stack", env, env={"LIFECYCLE_ALERT_WEBHOOK": receiver.url})
    assert out.returncode == 2, out.stdout + out.stderr
    [row] = [ln for ln in out.stdout.splitlines() if ln.startswith("failing")]
    assert name in row and f"{schema}.ticks" in row and "last 1 run(s) failed" in row
    assert "invalid input syntax for type interval" in row or "not an interval" in row
    # one structured log line per problem
    [record] = [json.loads(ln) for ln in out.stderr.splitlines()]
    assert record["event"] == "lifecycle.problem" and record["kind"] == "failing"
    assert record["subject"] == name and record["hypertable"] == f"{schema}.ticks"
    # the webhook got a Slack-compatible message, and its URL appears nowhere
    [got] = receiver.received
    assert got["path"] == SECRET_PATH and got["type"] == "application/json"
    assert "1 lifecycle problem" in got["json"]["text"]
    assert name in got["json"]["blocks"][1]["text"]["text"]
    assert "s3cr3t" not in out.stdout + out.stderr


def test_health_counts_consecutive_failures(tsdb_dsn: str, lifecycle_schema: None, schema: str) -> None:
    name, env = failing_policy(tsdb_dsn, schema)
    assert lifecycle(tsdb_dsn, "health", "--stack", env, "--failures", "2").returncode == 0
    DataLifecycleManager(tsdb_dsn).run(policy=name)
    two = lifecycle(tsdb_dsn, "health", "--stack", env, "--failures", "2")
    assert two.returncode == 2 and "last 2 run(s) failed" in two.stdout


def test_health_stuck_policy(tsdb_dsn: str, lifecycle_schema: None, schema: str) -> None:
    """Declared three days ago, runs daily, never run: stuck. Once run: healthy."""
    name, env = registered_table(tsdb_dsn, schema)
    sql_run(tsdb_dsn, "UPDATE lifecycle.policy_declarations SET registered_at = now() - interval '3 days' "
                      "WHERE policy_name = %s", (name,))
    out = lifecycle(tsdb_dsn, "health", "--stack", env)
    assert out.returncode == 2, out.stdout + out.stderr
    [row] = [ln for ln in out.stdout.splitlines() if ln.startswith("stuck")]
    assert name in row and "runs every 1d" in row and "never ran successfully" in row
    # a grace of 3 days says it is not late enough yet
    assert lifecycle(tsdb_dsn, "health", "--stack", env, "--grace", str(3 * 24 * 60)).returncode == 0
    DataLifecycleManager(tsdb_dsn).run(policy=name)
    assert lifecycle(tsdb_dsn, "health", "--stack", env).returncode == 0


def test_status_shows_health(tsdb_dsn: str, lifecycle_schema: None, schema: str) -> None:
    name, env = failing_policy(tsdb_dsn, schema)
    out = lifecycle(tsdb_dsn, "status", "--stack", env)
    assert out.returncode == 0, out.stderr
    health_part = out.stdout.split("Health (lifecycle health)")[1]
    assert "failing" in health_part and name in health_part


def test_run_failure_alerts_webhook(tsdb_dsn: str, lifecycle_schema: None, schema: str, receiver: Receiver,
                                    tmp_path: Path) -> None:
    name, env = registered_table(tsdb_dsn, schema)
    sql_run(tsdb_dsn, "SELECT lifecycle.register_lifecycle_policy(%s, %s, 'retention', "
                      "'{\"drop_after\": \"not an interval\"}', NULL, 'proj', 'test', %s)",
            (name, f"{schema}.ticks", env))
    secret_file = tmp_path / "webhook"
    secret_file.write_text(receiver.url + "\n")
    secret_file.chmod(0o600)
    out = lifecycle(tsdb_dsn, "run", "--policy", name, "--webhook-file", str(secret_file))
    assert out.returncode == 1
    [got] = receiver.received
    assert got["json"]["text"].startswith(":rotating_light: lifecycle run: 1 lifecycle problem")
    assert name in got["json"]["blocks"][1]["text"]["text"]
    assert "s3cr3t" not in out.stdout + out.stderr


def test_alerts_webhook_file_must_be_private(tmp_path: Path) -> None:
    path = tmp_path / "webhook"
    path.write_text("https://hooks.example/services/s3cr3t\n")
    path.chmod(0o644)
    with pytest.raises(LifecycleError, match="readable by other users") as err:
        alerts.webhook_url(path, env={})
    assert "s3cr3t" not in str(err.value)
    path.chmod(0o600)
    assert alerts.webhook_url(path, env={}) == "https://hooks.example/services/s3cr3t"
    assert alerts.webhook_url(None, env={alerts.WEBHOOK_ENV: "https://x/y"}) == "https://x/y"
    assert alerts.webhook_url(None, env={}) is None
    with pytest.raises(LifecycleError, match="not an http\\(s\\) URL") as err:
        alerts.send("file:///etc/s3cr3t", {"text": "x"})
    assert "s3cr3t" not in str(err.value)


def test_alerts_refused_or_unreachable_webhook_names_no_url() -> None:
    problem = health.Problem("failing", "p", "s.t", None, None, "boom")
    with Receiver(status=500) as r:
        with pytest.raises(LifecycleError, match="HTTP 500") as err:
            alerts.send(r.url, alerts.slack_payload([problem], "test"))
        assert len(r.received) == 1
    assert "s3cr3t" not in str(err.value) and "127.0.0.1" not in str(err.value)
    with pytest.raises(LifecycleError, match="unreachable") as err:
        alerts.send(r.url, {"text": "x"}, timeout=2)  # the server is gone now
    assert "s3cr3t" not in str(err.value)


def _row(**over: object) -> dict:
    now = datetime(2026, 11, 29, 12, tzinfo=timezone.utc)
    row = {"policy_name": "p", "hypertable": "s.t", "kind": "retention", "stack": "proj/dev",
           "registered_at": now - timedelta(days=10), "every": timedelta(days=1), "last_error": None,
           "last_success": now - timedelta(hours=5), "failures": 0, "failing_since": None,
           "due_at": now - timedelta(hours=5) + timedelta(days=1), "now": now}
    row.update(over)
    return row


@pytest.mark.parametrize(("row", "kinds"), [
    (_row(), []),
    (_row(failures=1, last_error="boom"), ["failing"]),
    (_row(failures=3, due_at=datetime(2026, 11, 1, tzinfo=timezone.utc)), ["failing"]),  # one problem, not two
    (_row(due_at=datetime(2026, 11, 28, 11, 59, tzinfo=timezone.utc)), ["stuck"]),
    (_row(due_at=datetime(2026, 11, 28, 12, 1, tzinfo=timezone.utc)), []),  # late, within one interval
])
def test_health_policy_problems_pure(row: dict, kinds: list[str]) -> None:
    assert [p.kind for p in health.policy_problems([row])] == kinds


def test_health_refresh_warns_about_a_stuck_policy(tsdb_dsn: str, lifecycle_schema: None, schema: str) -> None:
    """The provider's read (pulumi refresh) says the problems of its own policy, and only those."""
    from lifecycle_resources import RetentionPolicyProvider
    from lifecycle_resources.resources import health_warnings

    name, env = registered_table(tsdb_dsn, schema)
    p = RetentionPolicyProvider()
    p._config_dsn = tsdb_dsn
    [(job_id,)] = sql_run(tsdb_dsn, "SELECT job_id FROM lifecycle.policy_declarations WHERE policy_name = %s", (name,))
    props = {"resource_name": name, "hypertable": f"{schema}.ticks", "registration": {"project": "proj",
                                                                                      "stack": "test"}}
    assert health_warnings.warn_unhealthy(p, str(job_id), props) == []
    sql_run(tsdb_dsn, "UPDATE lifecycle.policy_declarations SET registered_at = now() - interval '3 days' "
                      "WHERE policy_name = %s", (name,))
    [said] = health_warnings.warn_unhealthy(p, str(job_id), props)
    assert said.startswith(f"RetentionPolicy {name}: stuck: {name} on {schema}.ticks (stack proj/test)")
    assert health_warnings.warn_unhealthy(p, str(job_id), {**props, "resource_name": "another"}) == []


def test_health_without_the_lifecycle_schema_checks_jobs_only(tmp_path: Path) -> None:
    from tests.conftest import fresh_server

    with fresh_server(tmp_path / "server") as dsn:
        out = lifecycle(dsn, "health")
        stacked = lifecycle(dsn, "health", "--stack", "dev")
    assert out.returncode == 0 and out.stdout.strip() == "healthy", out.stdout + out.stderr
    assert stacked.returncode == 0 and stacked.stdout.strip() == "healthy (stack dev)", stacked.stderr
