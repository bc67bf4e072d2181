"""What every lifecycle dynamic provider shares: connection settings from stack config, unknown-aware
check/diff plumbing, secret outputs, and errors that name the resource and the field."""

from __future__ import annotations

import asyncio
import json
import os
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, ClassVar

import pulumi
from pulumi.dynamic import (CheckFailure, CheckResult, ConfigureRequest, CreateResult, DiffResult, ReadResult,
                            ResourceProvider, UpdateResult)
from pulumi.runtime import rpc

from ..errors import Deferred, InputError, LifecycleError
from . import provider_errors

if TYPE_CHECKING:
    import psycopg
    from pydantic import ValidationError
    from ..reconcile import catalog, ownership

provider_errors.install()


# Inputs and outputs the engine needs but a person reading `pulumi preview --diff` does not: kept under one key
# beginning with "__", which the engine's display skips (IsInternalPropertyKey) and still sends to the provider.
INTERNAL = "__lifecycle"
INTERNAL_KEYS = frozenset({"resource_name", "peers", "config_source", "registration", "owner"})
DESTRUCTIVE = "DESTRUCTIVE: "
WRITES = frozenset({"create", "update", "delete"})


def internals(kind: str, resource_name: str, **extra: Any) -> asyncio.Future[str | dict[str, Any]]:
    """The bookkeeping inputs every lifecycle resource sends: its name, its owner identity and `extra`, packed as
    its state holds them (pack()) once the values computed after the program body (later_input) are known."""
    values = {"resource_name": resource_name,
              "owner": {"project": pulumi.get_project(), "stack": pulumi.get_stack(), "resource_type": kind,
                        "resource_name": resource_name}, **extra}

    async def packed() -> str | dict[str, Any]:
        return pack({k: await v if isinstance(v, asyncio.Future) else v for k, v in values.items()})
    return asyncio.ensure_future(packed())


def unfold(props: Mapping[str, Any] | None) -> dict[str, Any]:
    """One flat dict of user fields and internals, as the provider code reads them. The internals come packed
    (pack()), or as an object (what the program sends, and states written before packing)."""
    props = dict(props or {})
    inner = props.pop(INTERNAL, None)
    if isinstance(inner, str):
        inner = json.loads(inner)
    if isinstance(inner, Mapping):
        props.update(inner)
    return props


def pack(inner: dict[str, Any]) -> str | dict[str, Any]:
    """The internals as one JSON string, the same text for the same values (keys sorted, integral numbers as
    integers: the engine gives back every number as a float). The engine walks every property of every resource
    each time it writes its state, once per step: one string instead of an object of 10 to 20 values cut its
    CPU in `up` at 400 resources by a fifth. Left an object while any value is unknown (a preview: the engine
    must see it unknown) or secret (a string would carry it in plain text)."""
    if is_unknown(inner) or _holds_secret(inner):
        return inner
    return json.dumps(_plain(inner), sort_keys=True, separators=(",", ":"))


def _plain(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, Mapping):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    return value


def _holds_secret(value: Any) -> bool:
    if isinstance(value, Mapping):
        return rpc._special_sig_key in value or any(_holds_secret(v) for v in value.values())
    if isinstance(value, list | tuple):
        return any(_holds_secret(v) for v in value)
    return False


def later(compute: Callable[[], Any]) -> pulumi.Output[Any]:
    """A value computed when the engine serialises the inputs, after the program body has declared everything:
    what a resource sees of its siblings then does not depend on the order they were declared in."""
    async def value() -> Any:
        return compute()
    return pulumi.Output.from_input(value())


def later_input(compute: Callable[[], Any]) -> asyncio.Future[Any]:
    """later() for a value nested in the inputs, as a bare future: the SDK serialises awaitables the same way, without
    the Outputs that Output.from_input makes for every key and item of the value. Each tracked Output costs the
    program time at every step of the SDK's final wait, which loops over all of them (quadratic in resources)."""
    async def value() -> Any:
        return compute()
    return asyncio.ensure_future(value())


def described(ops: list[Any]) -> list[str]:
    """Operations in the executor's own words; destructive ones flagged."""
    return [(DESTRUCTIVE if getattr(op, "destructive", False) else "") + op.describe() for op in ops]


def secret_input(dsn: Any) -> Any:
    """A resource's own DSN override, sent to the engine as a secret (None when not given)."""
    return pulumi.Output.secret(dsn) if dsn is not None else None


