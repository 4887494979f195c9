"""The figures stage as Snakemake runs it: `figures` target and `--report` on config/test.yaml,
fed with small synthetic tables (the upstream stages are not run: --allowed-rules)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.helpers import synthetic_tables

REPO = Path(__file__).resolve().parents[2]

RULES = ["analysis", "figure", "figures"]


def _snakemake(workdir: Path, config: Path, *args: str) -> subprocess.CompletedProcess:
    exe = shutil.which("snakemake", path=str(Path(sys.executable).parent)) or "snakemake"
    # targets first: --configfile and --allowed-rules take several values
    cmd = [exe, *args, "-s", str(REPO / "Snakefile"), "-d", str(workdir), "-c2"]
    cmd += ["--configfile", str(config), "--allowed-rules", *RULES]
    return subprocess.run(cmd, capture_output=True, text=True, cwd=workdir)


@pytest.mark.slow
@pytest.mark.parametrize("lammps", [True, False])
def test_figures_target_and_report(tmp_path, lammps):
    cfg = yaml.safe_load((REPO / "config" / "test.yaml").read_text())
    cfg.setdefault("lammps", {})["enabled"] = lammps
    config = tmp_path / "test.yaml"
    config.write_text(yaml.safe_dump(cfg))
    run = cfg["run_name"]
    grid = cfg["grid"]["architectures"][0]
    arch = ("L{atom_layers}-W{width}-S{sensitivities}".format(**grid),)
    arch += (grid["atom_layers"], grid["width"], grid["sensitivities"])
    t = cfg["teachers"]["arch"]
    teacher = ("L{atom_layers}-W{width}-S{sensitivities}".format(**t),)
    teacher += (t["atom_layers"], t["width"], t["sensitivities"])
    tables = synthetic_tables(seeds=cfg["grid"]["seeds"], archs=[arch], teacher=teacher)
    out = tmp_path / "results" / run / "tables"
    out.mkdir(parents=True)
    for name, df in tables.items():
        if name == "rdf_errors" and not lammps:
            continue  # the LAMMPS stage did not run: the figures must not ask for its table
        df.to_csv(out / f"{name}.csv", index=False)

    res = _snakemake(tmp_path, config, "figures")
    assert res.returncode == 0, res.stderr[-3000:]
    figs = tmp_path / "results" / run / "figures"
    for n in ("fig2", "fig3", "fig4", "fig5"):
        assert (figs / f"{n}.png").stat().st_size > 5000
        assert (figs / f"{n}.pdf").stat().st_size > 2000
    for n in ("analysis", "paired", "born_again"):
        assert (out / f"{n}.csv").stat().st_size > 100

    res = _snakemake(tmp_path, config, "figures", "--report", str(tmp_path / "report.html"))
    assert res.returncode == 0, res.stderr[-3000:]
    html = (tmp_path / "report.html").read_text()
    for needle in ("fig2.png", "fig5.png", "paired.csv", "born_again.csv", "Born-Again"):
        assert needle in html
    assert ("LAMMPS stage is disabled" in html) is (not lammps)
