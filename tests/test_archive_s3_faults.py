"""The storage server stopped in the middle of one object's multipart upload (a real TCP proxy in front of
moto's S3 server stops it once the first part is received), then restarted: the run fails for that chunk and
drops nothing; the rerun converges with every row archived exactly once; gc aborts the abandoned upload."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest

from lifecycle_resources.runner.archive.store import S3Store
from lifecycle_resources.runner.manager import DataLifecycleManager
from tests.archive_helpers import chunks, lifecycle, rows_text
from tests.conftest import sql_run
from tests.s3_proxy import CutAfterFirstPart
from tests.test_archive_s3 import S3Server, bucket, s3_server  # noqa: F401 - fixtures

pytestmark = pytest.mark.integration

BIG_ROWS = 120_000  # ~15 MB of Parquet: above boto3's 8 MB multipart threshold, two parts or more


def make_big(dsn: str, schema: str) -> str:
    """One old chunk too big for a single PUT, two small old ones after it, one recent one."""
    rel = f'"{schema}".big'
    sql_run(dsn, f"CREATE TABLE {rel} (ts timestamptz NOT NULL, n int, payload text)")
    sql_run(dsn, "SELECT create_hypertable(%s::regclass, by_range('ts', interval '1 day'))", (rel,))
    sql_run(dsn, f"INSERT INTO {rel} SELECT date_trunc('day', now()) - interval '30 days' + g * interval '0.5 s', g, "
                 "md5(g || 'a' || random()) || md5(g || 'b' || random()) || md5(g || 'c' || random()) || "
                 "md5(g || 'd' || random()) || md5(g || 'e' || random()) || md5(g || 'f' || random()) || "
                 "md5(g || 'g' || random()) || md5(g || 'h' || random()) "
                 f"FROM generate_series(1, {BIG_ROWS}) g")
    sql_run(dsn, f"INSERT INTO {rel} SELECT date_trunc('day', now()) - d * interval '1 day' + g * interval '1 h', "
                 "g, md5(g::text) FROM unnest(ARRAY[29, 28, 0]) d, generate_series(1, 10) g")
    return rel


@pytest.fixture
def tmpdir_env(tmp_path: Path) -> Iterator[dict[str, str]]:
    """The runs' own temp dir, to find what they leave there."""
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    yield {"TMPDIR": str(tmp)}


def test_s3_server_stopped_mid_multipart_upload_fails_the_chunk_then_converges(
        tsdb_dsn: str, lifecycle_schema: None, schema: str, bucket: str, s3_server: S3Server,  # noqa: F811
        tmpdir_env: dict[str, str]) -> None:
    rel = make_big(tsdb_dsn, schema)
    old = f"ts < date_trunc('day', now()) - interval '20 days'"
    original = rows_text(tsdb_dsn, rel, old)
    before = chunks(tsdb_dsn, schema)
    url = f"s3://{bucket}/cold"
    args = ("archive", "run", "--table", f"{schema}.big", "--older-than", "20 days", "--to", url)
    s3 = boto3.client("s3", endpoint_url=s3_server.url, region_name="us-east-1")

    proxy = CutAfterFirstPart(s3_server.port, s3_server.stop)
    try:
        cut = lifecycle(tsdb_dsn, *args, "--endpoint-url", proxy.url, env=tmpdir_env)
    finally:
        proxy.close()
        s3_server.start()
    assert proxy.cut.is_set(), "the upload never reached its first part: the object was not multipart"
    assert cut.returncode == 1, cut.stdout + cut.stderr
    lines = cut.stdout.splitlines()
    assert "FAILED" in lines[0] and "upload failed" in lines[0], cut.stdout
    assert "3 chunks older than 20 days: 0 archived and dropped, 3 FAILED" in cut.stdout, cut.stdout + cut.stderr
    assert chunks(tsdb_dsn, schema) == before and rows_text(tsdb_dsn, rel, old) == original  # nothing dropped
    [(state, key, error)] = sql_run(tsdb_dsn, "SELECT state, object_key, error FROM lifecycle.archives "
                                              "WHERE chunk_name = %s", (before[0],))
    assert state == "failed" and "upload failed" in error, error

    # The abandoned multipart upload holds the received part, and no object appears under the final key.
    [upload] = [u for u in s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []) if u["Key"] == f"cold/{key}"]
    parts = s3.list_parts(Bucket=bucket, Key=upload["Key"], UploadId=upload["UploadId"]).get("Parts", [])
    assert len(parts) >= 1
    assert key not in S3Store(bucket, "cold", endpoint_url=s3_server.url).keys()
    with pytest.raises(s3.exceptions.ClientError, match="404"):
        s3.head_object(Bucket=bucket, Key=f"cold/{key}")

    again = lifecycle(tsdb_dsn, *args, "--endpoint-url", s3_server.url, env=tmpdir_env)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "3 chunks older than 20 days: 3 archived and dropped" in again.stdout, again.stdout
    assert rows_text(tsdb_dsn, rel, old) == []
    recorded = sql_run(tsdb_dsn, "SELECT object_key FROM lifecycle.archives WHERE hypertable = %s AND "
                                 "state = 'dropped' ORDER BY range_start", (f"{schema}.big",))
    keys = S3Store(bucket, "cold", endpoint_url=s3_server.url).keys()
    assert sorted(k for k in keys if k.endswith(".parquet")) == sorted(k for (k,) in recorded)  # one per chunk
    assert len([k for k in keys if k.endswith(".manifest.json")]) == 3
    assert recorded[0] == (key,)  # the same rows: the same key, now complete
    restored = DataLifecycleManager(tsdb_dsn).restore(f"{schema}.big", "2000-01-01", "2100-01-01",
                                                      into=f"{schema}.back", endpoint_url=s3_server.url)
    assert sum(r.rows_loaded for r in restored) == len(original) == BIG_ROWS + 20
    assert rows_text(tsdb_dsn, f'"{schema}".back') == original

    # gc aborts the abandoned upload (and only that); the archive still verifies.
    gc = lifecycle(tsdb_dsn, "archive", "gc", "--table", f"{schema}.big", "--grace", "0",
                   "--endpoint-url", s3_server.url, env=tmpdir_env)
    assert gc.returncode == 0, gc.stdout + gc.stderr
    assert gc.stdout.splitlines()[0].startswith(f"aborted: incomplete upload of {url}/{key}"), gc.stdout
    assert [u for u in s3.list_multipart_uploads(Bucket=bucket).get("Uploads", [])] == []
    assert S3Store(bucket, "cold", endpoint_url=s3_server.url).keys() == keys
    assert sql_run(tsdb_dsn, "SELECT kind, action FROM lifecycle.archive_gc WHERE store_url = %s", (url,)) == \
        [("upload", "aborted")]
    verify = lifecycle(tsdb_dsn, "archive", "verify", "--table", f"{schema}.big", "--endpoint-url", s3_server.url)
    assert verify.returncode == 0, verify.stdout + verify.stderr
    assert os.listdir(tmpdir_env["TMPDIR"]) == []  # no run left a scratch directory behind
