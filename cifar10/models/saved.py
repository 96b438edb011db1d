"""Reading a saved whole model (`.keras`), the form every stage and command exchanges models in."""
from __future__ import annotations

import tempfile
import zipfile
from pathlib import Path

from cifar10.errors import PipelineError


def load_model(path: str | Path):
    """A whole saved Keras model, uncompiled; an unreadable file is one PipelineError line."""
    path = Path(path)
    # Checked before importing Keras, so the answer to a wrong file is not buried in TF's start-up log.
    if path.suffix == ".keras" and not zipfile.is_zipfile(path):
        raise PipelineError(f"{path}: cannot load a Keras model (not a .keras zip archive)")
    import keras

    try:
        return keras.models.load_model(path, compile=False)
    except Exception as exc:  # noqa: BLE001 - Keras raises many types for a bad file
        raise PipelineError(f"{path}: cannot load a Keras model ({type(exc).__name__}: {str(exc)[:150]})") from None


def load_for_inference(path: str | Path, policy: str | None = None):
    """`load_model` with batch norm folded into the layers before it (`cifar10.models.folding`): the same
    predictions to float32 rounding, in less time; computing under the dtype `policy` if given (the
    weights stay as saved). Never for training or saving."""
    from cifar10.models.folding import fold_batch_norm
    from cifar10.models.recast import recast

    model = load_model(path)
    return fold_batch_norm(recast(model, policy) if policy else model)


def detached_copy(model):
    """A copy of `model` that shares no variable with it, read back from its saved form: training the
    original later leaves the copy as it is (a layer's fitted state, such as Normalization's, included)."""
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / "model.keras"
        model.save(path)
        return load_model(path)
