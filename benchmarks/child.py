"""Running a benchmark module in a fresh process: its own peak memory, its own TensorFlow set-up."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def last_line(module: str, *args: str, env: dict[str, str] | None = None) -> str:
    """The last line `python -m module args` printed (TensorFlow's start-up chatter goes before it).

    Args:
        env: variables added to this process's environment (e.g. TensorFlow switches read at start-up).
    """
    environ = {**os.environ, **(env or {}), "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-m", module, *args], capture_output=True, text=True, check=True,
                         env=environ)
    return out.stdout.strip().splitlines()[-1]
