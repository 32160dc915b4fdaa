"""An auth server's /validate (nginx auth_request), measured: one auth event per request."""

from fastapi import FastAPI, Request, Response

from mcp_metrics_client import add_auth_metrics_middleware


def create_auth_server(verify) -> FastAPI:
    """``verify(token) -> user or None`` stands for the real token check."""
    app = FastAPI()
    # Reads METRICS_SERVICE_URL and METRICS_API_KEY; drains on shutdown.
    add_auth_metrics_middleware(app, service_name="auth-server")

    @app.get("/validate")
    async def validate(request: Request) -> Response:
        token = request.headers.get("authorization", "").removeprefix("Bearer ")
        user = verify(token)
        if user is None:
            return Response(status_code=401)
        return Response(headers={"X-Username": user, "X-Auth-Method": "jwt"})

    return app
