"""The dashboard: the manager's API and a static page on a TCP port (127.0.0.1 by default).

The page (static/: plain HTML, CSS and JavaScript, no build step, nothing fetched from
elsewhere) reads the same JSON API the CLI uses, through the same `route()` table as the Unix
socket, so there is one implementation of every answer. The TCP side is narrower than the
socket, because any local user (and, through the user's browser, any web page) can reach a
loopback port, while the socket is root's alone (mode 0600):

- every /v1 request needs the cluster's token, in `Authorization: Bearer TOKEN`. A page can
  only send that header to another origin after a CORS preflight we never grant, so a foreign
  web page can neither read the API nor forge an action (no CSRF, no DNS rebinding);
- the token is ROOT/cluster/dashboard.token (0600, root's): `minirun dashboard` prints the
  address with it in the URL's fragment (#token=...), which the browser never sends anywhere;
- only reads (GET) and the dashboard's three actions are allowed: scale a service (PATCH
  /v1/services/NAME with desiredCount and nothing else), stop a task, drain a worker. Nothing
  that starts new code (task definitions, services, tasks, workers) or stops the cluster;
- the port listens on loopback unless `cluster up --dashboard-host ADDR` names another address,
  and then only with a token the user chose (--dashboard-token-file): docs/security.md.
"""

from __future__ import annotations

import hmac
import http.server
import ipaddress
import json
import mimetypes
import secrets
import socket
import urllib.parse
from collections.abc import Callable
from pathlib import Path
from typing import Any

from minirun.errors import MinirunError, UsageError

# What the dashboard serves, given by the manager that starts it (manager.serve), which is why
# the dashboard never imports the manager: the API table, api(method, path parts, query, body)
# (manager.route bound to the manager), and error_reply(exception) -> (HTTP status, body).
Api = Callable[[str, list[str], dict[str, str], Any], Any]
ErrorReply = Callable[[Exception], tuple[int, dict]]

STATIC = Path(__file__).parent / "static"
MIN_TOKEN = 16
MAX_BODY = 64 * 1024                          # the dashboard's bodies are a few bytes


