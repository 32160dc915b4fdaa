"""Runs the real metrics service (``node dist/src/main.js``, built by ``npm test``) for the tests."""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import sqlite3
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Dict, Optional

ROOT = Path(__file__).resolve().parents[3]
MAIN = ROOT / "dist" / "src" / "main.js"
NODE = os.environ.get("NODE", shutil.which("node") or "node")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class MetricsService:
    """One service process on a fixed port and database, which can be stopped and started again."""

    def __init__(self, **env: str) -> None:
        if not MAIN.exists():
            raise RuntimeError(f"{MAIN} is missing: run `npm run build` first (npm test does)")
        self.dir = tempfile.mkdtemp(prefix="mcp-metrics-py-")
        self.db_path = os.path.join(self.dir, "metrics.db")
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.key = "py-" + secrets.token_hex(12)
        self.env: Dict[str, str] = {
            "PATH": os.environ.get("PATH", ""),
            "METRICS_SERVICE_HOST": "127.0.0.1",
            "METRICS_SERVICE_PORT": str(self.port),
            "SQLITE_DB_PATH": self.db_path,
            "OTEL_PROMETHEUS_ENABLED": "false",
            "METRICS_API_KEY_TEST_SERVICE": self.key,
            **env,
        }
        self.process: Optional[subprocess.Popen] = None
        self.output: list = []

    def start(self) -> "MetricsService":
        self.process = subprocess.Popen([NODE, str(MAIN)], env=self.env, stdout=subprocess.PIPE,
                                        stderr=subprocess.STDOUT, text=True)
        listening = threading.Event()

        def read(stream) -> None:
            for line in stream:
                self.output.append(line)
                if '"listening"' in line:
                    listening.set()

        threading.Thread(target=read, args=(self.process.stdout,), daemon=True).start()
        if not listening.wait(15):
            self.stop()
            raise RuntimeError("service did not start:\n" + "".join(self.output))
        return self

    def stop(self) -> int:
        """SIGTERM, as an orchestrator stops it; returns the exit code."""
        assert self.process is not None
        self.process.terminate()
        code = self.process.wait(15)
        self.process.stdout.close()
        return code

    def close(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def query(self, sql: str, *params):
        """Rows of a read-only query on the service's database, as dicts."""
        with sqlite3.connect(f"file:{self.db_path}?mode=ro", uri=True) as db:
            db.row_factory = sqlite3.Row
            return [dict(row) for row in db.execute(sql, params)]


def wait_until(predicate, timeout: float = 10.0, interval: float = 0.02) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


def balanced(stats) -> bool:
    return stats.emitted == (stats.sent + stats.dropped + stats.rejected + stats.unauthenticated
                             + stats.failed + stats.buffered + stats.in_flight)


__all__ = ["MetricsService", "balanced", "free_port", "wait_until"]
