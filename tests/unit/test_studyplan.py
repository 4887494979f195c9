"""A study's plan: deep merge of the overrides, run names, complete run configs, and one-line
errors naming the key (the Snakefile's check of a study config)."""

from __future__ import annotations

import copy
import math
import os
import re

import pytest
import yaml

from aedistill.errors import UserInputError
from aedistill.paths import study_run_name
from aedistill.studyplan import (
    deep_merge,
    nested_snakemake_args,
    plan_study,
    run_tables,
    write_run_config,
)


def test_deep_merge_merges_mappings_and_replaces_everything_else():
    base = {
        "grid": {"roles": ["student", "control"], "seeds": [0, 1, 2, 3], "w_A_sweep": []},
        "training": {"max_epochs": 25, "batch_size": 4},
        "run_name": "x",
        "labels": {"target": "mean"},
    }
    frozen = copy.deepcopy(base)
    overrides = {
        "grid": {"roles": ["control"], "w_A_sweep": [1, 10]},  # lists replaced, not appended
        "training": {"max_epochs": 3, "engine": "hippynn"},  # merged key by key
        "labels": 0,  # a mapping replaced by a scalar
        "lammps": {"enabled": False},  # new section
    }
    merged = deep_merge(base, overrides)
    assert merged == {
        "grid": {"roles": ["control"], "seeds": [0, 1, 2, 3], "w_A_sweep": [1, 10]},
        "training": {"max_epochs": 3, "batch_size": 4, "engine": "hippynn"},
        "run_name": "x",
        "labels": 0,
        "lammps": {"enabled": False},
    }
    assert base == frozen  # neither argument is modified, nor shared with the result
    merged["grid"]["seeds"].append(9)
    merged["lammps"]["enabled"] = True
    assert base == frozen and overrides["lammps"] == {"enabled": False}
    assert deep_merge(base, {}) == base


def test_study_run_names():
    assert study_run_name("verdict", "emt", 0.25) == "verdict-emt-f25"
    assert study_run_name("verdict", "ani-al-model", 1) == "verdict-ani-al-model-f100"
    assert study_run_name("s", "meam", 0.125) == "s-meam-f12.5"


@pytest.fixture
def in_repo(repo):
    """Run from the repository root (reference config paths are relative to it)."""
    cwd = os.getcwd()
    os.chdir(repo)
    yield repo
    os.chdir(cwd)


def _study(**study):
    return {
        "study": {
            "name": "v",
            "references": [
                {"name": "emt", "config": "config/study/emt.yaml"},
                {"name": "meam", "config": "config/study/meam.yaml"},
            ],
            **study,
        }
    }


def test_plan_runs_every_reference_and_subset(in_repo, tmp_path):
    from aedistill.config import load_config

    config = _study(
        train_subsets=[1.0, 0.25],
        overrides={"grid": {"roles": ["student", "control", "oracle"], "w_A_sweep": [1, 10]}},
    )
    study = plan_study(config)
    assert config["study"]["snakemake_args"] == "" and study.snakemake_args == ""
    assert [(r.name, r.reference, r.train_subset) for r in study.runs] == [
        ("v-emt-f25", "emt", 0.25),
        ("v-emt-f100", "emt", 1.0),
        ("v-meam-f25", "meam", 0.25),
        ("v-meam-f100", "meam", 1.0),
    ]
    reference = load_config(in_repo / "config" / "study" / "meam.yaml")
    run = study.run("v-meam-f25")
    # the reference's config, complete, with the study's run name, subset and overrides
    assert run.config["run_name"] == "v-meam-f25"
    assert run.config["dataset"]["split"]["train_subset"] == 0.25
    # the full-data run leaves the key out (absent = 1): its dataset/training params are its
    # reference config's own, so results made without a study stay up to date in one
    assert "train_subset" not in study.run("v-meam-f100").config["dataset"]["split"]
    # the same patience and ceiling in optimiser steps: epochs × 1 / 0.25, rounded up
    for key in ("max_epochs", "lr_patience", "termination_patience"):
        full = study.run("v-meam-f100").config["training"][key]
        assert run.config["training"][key] == math.ceil(full / 0.25), key
    assert study.run("v-meam-f100").config["dataset"] == reference["dataset"]
    assert run.config["grid"]["roles"] == ["student", "control", "oracle"]
    assert run.config["grid"]["w_A_sweep"] == [1, 10]
    for key in ("teachers", "model", "loss", "lammps", "born_again"):
        assert run.config[key] == reference[key], key
    assert study.run("v-meam-f100").config["training"] == reference["training"]
    assert run.config["grid"]["seeds"] == reference["grid"]["seeds"]
    assert run.config["dataset"]["source"] == "meam"
    # written and read back, it is the same complete config (schema-valid as it is)
    write_run_config(tmp_path / "run.yaml", run.config)
    assert load_config(tmp_path / "run.yaml") == run.config
    assert "snakemake --cores all --configfile" in (tmp_path / "run.yaml").read_text()


