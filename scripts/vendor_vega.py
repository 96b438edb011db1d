"""The offline page of `dvc plots show` / `dvc plots diff`: Vega, Vega-Lite and vega-embed from npm,
kept in vendor/vega/ and inlined into the HTML template DVC fills (`plots.html_template` in .dvc/config).

    python -m scripts.vendor_vega           # npm pack the pinned releases into vendor/vega/, rebuild the page
    python -m scripts.vendor_vega --page    # rebuild vendor/vega/dvc-plots.html from the vendored builds

DVC copies the template's text into dvc_plots/index.html, or wherever `-o` and the working folder put
it, so a relative <script src> would break there: the builds are inlined and the page draws from any
folder, offline, and when sent on its own.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import re
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path

from cifar10.errors import PipelineError, cli_errors
from cifar10.outputs import atomic_output

VENDOR = Path("vendor/vega")
PAGE = VENDOR / "dvc-plots.html"
# DVC 3.67 (dvc-render 1.0.2) writes Vega-Lite v5 specs: the last v5 releases of the three, which work
# together (vega-lite 5.23 wants vega ^5.24, vega-embed 6.29 vega ^5.21) and raise no version warning.
PACKAGES = {"vega": "5.33.1", "vega-lite": "5.23.0", "vega-embed": "6.29.0"}
# vega's v5 packages ship no LICENSE; its repository's (BSD-3-Clause) comes in this release's package.
LICENSE_FROM = {"vega": "vega@6.4.0"}
# DVC's plot divs call vegaEmbed(element, spec) with no options: these become every chart's defaults.
# SVG, not canvas: marks a browser (and a test) can inspect, sharp at any zoom. No "Open in Vega
# Editor", an online page; exporting and viewing the spec work offline.
SKELETON = """<!DOCTYPE html>
<html>
<head>
    <meta charset="utf-8">
    {refresh_tag}
    <title>DVC Plot</title>
    <!-- {versions}: vendor/vega/, inlined by `python -m scripts.vendor_vega --page` -->
{libraries}
    <script>
        window.vegaEmbed = (function (embed) {
            var options = {renderer: "svg", actions: {export: true, source: true, compiled: true, editor: false}};
            return Object.assign(function (element, spec, more) {
                return embed(element, spec, Object.assign({}, options, more));
            }, embed);
        })(window.vegaEmbed);
    </script>
    <style>
        table {
            border-spacing: 15px;
        }
    </style>
</head>
<body>
    {plot_divs}
</body>
</html>
"""


def page(folder: Path = VENDOR) -> str:
    """The template: the skeleton with the three vendored builds inlined, in load order."""
    blocks = []
    for name in PACKAGES:
        code = (folder / f"{name}.min.js").read_text(encoding="utf-8")
        # These would end the inline <script> early, or be filled in by DVC.
        if found := re.search(r"</script|<!--|\{(scripts|plot_divs|refresh_tag)\}", code, re.I):
            raise PipelineError(f"{folder / name}.min.js holds {found.group()!r}: it cannot be inlined")
        blocks.append(f"    <script>{code.rstrip()}\n    </script>")
    versions = ", ".join(f"{name} {version}" for name, version in PACKAGES.items())
    return (SKELETON.replace("{versions}", versions, 1)
            .replace("{libraries}", "\n".join(blocks), 1))


def _npm_pack(specs: list[str], folder: Path) -> dict[str, dict]:
    """Download package tarballs with npm (which checks them against the registry's integrity)."""
    if not shutil.which("npm"):
        raise PipelineError("npm not found: refreshing vendor/vega downloads the packages with npm")
    proc = subprocess.run(["npm", "pack", "--json", "--pack-destination", str(folder), *specs],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        try:  # with --json, npm reports the error on stdout too
            why = json.loads(proc.stdout)["error"]["summary"]
        except (ValueError, KeyError, TypeError):
            why = (proc.stderr.strip().splitlines() or [f"exit code {proc.returncode}"])[0]
        raise PipelineError(f"npm pack {' '.join(specs)} failed: {why}")
    return {f"{p['name']}@{p['version']}": p for p in json.loads(proc.stdout)}


def _member(tarball: Path, path: str) -> bytes:
    with tarfile.open(tarball) as tar:
        try:
            return tar.extractfile(f"package/{path}").read()
        except KeyError:
            raise PipelineError(f"{tarball.name} holds no package/{path}") from None


def _readme(packed: dict[str, dict], folder: Path) -> str:
    rows = "\n".join(
        f"| {name} | {version} | `{name}.min.js` | `{packed[f'{name}@{version}']['integrity']}` |"
        for name, version in PACKAGES.items())
    sums = "\n".join(f"    {hashlib.sha256((folder / p.name).read_bytes()).hexdigest()}  {p.name}"
                     for p in sorted(folder.iterdir()) if p.suffix in {".js", ".LICENSE"})
    return f"""# Vega for the offline `dvc plots` page

The minified builds (`package/build/NAME.min.js`, unchanged) and LICENSE files of three npm packages;
`dvc-plots.html` is the HTML template `.dvc/config` gives DVC (`plots.html_template`), with the three
builds inlined, so the page `dvc plots show` / `dvc plots diff` writes draws its charts without a network.

| package | version | file | npm tarball integrity |
|---|---|---|---|
{rows}

vega's v5 packages ship no LICENSE: `vega.LICENSE` is its repository's, from the {LICENSE_FROM['vega']} package.
Source maps are left out.

Refresh (pins in `scripts/vendor_vega.py`; needs npm and the npm registry), from the project root:

    python -m scripts.vendor_vega

SHA-256 of the files:

{sums}
"""


def refresh() -> None:
    """Replace vendor/vega/ with the pinned releases' builds, LICENSEs, README and the page."""
    with tempfile.TemporaryDirectory() as tmp:
        specs = [f"{name}@{version}" for name, version in PACKAGES.items()]
        packed = _npm_pack([*specs, *LICENSE_FROM.values()], Path(tmp))
        with atomic_output(VENDOR) as folder:
            folder.mkdir()
            for name, spec in zip(PACKAGES, specs):
                tarball = Path(tmp) / packed[spec]["filename"]
                (folder / f"{name}.min.js").write_bytes(_member(tarball, f"build/{name}.min.js"))
                licensed = Path(tmp) / packed[LICENSE_FROM.get(name, spec)]["filename"]
                (folder / f"{name}.LICENSE").write_bytes(_member(licensed, "LICENSE"))
            (folder / "README.md").write_text(_readme(packed, folder))
            (folder / PAGE.name).write_text(page(folder), encoding="utf-8")


@cli_errors
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--page", action="store_true", help="only rebuild the page from the vendored builds")
    if parser.parse_args(argv).page:
        with atomic_output(PAGE) as tmp:
            tmp.write_text(page(), encoding="utf-8")
    else:
        refresh()
    print(f"{PAGE}: {', '.join(f'{n} {v}' for n, v in PACKAGES.items())}")


if __name__ == "__main__":
    main()
