"""The experiments of the study's part 2 (five parameter studies) and part 3 (the imbalance models over
seeds, and the setup questions the study leaves open), as DVC experiments of this pipeline.

Each experiment is a name, the `-S` overrides of the defaults and the stage it reproduces (DVC builds
what that stage needs). Part 2 trains the baseline CNN on the full balanced set, as the study did
(`imbalance.keep_fraction=1`), and scores it; part 3 trains and scores both CNNs. Beyond the study,
the remedies for its imbalance, then `capacity` (writeup.studies.capacity_plan): a screen of training
recipes for the same CNN, training stages only, then the imbalance models again under the recipe it
chooses; its docstring has the arithmetic that keeps each run within 60 minutes on a CPU with
bfloat16 units.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from cifar10.training.backup_folders import AFTER_TRAINING

# The study's experiments train in float32, whatever precision this CPU's `auto` picks; bfloat16 is a
# setup of its own (MIXED), measured against that float32 band.
FLOAT32, BFLOAT16 = "train.precision=float32", "train.precision=mixed_bfloat16"
PART2_COMMON = ("imbalance.keep_fraction=1.0", "evaluate.models=[baseline]", FLOAT32)
PART3_COMMON = ("evaluate.models=[baseline,augmented]",)
SEEDS = (42, 43, 44)

# study -> variant -> overrides. The reference variant (the study's CNN) has none and is run once.
PART2: dict[str, dict[str, tuple[str, ...]]] = {
    "hidden layers": {"0": ("train.model.dense_units=[]",), "1": (), "2": ("train.model.dense_units=[128,128]",)},
    "activation": {"relu": (), "sigmoid": ("train.model.activation=sigmoid",),
                   "tanh": ("train.model.activation=tanh",)},
    # Keras' `optimizer="sgd"`: learning rate 0.01, no momentum.
    "optimizer": {"adam": (), "sgd": ("train.optimizer.name=sgd", "train.optimizer.learning_rate=0.01",
                                      "train.optimizer.momentum=0.0")},
    "training images": {"50,000": (), "6,000": ("train.train_size=6000",)},
    "convs per block": {"2x3x3": (), "1x3x3": ("train.model.convs_per_block=1",),
                        "1x7x7": ("train.model.convs_per_block=1", "train.model.kernel_size=7")},
}
# The setup questions of part 3, each on the same seeds as the defaults.
SETUPS: dict[str, tuple[str, ...]] = {
    "defaults": (),
    "no-restore": ("train.early_stopping.restore_best_weights=false",),
    # The validation split follows the imbalanced training set; the test set is balanced.
    "val-balanced": ("train.early_stopping.monitor=val_balanced_accuracy",),
    # The augmented set's validation rows include synthetic variants of images its training rows hold.
    "val-originals": ("train.validation_from=originals",),
    "val-accuracy": ("train.early_stopping.monitor=val_accuracy",),
}
# Setups beside the candidates, not candidates themselves: bfloat16 on every seed, the defaults of one seed
# again (what the CPU alone moves), and a float32 partner of each bfloat16 run, run in the same sitting: the
# same seed, CPU model, training code and training set, so bfloat16 minus float32 is the precision's alone (and their
# speed ratio pairs runs of one sitting: two sittings on one CPU can differ by a third).
MIXED, RERUN, PARTNER = "mixed_bfloat16", "defaults, rerun", "float32 partner"
SITTING_TAG = "studies_sitting"  # the runner process that ran an experiment: speed ratios pair within one
# A setup that changes one model only runs that model (the stage it reproduces), and why the other would
# train as it already has.
SETUP_TARGETS: dict[str, tuple[str, str]] = {
    "val-originals": ("evaluate@augmented", "the baseline has no synthetic rows, so it would train exactly as "
                                            "under the defaults"),
    # Every class has the same count in the rebalanced set's stratified split, so mean per-class recall is
    # plain accuracy there.
    "val-accuracy": ("evaluate@baseline", "the augmented model's validation split holds every class equally "
                                          "often, so its val accuracy is its val balanced accuracy and it would "
                                          "stop where it stops under val-balanced"),
}
# Setups validating on other rows than the defaults: their validation figures are not comparable with
# the defaults', so they are not judged on them.
OWN_VALIDATION = frozenset({"val-originals"})


# Beyond the study: remedies for its 90% cut of cat and dog, on the study's CNN, all under one protocol:
# validation from original images only (no synthetic variant of a validation image in training), early
# stopping and every choice (tau too) on validation balanced accuracy, room for the slower remedies.
BALANCED_REFERENCE = "part2-reference"  # the study's CNN on all 50,000 training images: no imbalance at all
REMEDY_PROTOCOL = ("train.validation_from=originals", "train.early_stopping.monitor=val_balanced_accuracy",
                   "train.early_stopping.patience=8", "train.epochs=60")
ONLINE = ("train.online_augmentation.flip=true", "train.online_augmentation.translate=0.125")
# remedy -> (the model it trains: the imbalanced set's, or the rebalanced set's), its overrides
REMEDIES: dict[str, tuple[str, tuple[str, ...]]] = {
    "none": ("baseline", ()),
    "offline augmentation": ("augmented", ()),  # the study's remedy
    "class weights": ("baseline", ("train.class_weight=inverse_frequency",)),
    "oversampling": ("augmented", ("augment.policy=oversample",)),
    "focal loss": ("baseline", ("train.loss.name=focal",)),
    "online augmentation": ("baseline", ONLINE),
    "mixup": ("baseline", ("train.mix.kind=mixup",)),
    "logit adjustment": ("baseline", ("train.logit_adjustment=validation",)),
    # Chosen before any remedy ran: the study's remedy with the two that compose with any training set.
    "offline + online + logit adjustment": ("augmented", (*ONLINE, "train.logit_adjustment=validation")),
}


@dataclass(frozen=True)
class Experiment:
    name: str
    part: str  # part2 | part3 | bf16 | rerun | remedies | capacity
    overrides: tuple[str, ...]
    target: str  # the stage DVC reproduces
    labels: dict = field(default_factory=dict, hash=False)  # study/variant or setup/seed, for the report
    # An earlier experiment that trains the same model (they differ only in what acts after training):
    # this one restores that training from its backup instead of running it again.
    training_of: str = ""
    # An earlier experiment this one's figure pairs with only when both ran in one sitting (a speed ratio):
    # while this one is still to run, that one runs again before it, in the same sitting.
    same_sitting_as: str = ""
    # A choice its overrides still need, made from other experiments' records (the capacity screen's
    # winner): the runner fills them in (capacity_plan.resolve) and runs nothing while this is set.
    waits_for: str = ""

    @property
    def models(self) -> tuple[str, ...]:
        """The CNNs the experiment trains (and scores, unless its target is a training stage)."""
        if self.target == "compare":
            return ("baseline", "augmented")
        return (self.target.removeprefix("train-"),) if not self.scored else (self.target.split("@")[1],)

    @property
    def scored(self) -> bool:
        """Whether it scores its models on the test set (a screen reproduces a training stage only)."""
        return not self.target.startswith("train-")

    def tags(self) -> dict[str, str]:
        """MLflow tags for every run of the experiment: the UI filters a study's runs with
        `tags.studies LIKE '%activation%'` (the reference run belongs to all five part-2 studies)."""
        if self.part != "part2":
            recipe = {"capacity_recipe": self.labels["recipe"]} if "recipe" in self.labels else {}
            return {"studies": f"{self.part}: {self.labels.get('setup')}", "study_seed": str(self.labels.get("seed")),
                    **recipe}
        pairs = [(self.labels["study"], self.labels["variant"]), *self.labels.get("also", [])]
        return {"studies": "; ".join(f"{s}={v}" for s, v in pairs)}

    def command(self, extra: tuple[str, ...] = ()) -> list[str]:
        """`dvc exp run` in a temporary copy: the workspace and params.yaml stay untouched; --force reruns
        every stage, so each experiment has its own MLflow runs."""
        sets = [arg for o in (*self.overrides, *extra) for arg in ("-S", o)]
        return ["dvc", "exp", "run", "--temp", "--force", "--name", self.name, *sets, self.target]


def _slug(text: str) -> str:
    dashed = "".join(c if c.isalnum() else "-" for c in text.lower().replace(",", ""))
    return "-".join(part for part in dashed.split("-") if part)


def experiments() -> list[Experiment]:
    """Every experiment, in the order they run: part 3 setup by setup over the seeds (the defaults on
    every seed first, so the band comes before any comparison, and each setup's run finds its seed's
    defaults run to pair with), the bfloat16 parity run after `no-restore` (the setups the study's
    text asks about), the defaults of seed 42 once more (the CPU's share of a difference), bfloat16's other
    seeds and each seed's float32 partner after its bfloat16 run, then part 2, then the other candidate setups
    seed by seed (questions of our own, so last), the remedies and the capacity part."""
    from writeup.studies.capacity_plan import capacity_experiments  # it builds on this module
    def part3(setup: str, s: int) -> Experiment:
        return Experiment(f"part3-{setup}-seed{s}", "part3", (*PART3_COMMON, FLOAT32, f"base.seed={s}", *SETUPS[setup]),
                          SETUP_TARGETS.get(setup, ("compare",))[0], {"setup": setup, "seed": s})

    def bf16(s: int) -> Experiment:
        return Experiment(f"bf16-seed{s}", "bf16", (*PART3_COMMON, f"base.seed={s}", BFLOAT16), "compare",
                          {"setup": MIXED, "seed": s})

    out = [part3(setup, s) for setup in ("defaults", "no-restore") for s in SEEDS]
    out.append(bf16(42))
    # Runs are deterministic per CPU model, not across them: the defaults of one seed again show on another
    # CPU what the CPU alone moves (the baseline; the augmented set differs too), and give that CPU's runs a
    # partner on their own CPU and data; on the same CPU they check that a run repeats.
    out.append(Experiment("rerun-defaults-seed42", "rerun", (*PART3_COMMON, FLOAT32, "base.seed=42"), "compare",
                          {"setup": RERUN, "seed": 42}))
    out += [bf16(s) for s in SEEDS[1:]]
    # Each bfloat16 run's float32 partner: while one is still to run, the runner runs its bfloat16 mate again
    # in the same sitting, so each pair shares CPU model and commit whatever ran before.
    out += [Experiment(f"f32-seed{s}", "bf16", (*PART3_COMMON, FLOAT32, f"base.seed={s}"), "compare",
                       {"setup": PARTNER, "seed": s}, same_sitting_as=f"bf16-seed{s}") for s in (SEEDS[-1], *SEEDS[:-1])]
    seen: dict[tuple[str, ...], Experiment] = {}
    for study, variants in PART2.items():
        for variant, overrides in variants.items():
            if overrides in seen:  # the study's CNN: one run serves every study
                seen[overrides].labels.setdefault("also", []).append((study, variant))
                continue
            name = BALANCED_REFERENCE if not overrides else f"part2-{_slug(study)}-{_slug(variant)}"
            exp = Experiment(name, "part2", (*PART2_COMMON, *overrides), "evaluate@baseline",
                             {"study": study, "variant": variant})
            seen[overrides] = exp
            out.append(exp)
    # Seed by seed: every candidate gets its first paired comparison before any gets its third.
    candidates = [setup for setup in SETUPS if setup not in ("defaults", "no-restore")]
    out += [part3(setup, s) for s in SEEDS for setup in candidates]
    out += [remedy(name, s) for s in SEEDS for name in REMEDIES]  # each remedy's first seed first
    return out + capacity_experiments()


def _training(name: str) -> tuple[str, tuple[str, ...]]:
    """A remedy's model and the overrides that shape its training (those acting after it left out)."""
    model, overrides = REMEDIES[name]
    return model, tuple(o for o in overrides if not o.startswith(tuple(f"train.{k}=" for k in AFTER_TRAINING)))


def remedy(name: str, seed: int) -> Experiment:
    """One remedy on one seed, in the precision the machine picks (auto). A remedy that acts only after
    training (logit adjustment) restores the training of the first remedy that trains the same model."""
    model, overrides = REMEDIES[name]
    twin = next(other for other in REMEDIES if _training(other) == _training(name))
    return Experiment(f"remedy-{_slug(name)}-seed{seed}", "remedies",
                      (f"evaluate.models=[{model}]", *REMEDY_PROTOCOL, f"base.seed={seed}", *overrides),
                      f"evaluate@{model}", {"setup": name, "seed": seed},
                      f"remedy-{_slug(twin)}-seed{seed}" if twin != name else "")


def variants_of(study: str) -> list[tuple[str, Experiment]]:
    """(variant, experiment) of a part-2 study, in the study's order."""
    found = []
    for exp in experiments():
        if exp.part != "part2":
            continue
        pairs = [(exp.labels["study"], exp.labels["variant"]), *exp.labels.get("also", [])]
        found += [(variant, exp) for s, variant in pairs if s == study]
    order = list(PART2[study])
    return sorted(found, key=lambda pair: order.index(pair[0]))