@pytest.mark.parametrize(
    ("study", "message"),
    [
        ({"train_subsets": [0]}, "key 'study.train_subsets.0': 0 is less than or equal to"),
        ({"train_subsets": [0.5, 1.5]}, "key 'study.train_subsets.1': 1.5 is greater than"),
        ({"overrides": {"run_name": "x"}}, "key 'study.overrides.run_name': set by the study"),
        (
            {"overrides": {"dataset": {"split": {"train_subset": 0.5}}}},
            "key 'study.overrides.dataset.split.train_subset': set by the study",
        ),
        (
            {"overrides": {"grid": {"roles": ["pupil"]}}},
            "run v-emt-f100 (config/study/emt.yaml + study.overrides): key 'grid.roles': 'pupil' is not",
        ),
        (
            {"overrides": {"training": {"max_epoch": 3}}},
            "key 'training': Additional properties are not allowed ('max_epoch' was unexpected)",
        ),
        ({"snakemake_arg": ""}, "key 'study': Additional properties"),
    ],
)
def test_bad_study_is_one_line_naming_the_key(in_repo, study, message):
    with pytest.raises(UserInputError, match=re.escape(message)):
        plan_study(_study(**study), where="config/s.yaml")


def test_bad_references(in_repo, tmp_path):
    config = _study()
    config["study"]["references"][1]["name"] = "emt"
    with pytest.raises(UserInputError, match=r"study.references': reference names \['emt'\]"):
        plan_study(config)
    config = _study()
    config["study"]["references"][0]["config"] = "config/study/none.yaml"
    with pytest.raises(
        UserInputError,
        match="key 'study.references.0.config': config/study/none.yaml: config file not found",
    ):
        plan_study(config)
    (tmp_path / "list.yaml").write_text(yaml.safe_dump([1, 2]))
    config["study"]["references"][0]["config"] = str(tmp_path / "list.yaml")
    with pytest.raises(UserInputError, match="expected a mapping of config keys"):
        plan_study(config)


def test_the_study_config_plans_its_runs(in_repo):
    from aedistill.config import read_config_file

    study = plan_study(read_config_file("config/study.yaml"), "config/study.yaml")
    assert study.name == "verdict" and study.cores_per_run == 1
    assert [r.name for r in study.runs] == [
        "verdict-emt-f25",
        "verdict-emt-f100",
        "verdict-ani-al-model-f25",
        "verdict-ani-al-model-f100",
    ]
    for run in study.runs:
        assert run.config["grid"]["roles"] == ["student", "control", "matched_control", "oracle"]
        assert run.config["grid"]["w_A_sweep"] == [1, 10]
        assert run.config["loss"]["student"]["w_A"] == 100  # with the sweep: 1, 10, 100


def test_nested_runs_get_the_callers_conda_and_keep_going(in_repo):
    assert nested_snakemake_args() == ""
    assert nested_snakemake_args("--profile profiles/slurm") == "--profile profiles/slurm"
    assert (
        nested_snakemake_args("--profile p", use_conda=True, conda_prefix="/envs", keep_going=True)
        == "--profile p --sdm conda --conda-prefix /envs --keep-going"
    )
    # the nested Snakemake builds the RDF table only where the run's LAMMPS stage runs
    study = plan_study(_study(overrides={"lammps": {"enabled": False}}))
    assert run_tables(study.runs[0]) == {
        "models": "results/v-emt-f100/tables/models.csv",
        "histories": "results/v-emt-f100/tables/histories.csv",
    }
    assert "rdf_errors" in run_tables(plan_study(_study()).runs[0])


def test_check_config_of_a_study_lists_its_runs(in_repo, capsys):
    from aedistill.cli import main

    assert main(["check-config", "config/study.yaml"]) == 0
    out = capsys.readouterr().out
    assert yaml.safe_load(out)["study"]["snakemake_args"] == ""
    lines = out.splitlines()
    assert "# run verdict-ani-al-model-f25: reference ani-al-model, train_subset 0.25" in lines


