"""Who may use a server that other computers can reach (`--host` other than a loopback address).

Such a server has no accounts, so it makes a random token at start and prints the address with it
(`http://HOST:PORT/?token=...`). Opening that address sets the token as a cookie (HttpOnly,
SameSite=Strict, named with the port) and redirects to the page without it; every request
without the cookie (or with another token) is refused with 401. Someone on the network who only
knows the machine's name and port gets nothing. A loopback server (127.0.0.1, 127.0.0.2, ::1,
localhost) stays as it was: no token.
"""

from __future__ import annotations

import ipaddress
import secrets
import socket
from urllib.parse import parse_qs

from starlette.datastructures import Headers
from starlette.requests import cookie_parser
from starlette.responses import JSONResponse, RedirectResponse

from vcpred.serve.settings import WILDCARD_HOSTS, ServeSettings

TOKEN_PARAMETER = "token"


def is_loopback(host: str) -> bool:
    """True for addresses only this computer can reach (127.0.0.0/8, ::1, localhost)."""
    if host.strip().lower().rstrip(".") == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def new_token(host: str) -> str | None:
    """A random token for a server other computers can reach; None for a loopback one."""
    return None if is_loopback(host) else secrets.token_urlsafe(24)


def outward_address() -> str | None:
    """This computer's address on its network: the one a UDP socket would send from (connect()
    on UDP sends nothing); None without a network."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))  # TEST-NET-1: never routed, nothing is sent
            return probe.getsockname()[0]
        except OSError:
            return None


def own_names(host: str) -> list[str]:
    """The names and addresses a client may put in its Host header for a server on `host`: the
    address itself, and for 0.0.0.0 / :: this computer's name and addresses."""
    if host not in WILDCARD_HOSTS:
        return [host]
    names = [socket.gethostname(), socket.getfqdn()]
    try:
        names += [info[4][0] for info in socket.getaddrinfo(socket.gethostname(), None)]
    except OSError:
        pass
    names.append(outward_address() or "")
    return [name for name in dict.fromkeys(names) if name]


def shown_host(host: str) -> str:
    """The host part of the address to print: --host itself, or for 0.0.0.0 / :: this computer's
    network address (its name without a network)."""
    if host in WILDCARD_HOSTS:
        host = outward_address() or socket.gethostname()
    return f"[{host}]" if ":" in host else host


def page_url(settings: ServeSettings) -> str:
    """The address to open, with the token when the server needs one."""
    query = f"?{TOKEN_PARAMETER}={settings.token}" if settings.token else ""
    return f"http://{shown_host(settings.host)}:{settings.port}/{query}"


def cookie_name(settings: ServeSettings) -> str:
    return f"vcpred_token_{settings.port or 80}"  # cookies are not kept per port: two servers, two cookies


def token_answer(settings: ServeSettings, scope, headers: Headers):
    """None when the request may go on; else the response: a redirect setting the cookie (the
    printed address), or 401."""
    token = settings.token
    if token is None:
        return None
    cookie = cookie_parser(headers.get("cookie", "")).get(cookie_name(settings), "")
    if secrets.compare_digest(cookie.encode(), token.encode()):
        return None
    query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
    given = (query.get(TOKEN_PARAMETER) or [""])[0]
    if scope["method"] == "GET" and secrets.compare_digest(given.encode(), token.encode()):
        answer = RedirectResponse("/" + scope["path"].lstrip("/"), status_code=303)  # never //other.site
        answer.set_cookie(cookie_name(settings), token, httponly=True, samesite="strict", path="/")
        return answer
    return JSONResponse({"error": "this server is reachable from other computers and answers only to the address "
                                  "it printed when it started (with ?token=...); open that address, or ask whoever "
                                  "started it"}, status_code=401)
