"""Binding before saying where: `serve` and `annotate` bind their socket first, so the address they
print is one this server holds; a taken port or an unknown --host is one error line (exit 2) and no
address. uvicorn then serves on that socket."""

from __future__ import annotations

import errno
import socket

from vcpred.errors import ConfigError


def listening_socket(host: str, port: int) -> socket.socket:
    """A socket bound to host:port and listening; ConfigError naming the cause otherwise."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM,
                                                             flags=socket.AI_PASSIVE)[0]
    except (socket.gaierror, UnicodeError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        raise ConfigError(f"--host {host}: not an address or name this computer can listen on ({reason}); give "
                          "127.0.0.1 (this computer only) or an address of this computer") from None
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does: restarts reuse the port
        sock.bind(address)
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise ConfigError(f"port {port} on {host} is in use by another program; choose another --port, or stop "
                              "that program") from None
        if exc.errno == errno.EADDRNOTAVAIL:
            raise ConfigError(f"--host {host} is not an address of this computer; give 127.0.0.1 or one of its "
                              "addresses") from None
        raise ConfigError(f"cannot listen on {host} port {port} ({exc.strerror}); choose another --port or "
                          "--host") from None
    return sock


def run_server(app, sock: socket.socket) -> None:
    """uvicorn on the bound socket until Ctrl+C or SIGTERM."""
    import uvicorn

    # Access log lines carry only the random study ids: no file names, no patient data in URLs.
    uvicorn.Server(uvicorn.Config(app, log_level="info", server_header=False)).run(sockets=[sock])
