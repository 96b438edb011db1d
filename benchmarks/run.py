"""Run the benchmark scripts and write BENCHMARKS.md.

Each `benchmarks/<name>.py` runs in a process of its own (so one's memory does not inflate the
next one's peak RSS) and prints a Markdown section headed `## ...`; this collects them under a
description of the machine. Sections of BENCHMARKS.md that were not rerun are kept, so one
benchmark can be refreshed alone. Usage: `python -m benchmarks.run [--project DIR] [name ...]`
(default: all of them; `--project` is the fully reproduced project the `pipeline` one measures).
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

from cifar10.tracking.provenance import machine

HERE = Path(__file__).resolve().parent
ORDER = ["augment", "profile", "threads", "train", "precision", "dropout", "scaling", "transfer", "pipeline"]


def split_sections(text: str) -> dict[str, str]:
    """`## heading` -> the section's text (heading included), in file order."""
    sections: dict[str, str] = {}
    heading = None
    for line in text.splitlines():
        if line.startswith("## "):
            heading = line
            sections[heading] = line
        elif heading is not None:
            sections[heading] += "\n" + line
    return {h: body.strip() for h, body in sections.items()}


def merge(old: dict[str, str], new: dict[str, str]) -> list[str]:
    """Old sections in their order, replaced by new ones of the same heading; new ones appended."""
    merged = [new.get(h, body) for h, body in old.items()]
    return merged + [body for h, body in new.items() if h not in old]


def dated(sections: dict[str, str]) -> dict[str, str]:
    """Each section with the day it was measured under its heading: kept sections may come from other days."""
    return {h: body.replace(h, f"{h}\n\n*Measured on {time.strftime('%Y-%m-%d')}.*", 1) for h, body in sections.items()}


def write_sections(out: Path, text: str) -> None:
    """Merge the `## ` sections of `text`, dated, into the Markdown file `out`; its header and other sections stay."""
    old = out.read_text() if out.exists() else "# Benchmarks\n"
    header = old.split("\n## ", 1)[0].rstrip()
    out.write_text(header + "\n\n" + "\n\n".join(merge(split_sections(old), dated(split_sections(text)))) + "\n")


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description="Run benchmarks/ and write BENCHMARKS.md.")
    parser.add_argument("names", nargs="*", metavar="name", help=" | ".join(ORDER) + " (default: all)")
    parser.add_argument("--project", type=Path, default=Path("."),
                        help="fully reproduced project for the pipeline benchmark (default: .)")
    args = parser.parse_args(argv)
    unknown = [n for n in args.names if n not in ORDER]
    if unknown:
        parser.error(f"unknown benchmark {', '.join(unknown)}; allowed: {', '.join(ORDER)}")
    names = args.names or [n for n in ORDER if (HERE / f"{n}.py").exists()]
    new, failed = {}, []
    for name in names:
        started = time.perf_counter()
        print(f"running benchmarks.{name} ...", file=sys.stderr, flush=True)
        extra = ["--project", str(args.project)] if name == "pipeline" else []
        proc = subprocess.run([sys.executable, "-m", f"benchmarks.{name}", *extra], capture_output=True, text=True)
        if proc.returncode != 0:
            failed.append(name)
            print(proc.stderr[-3000:], file=sys.stderr)
            continue
        new.update(dated(split_sections(proc.stdout)))
        print(f"  done in {time.perf_counter() - started:.0f}s", file=sys.stderr)
    out = Path("BENCHMARKS.md")
    old = split_sections(out.read_text()) if out.exists() else {}
    sections = merge(old, new)
    header = (
        "# Benchmarks\n\n"
        f"Last written on {time.strftime('%Y-%m-%d')} by `make bench` (`python -m benchmarks.run`) on: {machine()}.\n"
        "A section not rerun then keeps its own date, and each names the CPU it was measured on.\n"
        "Figures are medians of repeated runs; every ratio is measured side by side in the same run.\n"
        "The machine is shared, so expect a few percent of noise between runs.\n"
    )
    out.write_text(header + "\n" + "\n\n".join(sections) + "\n")
    if failed:
        print(f"error: benchmarks failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
