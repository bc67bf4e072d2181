"""ArchiveStore: where a RetentionPolicy(archive=...) sends each chunk before `lifecycle run` drops it.

A local directory (file:///path) or S3-compatible storage (s3://bucket/prefix, `endpoint_url` for a server other
than AWS). Registered in lifecycle.archive_stores (URL, endpoint, region: never credentials). Credentials given
here (`access_key_id`, `secret_access_key`, always Pulumi secrets) serve only the preview's reachability check; the
runner takes its own from boto3's chain (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, a profile, an instance role).

In place: url, endpoint_url, region (objects already written keep their own URL in lifecycle.archives).
Delete: the store is marked removed in the lifecycle schema; no object is touched.
Unreachable at preview: a WARNING among the planned operations, not a refusal (see `_reachability`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pulumi
from pulumi.dynamic import CreateResult, DiffResult, ReadResult, Resource, UpdateResult

from . import registry
from ..errors import InputError
from .base import (INTERNAL, LifecycleProvider, changed_fields, internals, resource_options, secret, secret_input,
                   unwrap_secret)
from .output_tracking import untracked
from .output_types import typed_outputs
from .policy import registration_scope

if TYPE_CHECKING:
    from ..reconcile.archive_stores import StoreRecord

SECRET_FIELDS = ("access_key_id", "secret_access_key")


def _record(props: dict[str, Any]) -> StoreRecord:
    from ..reconcile import archive_stores
    from ..reconcile.archive_stores import StoreRecord
    name = props.get("resource_name")
    return StoreRecord(store_name=props.get("store_name") or name or "",
                       url=archive_stores.check_url(name, "url", props.get("url")),
                       endpoint_url=archive_stores.check_endpoint(name, props.get("endpoint_url")),
                       region=props.get("region"))


def _reachability(record: StoreRecord, props: dict[str, Any]) -> str | None:
    """A warning when the store cannot be written now. Not a refusal: the bucket or directory may be made by
    another resource of the same program or by an operator before the first run, and an unreachable store
    loses nothing (`lifecycle run` then archives nothing and drops nothing, and exits non-zero)."""
    from ..runner.archive.store import open_store  # boto3 is imported only when a store is declared

    creds = {k: unwrap_secret(props.get(k)) for k in SECRET_FIELDS if props.get(k) is not None}
    secrets = [v for v in creds.values() if v]
    try:
        problem = open_store(record.url, endpoint_url=record.endpoint_url, region=record.region,
                             **creds).probe()
    except Exception as exc:  # noqa: BLE001 - any failure to open means "not reachable now"
        problem = str(exc)
    if problem is None:
        return None
    for value in secrets:
        problem = problem.replace(value, "***")
    return (f"WARNING: {record.describe()} is not reachable now: {problem}; `lifecycle run` archives (and so drops) "
            "nothing until it is")


class ArchiveStoreProvider(LifecycleProvider):
    kind = "ArchiveStore"

    def validate(self, olds: dict[str, Any], news: dict[str, Any]) -> dict[str, Any]:
        from ..reconcile.archive_stores import StoreRecord
        record = _record(news)
        for field in SECRET_FIELDS:
            value = news.get(field)
            if value is not None and not isinstance(unwrap_secret(value), str):
                raise InputError(news.get("resource_name"), field, "<secret>", "not a string", "a string secret")
        if bool(news.get("access_key_id")) != bool(news.get("secret_access_key")):
            raise InputError(news.get("resource_name"), "access_key_id", "<secret>",
                             "access_key_id and secret_access_key go together",
                             "both, or neither (boto3's chain: environment, profile, instance role)")
        if record.url.startswith("file://") and any(news.get(f) for f in ("endpoint_url", *SECRET_FIELDS)):
            raise InputError(news.get("resource_name"), "endpoint_url", news.get("endpoint_url"),
                             f"{record.url} is a local directory: endpoint and credentials are for s3:// stores",
                             "no endpoint_url/access_key_id/secret_access_key with a file:// URL")
        previous = StoreRecord.model_validate(olds) if olds.get("url") else None
        ops = [_operation(previous, record)] if previous != record else []
        warning = _reachability(record, news)
        return {"url": record.url, "endpoint_url": record.endpoint_url, "store_name": record.store_name,
                "planned_operations": [*ops, *([warning] if warning else [])]}

    def do_diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        replaces = changed_fields(olds, news, ["store_name"])
        changes = changed_fields(olds, news, ["url", "endpoint_url", "region", *SECRET_FIELDS, "dsn"])
        return DiffResult(changes=bool(replaces or changes), replaces=replaces)

    def _apply(self, olds: dict[str, Any] | None, props: dict[str, Any]) -> dict[str, Any]:
        from ..reconcile import archive_stores
        record = _record(props)
        project, stack, _ = registration_scope(props)
        with self.session(props) as (conn, _info), conn.transaction():
            archive_stores.require_installed(conn, f"ArchiveStore {props.get('resource_name')}")
            before = archive_stores.read(conn, project, stack, record.store_name)
            archive_stores.register(conn, project, stack, record)
        done = [_operation(before, record)] if before != record else []
        return self._outs(props, record, done)

    def _outs(self, props: dict[str, Any], record: StoreRecord, done: list[str] | None) -> dict[str, Any]:
        outs = {**record.model_dump(), "resource_name": props.get("resource_name"), "owner": props.get("owner"),
                "registration": props.get("registration"),
                "planned_operations": props.get("planned_operations") or [], "dsn": secret(props.get("dsn"))}
        for field in SECRET_FIELDS:
            outs[field] = secret(unwrap_secret(props.get(field))) if props.get(field) is not None else None
        if done is not None:
            outs["last_operations"] = done
        return outs

    def do_create(self, props: dict[str, Any]) -> CreateResult:
        outs = self._apply(None, props)
        return CreateResult(outs["store_name"], outs)

    def do_update(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        return UpdateResult(self._apply(olds, news))

    def do_read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        from ..reconcile import archive_stores
        project, stack, _ = registration_scope(props)
        with self.session(props) as (conn, _info):
            found = archive_stores.read(conn, project, stack, id_) if archive_stores.installed(conn) else None
        if found is None:
            return ReadResult(None, {})
        outs = self._outs(props, found, props.get("last_operations"))
        inputs = {k: outs[k] for k in ("url", "endpoint_url", "region", "store_name", "resource_name", "owner",
                                       "registration")}
        for field in (*SECRET_FIELDS, "dsn"):
            if props.get(field) is not None:
                inputs[field] = outs[field]
        return ReadResult(id_, outs, inputs)

    def do_delete(self, id_: str, props: dict[str, Any]) -> None:
        from ..reconcile import archive_stores
        project, stack, _ = registration_scope(props)
        with self.session(props) as (conn, _info), conn.transaction():
            if not archive_stores.installed(conn):
                return
            users = archive_stores.users(conn, project, stack, id_)
            if users:
                raise InputError(props.get("resource_name"), "url", props.get("url"),
                                 f"still the archive of retention policies {', '.join(users)}",
                                 "remove archive= from those policies first (or in the same update)")
            archive_stores.unregister(conn, project, stack, id_)


def _operation(before: StoreRecord | None, after: StoreRecord) -> str:
    if before is None:
        return f"register {after.describe()} in lifecycle.archive_stores"
    changed = [f"{k} {getattr(before, k)} -> {getattr(after, k)}" for k in ("url", "endpoint_url", "region")
               if getattr(before, k) != getattr(after, k)]
    return f"change archive store {after.store_name}: {', '.join(changed)} (objects already archived stay where " \
           "lifecycle.archives says)"


@typed_outputs
class ArchiveStore(Resource, module="timescale", name="ArchiveStore"):
    """An archive for RetentionPolicy(archive=...): a local directory or an S3-compatible bucket and prefix."""

    url: pulumi.Output[str]
    endpoint_url: pulumi.Output[str | None]
    region: pulumi.Output[str | None]
    store_name: pulumi.Output[str]
    planned_operations: pulumi.Output[list]
    last_operations: pulumi.Output[list]

    def __init__(self, resource_name: str, url: str, *, endpoint_url: str | None = None, region: str | None = None,
                 access_key_id: pulumi.Input[str] | None = None, secret_access_key: pulumi.Input[str] | None = None,
                 dsn: pulumi.Input[str] | None = None, opts: pulumi.ResourceOptions | None = None) -> None:
        self.declared_store = resource_name  # what RetentionPolicy(archive=this) records
        props = {
            "url": url, "endpoint_url": endpoint_url, "region": region, "dsn": secret_input(dsn),
            "access_key_id": secret_input(access_key_id), "secret_access_key": secret_input(secret_access_key),
            "store_name": resource_name, "planned_operations": None, "last_operations": None,
            INTERNAL: internals("ArchiveStore", resource_name,
                                registration={"project": pulumi.get_project(), "stack": pulumi.get_stack(),
                                              "environment": pulumi.get_stack()}),
        }
        schema = registry.promised("lifecycle.archive_metadata")  # the LifecycleSchema that creates its table
        opts = pulumi.ResourceOptions.merge(resource_options(opts, depends_on=[schema] if schema else []),
                                            pulumi.ResourceOptions(additional_secret_outputs=list(SECRET_FIELDS)))
        super().__init__(ArchiveStoreProvider(), resource_name, props, opts)
        untracked(self)
