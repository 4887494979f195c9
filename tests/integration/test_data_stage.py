"""The data stage for real through the CLIs (Snakemake and ``aedistill``) on config/test.yaml."""

from __future__ import annotations

import json
import subprocess

import numpy as np
import pytest

from aedistill.data.canonical import load_dataset
from aedistill.data.split import load_split
from tests.helpers import BIN, copy_workflow, run_snakemake


@pytest.fixture(scope="module")
def workdir(repo, tmp_path_factory):
    return copy_workflow(repo, tmp_path_factory.mktemp("wf"))


@pytest.mark.parametrize(
    "config",
    [
        "config.yaml",
        "test.yaml",
        "paper.yaml",
        "study/emt.yaml",
        "study/meam.yaml",
        "study/ani-al-model.yaml",
        "study.yaml",
    ],
)
def test_dry_run_each_config(workdir, config):
    r = run_snakemake(workdir, "-n", "--configfile", f"config/{config}", timeout=300)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]


@pytest.mark.parametrize("reference", ["emt", "meam", "ani-al-model"])
def test_study_configs_differ_from_the_default_only_in_reference_and_stages(repo, reference):
    # the study compares references at the default run's budget: same families, split,
    # teachers, grid architectures, seeds and training; only the source, run name, skipped
    # stages and the pre-registered ablation roles (docs/study.md) differ
    from aedistill.config import load_config

    default = load_config(repo / "config" / "config.yaml")
    study = load_config(repo / "config" / "study" / f"{reference}.yaml")
    assert study["dataset"]["source"] == reference
    assert study["run_name"] == f"study-{reference}"
    for key in ("model", "training", "loss", "labels", "teachers"):
        assert study[key] == default[key], key
    ablations = ("roles", "w_A_sweep")
    assert {k: v for k, v in study["grid"].items() if k not in ablations} == {
        k: v for k, v in default["grid"].items() if k not in ablations
    }
    assert set(study["grid"]["roles"]) == {"control", "matched_control", "student", "oracle"}
    assert study["grid"]["w_A_sweep"] == [1, 10]
    for key in ("species", "generate", "split"):
        assert study["dataset"][key] == default["dataset"][key], key
    assert not study["born_again"]["enabled"]
    # LAMMPS runs only the reference teacher's liquid (no seeds beyond it)
    assert study["lammps"]["enabled"] and study["lammps"]["seeds"] == []
    assert {k: v for k, v in study["lammps"].items() if k != "seeds"} == {
        k: v for k, v in default["lammps"].items() if k != "seeds"
    }


def test_data_stage_runs_for_real(workdir, tiny_dataset):
    r = run_snakemake(workdir, "dataset", "--cores", "1", "--configfile", "config/test.yaml")
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    out = workdir / "results" / "test" / "data"
    ds = load_dataset(out / "dataset.h5")
    # same data as the in-process generator (independent path: no Snakemake)
    np.testing.assert_array_equal(ds.energy, tiny_dataset.energy)
    split = load_split(out / "split.json", ds.n_conf)
    assert len(split.train) + len(split.valid) + len(split.test) == ds.n_conf
    summary = json.loads((out / "summary.json").read_text())
    assert summary["n_configurations"] == ds.n_conf and summary["has_atom_energies"]
    assert (workdir / "logs" / "test" / "data" / "dataset.h5.log").stat().st_size > 0
    assert (workdir / "benchmarks" / "test" / "data" / "dataset.h5.tsv").exists()
    # a rerun has nothing to do
    r = run_snakemake(workdir, "dataset", "-n", "--configfile", "config/test.yaml")
    assert "Nothing to be done" in r.stdout + r.stderr


def test_bad_input_fails_with_one_line_and_writes_nothing(workdir, tmp_path):
    bad = tmp_path / "bad.extxyz"
    bad.write_text(
        '3\nLattice="1 0 0 0 1 0 0 0 1" Properties=species:S:1:pos:R:3 energy=1.0\nAl 0 0 0\n'
    )
    cfg = tmp_path / "extxyz.yaml"
    cfg.write_text(f"run_name: bad\ndataset:\n  source: extxyz\n  path: {bad}\n")
    r = run_snakemake(workdir, "dataset", "--cores", "1", "--configfile", str(cfg))
    assert r.returncode != 0
    assert f"error: {bad}" in r.stdout + r.stderr
    assert not (workdir / "results" / "bad" / "data" / "dataset.h5").exists()


def test_unknown_config_key_fails_naming_it(workdir, tmp_path):
    cfg = tmp_path / "typo.yaml"
    cfg.write_text("run_name: typo\ntrainig:\n  max_epochs: 3\n")
    r = run_snakemake(workdir, "-n", "--configfile", str(cfg))
    assert r.returncode != 0
    assert "trainig" in r.stdout + r.stderr


def test_aedistill_cli_dataset(tmp_path, repo, tiny_dataset):
    r = subprocess.run(
        [str(BIN / "aedistill"), "dataset", str(repo / "config" / "test.yaml"), str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    np.testing.assert_array_equal(load_dataset(tmp_path / "dataset.h5").forces, tiny_dataset.forces)
    r = subprocess.run(
        [str(BIN / "aedistill"), "check-config", str(tmp_path / "missing.yaml")],
        capture_output=True,
        text=True,
    )
    assert (
        r.returncode == 1 and r.stderr.strip().startswith("error:") and "missing.yaml" in r.stderr
    )
    assert len(r.stderr.strip().splitlines()) == 1
