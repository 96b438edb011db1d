"""The write-up: code that writes the project's pages from its records (STUDIES.md, TRANSFER.md,
RESULTS.md, the whole-pipeline section of BENCHMARKS.md) and plans and runs the study's experiments.

It builds on `cifar10/`; no stage imports it (tests/test_layout.py checks it), so changing a page
reruns no stage.
"""