def is_loopback(host: str) -> bool:
    """127.0.0.0/8, ::1 or "localhost"; any other name counts as not loopback."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_bind(host: str, token: str | None) -> None:
    """A non-loopback address needs a token the user chose (UsageError otherwise)."""
    if not is_loopback(host):
        if token is None:
            raise UsageError(f"--dashboard-host {host} is not a loopback address: it needs "
                             "--dashboard-token-file FILE as well (docs/security.md)")
    if token is not None and (len(token) < MIN_TOKEN or not token.isprintable() or " " in token):
        raise UsageError(f"the dashboard token must be at least {MIN_TOKEN} printable "
                         "characters without spaces")


def read_token(path: Path) -> str:
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        raise UsageError(f"--dashboard-token-file {path}: no such file") from None
    except OSError as e:
        raise UsageError(f"--dashboard-token-file {path}: {e.strerror}") from None


def new_token() -> str:
    return secrets.token_urlsafe(24)


def allowed(method: str, parts: list[str], body: Any) -> str | None:
    """None if the dashboard may make this call, else why not."""
    if parts[:1] != ["v1"]:
        return None                           # route() answers 404
    p = parts[1:]
    if method == "GET":
        return None
    if method == "POST" and len(p) == 3 and p[0] == "tasks" and p[2] == "stop":
        return None
    if method == "POST" and len(p) == 3 and p[0] == "workers" and p[2] == "drain":
        return None
    if method == "PATCH" and len(p) == 2 and p[0] == "services":
        if isinstance(body, dict) and set(body) == {"desiredCount"}:
            return None
        return "the dashboard may only change a service's desiredCount"
    return f"{method} /{'/'.join(parts)} is not open to the dashboard (use the CLI)"


class Handler(http.server.BaseHTTPRequestHandler):
    api: Api
    error_reply: ErrorReply
    token: str
    server_version = "minirun-dashboard"
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:    # noqa: A002 — the base's name
        pass

    def _send(self, status: int, data: bytes, content_type: str, extra: dict | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Referrer-Policy", "no-referrer")
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def _json(self, status: int, payload: Any) -> None:
        self._send(status, json.dumps(payload).encode(), "application/json")

    def _error(self, status: int, kind: str, message: str) -> None:
        self._json(status, {"error": {"type": kind, "message": message}})

    def _static(self, path: str) -> None:
        name = "index.html" if path in ("", "/") else path.lstrip("/")
        f = (STATIC / name).resolve()
        if f.parent != STATIC.resolve() or not f.is_file():
            self._error(404, "ResourceNotFound", f"no such path {path}")
            return
        ctype = mimetypes.guess_type(f.name)[0] or "application/octet-stream"
        if ctype.startswith("text/") or ctype.endswith("javascript"):
            ctype += "; charset=utf-8"
        # the page loads nothing but its own files, and runs no inline script
        csp = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
               "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'")
        self._send(200, f.read_bytes(), ctype, {"Content-Security-Policy": csp})

    def _authorized(self) -> bool:
        given = self.headers.get("Authorization", "")
        scheme, _, value = given.partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(value.strip().encode(), self.token.encode())

    def _dispatch(self, method: str) -> None:
        from minirun.sched.placement import PlacementError

        url = urllib.parse.urlsplit(self.path)
        if not url.path.startswith("/v1/") and url.path != "/v1":
            if method not in ("GET", "HEAD"):
                self._error(405, "UsageError", f"{method} {url.path}: not allowed")
            else:
                self._static(url.path)
            return
        try:
            n = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            n = -1
        if not 0 <= n <= MAX_BODY:
            self.close_connection = True
            self._error(413, "UsageError", f"a request body of 0 to {MAX_BODY} bytes, please")
            return
        raw = self.rfile.read(n) if n else b""
        if not self._authorized():
            self._error(401, "Unauthorized", "a valid token is needed: open the address "
                        "`minirun dashboard` prints")
            return
        query = dict(urllib.parse.parse_qsl(url.query))
        parts = [urllib.parse.unquote(p) for p in url.path.strip("/").split("/")]
        try:
            body = json.loads(raw) if raw else {}
        except json.JSONDecodeError as e:
            self._error(400, "UsageError", f"the request body is not JSON: {e}")
            return
        why = allowed(method, parts, body)
        if why:
            self._error(403, "Forbidden", why)
            return
        try:
            if parts[1:2] == ["events"]:    # a page long-polls: keep a thread from waiting 30 s
                query["wait"] = str(min(float(query.get("wait", 0) or 0), 10.0))
            self._json(200, self.api(method, parts, query, body))
        except (MinirunError, PlacementError, ValueError, TypeError) as e:
            status, payload = self.error_reply(e)
            self._json(status, payload)

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_HEAD(self) -> None:
        self._dispatch("HEAD")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PATCH(self) -> None:
        self._dispatch("PATCH")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, api: Api, error_reply: ErrorReply, host: str, port: int, token: str):
        handler = type("DashboardHandler", (Handler,), {
            "api": staticmethod(api), "error_reply": staticmethod(error_reply), "token": token})
        self.address_family = socket.AF_INET6 if ":" in host else socket.AF_INET
        super().__init__((host, port), handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        import sys

        if not isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
            super().handle_error(request, client_address)

    def url(self) -> str:
        host, port = self.server_address[:2]
        shown = f"[{host}]" if ":" in host else host
        return f"http://{shown}:{port}/"


def serve(api: Api, error_reply: ErrorReply, host: str, port: int, token: str,
          previous: str | None) -> Server:
    """The dashboard's server. With port 0 (any), a restarted manager (after a crash, the
    address file is still there) takes its predecessor's port if it is free, so an open page
    keeps working."""
    if port == 0 and previous:
        old = urllib.parse.urlsplit(previous)
        if old.port and is_loopback(host) == is_loopback(old.hostname or ""):
            try:
                return Server(api, error_reply, host, old.port, token)
            except OSError:
                pass
    return Server(api, error_reply, host, port, token)
