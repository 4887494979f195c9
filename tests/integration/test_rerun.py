"""Edit one key of a finished run, and Snakemake plans exactly the jobs that read it.

Each rule's params are the settings its job reads (:mod:`aedistill.settings`), so an edit
reruns the jobs whose settings it changed and what reads their outputs, nothing else. The
table below is the contract, checked with ``snakemake -n`` against the session's finished
run of ``config/test.yaml`` (2 teachers L2-W16-S8, student and control L1-W8-S4 seeds 0-1
trained one model per job, Born-Again seed 0; timing, memory and LAMMPS g(r) of the seed-0
models). Where the grid trains as one stack (``training.stack_grid``) a student-only edit
reruns the whole stack: its other members come out bit-identical (the last test here, and
test_fasttrain.py::test_stack_members_do_not_see_each_others_weights).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
import yaml

from tests.helpers import job_stats, run_snakemake

pytestmark = pytest.mark.slow

#: what reads the model table: the tables and the four figures, and the default target
TABLES = {"summarize_models": 1, "efficiency_table": 1, "rdf_errors": 1, "analysis": 1}
FIGURES = {"figure": 4, "all": 1}


def per_model(n: int) -> dict[str, int]:
    """The jobs that read one model file, for ``n`` timed models with an RDF run."""
    return {"timing": n, "memory": n, "export_mliap": n, "lammps_rdf": n}


@dataclass(frozen=True)
class Edit:
    key: str  # dotted config key
    change: Callable[[Any], Any]  # old value (None where the test config leaves it out)
    jobs: dict[str, int]  # Snakemake's "Job stats" of the dry run ({}: nothing to do)
    why: str


EDITS = [
    Edit(
        "loss.student.w_A",
        lambda old: 123.0,
        {"train_model": 2, **per_model(1), **TABLES, **FIGURES},
        "the two students and what reads them; no teacher, label, control or Born-Again job",
    ),
    Edit(
        "loss.control.w_F",
        lambda old: 77.0,
        {"train_model": 2, **per_model(1), **TABLES, **FIGURES},
        "the two controls and what reads them",
    ),
    Edit(
        "loss.energy",
        lambda old: "total",
        {"train_teacher": 2, "labels": 1, "train_model": 5, **per_model(4), **TABLES, **FIGURES},
        "every training job reads it",
    ),
    Edit(
        "labels.teacher_split_seed",
        lambda old: 7,
        {"train_teacher": 2, "labels": 1, "train_model": 3, **per_model(3), **TABLES, **FIGURES},
        "the teachers, their labels, and the students and Born-Again learning them; no control",
    ),
    Edit(
        "lammps.seeds",
        lambda old: [0, 1],
        {"export_mliap": 3, "lammps_rdf": 3, "rdf_errors": 1, "analysis": 1, "figure": 1, "all": 1},
        "only the new seed's RDF runs (teacher, student, control seed 1; Born-Again has seed "
        "0 only), the RDF table and what reads it (Fig 3); seed 1 is not timed",
    ),
    Edit(
        "lammps.production_steps",
        lambda old: old + 10,
        {"lammps_rdf": 4, "rdf_errors": 1, "efficiency_table": 1, "analysis": 1, "figure": 3}
        | {"all": 1},
        "the RDF runs and what reads their g(r) and LAMMPS timings (Figs 2, 3, 5)",
    ),
    Edit(
        "efficiency.blocks",
        lambda old: 5,
        {"timing": 4, "efficiency_table": 1, "analysis": 1, "figure": 2, "all": 1},
        "the timings and what reads them (Figs 2, 5); no memory probe",
    ),
    Edit(
        "training.max_wall_minutes",
        lambda old: 30,
        {},
        "a limit, not a setting of a model: a resource of the training jobs",
    ),
    Edit(
        "training.stack_grid",
        lambda old: True,
        {"train_grid_stack": 1, **per_model(2), **TABLES, **FIGURES},
        "no teacher, label or Born-Again job; the grid models (student, control) are now made "
        "by another rule, one job per architecture with its own params and inputs, so they are "
        "retrained (equal to rounding: test_fasttrain.py::test_stack_equals_models_trained_"
        "alone)",
    ),
]


def edited(config: dict, key: str, change: Callable[[Any], Any]) -> dict:
    """A copy of ``config`` with ``change`` applied to the dotted ``key``."""
    out = yaml.safe_load(yaml.safe_dump(config))
    *parents, last = key.split(".")
    node = out
    for k in parents:
        node = node.setdefault(k, {})
    node[last] = change(node.get(last))
    return out


def test_the_finished_run_is_up_to_date(finished_run):
    r = run_snakemake(finished_run, "-n", "--configfile", "config/test.yaml", timeout=300)
    assert r.returncode == 0 and job_stats(r) == {}, (r.stdout + r.stderr)[-3000:]


def test_the_order_of_the_keys_in_the_config_file_reruns_nothing(finished_run):
    """Params are compared by their repr: the settings sort their keys."""
    cfg = yaml.safe_load((finished_run / "config" / "test.yaml").read_text())
    text = yaml.safe_dump(cfg, sort_keys=True)
    assert text != yaml.safe_dump(cfg, sort_keys=False)
    (finished_run / "config" / "sorted.yaml").write_text(text)
    r = run_snakemake(finished_run, "-n", "--configfile", "config/sorted.yaml", timeout=300)
    assert r.returncode == 0 and job_stats(r) == {}, (r.stdout + r.stderr)[-3000:]


@pytest.mark.parametrize("edit", EDITS, ids=[e.key for e in EDITS])
def test_an_edit_plans_exactly_the_jobs_that_read_it(finished_run, edit):
    cfg = yaml.safe_load((finished_run / "config" / "test.yaml").read_text())
    name = f"config/edit-{edit.key}.yaml"
    (finished_run / name).write_text(yaml.safe_dump(edited(cfg, edit.key, edit.change)))
    r = run_snakemake(finished_run, "-n", "--configfile", name, timeout=300)
    assert r.returncode == 0, (r.stdout + r.stderr)[-3000:]
    assert job_stats(r) == edit.jobs, f"{edit.key}: expected {edit.why}\n" + r.stdout[-3000:]


def test_a_student_edit_reruns_its_stack_and_the_controls_come_out_bit_identical(
    finished_run, tmp_path
):
    """With training.stack_grid the students share one job per architecture with the
    controls: a student-only edit reruns that job, and the controls it writes again are the
    same models, bit for bit (in a copy of the finished run: this one trains)."""
    import shutil

    import torch

    wd = tmp_path / "run"
    shutil.copytree(finished_run, wd, symlinks=True)  # mtimes and .snakemake records too
    cfg = yaml.safe_load((wd / "config" / "test.yaml").read_text())
    cfg["training"]["stack_grid"] = True
    (wd / "config" / "stack.yaml").write_text(yaml.safe_dump(cfg))
    cfg = edited(cfg, "loss.student.w_A", lambda old: 3.0)
    (wd / "config" / "stack-wA.yaml").write_text(yaml.safe_dump(cfg))
    models = {
        (role, seed): wd / f"results/test/models/{role}/L1-W8-S4/seed{seed}/model.pt"
        for role in ("student", "control")
        for seed in cfg["grid"]["seeds"]
    }
    targets = [str(p.relative_to(wd)) for p in models.values()]

    def weights() -> dict:
        out = {}
        for key, path in models.items():
            state = torch.load(path, map_location="cpu", weights_only=False)["state_dict"]
            out[key] = {k: v for k, v in state.items() if isinstance(v, torch.Tensor)}
        return out

    r = run_snakemake(wd, *targets, "--cores", "1", "--configfile", "config/stack.yaml")
    assert r.returncode == 0, (r.stdout + r.stderr)[-3000:]
    before = weights()
    r = run_snakemake(wd, *targets, "-n", "--configfile", "config/stack-wA.yaml", timeout=300)
    assert job_stats(r) == {"train_grid_stack": 1}, (r.stdout + r.stderr)[-3000:]
    r = run_snakemake(wd, *targets, "--cores", "1", "--configfile", "config/stack-wA.yaml")
    assert r.returncode == 0, (r.stdout + r.stderr)[-3000:]
    after = weights()
    for (role, seed), state in before.items():
        same = all(torch.equal(v, after[role, seed][k]) for k, v in state.items())
        assert same is (role == "control"), (role, seed)
