"""Run every benchmark script and write BENCHMARKS.md.

Each `benchmarks/<name>.py` runs in a process of its own (so one's memory does not inflate the
next one's peak RSS) and prints a Markdown section; this collects them under a description of the
machine. Usage: `python -m benchmarks.run [name ...]` (default: all of them).
"""
from __future__ import annotations

import os
import platform
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ORDER = ["augment", "train", "transfer", "pipeline"]


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    import tensorflow as tf

    return (
        f"{os.cpu_count()} cores ({cpu}), {mem:.0f} GiB RAM, no GPU, Python {platform.python_version()}, "
        f"TensorFlow {tf.__version__}"
    )


def main(argv: list[str]) -> int:
    names = argv or [n for n in ORDER if (HERE / f"{n}.py").exists()]
    sections, failed = [], []
    for name in names:
        started = time.perf_counter()
        print(f"running benchmarks.{name} ...", file=sys.stderr, flush=True)
        proc = subprocess.run([sys.executable, "-m", f"benchmarks.{name}"], capture_output=True, text=True)
        if proc.returncode != 0:
            failed.append(name)
            print(proc.stderr[-3000:], file=sys.stderr)
            continue
        sections.append(proc.stdout.strip())
        print(f"  done in {time.perf_counter() - started:.0f}s", file=sys.stderr)
    header = (
        "# Benchmarks\n\n"
        f"Measured on {time.strftime('%Y-%m-%d')} with `make bench` (`python -m benchmarks.run`) on: {machine()}.\n"
        "Figures are medians of repeated runs; every ratio is measured side by side in the same run.\n"
        "The machine is shared, so expect a few percent of noise between runs.\n"
    )
    Path("BENCHMARKS.md").write_text(header + "\n" + "\n\n".join(sections) + "\n")
    if failed:
        print(f"error: benchmarks failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
