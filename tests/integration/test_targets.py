"""Every named target (README, docs/execution.md) resolves in a dry run on config/test.yaml.

Dry runs happen in a private copy of the workflow (no results yet), so they plan real jobs.
The planned job counts are checked against the config: ``teachers`` is one job per ensemble
member, a per-model file target trains exactly that one model (plus what it needs).
"""

from __future__ import annotations

import re
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.helpers import copy_workflow, job_stats, run_snakemake

TARGETS = [
    "dataset",
    "teachers",
    "labels",
    "atomic_labels",
    "augmentation",
    "students",
    "controls",
    "born_again_models",
    "efficiency",
    "rdf",
    "figures",
    "report",
]
MODEL_FILE = "results/test/models/student/L1-W8-S4/seed0/model.pt"


@pytest.fixture(scope="module")
def workdir(repo, tmp_path_factory):
    return copy_workflow(repo, tmp_path_factory.mktemp("targets"))


@pytest.fixture(scope="module")
def rules(workdir) -> set[str]:
    r = run_snakemake(workdir, "--list-rules", "--configfile", "config/test.yaml")
    assert r.returncode == 0, r.stderr[-3000:]
    return set(r.stdout.split())


@pytest.mark.parametrize("target", TARGETS)
def test_named_target_is_a_rule(rules, target):
    assert target in rules, f"no rule named {target!r} (rules: {sorted(rules)})"


def test_all_named_targets_and_file_targets_resolve(workdir, rules):
    """One dry run for all of them (a failure names the rule or file that does not resolve)."""
    missing = [t for t in TARGETS if t not in rules]
    assert not missing, f"named targets missing: {missing}"
    r = run_snakemake(
        workdir, *TARGETS, MODEL_FILE, "results/test/figures/fig3.png", "-n",
        "--configfile", "config/test.yaml",
    )  # fmt: skip
    assert r.returncode == 0, (r.stdout + r.stderr)[-3000:]


def test_teachers_target_plans_one_job_per_member(workdir, tiny_config):
    r = run_snakemake(workdir, "teachers", "-n", "--configfile", "config/test.yaml")
    assert r.returncode == 0, (r.stdout + r.stderr)[-3000:]
    stats = job_stats(r)
    assert stats["train_teacher"] == tiny_config["teachers"]["n_members"]
    assert stats["dataset"] == 1


def test_model_file_target_trains_that_model_only(workdir, tiny_config):
    r = run_snakemake(workdir, MODEL_FILE, "-n", "--configfile", "config/test.yaml")
    assert r.returncode == 0, (r.stdout + r.stderr)[-3000:]
    stats = job_stats(r)
    assert stats["train_model"] == 1
    # the student learns the teachers' atomic energies: the whole ensemble comes first
    assert stats["train_teacher"] == tiny_config["teachers"]["n_members"]
    assert MODEL_FILE in r.stdout + r.stderr


def _documented_commands(repo: Path) -> list[list[str]]:
    """The ``snakemake`` command lines of docs/execution.md that run config/test.yaml locally."""
    text = (repo / "docs" / "execution.md").read_text()
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", text, re.S):
        for line in block.splitlines():
            words = line.split()
            if words[:1] == ["snakemake"] and "config/test.yaml" in words:
                if "--profile" not in words:  # SLURM: tests/integration/test_slurm.py
                    commands.append(words[1:])
    return commands


def test_documented_commands_resolve(workdir, repo):
    commands = _documented_commands(repo)
    assert len(commands) >= 7, commands
    drop = {"--use-conda", "--conda-create-envs-only"}  # no conda here
    # distinct dry runs, two at a time (each builds the whole DAG: seconds of CPU)
    runs = sorted({tuple(a for a in args if a not in drop) for args in commands})
    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(lambda args: run_snakemake(workdir, *args, "-n"), runs))
    for args, r in zip(runs, results, strict=True):
        assert r.returncode == 0, f"{' '.join(args)}:\n" + (r.stdout + r.stderr)[-3000:]


