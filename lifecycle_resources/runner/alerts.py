"""Alerts: problems sent to a webhook as Slack-compatible JSON, and written as structured (JSON) log lines.

The webhook URL is a secret (a Slack incoming-webhook URL is its own credential): it is read from
$LIFECYCLE_ALERT_WEBHOOK or from a file only its owner can read ($LIFECYCLE_ALERT_WEBHOOK_FILE or
--webhook-file), and no message, log line or error ever contains it.
"""

from __future__ import annotations

import json
import os
import sys
import urllib.error
import urllib.request
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TextIO

from ..errors import LifecycleError
from .health import Problem

WEBHOOK_ENV = "LIFECYCLE_ALERT_WEBHOOK"
WEBHOOK_FILE_ENV = "LIFECYCLE_ALERT_WEBHOOK_FILE"
TIMEOUT = 10.0


def webhook_url(file: Path | None = None, env: dict[str, str] | None = None) -> str | None:
    """The webhook URL: the file given, else $LIFECYCLE_ALERT_WEBHOOK_FILE, else $LIFECYCLE_ALERT_WEBHOOK."""
    env = os.environ if env is None else env
    path = file or (Path(env[WEBHOOK_FILE_ENV]) if env.get(WEBHOOK_FILE_ENV) else None)
    if path is None:
        return env.get(WEBHOOK_ENV) or None
    try:
        mode, text = path.stat().st_mode, path.read_text()
    except OSError as exc:
        raise LifecycleError(f"alert webhook file {path}: cannot read it ({exc.strerror})") from None
    if mode & 0o077:
        raise LifecycleError(f"alert webhook file {path}: readable by other users (mode {mode & 0o777:o}): the URL "
                             f"is a secret; make it private with `chmod 600 {path}`")
    return text.strip()


def slack_payload(problems: Sequence[Problem], source: str) -> dict[str, Any]:
    """A message any Slack-compatible receiver (Slack, Mattermost, Rocket.Chat, Teams' Slack shim) accepts:
    `text` for plain receivers and notifications, `blocks` for the detail."""
    head = f":rotating_light: {source}: {len(problems)} lifecycle problem{'s' if len(problems) != 1 else ''}"
    lines = [f"• *{p.kind}* `{p.subject}` on `{p.hypertable}`: {p.detail}" for p in problems[:20]]
    if len(problems) > 20:
        lines.append(f"… and {len(problems) - 20} more")
    return {"text": head,
            "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": head}},
                       {"type": "section", "text": {"type": "mrkdwn", "text": "\n".join(lines)}}]}


def send(url: str, payload: dict[str, Any], timeout: float = TIMEOUT) -> None:
    """POST the payload; a refusal or an unreachable receiver raises, naming neither the URL nor its token."""
    if not url.startswith(("http://", "https://")):  # urllib would also open file:// and ftp:// URLs
        raise LifecycleError("alert webhook: not an http(s) URL; accepted: https://... (the receiver's webhook URL)")
    request = urllib.request.Request(url, data=json.dumps(payload).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - http(s) only, checked
            response.read()
    except urllib.error.HTTPError as exc:
        raise LifecycleError(f"alert webhook refused the alert: HTTP {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise LifecycleError(f"alert webhook unreachable: {type(reason).__name__}") from None


def log_lines(problems: Sequence[Problem], source: str, stream: TextIO | None = None) -> None:
    """One JSON object per problem and line, for log collectors."""
    out = stream or sys.stderr
    at = datetime.now(timezone.utc).isoformat()
    for p in problems:
        out.write(json.dumps({"ts": at, "level": "error", "event": "lifecycle.problem", "source": source,
                              **p.as_record()}) + "\n")
    out.flush()


def alert(problems: Sequence[Problem], source: str, *, url: str | None, stream: TextIO | None = None) -> bool:
    """Log the problems and, when a webhook is configured, send them; True when sent."""
    if not problems:
        return False
    log_lines(problems, source, stream)
    if url is None:
        return False
    send(url, slack_payload(problems, source))
    return True
