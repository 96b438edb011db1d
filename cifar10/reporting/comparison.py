"""The comparison report: the evaluated models side by side per class, against the study's figures.

Each model is described from the params that made it and set beside the study's model it reproduces
(cifar10.reporting.descriptions): where its setup differs, that is said; a model beyond the study's
method has no study figure. Accuracy, macro F1 and each class's recall carry their 95% intervals (the
evaluate stage's, cifar10.reporting.intervals), and each comparison with the study says whether the
study's figure lies inside ours. Written as Markdown with space-aligned tables (reads in a terminal
and as an MLflow artifact), and rendered to a standalone HTML page from that same text.
"""
from __future__ import annotations

import html
from typing import Mapping, Sequence

from cifar10.reporting.descriptions import About
from cifar10.reporting.intervals import Interval
from cifar10.reporting.reference import NAMES

STUDY_TEST_IMAGES = 10_000
_METRICS = (("precision", "Precision"), ("recall", "Recall"), ("f1", "F1"))
DIFFERS, BEYOND = "†", "‡"


def _num(value: float | None, digits: int = 3) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def _diff(ours: float | None, ref: float | None) -> str:
    if ours is None or ref is None:
        return "–"
    diff = round(ours - ref, 2)
    return f"{diff + 0.0:+.2f}"  # + 0.0 turns -0.00 into +0.00


def _inside(interval: Interval, ref: float | None) -> str:
    return "–" if ref is None else ("yes" if interval.low <= ref <= interval.high else "no")


def _against(ours: Interval, ref: float | None) -> list[str]:
    """Ours with its interval, the study's figure, Δ, and whether it lies inside the interval."""
    return [str(ours), _num(ref, 2), _diff(ours.value, ref), _inside(ours, ref)]


def table(header: Sequence[str], rows: Sequence[Sequence[str]], left: int = 1) -> str:
    """A Markdown table padded so its columns line up in plain text; the first `left` columns align left."""
    widths = [max(2, *(len(str(c)) for c in col)) for col in zip(header, *rows)]  # a rule cell needs a dash

    def line(cells: Sequence[str]) -> str:
        out = [str(c).ljust(w) if i < left else str(c).rjust(w) for i, (c, w) in enumerate(zip(cells, widths))]
        return "| " + " | ".join(out) + " |"

    rule = ["-" * w if i < left else "-" * (w - 1) + ":" for i, w in enumerate(widths)]
    return "\n".join([line(header), "| " + " | ".join(rule) + " |", *(line(r) for r in rows)])


def _label(model: str, about: About) -> str:
    mark = BEYOND if about.reference is None else (DIFFERS if about.differences else "")
    return f"{model} {mark}".strip()


class _Figures:
    """One model's figures and intervals (its evaluate report) and the study's figures it is compared with."""

    def __init__(self, report: dict, study: dict | None):
        self.compared, self.study = study is not None, study or {}
        found = report["intervals"]
        self.accuracy, self.macro_f1 = Interval(**found["accuracy"]), Interval(**found["macro_f1"])
        self.recall = {c: Interval(**i) for c, i in found["recall"].items()}

    def ref(self, key: str, cls: str | None = None) -> float | None:
        """The study's figure: `key` of class `cls`, or of the whole (accuracy, a macro average)."""
        if cls is not None:
            return self.study.get("per_class", {}).get(cls, {}).get(key)
        return self.study.get("accuracy") if key == "accuracy" else self.study.get("macro", {}).get(key)


def comparison_markdown(
    results: Mapping[str, dict],
    study: Mapping[str, dict],
    about: Mapping[str, About],
    classes: Sequence[str],
    minority: Sequence[str],
    test_images: int,
    runs: Mapping[str, str] | None = None,
) -> str:
    """The report as Markdown.

    Args:
        results: model name -> the evaluate stage's report (accuracy, macro, weighted, per_class, intervals).
        study: the study's model -> its published figures in the same shape (cifar10.reporting.reference.STUDY).
        about: model name -> what it is and which of the study's models it is compared with.
        classes: class names in label order.
        minority: the classes made rare in training (imbalance.classes).
        test_images: size of the test set the models were scored on.
        runs: model name -> the MLflow run id of the training run that produced it.
    """
    models = list(results)
    figures = {m: _Figures(results[m], study.get(about[m].reference) if about[m].reference else None) for m in models}
    labels = {m: _label(m, about[m]) for m in models}
    method = next(iter(results.values()))["intervals"]["method"]
    out = ["# CIFAR-10: model comparison against the study", ""]
    out.append(
        f"Test set: {test_images:,} images. Ours are this pipeline's figures; in brackets their 95% intervals "
        f"({method}), for accuracy, macro F1 and each class's recall. **study** is the published figure (two "
        "decimals) of the study's model each is compared with; **Δ** = ours − study; **in CI**: whether the "
        "study's figure lies inside our interval."
    )
    if test_images != STUDY_TEST_IMAGES:
        out.append(
            f"\n> The study scored {STUDY_TEST_IMAGES:,} test images; with {test_images:,} the figures "
            "are not comparable to it."
        )
    out += ["", "## Models", ""]
    for m in models:
        run = f" (training run `{runs[m]}`)" if runs and runs.get(m) else ""
        out.append(f"- **{labels[m]}**: {about[m].description}{run}.")
        out.append(f"  - {_standing(about[m])}")

    out += ["", "## Summary", ""]
    rows = []
    for m in models:
        f, ours = figures[m], results[m]
        rows.append([
            labels[m],
            *_against(f.accuracy, f.ref("accuracy")),
            _num(ours["macro"]["precision"]), _num(ours["macro"]["recall"]),
            *_against(f.macro_f1, f.ref("f1")),
            _num(ours["weighted"]["f1"]),
        ])
    header = ["model", "accuracy [95% CI]", "study", "Δ", "in CI", "macro P", "macro R", "macro F1 [95% CI]", "study",
              "Δ", "in CI", "weighted F1"]
    out.append(table(header, rows))

    for key, title in _METRICS:
        out += ["", f"## {title} per class", ""]
        out.append(table(*_per_class(key, models, labels, figures, results, classes)))

    out += _minority_section(figures, minority, models)
    return "\n".join(out) + "\n"