def resource_options(opts: pulumi.ResourceOptions | None, *,
                     depends_on: pulumi.Input[list[pulumi.Resource]] | None = None,
                     delete_before_replace: bool = False) -> pulumi.ResourceOptions:
    """The options every lifecycle resource adds to the user's: its dsn output stays secret."""
    ours = pulumi.ResourceOptions(additional_secret_outputs=["dsn"], depends_on=depends_on or [],
                                  delete_before_replace=delete_before_replace or None)
    # Without options of the user's, nothing to merge: merge() would copy both, and wrap `depends_on` (a later()
    # Output) in one more Output that the SDK then tracks to the end of the program (1 ms of the program's CPU per
    # resource, measured at 400).
    return ours if opts is None else pulumi.ResourceOptions.merge(opts, ours)


_KNOWN_LEAVES = frozenset({int, float, bool, type(None)})


def is_unknown(value: Any) -> bool:
    """True for a value not yet known during preview (an output of a resource still to be created)."""
    # The wire's own types first, by exact type (called for every input of every resource, twice per preview:
    # an isinstance against the Mapping ABC costs more than the rest of the walk).
    kind = type(value)
    if kind is str:
        return value == rpc.UNKNOWN
    if kind is dict:
        return any(is_unknown(v) for v in value.values())
    if kind is list or kind is tuple:
        return any(is_unknown(v) for v in value)
    if kind in _KNOWN_LEAVES:
        return False
    if value == rpc.UNKNOWN:
        return True
    if isinstance(value, Mapping):
        return any(is_unknown(v) for v in value.values())
    if isinstance(value, list | tuple):
        return any(is_unknown(v) for v in value)
    return False


def secret(value: Any) -> Any:
    """Mark a provider output as secret in the engine's wire format, so state stores it encrypted."""
    if value is None or (isinstance(value, Mapping) and rpc._special_sig_key in value):
        return value
    return {rpc._special_sig_key: rpc._special_secret_sig, "value": value}


def unwrap_secret(value: Any) -> Any:
    if isinstance(value, Mapping) and value.get(rpc._special_sig_key) == rpc._special_secret_sig:
        return value.get("value")
    return value


_SCALARS = (str, int, float, bool, type(None))


def _echo(field: str, err: Mapping[str, Any]) -> str:
    """How a failure shows the offending value: scalars as given; never a secret field, a missing value
    (pydantic reports the whole inputs dict there) or a container (it may hold the dsn)."""
    value = err.get("input")
    if err.get("type") == "missing":
        return ""
    if any(part == "dsn" or "password" in part for part in field.lower().split(".")):
        return "=<secret>"
    if isinstance(value, Mapping):
        return " (given an object)"
    if isinstance(value, list | tuple):
        return f"={list(value)!r}" if all(isinstance(v, _SCALARS) for v in value) else " (given a list)"
    return f"={value!r}" if isinstance(value, _SCALARS) else f" (given a {type(value).__name__})"


def pydantic_failures(exc: ValidationError, resource: str | None) -> list[CheckFailure]:
    """One CheckFailure per pydantic error, naming the field and (when it is safe to) the value."""
    from ..db.connection import scrub
    failures = []
    where = f"{resource}: " if resource else ""
    for err in exc.errors(include_url=False, include_context=False):
        field = ".".join(str(p) for p in err["loc"]) or "inputs"
        failures.append(CheckFailure(field, scrub(f"{where}{field}{_echo(field, err)}: {err['msg']}")))
    return failures


# What each server is, read on every new connection (which also sets its IntervalStyle) and reused with it.
_server_infos: dict[str, catalog.ServerInfo] = {}


