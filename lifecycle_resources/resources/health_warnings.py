"""At refresh (`pulumi preview --refresh`, `pulumi refresh`): a managed policy that is failing or stuck
(runner/health.py) is said as a warning on the resource, so the operator sees it where the policy is declared."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pulumi

from ..errors import LifecycleError
from . import policy  # attribute use at call time: policy.py imports this module

if TYPE_CHECKING:
    from .policy import PolicyProvider


def warn_unhealthy(provider: PolicyProvider, id_: str, props: dict[str, Any]) -> list[str]:
    """Warn about this policy's problems (its declaration's runs, its TimescaleDB job); the warnings given."""
    from ..reconcile import catalog
    from ..runner import health  # the runner's health checks; imported only at refresh

    name = props.get("resource_name")
    project, stack, _ = policy.registration_scope(props)
    label = f"{project}/{stack}" if project else stack
    try:
        with provider.session(props) as (conn, _info):
            # One read of the stack's health serves every policy refreshed in the same moment. Every job: a
            # policy knows its own job id, and finds its job's failures without the lifecycle schema.
            problems = catalog.cached(conn, "health", label,
                                      lambda: health.check(conn, stack=label or None, every_job=True))
    except LifecycleError as exc:  # a refresh is not refused because health could not be read
        problems, said = [], [f"{provider.kind} {name}: health not checked: {exc}"]
    else:
        said = [f"{provider.kind} {name}: {p.describe()}" for p in problems
                if p.subject == name or p.subject.startswith(f"job {id_} ")]
    for text in said:
        pulumi.log.warn(text)
    return said
