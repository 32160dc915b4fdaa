"""The ASGI auth middleware on a real FastAPI app served by uvicorn."""

import threading
import unittest
import urllib.error
import urllib.request

import uvicorn
from fastapi import FastAPI, Request, Response

from mcp_metrics_client import MetricsClient, add_auth_metrics_middleware, hash_user

from .service import MetricsService, free_port, wait_until

JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2ln"


def auth_server() -> FastAPI:
    """What an auth server's /validate answers: 200 with the user for a good token, else 401."""
    app = FastAPI()

    @app.get("/validate")
    async def validate(request: Request) -> Response:
        if request.headers.get("authorization") == f"Bearer {JWT}":
            return Response(headers={"X-Username": "alice", "X-Auth-Method": "jwt"})
        return Response(status_code=401)

    @app.get("/boom")
    async def boom() -> Response:
        raise RuntimeError("handler failed")

    return app


class QuietServer(uvicorn.Server):
    def install_signal_handlers(self) -> None:  # runs in a thread, not the main one
        pass


def get(url: str, headers: dict) -> int:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers)) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


class MiddlewareTest(unittest.TestCase):
    def test_one_auth_event_per_request_with_outcome_method_and_duration(self):
        service = MetricsService().start()
        self.addCleanup(service.close)
        client = MetricsClient(service.url, service.key, "test-service")
        self.addCleanup(client.close)
        app = auth_server()
        self.assertIs(add_auth_metrics_middleware(app, service_name="test-service", client=client),
                      client)
        port = free_port()
        server = QuietServer(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="critical"))
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        self.assertTrue(wait_until(lambda: server.started))
        base = f"http://127.0.0.1:{port}"
        original = {"X-Original-URL": "https://gw.example/fastapi-srv/mcp"}
        self.assertEqual(get(f"{base}/validate", {**original, "Authorization": f"Bearer {JWT}"}), 200)
        self.assertEqual(get(f"{base}/validate", {**original, "Authorization": "Bearer opaque"}), 401)
        self.assertEqual(get(f"{base}/validate", original), 401)
        self.assertEqual(get(f"{base}/boom", original), 500)
        server.should_exit = True
        thread.join(10)

        self.assertTrue(client.flush())
        rows = service.query("SELECT success, method, user_hash, error_code, duration_ms "
                             "FROM auth_metrics WHERE server = 'fastapi-srv' ORDER BY id")
        self.assertTrue(all(row.pop("duration_ms") > 0 for row in rows))
        self.assertEqual(rows, [
            {"success": 1, "method": "jwt", "user_hash": hash_user("alice"), "error_code": None},
            {"success": 0, "method": "oauth", "user_hash": None, "error_code": "401"},
            {"success": 0, "method": "noauth", "user_hash": None, "error_code": "401"},
            {"success": 0, "method": "noauth", "user_hash": None, "error_code": "RuntimeError"},
        ])


if __name__ == "__main__":
    unittest.main()
