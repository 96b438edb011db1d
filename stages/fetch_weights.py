"""Stage `fetch-weights`: the backbone's pretrained weights as a tracked, checksummed input.

Writes data/weights/ (the weights file, if any, and weights.json, the manifest the transfer stage
reads); a failed run leaves nothing there.
"""
from __future__ import annotations

import sys

from cifar10.errors import cli_errors
from cifar10.outputs import atomic_output, no_partial_outputs
from cifar10.paths import WEIGHTS_DIR
from cifar10.schema import load_params
from cifar10.tracking.runs import stage_run
from cifar10.weights.manifest import MANIFEST, fetch_weights, source_of


@cli_errors
def main() -> None:
    params = load_params()
    cfg = params.transfer
    kind, source = source_of(cfg)
    if kind != "none":
        from cifar10.console import quiet_tensorflow

        quiet_tensorflow()  # the weights are loaded once to check them

    with no_partial_outputs(WEIGHTS_DIR), stage_run("fetch-weights", params, sections=[]) as tracker:
        with atomic_output(WEIGHTS_DIR) as tmp:
            manifest = fetch_weights(cfg, tmp)

        tracker.log_params({f"transfer.{k}": getattr(cfg, k)
                            for k in ("backbone", "weights", "weights_url", "weights_checksum")})
        tracker.set_tags({"backbone": cfg.backbone, "weights_source": source, "weights_kind": kind,
                          "weights_checksum": manifest["checksum"] or "none"})
        tracker.log_dict(manifest, MANIFEST)

    if kind == "none":
        print("weights: none — random backbone, the transfer stage will NOT do transfer learning", file=sys.stderr)
    else:
        recorded = " (recorded: set transfer.weights_checksum to pin it)" if not cfg.published_checksum() else ""
        print(f"weights: {source} -> {WEIGHTS_DIR / manifest['file']} {manifest['checksum']}{recorded}",
              file=sys.stderr)


if __name__ == "__main__":
    main()
