"""The archive on S3: a real S3 HTTP API on localhost (moto's server mode), started and stopped by these tests."""

from __future__ import annotations

import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from moto.server import ThreadedMotoServer

from lifecycle_resources.runner.archive import archiver
from lifecycle_resources.runner.archive.store import S3Store, open_store
from lifecycle_resources.runner.manager import DataLifecycleManager
from tests.archive_helpers import before_expiring_end, lifecycle, make_ticks, rows_text
from tests.conftest import sql_run

pytestmark = pytest.mark.integration

KEY_ID = "AKIALIFECYCLETEST"
SECRET = "s3cr3t-Never-In-Logs-9f8e7d"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class S3Server:
    """moto's S3 server in a thread; its objects survive a stop and a start (they live in this process)."""

    def __init__(self) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._server: ThreadedMotoServer | None = None

    def start(self) -> None:
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)
        self._server.start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None


@pytest.fixture(scope="module")
def s3_server() -> Iterator[S3Server]:
    server = S3Server()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def bucket(s3_server: S3Server, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", KEY_ID)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_server.url)
    name = f"archive-{uuid.uuid4().hex[:10]}"
    boto3.client("s3", endpoint_url=s3_server.url, region_name="us-east-1").create_bucket(Bucket=name)
    return name


def test_s3_store_manifest_written_once_and_partial_data_overwritten(bucket: str, tmp_path: Path) -> None:
    store = open_store(f"s3://{bucket}/prod/ticks")
    assert isinstance(store, S3Store) and repr(store) == f"S3Store('s3://{bucket}/prod/ticks')"
    assert store.put_once("t/a.manifest.json", b"one") is True
    assert store.put_once("t/a.manifest.json", b"two") is False  # IfNoneMatch: *
    assert store.read("t/a.manifest.json") == b"one"
    src = tmp_path / "d"
    src.write_bytes(b"partial")
    store.put_file("t/a.parquet", src)
    src.write_bytes(b"complete!")
    store.put_file("t/a.parquet", src)
    assert store.size("t/a.parquet") == 9 and store.size("t/none") is None and store.read("t/none") is None
    assert store.keys("t/") == ["t/a.manifest.json", "t/a.parquet"]
    fetched = store.fetch("t/a.parquet", tmp_path)
    assert fetched is not None and fetched.read_bytes() == b"complete!"


def test_s3_archive_round_trip_and_cli_never_show_credentials(tsdb_dsn: str, lifecycle_schema: None, schema: str,
                                                              bucket: str, s3_server: S3Server) -> None:
    rel = make_ticks(tsdb_dsn, schema)
    original = rows_text(tsdb_dsn, rel, before_expiring_end(tsdb_dsn, schema, "10 days"))
    url = f"s3://{bucket}/prod"
    run = lifecycle(tsdb_dsn, "archive", "run", "--table", f"{schema}.ticks", "--older-than", "10 days", "--to", url,
                    "--endpoint-url", s3_server.url)
    assert run.returncode == 0, run.stderr
    keys = open_store(url).keys()
    assert len([k for k in keys if k.endswith(".parquet")]) >= 9
    assert len([k for k in keys if k.endswith(".manifest.json")]) == len([k for k in keys if k.endswith(".parquet")])
    verify = lifecycle(tsdb_dsn, "archive", "verify", "--table", f"{schema}.ticks")
    assert verify.returncode == 0, verify.stdout + verify.stderr

    restored = DataLifecycleManager(tsdb_dsn).restore(f"{schema}.ticks", "2000-01-01", "2100-01-01")
    assert sum(r.rows_loaded for r in restored) == len(original)
    assert rows_text(tsdb_dsn, f'"{schema}".ticks_restored') == original

    # A missing object is reported with a non-zero exit.
    boto3.client("s3", endpoint_url=s3_server.url, region_name="us-east-1").delete_object(
        Bucket=bucket, Key=f"prod/{sorted(k for k in keys if k.endswith('.parquet'))[0]}")
    missing = lifecycle(tsdb_dsn, "archive", "verify", "--table", f"{schema}.ticks")
    assert missing.returncode == 1 and "missing" in missing.stdout

    recorded = sql_run(tsdb_dsn, "SELECT string_agg(x::text, ' ') FROM lifecycle.archives x")[0][0] + \
        sql_run(tsdb_dsn, "SELECT string_agg(x::text, ' ') FROM lifecycle.archive_metadata x")[0][0]
    for out in (run.stdout, run.stderr, verify.stdout, missing.stdout, missing.stderr, recorded):
        assert SECRET not in out and KEY_ID not in out


class StopsMidRun(S3Store):
    """The storage server goes away after the first object is uploaded."""

    def __init__(self, server: S3Server, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.server = server
        self.uploads = 0

    def put_file(self, key: str, path: Path) -> None:
        self.uploads += 1
        if self.uploads == 2:
            self.server.stop()
        super().put_file(key, path)


def test_s3_storage_stopped_mid_run_drops_nothing_unverified_then_converges(
        tsdb_dsn: str, lifecycle_schema: None, schema: str, bucket: str, s3_server: S3Server) -> None:
    rel = make_ticks(tsdb_dsn, schema, compress=1)
    original = rows_text(tsdb_dsn, rel, before_expiring_end(tsdb_dsn, schema, "15 days"))
    store = StopsMidRun(s3_server, bucket, "p", endpoint_url=s3_server.url)
    try:
        results = archiver.archive(tsdb_dsn, f"{schema}.ticks", "15 days", store)
    finally:
        s3_server.start()
    assert results[0].action == "archived" and results[0].state == "dropped"
    assert len(results) >= 3 and all(r.action == "failed" for r in results[1:])
    assert all("Could not connect" in (r.error or "") for r in results[1:]), results[1].error
    states = dict(sql_run(tsdb_dsn, "SELECT state, count(*) FROM lifecycle.archives WHERE hypertable = %s "
                                    "GROUP BY 1", (f"{schema}.ticks",)))
    assert states == {"dropped": 1, "failed": len(results) - 1}
    left = rows_text(tsdb_dsn, rel, before_expiring_end(tsdb_dsn, schema, "15 days"))
    assert len(left) == len(original) - results[0].rows  # only the verified chunk was dropped

    again = archiver.archive(tsdb_dsn, f"{schema}.ticks", "15 days", S3Store(bucket, "p", endpoint_url=s3_server.url))
    assert [r.action for r in again] == ["archived"] * (len(results) - 1)
    data = [k for k in S3Store(bucket, "p", endpoint_url=s3_server.url).keys() if k.endswith(".parquet")]
    assert len(data) == len(results)  # one object per chunk: nothing archived twice
    restored = DataLifecycleManager(tsdb_dsn).restore(f"{schema}.ticks", "2000-01-01", "2100-01-01",
                                                      endpoint_url=s3_server.url)
    assert sum(r.rows_loaded for r in restored) == len(original)
    assert rows_text(tsdb_dsn, f'"{schema}".ticks_restored') == original


def test_s3_runner_archived_policy_takes_credentials_from_the_environment(
        bucket: str, s3_server: S3Server, tsdb_dsn: str, lifecycle_schema: None, schema: str,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """RetentionPolicy(archive=ArchiveStore(s3://...)) run by `lifecycle run`: the store's URL and endpoint from
    lifecycle.archive_stores, its credentials from boto3's chain (here the environment), never from the database."""
    from tests.test_archive_retention import declare, expiring

    rel = make_ticks(tsdb_dsn, schema, compress=1)
    original = rows_text(tsdb_dsn, rel, before_expiring_end(tsdb_dsn, schema, "10 days"))
    old = expiring(tsdb_dsn, schema)
    policy = declare(tsdb_dsn, schema, store_url=f"s3://{bucket}/prod")
    sql_run(tsdb_dsn, "UPDATE lifecycle.archive_stores SET endpoint_url = %s WHERE stack = %s",
            (s3_server.url, schema))
    monkeypatch.delenv("AWS_ENDPOINT_URL")  # the registered endpoint is the one used

    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    [denied] = DataLifecycleManager(tsdb_dsn).run(policy=policy, stack=f"proj/{schema}")
    assert denied.status == "failed" and "is not reachable" in (denied.error or ""), denied
    assert expiring(tsdb_dsn, schema) == old

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", KEY_ID)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    [run] = DataLifecycleManager(tsdb_dsn).run(policy=policy, stack=f"proj/{schema}")
    assert (run.status, run.chunks_affected) == ("succeeded", len(old)), run
    assert expiring(tsdb_dsn, schema) == []
    keys = open_store(f"s3://{bucket}/prod", endpoint_url=s3_server.url).keys()
    assert len([k for k in keys if k.endswith(".parquet")]) == len(old)
    # verify and restore find the endpoint the store registered (no --endpoint-url, no $AWS_ENDPOINT_URL)
    assert all(problems == [] for _, problems in DataLifecycleManager(tsdb_dsn).verify_archive(f"{schema}.ticks"))
    DataLifecycleManager(tsdb_dsn).restore(f"{schema}.ticks", "2000-01-01", "2100-01-01", into=f"{schema}.back")
    assert rows_text(tsdb_dsn, f'"{schema}".back') == original
    recorded = sql_run(tsdb_dsn, "SELECT string_agg(x::text, ' ') FROM lifecycle.archive_stores x")[0][0] + \
        sql_run(tsdb_dsn, "SELECT string_agg(x::text, ' ') FROM lifecycle.lifecycle_executions x WHERE "
                          "policy_name = %s", (policy,))[0][0]
    assert SECRET not in recorded and KEY_ID not in recorded
