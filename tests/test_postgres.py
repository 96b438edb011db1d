"""A stage tracked by `mlflow server` on a real PostgreSQL database, started in a temporary data directory."""
from __future__ import annotations

import contextlib
import glob
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Iterator

import pytest
from mlflow.tracking import MlflowClient

from tests.conftest import REPO
from tests.servers import free_port, mlflow_server

pytestmark = [pytest.mark.integration, pytest.mark.postgres, pytest.mark.slow]


def postgres_bin() -> Path | None:
    """The folder of initdb/postgres: on PATH, or Debian's /usr/lib/postgresql/<version>/bin."""
    found = shutil.which("initdb")
    if found:
        return Path(found).resolve().parent
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]))
    return Path(candidates[-1]).parent if candidates else None


def _as_postgres_user() -> list[str]:
    # initdb and postgres refuse to run as root; run them as `nobody` (setpriv execs, so the pid we
    # hold is the server itself and our signals reach it).
    if os.geteuid() != 0:
        return []
    return ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", "--"]


@contextlib.contextmanager
def postgres_server(bindir: Path, timeout: float = 60) -> Iterator[str]:
    """Run PostgreSQL on 127.0.0.1 in a temporary data directory; yield a URI for a fresh database."""
    import psycopg2

    root = Path(tempfile.mkdtemp(prefix="pg-test-"))  # in /tmp, so `nobody` can reach it
    data, sockets, log = root / "data", root / "sockets", root / "server.log"
    sockets.mkdir()
    if os.geteuid() == 0:
        shutil.chown(root, "nobody", "nogroup")
        shutil.chown(sockets, "nobody", "nogroup")
    sudo = _as_postgres_user()
    proc = None
    try:
        subprocess.run([*sudo, str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "-A", "trust",
                        "-E", "UTF8", "--no-sync"], check=True, capture_output=True, timeout=120)
        port = free_port()
        with log.open("w") as out:
            proc = subprocess.Popen([*sudo, str(bindir / "postgres"), "-D", str(data), "-h", "127.0.0.1",
                                     "-p", str(port), "-k", str(sockets), "-F"], stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while True:
            try:
                conn = psycopg2.connect(host="127.0.0.1", port=port, user="postgres", dbname="postgres")
                break
            except psycopg2.OperationalError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"PostgreSQL did not start:\n{log.read_text()[-3000:]}") from None
                time.sleep(0.3)
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("CREATE DATABASE mlflow")
        conn.close()
        # SQLAlchemy 2.1 maps a bare postgresql:// to psycopg 3; the pinned driver is psycopg2.
        yield f"postgresql+psycopg2://postgres@127.0.0.1:{port}/mlflow"
    finally:
        if proc is not None and proc.poll() is None:
            proc.send_signal(2)  # SIGINT: PostgreSQL's fast shutdown
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def pg_bin() -> Path:
    bindir = postgres_bin()
    if bindir is None:
        message = "PostgreSQL (initdb, postgres) not found; .ci/run installs Debian's postgresql package"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return bindir


def test_stage_logs_to_mlflow_server_on_postgresql(pg_bin, workdir, tmp_path):
    import psycopg2

    with postgres_server(pg_bin) as db_uri, mlflow_server(db_uri, tmp_path / "artifacts") as url:
        env = {**os.environ, "MLFLOW_TRACKING_URI": url, "PYTHONPATH": str(REPO)}
        proc = subprocess.run([sys.executable, "-m", "stages.imbalance_subsample"], cwd=workdir, env=env,
                              capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert "did not record" not in proc.stderr

        client = MlflowClient(url)
        experiments = [e.experiment_id for e in client.search_experiments()]
        (run,) = client.search_runs(experiments, filter_string="tags.stage = 'imbalance-subsample'")
        assert run.info.status == "FINISHED"
        assert run.data.params["imbalance.keep_fraction"] == "0.5"
        assert "stage_wall_time_s" in run.data.metrics
        # The records live in PostgreSQL itself, not in some fallback store.
        with psycopg2.connect(db_uri.replace("+psycopg2", "")) as conn, conn.cursor() as cur:
            cur.execute("SELECT name, status FROM runs WHERE run_uuid = %s", (run.info.run_id,))
            assert cur.fetchone() == ("imbalance-subsample", "FINISHED")