def _standing(about: About) -> str:
    """How a model stands to the study's, one line under its description."""
    if about.reference is None:
        return f"{BEYOND} {about.beyond}."
    compared = f"Compared with the study's {NAMES[about.reference]}"
    if about.differences:
        return f"{DIFFERS} {compared}; differs from its setup: {'; '.join(about.differences)}."
    return f"{compared}, in its stated setup."


def _per_class(key: str, models, labels, figures, results, classes) -> tuple[list[str], list[list[str]]]:
    """The header and rows of one per-class table: ours, and where a model has a study reference the
    study's figure and Δ (for recall: ours with its interval, and whether the study's figure lies inside)."""
    recall = key == "recall"
    header = ["class"]
    for m in models:
        header.append(f"{labels[m]} [95% CI]" if recall else labels[m])
        header += (["study", "Δ"] + (["in CI"] if recall else [])) if figures[m].compared else []

    def cells(m: str, ours: float | Interval, ref: float | None) -> list[str]:
        interval = isinstance(ours, Interval)
        shown = [str(ours) if interval else _num(ours)]
        if not figures[m].compared:
            return shown
        inside = [_inside(ours, ref) if interval else "–"] if recall else []
        return [*shown, _num(ref, 2), _diff(ours.value if interval else ours, ref), *inside]

    rows = []
    for cls in classes:
        row = [cls]
        for m in models:
            ours = figures[m].recall[cls] if recall else results[m]["per_class"][cls][key]
            row += cells(m, ours, figures[m].ref(key, cls))
        rows.append(row)
    row = ["macro avg"]
    for m in models:  # macro F1 has its interval
        row += cells(m, figures[m].macro_f1 if key == "f1" else results[m]["macro"][key], figures[m].ref(key))
    rows.append(row)
    return header, rows


def _minority_section(figures, minority, models) -> list[str]:
    out = ["", "## Minority classes", ""]
    if not minority:
        return out + ["No classes were made rare (imbalance.classes is empty)."]
    out.append(
        f"Recall of the classes made rare in the imbalanced training set ({', '.join(minority)}): how many of their "
        f"test images each model finds, with its 95% interval, and the study's figure, inside or outside it."
    )
    out.append("")
    rows = []
    for cls in minority:
        rows.append([cls, "ours", *(str(figures[m].recall[cls]) for m in models)])
        study = []
        for m in models:
            ref = figures[m].ref("recall", cls)
            inside = {"yes": "inside", "no": "outside"}.get(_inside(figures[m].recall[cls], ref))
            study.append(f"{ref:.2f} ({inside})" if ref is not None else "–")
        rows.append(["", "study", *study])
    out.append(table(["class", "", *models], rows, left=2))
    return out


def markdown_to_html(markdown: str, title: str = "CIFAR-10 model comparison") -> str:
    """A standalone HTML page of the report (tables rendered, numbers right-aligned)."""
    from markdown_it import MarkdownIt

    body = MarkdownIt("commonmark").enable("table").render(markdown)
    style = (
        "body{font-family:system-ui,sans-serif;max-width:80em;margin:2em auto;padding:0 1em}"
        "table{border-collapse:collapse;margin:1em 0;font-variant-numeric:tabular-nums}"
        "th,td{border:1px solid #ccc;padding:.25em .6em}th{background:#f3f3f3}"
        "tr:nth-child(even) td{background:#fafafa}blockquote{color:#8a4b00;margin-left:0}"
    )
    return (
        f"<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>{html.escape(title)}</title>"
        f"<style>{style}</style></head>\n<body>\n{body}</body></html>\n"
    )
