"""How a refusal at apply reaches the person running `pulumi up`: as its message, not as a Python traceback.

Pulumi's dynamic-provider host (`python -m pulumi.dynamic`) reports every exception of create/update/delete
with `traceback.format_exc()`. For a LifecycleError the message already names the resource, the field, the
value and what would be accepted; the frames around it only hide it. Any other exception is a bug and keeps
its traceback.
"""

from __future__ import annotations

import sys
import traceback
from types import SimpleNamespace

from ..errors import LifecycleError


def format_exc(*args: object, **kwargs: object) -> str:
    exc = sys.exc_info()[1]
    if isinstance(exc, LifecycleError):
        return str(exc)
    return traceback.format_exc(*args, **kwargs)  # type: ignore[arg-type]


def install() -> bool:
    """In the dynamic-provider host only: route its error formatting through format_exc. True when installed."""
    host = sys.modules.get("__main__")
    if host is None or not hasattr(host, "DynamicResourceProviderServicer") \
            or getattr(host, "traceback", None) is not traceback:
        return False
    host.traceback = SimpleNamespace(format_exc=format_exc)  # type: ignore[attr-defined]
    return True