def test_editing_another_section_does_not_retrain(tmp_path, repo):
    """Jobs see only the settings they read: after training, timing and memory probing of one
    model, changing LAMMPS or figure settings plans nothing, a timing setting reruns only the
    timing job, a memory setting only the memory probe, a training setting retrains (the
    contract over a whole run: test_rerun.py)."""
    import yaml

    wd = copy_workflow(repo, tmp_path)
    model = "results/test/{}/control/L1-W8-S4/seed0/{}"
    targets = [
        model.format("models", "metrics.json"),
        model.format("efficiency", "timing.json"),
        model.format("efficiency", "memory.json"),
    ]
    r = run_snakemake(wd, *targets, "--cores", "1", "--configfile", "config/test.yaml")
    assert r.returncode == 0, (r.stdout + r.stderr)[-3000:]
    cfg = yaml.safe_load((wd / "config" / "test.yaml").read_text())

    def plan(**sections) -> subprocess.CompletedProcess:
        edited = {**cfg, **{k: {**cfg.get(k, {}), **v} for k, v in sections.items()}}
        (wd / "config" / "edited.yaml").write_text(yaml.safe_dump(edited, sort_keys=False))
        return run_snakemake(wd, *targets, "-n", "--configfile", "config/edited.yaml")

    r = plan(lammps={"production_steps": 99}, figures={"learning_curve_archs": ["L1-W8-S4"]})
    assert r.returncode == 0 and "Nothing to be done" in r.stdout + r.stderr, r.stdout[-2000:]
    r = plan(efficiency={"blocks": 5})
    assert r.returncode == 0 and job_stats(r) == {"timing": 1}, r.stdout[-2000:]
    r = plan(efficiency={"memory_probe_supercells": [3, 4, 5]})
    assert r.returncode == 0 and job_stats(r) == {"memory": 1}, r.stdout[-2000:]
    r = plan(training={"learning_rate": 5e-4})
    assert r.returncode == 0, r.stdout[-2000:]
    assert job_stats(r) == {"train_model": 1, "timing": 1, "memory": 1}, r.stdout[-2000:]


def test_stacked_grid_trains_each_architecture_as_one_job(tmp_path, repo):
    """training.stack_grid: one train_grid_stack job per grid architecture replaces the grid's
    train_model jobs; it writes every member's model, history and metrics (test errors of
    each model, its convergence record and the stack size) and logs every member's epochs."""
    import json

    import yaml

    wd = copy_workflow(repo, tmp_path)
    cfg = yaml.safe_load((wd / "config" / "test.yaml").read_text())
    cfg["training"] = {**cfg["training"], "engine": "fast", "stack_grid": True}
    (wd / "config" / "stack.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    r = run_snakemake(wd, "students", "controls", "-n", "--configfile", "config/stack.yaml")
    assert r.returncode == 0, (r.stdout + r.stderr)[-3000:]
    stats = job_stats(r)
    assert stats["train_grid_stack"] == len(cfg["grid"]["architectures"])
    assert "train_model" not in stats
    r = run_snakemake(
        wd, "students", "controls", "--cores", "1", "--configfile", "config/stack.yaml"
    )
    assert r.returncode == 0, (r.stdout + r.stderr)[-3000:]
    members = [(role, s) for role in ("student", "control") for s in cfg["grid"]["seeds"]]
    log = (wd / "logs/test/stacks/grid-L1-W8-S4.log").read_text()
    for role, seed in members:
        m = json.loads(
            (wd / f"results/test/models/{role}/L1-W8-S4/seed{seed}/metrics.json").read_text()
        )
        assert m["engine"] == "fasttrain" and m["stack_size"] == len(members)
        assert m["test_f_rmse"] > 0 and m["epochs"] == cfg["training"]["max_epochs"]
        assert isinstance(m["converged"], bool) and m["stop_reason"] == "max_epochs"
        for epoch in range(1, cfg["training"]["max_epochs"] + 1):
            assert f"{role}/L1-W8-S4/seed{seed} epoch {epoch}: lr" in log
