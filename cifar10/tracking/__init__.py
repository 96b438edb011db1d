"""The MLflow layer: where runs go (store), how a stage's run is opened and grouped (runs), the
failure-tolerant logging handle (tracker), code/pipeline provenance, and links between runs.

Stages open a run with `runs.stage_run()` in their `main()` and hand the tracker (or a callback made
from it) to their core; cores never import MLflow.
"""
