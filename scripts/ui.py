"""`make ui`: the MLflow UI on the project's store, opened on the experiment's runs table.

Prints the URL that shows the pipeline's runs as a model-training runs table (MLflow 3.17 opens a
bare experiment URL in its GenAI view), then runs `mlflow ui` on the project's SQLite store.
"""
from __future__ import annotations

import argparse
import os
import sys

from cifar10.schema import load_params
from cifar10.tracking.store import runs_url, tracking_uri


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=5000)
    args = parser.parse_args(argv)
    uri = tracking_uri()
    base = f"http://127.0.0.1:{args.port}"
    from mlflow.tracking import MlflowClient

    experiment = MlflowClient(uri).get_experiment_by_name(load_params().tracking.experiment)
    if experiment is None:
        print(f"no runs yet in {uri}: run `make demo` or `dvc repro` first; the UI starts anyway", file=sys.stderr)
    else:
        print(f"open {runs_url(base, experiment.experiment_id)}", flush=True)
    mlflow = os.path.join(os.path.dirname(sys.executable), "mlflow")
    os.execv(mlflow, [mlflow, "ui", "--backend-store-uri", uri.split("?")[0], "--host", "127.0.0.1",
                      "--port", str(args.port)])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
