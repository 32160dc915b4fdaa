"""ASGI middleware (FastAPI, Starlette or any ASGI app) emitting one auth event per request."""

from __future__ import annotations

import hashlib
import time
from typing import Any, Callable, Mapping, Optional
from urllib.parse import urlsplit

from .client import MetricsClient

Headers = Mapping[str, str]


def hash_user(user: str) -> str:
    """The hash the gateway uses for user identities: SHA-256, first 12 hex digits."""
    return hashlib.sha256(user.encode()).hexdigest()[:12]


def _default_server(request_headers: Headers, path: str) -> Optional[str]:
    # Behind nginx auth_request, the original URL names the MCP server.
    url = request_headers.get("x-original-url") or path
    segments = [s for s in urlsplit(url).path.split("/") if s]
    return segments[0] if segments else None


def _default_method(request_headers: Headers, response_headers: Headers) -> str:
    declared = response_headers.get("x-auth-method")
    if declared:
        return declared
    authorization = request_headers.get("authorization")
    if authorization is None:
        return "noauth"
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer":
        return scheme.lower()
    # A JWT is three base64url segments; any other bearer token is OAuth-issued.
    return "jwt" if token.count(".") == 2 else "oauth"


def _headers(raw) -> dict:
    return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in raw or ()}


class AuthMetricsMiddleware:
    """Measures each HTTP request and emits an auth event with its outcome, method and duration.

    The defaults follow the gateway's auth server (nginx ``auth_request`` to
    ``/validate``): the server is the first path segment of ``X-Original-URL``
    (else of the request path), the method and user come from the
    ``X-Auth-Method`` and ``X-Username`` response headers the handler sets
    (else the method from the ``Authorization`` scheme), and a status below 400
    is a success. Each can be replaced by a callable.
    """

    def __init__(self, app, service_name: str = "auth-server", client: Optional[MetricsClient] = None,
                 *, include: Optional[Callable[[Mapping[str, Any]], bool]] = None,
                 server: Optional[Callable[[Headers, str], Optional[str]]] = None,
                 method: Optional[Callable[[Headers, Headers], Optional[str]]] = None,
                 user: Optional[Callable[[Headers, Headers], Optional[str]]] = None,
                 success: Optional[Callable[[int], bool]] = None) -> None:
        self.app = app
        self.client = client or MetricsClient(service_name=service_name)
        self._include = include
        self._server = server or _default_server
        self._method = method or _default_method
        self._user = user or (lambda _req, res: res.get("x-username"))
        self._success = success or (lambda status: status < 400)

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or (self._include is not None and not self._include(scope)):
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        response = {"status": None, "headers": {}}

        async def send_and_watch(message) -> None:
            if message["type"] == "http.response.start":
                response["status"] = message["status"]
                response["headers"] = _headers(message.get("headers"))
            await send(message)

        error_code = None
        try:
            await self.app(scope, receive, send_and_watch)
        except Exception as error:
            error_code = type(error).__name__
            raise
        finally:
            # No answer and no exception: the client went away first (nginx's 499).
            status = response["status"] or (500 if error_code else 499)
            self._emit(scope, status, response["headers"], error_code,
                       (time.perf_counter() - started) * 1000)

    def _emit(self, scope, status: int, response_headers: Headers, error_code: Optional[str],
              duration_ms: float) -> None:
        request_headers = _headers(scope.get("headers"))
        success = error_code is None and self._success(status)
        user = self._user(request_headers, response_headers)
        self.client.auth(
            success,
            self._method(request_headers, response_headers),
            server=self._server(request_headers, scope.get("path", "")),
            user_hash=hash_user(user) if user else None,
            error_code=None if success else (error_code or str(status)),
            duration_ms=duration_ms,
        )


def add_auth_metrics_middleware(app, service_name: str = "auth-server",
                                client: Optional[MetricsClient] = None, **options: Any) -> MetricsClient:
    """Adds :class:`AuthMetricsMiddleware` to a FastAPI or Starlette app.

    Without ``client``, one is made from ``METRICS_SERVICE_URL`` and
    ``METRICS_API_KEY`` for ``service_name``, and closed (drained) when the app
    shuts down. Returns the client, whose other emitters the app may use too.
    """
    owned = client is None
    client = client or MetricsClient(service_name=service_name)
    app.add_middleware(AuthMetricsMiddleware, service_name=service_name, client=client, **options)
    if owned and hasattr(app, "add_event_handler"):
        app.add_event_handler("shutdown", client.close)
    return client
