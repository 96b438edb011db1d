"""fetch-weights stage: the backbone's pretrained weights as a tracked, checksummed input.

Writes data/weights/ with the weights file (if any) and weights.json, the manifest the transfer
stage reads: {kind, source, checksum, file}. `imagenet` downloads `transfer.weights_url`, a path
copies that file, `none` writes only a manifest saying the backbone starts from random weights.
"""
from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

from stages.atomic import atomic_output, remove_output
from stages.errors import PipelineError, cli_errors
from stages.schema import load_params
from stages.schema.data import parse_checksum
from stages.schema.transfer import TransferParams

WEIGHTS_DIR = Path("data/weights")
MANIFEST = "weights.json"
IMAGENET_FILE = "efficientnetb0_notop.h5"
RETRIES = 3
TIMEOUT = 60.0


def source_of(cfg: TransferParams) -> tuple[str, str]:
    """(kind, source) the params ask for: ('imagenet', url), ('file', path) or ('none', 'none')."""
    if cfg.weights == "imagenet":
        return "imagenet", cfg.weights_url
    if cfg.weights == "none":
        return "none", "none"
    return "file", cfg.weights


def fetch_weights(cfg: TransferParams, folder: Path, retries: int = RETRIES, timeout: float = TIMEOUT) -> dict:
    """Fetch (or copy) the weights into `folder`, check they load into the backbone, write the manifest."""
    from stages.sources.fetch import fetch, local_path

    kind, source = source_of(cfg)
    folder.mkdir(parents=True, exist_ok=True)
    manifest = {"kind": kind, "source": source, "checksum": None, "file": None}
    if kind != "none":
        name = IMAGENET_FILE if kind == "imagenet" else local_path(source).name
        label = "transfer.weights_url" if kind == "imagenet" else "transfer.weights"
        checksum = fetch(source, folder / name, cfg.weights_checksum, retries, timeout, label)
        _check_loads(folder / name)
        manifest.update(checksum=checksum, file=name)
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def _check_loads(path: Path) -> None:
    """A file that passes its checksum can still be the wrong model's weights: load it once here."""
    import keras

    from stages.transfer_model import build_backbone

    build_backbone(32, path)  # PipelineError if not EfficientNet-B0 no-top weights
    keras.backend.clear_session()


def file_checksum(path: Path, algo: str) -> str:
    hasher = hashlib.new(algo)
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            hasher.update(chunk)
    return f"{algo}:{hasher.hexdigest()}"


def read_manifest(cfg: TransferParams, folder: Path = WEIGHTS_DIR) -> tuple[dict, Path | None]:
    """The manifest and weights path (None for random weights), checked against the params and the file.

    Raises:
        PipelineError: missing or stale manifest, missing weights file, file changed since it was fetched.
    """
    hint = "run `dvc repro fetch-weights`"
    try:
        manifest = json.loads((folder / MANIFEST).read_text())
        kind, source, file, checksum = (manifest[k] for k in ("kind", "source", "file", "checksum"))
    except FileNotFoundError:
        raise PipelineError(f"{folder / MANIFEST} not found: {hint}") from None
    except (ValueError, KeyError, TypeError) as exc:
        raise PipelineError(f"{folder / MANIFEST}: not a weights manifest ({exc}): {hint}") from None
    wanted = source_of(cfg)
    if (kind, source) != wanted:
        raise PipelineError(
            f"{folder} holds {kind} weights from {source}, but params ask for {wanted[0]} from {wanted[1]}: {hint}"
        )
    if kind == "none":
        return manifest, None
    path = folder / str(file)
    if not path.is_file():
        raise PipelineError(f"{path}: weights file not found: {hint}")
    algo = parse_checksum(str(checksum))[0]
    if file_checksum(path, algo) != checksum:
        raise PipelineError(f"{path}: checksum differs from {checksum} recorded when fetched (corrupt file?): {hint}")
    return manifest, path


@cli_errors
def main() -> None:
    params = load_params()
    from stages.tracking import stage_run

    cfg = params.transfer
    kind, source = source_of(cfg)
    with stage_run("fetch-weights", params, sections=[]) as tracker:
        tracker.log_params({f"transfer.{k}": getattr(cfg, k) for k in ("weights", "weights_url", "weights_checksum")})
        try:
            with atomic_output(WEIGHTS_DIR) as tmp:
                manifest = fetch_weights(cfg, tmp)
        except BaseException:
            remove_output(WEIGHTS_DIR)  # weights of other params must not pass for these
            raise
        tracker.set_tags({"weights_source": source, "weights_kind": kind,
                          "weights_checksum": manifest["checksum"] or "none"})
        tracker.log_dict(manifest, MANIFEST)
    if kind == "none":
        print("weights: none — random backbone, the transfer stage will NOT do transfer learning", file=sys.stderr)
    else:
        recorded = " (recorded: set transfer.weights_checksum to pin it)" if not cfg.weights_checksum else ""
        print(f"weights: {source} -> {WEIGHTS_DIR / manifest['file']} {manifest['checksum']}{recorded}", file=sys.stderr)


if __name__ == "__main__":
    main()
