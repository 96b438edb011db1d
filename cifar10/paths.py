"""Where every file between stages lives, and which stage writes it: the one producer map.

Paths are relative to the project root (DVC runs every stage there).
"""
from __future__ import annotations

from pathlib import Path

from cifar10.errors import PipelineError

# A queued or --temp DVC experiment runs in a copy of the repo under this folder of the real one.
_DVC_TEMP_WORKSPACES = (".dvc", "tmp", "exps")

RAW_TRAIN = Path("data/raw/train.npz")
RAW_TEST = Path("data/raw/test.npz")
RAW_SOURCE_INFO = Path("data/raw/source.json")
IMBALANCED_TRAIN = Path("data/imbalanced/train.npz")
AUGMENTED_TRAIN = Path("data/augmented/train.npz")
WEIGHTS_DIR = Path("data/weights")
WEIGHTS_MANIFEST = WEIGHTS_DIR / "weights.json"

# frozen is the transfer stage's model as its head phase left it (backbone untouched), transfer the same
# after fine-tuning its top blocks: one stage trains both.
MODELS = ("baseline", "augmented", "frozen", "transfer")
# The pipeline stage that trains each model.
MODEL_STAGE = {"baseline": "train-baseline", "augmented": "train-augmented", "frozen": "transfer",
               "transfer": "transfer"}
# The training set each CNN variant reads.
CNN_TRAIN_SET = {"baseline": IMBALANCED_TRAIN, "augmented": AUGMENTED_TRAIN}
# The training sets by folder name, the values of transfer.train_set: dvc.yaml's transfer stage
# depends on data/${transfer.train_set}/train.npz, the same file.
TRAIN_SETS = {"raw": RAW_TRAIN, "imbalanced": IMBALANCED_TRAIN, "augmented": AUGMENTED_TRAIN}


def model_path(model: str) -> Path:
    return Path("models") / f"{model}.keras"


def history_csv(model: str) -> Path:
    """Per-epoch curves of a model's training, drawn by `dvc plots`."""
    return Path("plots") / model / "history.csv"


def per_class_report(model: str) -> Path:
    """Every test figure of a model, written by its evaluate stage (the compare stage's input)."""
    return Path("reports/per_class") / f"{model}.json"


def confusion_plot(model: str, kind: str) -> Path:
    """The model's confusion matrix: `csv` (DVC's confusion template) or `png`."""
    return Path("plots/confusion") / f"{model}.{kind}"


PRODUCER: dict[Path, str] = {
    RAW_TRAIN: "download",
    RAW_TEST: "download",
    RAW_SOURCE_INFO: "download",
    IMBALANCED_TRAIN: "imbalance-subsample",
    AUGMENTED_TRAIN: "augment",
    WEIGHTS_MANIFEST: "fetch-weights",
    **{model_path(m): stage for m, stage in MODEL_STAGE.items()},
    **{per_class_report(m): f"evaluate@{m}" for m in MODELS},
}


def missing(path: str | Path, hint: str = "") -> PipelineError:
    """The error for an input that is not there, naming the stage that writes it."""
    path = Path(path)
    stage = PRODUCER.get(path)
    todo = f": run `dvc repro {stage}` first" if stage else ""
    return PipelineError(f"{path} not found{todo}{hint}")


def require(*paths: str | Path) -> None:
    """Fail with one line naming the producing stage if any input file is missing."""
    for path in paths:
        if not Path(path).exists():
            raise missing(path)


def project_root(start: Path | None = None) -> Path:
    """The repository the pipeline belongs to, also from inside a DVC temporary workspace."""
    path = (start or Path.cwd()).resolve()
    parts = path.parts
    for i in range(len(parts) - len(_DVC_TEMP_WORKSPACES) + 1):
        if parts[i : i + len(_DVC_TEMP_WORKSPACES)] == _DVC_TEMP_WORKSPACES:
            return Path(*parts[:i])
    return path
