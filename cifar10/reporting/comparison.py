"""The comparison report: the evaluated models side by side per class, against the study's figures.

Written as Markdown with space-aligned tables (reads in a terminal and as an MLflow artifact), and
rendered to a standalone HTML page from that same text.
"""
from __future__ import annotations

import html
from typing import Mapping, Sequence

from cifar10.reporting.reference import DESCRIPTIONS

STUDY_TEST_IMAGES = 10_000
_METRICS = (("precision", "Precision"), ("recall", "Recall"), ("f1", "F1"))


def _num(value: float | None, digits: int = 3) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def _diff(ours: float | None, ref: float | None) -> str:
    if ours is None or ref is None:
        return "–"
    diff = round(ours - ref, 2)
    return f"{diff + 0.0:+.2f}"  # + 0.0 turns -0.00 into +0.00


def table(header: Sequence[str], rows: Sequence[Sequence[str]], left: int = 1) -> str:
    """A Markdown table padded so its columns line up in plain text; the first `left` columns align left."""
    widths = [max(len(str(c)) for c in col) for col in zip(header, *rows)]

    def line(cells: Sequence[str]) -> str:
        out = [str(c).ljust(w) if i < left else str(c).rjust(w) for i, (c, w) in enumerate(zip(cells, widths))]
        return "| " + " | ".join(out) + " |"

    rule = ["-" * w if i < left else "-" * (w - 1) + ":" for i, w in enumerate(widths)]
    return "\n".join([line(header), "| " + " | ".join(rule) + " |", *(line(r) for r in rows)])


def _label(model: str, notes: Mapping[str, str]) -> str:
    return f"{model} †" if model in notes else model


def comparison_markdown(
    results: Mapping[str, dict],
    study: Mapping[str, dict],
    classes: Sequence[str],
    minority: Sequence[str],
    test_images: int,
    notes: Mapping[str, str] | None = None,
    runs: Mapping[str, str] | None = None,
) -> str:
    """The report as Markdown.

    Args:
        results: model name -> the evaluate stage's metrics dict (accuracy, macro, weighted, per_class).
        study: model name -> the published figures in the same shape (cifar10.reporting.reference.STUDY).
        classes: class names in label order.
        minority: the classes made rare in training (imbalance.classes).
        test_images: size of the test set the models were scored on.
        notes: model name -> a caveat printed under the tables (marks the model's columns with †).
        runs: model name -> the MLflow run id of the training run that produced it.
    """
    notes = dict(notes or {})
    models = list(results)
    out = ["# CIFAR-10: model comparison against the study", ""]
    out.append(
        f"Test set: {test_images:,} images. Ours are this pipeline's figures; **study** the published "
        "ones (two decimals); **Δ** = ours − study."
    )
    if test_images != STUDY_TEST_IMAGES:
        out.append(
            f"\n> The study scored {STUDY_TEST_IMAGES:,} test images; with {test_images:,} the figures "
            "are not comparable to it."
        )
    out += ["", "## Models", ""]
    for m in models:
        run = f" (training run `{runs[m]}`)" if runs and runs.get(m) else ""
        out.append(f"- **{_label(m, notes)}**: {DESCRIPTIONS.get(m, m)}{run}")
    for m, note in notes.items():
        out.append(f"\n† {m}: {note}")

    out += ["", "## Summary", ""]
    rows = []
    for m in models:
        ours, ref = results[m], study.get(m, {})
        ref_macro = ref.get("macro", {})
        rows.append([
            _label(m, notes),
            _num(ours["accuracy"]), _num(ref.get("accuracy"), 2), _diff(ours["accuracy"], ref.get("accuracy")),
            *(_num(ours["macro"][k]) for k, _ in _METRICS),
            _num(ref_macro.get("f1"), 2), _diff(ours["macro"]["f1"], ref_macro.get("f1")),
            _num(ours["weighted"]["f1"]),
        ])
    header = ["model", "accuracy", "study", "Δ", "macro P", "macro R", "macro F1", "study", "Δ", "weighted F1"]
    out.append(table(header, rows))

    for key, title in _METRICS:
        out += ["", f"## {title} per class", ""]
        header = ["class"]
        for m in models:
            header += [_label(m, notes), "study", "Δ"]
        rows = []
        for cls in classes:
            row = [cls]
            for m in models:
                ours = results[m]["per_class"][cls][key]
                ref = study.get(m, {}).get("per_class", {}).get(cls, {}).get(key)
                row += [_num(ours), _num(ref, 2), _diff(ours, ref)]
            rows.append(row)
        row = ["macro avg"]
        for m in models:
            ours, ref = results[m]["macro"][key], study.get(m, {}).get("macro", {}).get(key)
            row += [_num(ours), _num(ref, 2), _diff(ours, ref)]
        rows.append(row)
        out.append(table(header, rows))

    out += _minority_section(results, study, minority, models)
    return "\n".join(out) + "\n"


def _minority_section(results, study, minority, models) -> list[str]:
    out = ["", "## Minority classes", ""]
    if not minority:
        return out + ["No classes were made rare (imbalance.classes is empty)."]
    out.append(
        f"Recall of the classes made rare in the imbalanced training set ({', '.join(minority)}): how many of their test "
        f"images each model finds, {' → '.join(models)}."
    )
    out.append("")
    rows = []
    for cls in minority:
        ours = [results[m]["per_class"][cls]["recall"] for m in models]
        refs = [study.get(m, {}).get("per_class", {}).get(cls, {}).get("recall") for m in models]
        rows.append([cls, "ours", *(_num(v) for v in ours)])
        rows.append(["", "study", *(_num(v, 2) for v in refs)])
    out.append(table(["class", "", *models], rows, left=2))
    out.append("")
    for cls in minority:
        chain = " → ".join(_num(results[m]["per_class"][cls]["recall"], 2) for m in models)
        refs = [study.get(m, {}).get("per_class", {}).get(cls, {}).get("recall") for m in models]
        ref_chain = " → ".join(_num(v, 2) for v in refs)
        out.append(f"- {cls}: {chain} (study: {ref_chain})")
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
