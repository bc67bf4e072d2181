"""The impact a policy change states at preview (reconcile/impact.py), measured for the policy providers."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import psycopg

from ..identifiers import TableName
from ..reconcile import impact
from ..reconcile.catalog import ServerInfo
from ..reconcile.intervals import Window
from .policy import PolicyProvider

Measure = Callable[["psycopg.Connection", "ServerInfo", "TableName", "Window"], "impact.Impact | None"]


def stated_impact(provider: PolicyProvider, olds: dict[str, Any], news: dict[str, Any], checked: dict[str, Any],
                  measure: Measure) -> impact.Impact | None:
    """What the policy's next run acts on, when the policy is created, adopted or changed; None otherwise."""
    if not impact.changed(olds, checked):
        return None
    with provider.session(news) as (conn, info):
        return measure(conn, info, TableName.parse(checked["hypertable"]),
                       Window.from_key(checked["window_value"], str(news.get(provider.window_key))))
