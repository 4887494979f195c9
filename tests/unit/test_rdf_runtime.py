"""SLURM wall time of the liquid RDF runs, derived from the config's sizes: the cost model
reproduces the measured per-atom-step costs it was fitted to (README speed table), and the
workflow asks for the model's runtime, capped per job, with enough attempts (each resuming
from LAMMPS restart files) to finish the paper's runs."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from aedistill.config import load_config
from aedistill.lammps import rdf_cost_us, rdf_runtime_minutes

REPO = Path(__file__).resolve().parents[2]
# docs/record.md: OMP_NUM_THREADS=1 bench/lammps_vs_ase.py, LAMMPS `fast` attached, µs/atom-step
MEASURED = {"L1-W8-S4": 9.24, "L1-W16-S8": 13.58, "L2-W64-S20": 37.82}


@pytest.mark.parametrize("arch", sorted(MEASURED))
def test_cost_model_matches_the_measurements(arch):
    assert abs(rdf_cost_us(arch) / MEASURED[arch] - 1) < 0.2


def test_runtime_scales_with_atoms_and_steps():
    paper = load_config(REPO / "config" / "paper.yaml")["lammps"]
    n_atoms = 4 * 17**3
    steps = 10_000 + 20_000 + 50_000
    expected = 2 * steps * n_atoms * rdf_cost_us("L1-W8-S4") * 1e-6 / 60 + 10
    assert rdf_runtime_minutes(paper, "L1-W8-S4") == math.ceil(expected)
    # the paper's teacher (4x128/40) needs far more than the old fixed 120 minutes
    assert rdf_runtime_minutes(paper, "L4-W128-S40") > 24 * 60
    small = load_config(REPO / "config" / "test.yaml")["lammps"]
    assert rdf_runtime_minutes(small, "L4-W128-S40") <= 15
    # on lammps.ranks ranks: the MD time divided among them (perfect scaling assumed)
    expected_4 = 2 * steps * n_atoms * rdf_cost_us("L1-W8-S4") * 1e-6 / 60 / 4 + 10
    assert rdf_runtime_minutes({**paper, "ranks": 4}, "L1-W8-S4") == math.ceil(expected_4)


PROBE = """
import json, sys
from pathlib import Path
from types import SimpleNamespace
from snakemake.api import SnakemakeApi
from snakemake.settings.types import ConfigSettings, ResourceSettings, StorageSettings
out = {}
for cf in sys.argv[1:]:
    with SnakemakeApi() as api:
        wf = api.workflow(resource_settings=ResourceSettings(),
                          config_settings=ConfigSettings(configfiles=[Path(cf)]),
                          storage_settings=StorageSettings(), snakefile=Path("Snakefile"),
                          workdir=Path("."))._workflow
        rule = wf.get_rule("lammps_rdf")
        runtime = rule.resources["runtime"]._evaluator  # the rule's callable
        out[cf] = {"retries": rule._restart_times,
                   "runtime": {a: runtime(SimpleNamespace(arch=a))
                               for a in ("L1-W8-S4", "L4-W128-S40")}}
print(json.dumps(out))
"""


def test_workflow_asks_for_the_modelled_runtime():
    r = subprocess.run(
        [sys.executable, "-c", PROBE, "config/paper.yaml", "config/test.yaml"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    got = json.loads(r.stdout.strip().splitlines()[-1])
    paper = load_config(REPO / "config" / "paper.yaml")["lammps"]
    cap = 1440
    assert got["config/paper.yaml"]["runtime"] == {
        "L1-W8-S4": rdf_runtime_minutes(paper, "L1-W8-S4"),
        "L4-W128-S40": cap,
    }
    # the teacher's run takes several capped jobs: one attempt each, resuming
    attempts = math.ceil(rdf_runtime_minutes(paper, "L4-W128-S40") / cap)
    assert got["config/paper.yaml"]["retries"] == attempts >= 2
    # small runs keep the profile's retries and ask for minutes
    assert got["config/test.yaml"]["retries"] is None
    assert max(got["config/test.yaml"]["runtime"].values()) <= 15
