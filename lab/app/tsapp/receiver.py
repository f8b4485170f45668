"""Webhook receiver of the lab: Alertmanager posts here by default.

POST /hook          stores the JSON body (bounded ring of RECEIVER_KEEP entries) with the time received and
                    whether the bearer token matched RECEIVER_TOKEN (401 when it is set and does not match)
GET  /received      what was stored, oldest first; ?alertname=X filters on alerts in each payload
DELETE /received    forgets everything
GET  /health
"""

from __future__ import annotations

import collections
import json
import time

from aiohttp import web

from .common import env, env_int, secret_equals, setup_logging

log = setup_logging("receiver")
STORE = "store"  # plain key: Debian bookworm ships aiohttp 3.8


async def hook(request: web.Request) -> web.Response:
    expected = env("RECEIVER_TOKEN", "")
    got = request.headers.get("Authorization", "")
    if expected and not secret_equals(got, f"Bearer {expected}"):
        log.warning("rejected webhook from %s: bad or missing bearer token", request.remote)
        return web.json_response({"error": "unauthorized"}, status=401)
    try:
        body = await request.json()
    except json.JSONDecodeError:
        return web.json_response({"error": "body is not JSON"}, status=400)
    request.app[STORE].append({"received_at": time.time(), "path": request.path, "payload": body})
    names = sorted({a.get("labels", {}).get("alertname", "?") for a in body.get("alerts", [])}) \
        if isinstance(body, dict) else []
    log.info("webhook received: status=%s alerts=%s", body.get("status") if isinstance(body, dict) else "?", names)
    return web.json_response({"ok": True})


async def received(request: web.Request) -> web.Response:
    items = list(request.app[STORE])
    name = request.query.get("alertname")
    if name:
        items = [i for i in items if isinstance(i["payload"], dict) and any(
            a.get("labels", {}).get("alertname") == name for a in i["payload"].get("alerts", []))]
    return web.json_response({"count": len(items), "items": items})


async def forget(request: web.Request) -> web.Response:
    request.app[STORE].clear()
    return web.json_response({"ok": True})


async def health(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


def main() -> None:
    app = web.Application()
    app[STORE] = collections.deque(maxlen=env_int("RECEIVER_KEEP", 1000))
    app.router.add_post("/hook", hook)
    app.router.add_post("/hook/{name}", hook)
    app.router.add_get("/received", received)
    app.router.add_delete("/received", forget)
    app.router.add_get("/health", health)
    web.run_app(app, host="0.0.0.0", port=env_int("RECEIVER_PORT", 9095), access_log=None, print=None)


if __name__ == "__main__":
    main()
