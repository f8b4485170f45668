# Copyright: taskscheduler.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""PRIVATE to the collection: do not import from outside taskscheduler.ops.

HTTP probes of the diagnostic modules: status code and total time of a request, as the runbook's
``curl -s -o /dev/null -w "%{http_code} (%{time_total}s)"``, repeated for timing samples
(``for i in {1..5}; do curl ...; done``). Standard library only.
"""

from __future__ import annotations

import json
import math
import socket
import ssl
import time
import urllib.error
import urllib.request
from typing import Any

_BODY_LIMIT = 2048


def _opener(use_proxy: bool, validate_certs: bool) -> urllib.request.OpenerDirector:
    handlers: list[Any] = []
    if not use_proxy:
        handlers.append(urllib.request.ProxyHandler({}))
    if not validate_certs:
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        handlers.append(urllib.request.HTTPSHandler(context=ctx))
    return urllib.request.build_opener(*handlers)


def request_once(url: str, timeout: float = 5.0, headers: dict[str, str] | None = None, method: str = "GET",
                 use_proxy: bool = True, validate_certs: bool = True) -> dict[str, Any]:
    """One request: ``status_code`` (0 when no HTTP answer), ``time_seconds``, ``error`` and a short ``body``."""
    req = urllib.request.Request(url, method=method, headers=dict(headers or {}))
    opener = _opener(use_proxy, validate_certs)
    start = time.perf_counter()
    status, body, error = 0, b"", None
    try:
        with opener.open(req, timeout=timeout) as resp:
            status = resp.status
            body = resp.read(_BODY_LIMIT)
    except urllib.error.HTTPError as exc:
        status = exc.code
        try:
            body = exc.read(_BODY_LIMIT)
        except OSError:
            body = b""
    except (urllib.error.URLError, socket.timeout, ConnectionError, OSError, ValueError) as exc:
        error = _reason(exc)
    elapsed = time.perf_counter() - start
    return {"status_code": status, "time_seconds": round(elapsed, 4), "error": error, "body": _decode(body)}


def _reason(exc: BaseException) -> str:
    reason = getattr(exc, "reason", None) or exc
    if isinstance(reason, socket.timeout) or "timed out" in str(reason):
        return "timed out"
    if isinstance(reason, ConnectionRefusedError):
        return "connection refused"
    text = str(reason).strip() or type(reason).__name__
    return text.replace("[Errno 111] ", "").replace("[Errno -2] ", "")


def _decode(body: bytes) -> Any:
    if not body:
        return None
    text = body.decode("utf-8", "replace")
    try:
        return json.loads(text)
    except ValueError:
        return text[:500]


def percentile(values: list[float], pct: float) -> float | None:
    """Nearest-rank percentile (pct in 0..100) of a small sample."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(pct / 100.0 * len(ordered)))
    return ordered[rank - 1]


def sample(url: str, samples: int = 1, interval: float = 0.0, **kwargs: Any) -> dict[str, Any]:
    """`samples` sequential requests; the last answer's figures plus timing statistics of all of them."""
    attempts = []
    for i in range(max(1, samples)):
        if i and interval > 0:
            time.sleep(interval)
        attempts.append(request_once(url, **kwargs))
    last = attempts[-1]
    times = [a["time_seconds"] for a in attempts if a["error"] is None]
    out = dict(last)
    out["samples"] = len(attempts)
    if len(attempts) > 1:
        out["attempts"] = [{"status_code": a["status_code"], "time_seconds": a["time_seconds"], "error": a["error"]}
                           for a in attempts]
        out["time_stats"] = {
            "min": min(times) if times else None,
            "avg": round(sum(times) / len(times), 4) if times else None,
            "p95": percentile(times, 95),
            "max": max(times) if times else None,
        }
    out["server_errors"] = sum(1 for a in attempts if a["status_code"] >= 500)
    out["failures"] = sum(1 for a in attempts if a["error"] is not None or a["status_code"] >= 500)
    return out