def test_cores_per_run_is_optional_and_checked(in_repo):
    assert plan_study(_study()).cores_per_run is None  # absent: all cores, one run at a time
    assert plan_study(_study(cores_per_run=1)).cores_per_run == 1
    with pytest.raises(UserInputError, match=r"study\.cores_per_run"):
        plan_study(_study(cores_per_run=0))


def test_the_paper_protocol_study_plans_its_variants(in_repo):
    """config/study/paper-protocol.yaml (docs/study.md part 4): each reference's own
    overrides, merged after the study's, give the protocol variants; nothing else differs."""
    from aedistill.config import read_config_file

    path = "config/study/paper-protocol.yaml"
    study = plan_study(read_config_file(path), path)
    runs = {r.reference: r.config for r in study.runs}
    assert list(runs) == [
        "emt", "emt-total", "emt-total-leaky", "ani-al-model-total", "ani-al-model",
        "ani-al-model-total-leaky", "meam-total", "meam", "ani-al-model-8x",
    ]  # fmt: skip
    # H10's grid (docs/study.md part 8): the roles H1 and H2 test, on 8x each data family
    eight = runs.pop("ani-al-model-8x")
    one = runs["ani-al-model"]
    assert eight["grid"]["roles"] == ["control", "matched_control", "student"]
    assert eight["grid"]["w_A_sweep"] == []
    assert eight["loss"] == one["loss"] and eight["loss"]["energy"] == "per_atom"
    for family in ("n_bulk", "n_vacancy", "n_surface", "n_md"):
        gen = (eight["dataset"]["generate"], one["dataset"]["generate"])
        assert gen[0][family] == 8 * gen[1][family], family
    for key in ("teachers", "training", "model", "labels"):
        assert eight[key] == one[key], key
    for ref, config in runs.items():
        base = ref.split("-total")[0]
        assert config["loss"]["energy"] == ("total" if "-total" in ref else "per_atom"), ref
        leaky = ref.endswith("-leaky")
        assert config["labels"].get("teacher_split_seed") == (1 if leaky else None), ref
        roles = ["control", "matched_control", "student"] + ([] if leaky else ["oracle"])
        assert config["grid"]["roles"] == roles and config["grid"]["w_A_sweep"] == [1]
        same = runs[base]
        for key in ("dataset", "teachers", "training", "model"):
            assert config[key] == same[key], (ref, key)
        assert {k: v for k, v in config["loss"].items() if k != "energy"} == {
            k: v for k, v in same["loss"].items() if k != "energy"
        }


def test_reference_overrides_may_not_set_what_the_study_sets(in_repo):
    config = _study()
    config["study"]["references"][1]["overrides"] = {"run_name": "x"}
    with pytest.raises(
        UserInputError, match=re.escape("key 'study.references.1.overrides.run_name': set by")
    ):
        plan_study(config)
    config["study"]["references"][1]["overrides"] = {"loss": {"energy": "kinetic"}}
    with pytest.raises(
        UserInputError,
        match=re.escape(
            "(config/study/meam.yaml + study.overrides + study.references.1.overrides)"
        ),
    ):
        plan_study(config)


def test_the_8x_reference_differs_from_ani_al_model_only_in_its_data(in_repo):
    """H10's reference (config/study/ani-al-model-8x.yaml): 8x every generated family, MD driven
    by EMT; the pilot overlay keeps the study's run name and changes only the grid."""
    from aedistill.config import load_config, read_config_file

    base = load_config("config/study/ani-al-model.yaml")
    big = load_config("config/study/ani-al-model-8x.yaml")
    for family in ("n_bulk", "n_vacancy", "n_surface", "n_md"):
        assert big["dataset"]["generate"][family] == 8 * base["dataset"]["generate"][family]
    assert big["dataset"]["ani_al_model"]["md_driver"] == "emt"
    for key in ("training", "teachers", "model", "loss", "labels", "lammps", "born_again"):
        assert big[key] == base[key], key
    pilot = read_config_file("config/study/overlays/pilot-8x.yaml")
    assert set(pilot) == {"run_name", "grid"}
    study = plan_study(
        {
            "study": {
                "name": "paper-protocol",
                "references": [
                    {"name": "ani-al-model-8x", "config": "config/study/ani-al-model-8x.yaml"}
                ],
            }
        }
    )
    assert pilot["run_name"] == study.runs[0].name
