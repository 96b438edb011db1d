"""Real servers for integration tests, started on 127.0.0.1 and stopped afterwards."""
from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

import requests


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def mlflow_server(backend_uri: str, artifacts: Path, timeout: float = 120) -> Iterator[str]:
    """Run `mlflow server` with this backend store and a local artifact root; yield its URL. Leaving the
    block kills it."""
    port = free_port()
    log = artifacts.parent / f"mlflow-server-{port}.log"
    cmd = [
        str(Path(sys.executable).parent / "mlflow"), "server",
        "--backend-store-uri", backend_uri,
        "--artifacts-destination", str(artifacts),
        "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
    ]
    with log.open("w") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"mlflow server exited {proc.returncode}:\n{log.read_text()[-3000:]}")
            try:
                if requests.get(f"{url}/health", timeout=2).ok:
                    break
            except requests.RequestException:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"mlflow server not up after {timeout}s:\n{log.read_text()[-3000:]}")
            time.sleep(0.5)
        yield url
    finally:
        # Killed outright: on SIGTERM uvicorn keeps serving open keep-alive connections until their
        # clients close them, so a stage that already talks to it would not see it go away. SQLite
        # commits every request, so nothing a test reads afterwards is lost.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, 9)
        proc.wait()
