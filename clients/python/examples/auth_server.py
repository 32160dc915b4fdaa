"""An auth server's /validate (nginx auth_request), measured: one auth event per request.

Run it as a script from the repository root (it needs FastAPI and uvicorn,
Debian's ``python3-fastapi`` and ``python3-uvicorn``)::

    METRICS_SERVICE_URL=http://127.0.0.1:8890 METRICS_API_KEY=<key> PYTHONPATH=clients/python \
      /usr/bin/python3 clients/python/examples/auth_server.py

It serves /validate on 127.0.0.1 (port AUTH_SERVER_PORT, default any free
one), calls it with a good and a wrong token, stops (which drains the client)
and prints the client's counters; it exits 1 if the two events were not sent.
"""

import os
import socket
import sys
import threading
import time
import urllib.error
import urllib.request

from fastapi import FastAPI, Request, Response

from mcp_metrics_client import add_auth_metrics_middleware


def create_auth_server(verify) -> FastAPI:
    """``verify(token) -> user or None`` stands for the real token check."""
    app = FastAPI()
    # Reads METRICS_SERVICE_URL and METRICS_API_KEY; drains on shutdown.
    app.state.metrics = add_auth_metrics_middleware(app, service_name="auth-server")

    @app.get("/validate")
    async def validate(request: Request) -> Response:
        token = request.headers.get("authorization", "").removeprefix("Bearer ")
        user = verify(token)
        if user is None:
            return Response(status_code=401)
        return Response(headers={"X-Username": user, "X-Auth-Method": "jwt"})

    return app


def _main() -> int:
    import uvicorn  # only the script needs a server

    if not os.environ.get("METRICS_API_KEY"):
        print("set METRICS_API_KEY (and METRICS_SERVICE_URL, default http://localhost:8890)",
              file=sys.stderr)
        return 2
    app = create_auth_server(lambda token: "alice" if token == "good" else None)
    port = int(os.environ.get("AUTH_SERVER_PORT", "0"))
    if port == 0:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started and thread.is_alive():
        time.sleep(0.05)
    for token in ("good", "wrong"):
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/validate",
            headers={"Authorization": f"Bearer {token}", "X-Original-URL": "/example-server/mcp"})
        try:
            with urllib.request.urlopen(request) as answer:
                status = answer.status
        except urllib.error.HTTPError as error:
            status = error.code
        print(f"GET /validate with the {token} token: {status}")
    server.should_exit = True  # the app's shutdown handler closes (drains) the client
    thread.join(10)
    stats = app.state.metrics.stats()
    print(stats)
    return 0 if stats.sent == 2 else 1


if __name__ == "__main__":
    sys.exit(_main())
