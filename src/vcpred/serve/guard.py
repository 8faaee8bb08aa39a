"""What every request passes before a route sees it (pure ASGI middleware, docs/serve.md "Safety
measures"):

- **Host allow-list** (against DNS rebinding): a page on evil.example whose name is made to resolve
  to 127.0.0.1 reaches this server with `Host: evil.example`; only 127.0.0.1, localhost, [::1], the
  `--host` address and `--allow-host` names (with the server's port) are answered, anything else is
  421 on every route, the page and static files included.
- **The token** of a server other computers can reach (access.py): 401 without it.
- **Cross-site requests** (CSRF): an `Origin` header, when present, must be the server's own
  origin (any method); a request the browser marks `Sec-Fetch-Site: cross-site` or `same-site` is
  refused for state-changing methods and the API; every state-changing request (POST, PUT, DELETE,
  ...) must carry `X-Vcpred-Request: 1`, a header no other site's page can send without a CORS
  preflight, which this server never grants. 403 otherwise.
- **Internal errors** are a JSON 500 (logged with the traceback on the server), inside the
  security headers, never a bare text page.
"""

from __future__ import annotations

import logging

from starlette.datastructures import Headers
from starlette.responses import JSONResponse

from vcpred.serve.access import own_names, token_answer
from vcpred.serve.settings import ServeSettings

REQUEST_HEADER = "X-Vcpred-Request"
SAFE_METHODS = ("GET", "HEAD")
log = logging.getLogger("vcpred.serve")


def normal_name(name: str) -> str:
    """Lower case, no trailing dot, IPv6 addresses in brackets (as a Host header writes them)."""
    name = name.strip().lower().rstrip(".")
    if ":" in name and not name.startswith("["):
        name = f"[{name}]"
    return name


def allowed_names(settings: ServeSettings) -> list[str]:
    names = ["127.0.0.1", "localhost", "[::1]"]
    extra = [*settings.allow_hosts, *own_names(settings.host)]  # 0.0.0.0: this machine's names and addresses
    for name in map(normal_name, extra):
        if name and name not in names:
            names.append(name)
    return names


def split_host(value: str) -> tuple[str, int | None] | None:
    """(name, port) of a Host header; None when malformed."""
    value = value.strip()
    if value.startswith("["):
        end = value.find("]")
        if end < 0:
            return None
        name, rest = value[:end + 1], value[end + 1:]
    else:
        name, _, port = value.partition(":")
        rest = f":{port}" if _ else ""
    if rest and not (rest.startswith(":") and rest[1:].isdigit()):
        return None
    return normal_name(name), int(rest[1:]) if rest else None


class RequestGuard:
    """The Host allow-list and the cross-site checks (see the module docstring)."""

    def __init__(self, app, settings: ServeSettings):
        self.app, self.settings = app, settings
        self.names = allowed_names(settings)

    def shown(self) -> str:
        port = f":{self.settings.port}" if self.settings.port else ""
        return ", ".join(f"{name}{port}" for name in self.names)

    def host_refusal(self, host: str | None) -> str | None:
        parsed = split_host(host or "")
        if parsed is not None:
            name, port = parsed
            wanted = self.settings.port
            if name in self.names and (wanted is None or (port or 80) == wanted):
                return None
        return (f"this server answers only to {self.shown()}; the request's Host header named {(host or '')[:80]!r} "
                "(a page of another site may be trying to reach it by DNS rebinding). Open "
                f"http://127.0.0.1{':' + str(self.settings.port) if self.settings.port else ''}/ instead, or start "
                "vcpred serve with --allow-host NAME for a name this computer is reached by")

    def cross_site_refusal(self, method: str, path: str, headers: Headers) -> str | None:
        own = f"http://{headers.get('host', '')}".lower()
        origin = headers.get("origin")
        if origin is not None and origin.lower() not in (own, own.replace("http://", "https://", 1)):
            return (f"cross-origin request refused: it comes from a page of {origin[:80]!r} (Origin), not from this "
                    f"server ({own})")
        site = headers.get("sec-fetch-site")
        changes = method not in SAFE_METHODS
        if site in ("cross-site", "same-site") and (changes or path.startswith("/api/")):
            return f"request refused: the browser says it comes from another site (Sec-Fetch-Site: {site})"
        if changes and headers.get(REQUEST_HEADER) != "1":
            return (f"{method} requests must carry the header '{REQUEST_HEADER}: 1' (the page sends it; with curl add "
                    f"-H '{REQUEST_HEADER}: 1'); refused as a possible request forged by another web site")
        return None

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = Headers(scope=scope)
        refusal = self.host_refusal(headers.get("host"))
        status = 421
        if refusal is None:
            answer = token_answer(self.settings, scope, headers)  # a server other computers reach
            if answer is not None:
                return await answer(scope, receive, send)
            refusal, status = self.cross_site_refusal(scope["method"], scope["path"], headers), 403
        if refusal is None:
            return await self.app(scope, receive, send)
        log.warning("refused %s %s: %s", scope["method"], scope["path"], refusal)
        await JSONResponse({"error": refusal}, status_code=status)(scope, receive, send)


class InternalErrors:
    """An exception no handler turned into a 4xx: a JSON 500 (never the traceback), logged here."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started = False

        async def tracking_send(message):
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)
        try:
            await self.app(scope, receive, tracking_send)
        except Exception:
            log.exception("internal error on %s %s", scope["method"], scope["path"])
            if started:
                raise
            message = ("internal error in vcpred serve (the server's log has the details); the request was not "
                       "completed: try again, or report it with the log")
            await JSONResponse({"error": message}, status_code=500)(scope, receive, send)
