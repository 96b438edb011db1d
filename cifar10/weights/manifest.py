"""The fetch-weights stage's core and the manifest the transfer stage reads.

data/weights/ holds the weights file (if any) and weights.json: {kind, source, checksum, file}.
`imagenet` downloads `transfer.weights_url`, a path copies that file, `none` writes only a manifest
saying the backbone starts from random weights.
"""
from __future__ import annotations

import json
from pathlib import Path

from cifar10.data.sources.fetch import fetch, file_checksum, local_path
from cifar10.errors import PipelineError
from cifar10.paths import WEIGHTS_DIR, WEIGHTS_MANIFEST
from cifar10.schema.data import parse_checksum
from cifar10.schema.transfer import TransferParams

MANIFEST = WEIGHTS_MANIFEST.name
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

    from cifar10.models.transfer import build_backbone

    build_backbone(32, path)  # PipelineError if not EfficientNet-B0 no-top weights
    keras.backend.clear_session()


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
