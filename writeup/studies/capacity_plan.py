"""The plan's `capacity` part: the study's CNN (unchanged, 552,874 parameters) trained to its capacity,
then the imbalance models again under the recipe that gets it there.

1. The screen: the CNN on all 50,000 training images (`imbalance.keep_fraction=1`), seed 42, under
   each of the SCREEN recipes (at most 8, 40 epochs each), reproducing `train-baseline` only: no test
   image is scored. Every recipe shares CAPACITY_PROTOCOL (validation from original images, early
   stopping watching validation balanced accuracy with a patience of all 40 epochs, so every schedule
   runs to its end and the best epoch's weights are kept; flip and pad-4-crop online augmentation,
   batch 128). The winner is the recipe whose kept weights have the highest validation balanced
   accuracy (the first in SCREEN order on a tie).
2. The confirmation, seeds 42, 43, 44, under the winner: the balanced set; the imbalanced set with no
   remedy, with the study's offline augmentation, with logit adjustment (it adopts the training of
   `none`, as it acts after training); and with the best combination of existing remedies, chosen on
   validation: the remedies part's first on validation balanced accuracy among its remedies beyond
   those three (online augmentation alone is left out: the recipe has its own), with logit
   adjustment added; the remedy's online augmentation gives way to the recipe's. Beside them, the
   study's-recipe side of each comparison run again on the same code: `none` and offline augmentation
   under the remedies part's protocol (writeup.studies.plan.REMEDY_PROTOCOL).

"The confirmation uses the screen's winner" is a rule on committed records: the runner reads
STUDIES.json (which it fills as experiments finish) and fills each confirmation run's overrides in
(`resolve`); while a choice lacks records the run waits, and `--dry-run` says what for. Each run is
tagged with the recipe it ran (`capacity_recipe`), so the page can tell one that ran under an earlier
choice.

Time, on a CPU with bfloat16 units (the 2-core AMX Xeon trains this CNN at 1,600 images/s in bfloat16
and passes 7,400 validation images/s; BENCHMARKS.md): the largest training split is 45,000 images
(the balanced set, or the rebalanced one less its validation originals' variants), so a recipe run
is 40 x (45,000 / 1,600 + 5,000 / 7,400) = 40 x 28.8 s = 19.2 minutes, and a study's-recipe run at
most 60 x (45,000 / 1,600 + 4,100 / 7,400) = 60 x 28.7 s = 28.7 minutes. ALLOWANCE doubles both (the
float32 augmentation layers, a batch size other than the measured 64, start-up and the data stages):
38.5 and 57.4 minutes, within BUDGET_MINUTES (tests/test_capacity.py computes it for every run).
"""
from __future__ import annotations

from dataclasses import replace

from cifar10.training.backup_folders import AFTER_TRAINING
from writeup.studies.plan import ONLINE, REMEDIES, REMEDY_PROTOCOL, SEEDS, Experiment, _slug

PART = "capacity"
SCREEN_SEED = 42
EPOCHS = 40
TRAIN_IMAGES_PER_S, VALIDATION_IMAGES_PER_S, ALLOWANCE, BUDGET_MINUTES = 1_600, 7_400, 2.0, 60
BALANCED = "imbalance.keep_fraction=1.0"
CAPACITY_PROTOCOL = ("train.validation_from=originals", "train.early_stopping.monitor=val_balanced_accuracy",
                     f"train.early_stopping.patience={EPOCHS}", f"train.epochs={EPOCHS}", "train.batch_size=128",
                     "train.online_augmentation.flip=true", "train.online_augmentation.crop=4")
# SGD's weight decay is the classic coupled one: L2 0.00025 adds 5e-4 x w to the gradient.
SGD = ("train.optimizer.name=sgd", "train.optimizer.learning_rate=0.05", "train.optimizer.momentum=0.9",
       "train.optimizer.nesterov=true", "train.model.l2=0.00025")
ADAMW = ("train.optimizer.name=adamw", "train.optimizer.learning_rate=0.002", "train.optimizer.weight_decay=0.05")
ONE_CYCLE = ("train.optimizer.schedule=one_cycle", "train.optimizer.warmup_fraction=0.25")
WARMUP_COSINE = ("train.optimizer.schedule=warmup_cosine", "train.optimizer.warmup_fraction=0.05")
SMOOTHING = ("train.loss.label_smoothing=0.1",)
CUTOUT = ("train.online_augmentation.cutout=16",)
LESS_DROPOUT = ("train.model.conv_dropout=[0.1,0.2,0.3]", "train.model.dense_dropout=0.3")
SCREEN: dict[str, tuple[str, ...]] = {
    "sgd one-cycle": (*SGD, *ONE_CYCLE),
    "sgd warm-up cosine": (*SGD, *WARMUP_COSINE),
    "adamw one-cycle": (*ADAMW, *ONE_CYCLE),
    "adamw warm-up cosine": (*ADAMW, *WARMUP_COSINE),
    "sgd one-cycle, label smoothing": (*SGD, *ONE_CYCLE, *SMOOTHING),
    "sgd one-cycle, cutout": (*SGD, *ONE_CYCLE, *CUTOUT),
    "sgd one-cycle, less dropout": (*SGD, *ONE_CYCLE, *LESS_DROPOUT),
    "sgd one-cycle, all three": (*SGD, *ONE_CYCLE, *SMOOTHING, *CUTOUT, *LESS_DROPOUT),
}
LOGIT_ADJUSTMENT = "train.logit_adjustment=validation"
# arm -> (model, overrides beyond the recipe); COMBINATION's are chosen from the remedies part's records.
ARMS: dict[str, tuple[str, tuple[str, ...]]] = {
    "balanced": ("baseline", (BALANCED,)),
    "none": ("baseline", ()),
    "offline augmentation": ("augmented", ()),
    "logit adjustment": ("baseline", (LOGIT_ADJUSTMENT,)),
}
COMBINATION = "combination"
STUDY_SIDE = ("none", "offline augmentation")  # the arms rerun under the study's recipe
WINNER, RANKING = "the capacity screen's winner", "the remedies part's ranking on validation"


