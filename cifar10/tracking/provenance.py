"""Where a run comes from: the git commit, the DVC experiment, and the pipeline execution it belongs to."""
from __future__ import annotations

import hashlib
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path


def git_commit() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10, check=True
        )
        return out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def dvc_process() -> tuple[int, str] | None:
    """The (pid, start time) of the `dvc` process this stage runs under, if any (Linux /proc)."""
    pid = os.getppid()
    for _ in range(8):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return None
        if any(Path(arg.decode(errors="replace")).name == "dvc" for arg in cmdline[:2]):
            return pid, stat[19]  # field 22 of stat: start time in clock ticks since boot
        pid = int(stat[1])
        if pid <= 1:
            return None
    return None


def pipeline_group() -> str:
    """An id shared by the stages of one pipeline execution.

    PIPELINE_RUN_GROUP wins; inside `dvc repro`/`dvc exp run` it is derived from the dvc process, so
    every stage it runs lands in the same group; a stage run by hand is a group of its own.
    """
    explicit = os.environ.get("PIPELINE_RUN_GROUP")
    if explicit:
        return explicit
    proc = dvc_process()
    seed = f"{proc[0]}-{proc[1]}" if proc else f"{os.getpid()}-{time.time_ns()}"
    seed += os.environ.get("DVC_EXP_NAME", "")
    return hashlib.sha1(seed.encode()).hexdigest()[:12]


def cpu_model() -> str:
    """The CPU's model name, family/model numbers and matrix extensions, e.g. `Intel(R) Xeon(R) Processor
    (family 6 model 207; avx512_bf16, no amx)`: this project's machines share a model name but not their
    speed or float results, which the bfloat16/AMX units decide."""
    try:
        info = dict(line.split(":", 1) for line in Path("/proc/cpuinfo").read_text().split("\n\n")[0].splitlines()
                    if ":" in line)
    except OSError:
        return platform.processor() or "unknown CPU"
    info = {k.strip(): v.strip() for k, v in info.items()}
    flags = set(info.get("flags", "").split())
    units = ", ".join(name if flag in flags else f"no {name}" for flag, name in (("avx512_bf16", "avx512_bf16"),
                                                                                   ("amx_tile", "amx")))
    return f"{info.get('model name', 'unknown CPU')} (family {info.get('cpu family', '?')} model {info.get('model', '?')}; {units})"


def gpu_model() -> str:
    """The GPUs TensorFlow sees in this process, e.g. `NVIDIA A100-SXM4-40GB (compute capability 8.0)`,
    or `no GPU`."""
    from cifar10.training.devices import describe, local_gpus

    return describe(local_gpus())


def machine() -> str:
    """One line describing the machine figures were measured on."""
    import tensorflow as tf

    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return (f"{os.cpu_count()} cores of {cpu_model()}, {mem:.0f} GiB RAM, {gpu_model()}, "
            f"Python {platform.python_version()}, TensorFlow {tf.__version__}")


def this_sitting() -> dict[str, str]:
    """The CPU, GPUs and commit of this process: what a training backup keeps beside the epochs it trains."""
    return {"cpu": cpu_model(), "gpu": gpu_model(), "commit": git_commit()}


def trained_by_tags(sittings: list[dict] | None, here: dict[str, str]) -> dict[str, str]:
    """Tags of a run whose epochs were (partly) restored from a backup: `cpu`, `gpu` and `git_commit` name
    the sittings that trained them (joined with ' + ' when several did), `restored_by.*` this sitting.

    Speed and float results belong to the machine that trained, so the run must not carry the restoring one's.
    """
    keys = {"cpu": "cpu", "gpu": "gpu", "git_commit": "commit"}  # tag -> key of a sitting
    if sittings is None:
        unknown = "unknown (restored from a backup that did not record it)"
        trained = dict.fromkeys(keys, unknown)
    else:
        trained = {tag: " + ".join(dict.fromkeys(s.get(key, "unknown") for s in sittings)) for tag, key in keys.items()}
    return {**trained, **{f"restored_by.{tag}": here.get(key, "unknown") for tag, key in keys.items()}}


EXTRA_TAGS_ENV = "PIPELINE_RUN_TAGS"  # a JSON object of more tags, e.g. the study an experiment belongs to


def run_tags() -> dict[str, str]:
    """Tags every run of this execution carries: group, commit, CPU, in a DVC experiment its name, and
    those of PIPELINE_RUN_TAGS; in a stage that computes with TensorFlow (loaded by then) also `gpu`."""
    tags = {"pipeline.group": pipeline_group(), "git_commit": git_commit(), "cpu": cpu_model()}
    if "tensorflow" in sys.modules:  # the other stages compute on no GPU, and loading TensorFlow costs seconds
        tags["gpu"] = gpu_model()
    try:
        extra = json.loads(os.environ.get(EXTRA_TAGS_ENV, "") or "{}")
    except ValueError:
        extra = {}
    tags.update({str(k): str(v) for k, v in (extra.items() if isinstance(extra, dict) else [])})
    for env, tag in (("DVC_EXP_NAME", "dvc_exp_name"), ("DVC_EXP_BASELINE_REV", "dvc_exp_baseline")):
        if os.environ.get(env):
            tags[tag] = os.environ[env]
    return tags