class LifecycleProvider(ResourceProvider, ABC):
    """Base of the lifecycle providers. Captures nothing secret: the DSN arrives through configure()."""

    serialize_as_secret_always = False
    kind: ClassVar[str] = "resource"

    internal_keys: ClassVar[frozenset[str]] = INTERNAL_KEYS

    def __init__(self) -> None:
        self._config_dsn: str | None = None

    # -- the engine-facing methods: internals folded under INTERNAL on the wire, flat in the code ----------
    def fold(self, props: dict[str, Any] | None) -> dict[str, Any] | None:
        if props is None:
            return None
        flat = unfold(props)
        inner = {k: flat.pop(k) for k in list(flat) if k in self.internal_keys or k.endswith("_value")}
        return {**flat, INTERNAL: pack(inner)} if inner else flat

    def check(self, olds: dict[str, Any], news: dict[str, Any]) -> CheckResult:
        with self._metered("check", news):
            result = self.do_check(unfold(olds), unfold(news))
            return CheckResult(self.fold(result.inputs), result.failures)

    def diff(self, id_: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        with self._metered("diff", news):
            return self.do_diff(id_, unfold(olds), unfold(news))

    def create(self, props: dict[str, Any]) -> CreateResult:
        with self._metered("create", props):
            result = self.do_create(unfold(props))
            return CreateResult(result.id, self.fold(result.outs))

    def update(self, id_: str, olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        with self._metered("update", news):
            return UpdateResult(self.fold(self.do_update(id_, unfold(olds), unfold(news)).outs))

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        with self._metered("read", props):
            recorded = unfold(props)
            result = self.do_read(id_, recorded)
            return ReadResult(result.id, self.fold(result.outs), self.fold(self._carried(recorded, result.inputs)))

    def _carried(self, recorded: dict[str, Any], inputs: dict[str, Any] | None) -> dict[str, Any] | None:
        """The refreshed inputs, with what a read cannot observe carried over from the state: the recorded plan and
        the internals the program sent (archive_declared, ...). Inputs that differ from the checked ones make the
        engine serialise the resource's whole snapshot again in the preview that follows a refresh (quadratic in
        resources: `preview --refresh` at 400 resources spent about a third more CPU in the engine)."""
        if not inputs:
            return inputs
        keys = {"planned_operations", *(k for k in self.internal_keys if k in recorded)}
        return {**{k: recorded[k] for k in keys if k in recorded and k not in inputs}, **inputs}

    def delete(self, id_: str, props: dict[str, Any]) -> None:
        with self._metered("delete", props):
            self.do_delete(id_, unfold(props))

    @contextmanager
    def _metered(self, op: str, props: Mapping[str, Any] | None) -> Iterator[None]:
        """Each engine call, timed for $LIFECYCLE_DB_TIMING; a write drops the catalog reads shared by the
        calls of this process (catalog.writing) before and after it. Reads fetched together (catalog.bundle) serve
        this call only. The timing counts this call's CPU from before the imports it may be the first to make."""
        started = time.thread_time()
        from ..db import metering
        from ..reconcile import catalog
        name = unfold(props).get("resource_name") if metering.enabled() else None  # only the timing file names it
        with metering.operation(op, self.kind, name, started), catalog.bundle_scope():
            if op in WRITES:
                with catalog.writing():
                    yield
            else:
                yield

    @abstractmethod
    def do_diff(self, id_: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult: ...

    @abstractmethod
    def do_create(self, props: dict[str, Any]) -> CreateResult: ...

    @abstractmethod
    def do_update(self, id_: str, olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult: ...

    @abstractmethod
    def do_read(self, id_: str, props: dict[str, Any]) -> ReadResult: ...

    @abstractmethod
    def do_delete(self, id_: str, props: dict[str, Any]) -> None: ...

    _config_dsn: str | None = None  # what an unpickled provider has until configure()

    def __getstate__(self) -> None:
        # Never pickle a configured connection string into the state. None, not {}: pulumi's
        # serialize_provider wraps pickle's dict writer once more on every resource and never unwraps it, so
        # each dict pickled costs as many calls as resources declared so far (O(N^2) for a program, and a
        # RecursionError past ~1000 resources); a provider pickled without any dict avoids that chain.
        return None

    def __setstate__(self, state: Any) -> None:
        self._config_dsn = None

    def configure(self, req: ConfigureRequest) -> None:
        with self._metered("configure", None):  # it makes the first imports of the database driver: timed with them
            from ..db.connection import CONFIG_KEY
            value = req.config.get(CONFIG_KEY)
            self._config_dsn = unwrap_secret(value) if value else None

    # -- ownership --------------------------------------------------------------------------------------
    @staticmethod
    def claim_for(conn: psycopg.Connection, obj: ownership.ManagedObject, what: str, exists: bool,
                  props: Mapping[str, Any]) -> ownership.Claim | None:
        """Adoption or takeover this resource makes of `obj`; refuses another stack's object without adopt."""
        from ..reconcile import ownership
        return ownership.decide(obj, what, exists, ownership.read_owner(conn, obj),
                                ownership.Owner.from_props(dict(props)), bool(props.get("adopt")),
                                props.get("resource_name"))

    @staticmethod
    def record_owner(conn: psycopg.Connection, obj: ownership.ManagedObject, props: Mapping[str, Any]) -> None:
        from ..reconcile import ownership
        ownership.claim(conn, obj, ownership.Owner.from_props(dict(props)))

    @staticmethod
    def let_go(conn: psycopg.Connection, obj: ownership.ManagedObject, props: Mapping[str, Any]) -> bool:
        """Before a delete acts: False (act on nothing) when another resource owns the object now."""
        from ..reconcile import ownership
        return ownership.release(conn, obj, ownership.Owner.from_props(dict(props))) is None

    # -- connection -------------------------------------------------------------------------------
    def dsn_for(self, props: Mapping[str, Any]) -> str:
        """The resource's dsn input, else stack config lifecycle:dsn, else $TSDB_DSN.

        The environment is read here, at each operation, and never stored: a generated password
        (the embedded server's) need not be copied into the stack's config to be used.
        """
        from ..db.connection import DSN_ENV
        override = unwrap_secret(props.get("dsn"))
        return override or self._config_dsn or os.environ.get(DSN_ENV, "")

    @contextmanager
    def session(self, props: Mapping[str, Any]) -> Iterator[tuple[psycopg.Connection, catalog.ServerInfo]]:
        """A connection plus what the server is, refusing servers this product cannot manage."""
        import psycopg
        from ..db.connection import pooled, scrub
        from ..reconcile import catalog
        dsn = self.dsn_for(props)
        try:
            with pooled(dsn, lambda new: _server_infos.__setitem__(dsn, catalog.server_info(new))) as conn:
                info = _server_infos[dsn]
                catalog.require_timescaledb(info, f"{self.kind} {props.get('resource_name') or ''}".strip())
                yield conn, info
        except psycopg.Error as exc:
            # Driver errors can echo connection details: strip the password before they reach the user.
            raise LifecycleError(self._where(props) + scrub(str(exc).strip(), dsn)) from None

    def _where(self, props: Mapping[str, Any]) -> str:
        name = props.get("resource_name")
        return f"{self.kind} {name}: " if name else f"{self.kind}: "

    # -- check ------------------------------------------------------------------------------------
    def do_check(self, olds: dict[str, Any], news: dict[str, Any]) -> CheckResult:
        from ..db.connection import DSN_ENV, scrub
        result = self._check(olds, news)
        # Whatever a failure quotes (a value, a driver message), it never carries a DSN's secrets.
        dsns = (unwrap_secret(news.get("dsn")), self._config_dsn, os.environ.get(DSN_ENV))
        for failure in result.failures or []:
            failure.reason = scrub(failure.reason, *dsns)
        return result

    def _check(self, olds: dict[str, Any], news: dict[str, Any]) -> CheckResult:
        from pydantic import ValidationError
        from ..db.connection import validate_dsn
        inputs = dict(news)
        dsn_problem = validate_dsn(unwrap_secret(news.get("dsn"))) if news.get("dsn") is not None else None
        if dsn_problem and not is_unknown(news.get("dsn")):
            return CheckResult(inputs, [CheckFailure("dsn", f"{self._where(news)}dsn: {dsn_problem}")])
        if any(is_unknown(v) for k, v in news.items() if k != "__provider"):
            return CheckResult(inputs, [])
        try:
            inputs.update(self.validate(olds, news))
        except Deferred:
            return CheckResult(inputs, [])  # checked at create, once the resource it waits for exists
        except ValidationError as exc:
            return CheckResult(inputs, [self._sourced(f, news) for f in
                                        pydantic_failures(exc, news.get("resource_name"))])
        except InputError as exc:
            return CheckResult(inputs, [self._sourced(CheckFailure(exc.field, str(exc)), news)])
        except LifecycleError as exc:
            message = str(exc)
            if not message.startswith(self._where(news)):
                message = self._where(news) + message
            return CheckResult(inputs, [CheckFailure("dsn", message)])
        return CheckResult(self._settled(olds, inputs), [])

    def _settled(self, olds: dict[str, Any], inputs: dict[str, Any]) -> dict[str, Any]:
        """Nothing to do and no change: keep the plan the state records (that of the last apply, or none), so that
        the checked inputs equal the state's. For each resource whose inputs differ, the engine serialises its whole
        snapshot again, even in a preview (quadratic in resources: most of its time at 400 resources)."""
        if olds and not inputs.get("planned_operations"):
            diff = self.do_diff("", olds, inputs)
            if diff.changes is False and not diff.replaces:
                inputs["planned_operations"] = olds.get("planned_operations")
        return inputs

    @staticmethod
    def _sourced(failure: CheckFailure, news: Mapping[str, Any]) -> CheckFailure:
        """Name the stack config key the value came from, when the program says where it came from."""
        source = (news.get("config_source") or {}).get(failure.property) if isinstance(
            news.get("config_source"), Mapping) else None
        if source:
            failure.reason = f"{failure.reason} (stack config {source})"
        return failure

    @abstractmethod
    def validate(self, olds: dict[str, Any], news: dict[str, Any]) -> dict[str, Any]:
        """Validate declared inputs against the database; return normalised values to merge into the inputs."""


def changed_fields(olds: Mapping[str, Any], news: Mapping[str, Any], fields: list[str],
                   same: Callable[[str, Any, Any], bool] | None = None) -> list[str]:
    """The fields whose declared value differs from the recorded one; unknown new values count as changes."""
    out = []
    for field in fields:
        old, new = olds.get(field), news.get(field)
        if is_unknown(new):
            out.append(field)
        elif same is not None and same(field, old, new):
            continue
        elif old != new:
            out.append(field)
    return out