def screen_name(config: str) -> str:
    return f"capacity-screen-{_slug(config)}"


def recipe(config: str) -> tuple[str, ...]:
    """A screen configuration's whole recipe: the protocol and its own overrides."""
    return (*CAPACITY_PROTOCOL, *SCREEN[config])


def capacity_experiments() -> list[Experiment]:
    """The screen, then seed by seed the confirmation under the winner (waiting for it) and the
    study's-recipe side."""
    out = [Experiment(screen_name(c), PART, (BALANCED, *recipe(c), f"base.seed={SCREEN_SEED}"), "train-baseline",
                      {"setup": f"screen: {c}", "seed": SCREEN_SEED, "recipe": c}) for c in SCREEN]
    for s in SEEDS:
        for arm, (model, _) in ARMS.items():
            twin = f"capacity-none-seed{s}" if arm == "logit adjustment" else ""
            out.append(Experiment(f"capacity-{_slug(arm)}-seed{s}", PART, (), f"evaluate@{model}",
                                  {"setup": arm, "seed": s}, training_of=twin, waits_for=WINNER))
        out.append(Experiment(f"capacity-combination-seed{s}", PART, (), "evaluate@baseline",
                              {"setup": COMBINATION, "seed": s}, waits_for=f"{WINNER} and {RANKING}"))
        for arm in STUDY_SIDE:
            model = ARMS[arm][0]
            out.append(Experiment(f"capacity-study-{_slug(arm)}-seed{s}", PART,
                                  (f"evaluate.models=[{model}]", *REMEDY_PROTOCOL, f"base.seed={s}"),
                                  f"evaluate@{model}", {"setup": f"study's recipe: {arm}", "seed": s,
                                                        "recipe": "study's"}))
    return out


def screen_scores(records: dict) -> dict[str, float | None]:
    """Screen configuration -> its kept weights' validation balanced accuracy, for those recorded."""
    from writeup.studies.part3 import kept_val_balanced

    return {c: kept_val_balanced(run) for c in SCREEN if (run := records.get(screen_name(c), {}).get("baseline"))}


def screen_winner(records: dict) -> str | None:
    """The recipe the confirmation runs under, once every screen configuration is recorded."""
    scores = screen_scores(records)
    if len(scores) < len(SCREEN):
        return None
    return max(SCREEN, key=lambda c: -1.0 if scores[c] is None else scores[c])  # the first of equals


def combination_candidates() -> list[str]:
    """The remedies part's remedies the combination is chosen among: beyond the confirmation's own arms,
    and more than online augmentation (the recipe has its own)."""
    return [name for name, (_, overrides) in REMEDIES.items() if name not in ARMS and set(overrides) - set(ONLINE)]


def chosen_combination(records: dict) -> tuple[str, str, tuple[str, ...]] | None:
    """(remedy, model, overrides): the candidate first on validation over every seed of the remedies part,
    its online augmentation left to the recipe, with logit adjustment; None while a seed is missing."""
    from writeup.studies.remedies import ranking, remedy_runs

    runs, candidates = remedy_runs(records), combination_candidates()
    if any(len(runs.get(name, {})) < len(SEEDS) for name in candidates):
        return None
    order = ranking({name: runs[name] for name in candidates}).order  # a tau tuned on the ranking's split: not ranked
    if not order:
        return None
    best = order[0]
    model, overrides = REMEDIES[best]
    kept = tuple(o for o in overrides if not o.startswith("train.online_augmentation."))
    return best, model, kept + (() if LOGIT_ADJUSTMENT in kept else (LOGIT_ADJUSTMENT,))


def _training(model: str, overrides: tuple[str, ...]) -> tuple[str, tuple[str, ...]]:
    return model, tuple(o for o in overrides if not o.startswith(tuple(f"train.{k}=" for k in AFTER_TRAINING)))


def resolve(exp: Experiment, records: dict) -> Experiment:
    """`exp` with the choices it waits for filled in from `records` (STUDIES.json's), or still waiting
    with what is missing; any other experiment as it is."""
    if not exp.waits_for:
        return exp
    winner, seed, arm = screen_winner(records), exp.labels["seed"], exp.labels["setup"]
    if winner is None:
        return replace(exp, waits_for=f"{WINNER} ({len(screen_scores(records))} of {len(SCREEN)} screen runs "
                                      "recorded)")
    labels, twin = {**exp.labels, "recipe": winner}, exp.training_of
    if arm == COMBINATION:
        chosen = chosen_combination(records)
        if chosen is None:
            return replace(exp, waits_for=f"{RANKING} (all {len(SEEDS)} seeds of "
                                          f"{', '.join(combination_candidates())})")
        labels["remedy"], model, extra = chosen
        twin = next((f"capacity-{_slug(a)}-seed{seed}" for a, (m, o) in ARMS.items()
                     if _training(m, o) == _training(model, extra)), "")
    else:
        model, extra = ARMS[arm]
    overrides = (f"evaluate.models=[{model}]", *recipe(winner), f"base.seed={seed}", *extra)
    return replace(exp, overrides=overrides, target=f"evaluate@{model}", labels=labels, training_of=twin,
                   waits_for="")
