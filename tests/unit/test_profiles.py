"""The Snakemake profiles name only options that the installed Snakemake and SLURM plugin accept.

The accepted names come from Snakemake's own argument parser (which registers the installed
executor plugins' options) and from the SLURM plugin's settings dataclass, not from a list
written here.
"""

from __future__ import annotations

import dataclasses
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
PROFILES = {
    name: REPO / "profiles" / name / "config.yaml" for name in ("default", "slurm", "slurm-paper")
}
BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def accepted_options() -> set[str]:
    """Every long option of ``snakemake`` (plugins included), without the leading ``--``."""
    from snakemake.cli import get_argument_parser

    parser = get_argument_parser()
    return {
        s[2:] for action in parser._actions for s in action.option_strings if s.startswith("--")
    }


def _profile(name: str) -> dict:
    data = yaml.safe_load(PROFILES[name].read_text())
    assert isinstance(data, dict) and data, f"{PROFILES[name]} is not a YAML mapping"
    return data


@pytest.mark.parametrize("name", sorted(PROFILES))
def test_profile_keys_are_snakemake_options(name, accepted_options):
    unknown = sorted(set(_profile(name)) - accepted_options)
    assert not unknown, f"{PROFILES[name]}: not snakemake options: {unknown}"


def test_slurm_keys_are_fields_of_the_plugin_settings():
    from snakemake_executor_plugin_slurm import ExecutorSettings

    fields = {f.name for f in dataclasses.fields(ExecutorSettings)}
    keys = [k for k in _profile("slurm") if k.startswith("slurm-")]
    assert keys, "the SLURM profile sets no plugin option"
    for key in keys:
        assert key.removeprefix("slurm-").replace("-", "_") in fields, key


def test_slurm_profile_parses_through_snakemake():
    """Snakemake's parser reads the profile into the values the comments promise."""
    from snakemake.cli import get_argument_parser

    args = get_argument_parser(profiles=[str(PROFILES["slurm"].parent)]).parse_args([])
    assert args.executor == "slurm"
    # mandatory without SLURM accounting (sacct never reports the job as finished)
    assert args.slurm_status_command == "squeue"
    # plugin rule: squeue only if MinJobAge >= 3 x init seconds; SLURM's default MinJobAge
    # is 300 s; scripts/local_slurm.sh (the tests' SLURM) sets its own
    init = int(args.slurm_init_seconds_before_status_checks)
    assert 3 * init <= 300
    conf = (REPO / "scripts" / "local_slurm.sh").read_text()
    min_job_age = re.search(r"^MinJobAge=(\d+)$", conf, re.M)
    assert min_job_age and int(min_job_age.group(1)) >= 3 * init
    assert int(args.latency_wait) >= 5 and int(args.retries) >= 0 and int(args.jobs) >= 1
    assert args.keep_going and args.rerun_incomplete
    res = args.default_resources
    assert res["runtime"].value > 0 and res["mem_mb"].value > 0
    # a default cpus_per_task would replace every rule's threads in sbatch --cpus-per-task
    assert "cpus_per_task" not in res


def test_default_profile_parses_through_snakemake():
    from snakemake.cli import get_argument_parser

    args = get_argument_parser(profiles=[str(PROFILES["default"].parent)]).parse_args([])
    assert args.rerun_incomplete and args.printshellcmds
    assert args.resources["timing_slot"] == 1


def test_workflow_profile_does_not_override_the_slurm_profile():
    """profiles/default is read with --profile profiles/slurm and its keys win: no conflicts."""
    default, slurm = _profile("default"), _profile("slurm")
    for key in set(default) & set(slurm):
        assert default[key] == slurm[key], f"{key}: default {default[key]} != slurm {slurm[key]}"
    # a default-resources in the workflow profile would silently drop the SLURM one
    assert "default-resources" not in default


def _commented_set_resources() -> dict:
    """The commented ``set-resources:`` example of the SLURM profile, uncommented."""
    lines = PROFILES["slurm"].read_text().splitlines()
    start = lines.index("# set-resources:")
    block = []
    for line in lines[start:]:
        if not line.startswith("# ") or (block and not line.startswith("#   ")):
            break
        block.append(line[2:])
    return yaml.safe_load("\n".join(block))["set-resources"]


def test_commented_gpu_example_names_real_rules_and_valid_resources():
    from snakemake.cli import parse_set_resources

    example = _commented_set_resources()
    assert all(res.get("gpu") == 1 for res in example.values())
    # the same parser Snakemake applies to `set-resources` from a profile
    parsed = parse_set_resources(
        [f"{rule}:{k}={v!r}" for rule, res in example.items() for k, v in res.items()]
    )
    assert set(parsed) == set(example)
    r = subprocess.run(
        [str(BIN / "snakemake"), "--list-rules", "--configfile", "config/test.yaml"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    rules = set(r.stdout.split())
    missing = sorted(set(example) - rules)
    assert not missing, f"set-resources example names rules the workflow lacks: {missing}"


def test_paper_profile_is_the_slurm_profile_plus_paper_resources():
    """profiles/slurm-paper repeats profiles/slurm (same values) and adds per-rule GPUs,
    wall times and attempts; every rule it names exists in the paper's workflow."""
    slurm, paper = _profile("slurm"), _profile("slurm-paper")
    for key in set(slurm) | set(paper):
        if key in ("retries", "set-resources"):
            continue
        assert paper.get(key) == slurm.get(key), f"{key}: slurm-paper differs from slurm"
    assert paper["retries"] > slurm["retries"]
    res = paper["set-resources"]
    # GPUs for the training rules; not for the CPU-only LAMMPS stage
    assert res["train_teacher"]["gpu"] == res["train_model"]["gpu"] == 1
    assert "gpu" not in res["lammps_rdf"]
    from snakemake.cli import get_argument_parser

    args = get_argument_parser(profiles=[str(PROFILES["slurm-paper"].parent)]).parse_args([])
    assert args.executor == "slurm" and args.slurm_status_command == "squeue"
    assert int(args.retries) == paper["retries"]
    r = subprocess.run(
        [str(BIN / "snakemake"), "--list-rules", "--configfile", "config/paper.yaml"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    missing = sorted(set(res) - set(r.stdout.split()))
    assert not missing, f"slurm-paper names rules the workflow lacks: {missing}"


def test_site_profile_adds_the_sites_settings_and_keeps_the_gpus(tmp_path):
    """`aedistill profile`: the shipped paper profile plus partition/account/GPU model, read
    back through Snakemake's own parser; every other value of the shipped profile kept."""
    from snakemake.cli import get_argument_parser

    from aedistill.cli import main
    from aedistill.profile import GPU_RULES

    out = tmp_path / "site"
    argv = ["profile", "--from", str(PROFILES["slurm-paper"].parent), "--out", str(out),
            "--partition", "cpu", "--gpu-partition", "gpu", "--account", "proj1",
            "--gpu-model", "a100"]  # fmt: skip
    assert main(argv) == 0
    site, paper = yaml.safe_load((out / "config.yaml").read_text()), _profile("slurm-paper")
    for key in set(paper) - {"default-resources", "set-resources"}:
        assert site[key] == paper[key], key
    assert site["default-resources"] == paper["default-resources"] | {
        "slurm_partition": "cpu",
        "slurm_account": "proj1",
    }
    for rule, res in paper["set-resources"].items():
        added = {"slurm_partition": "gpu", "gpu_model": "a100"} if rule in GPU_RULES else {}
        assert site["set-resources"][rule] == res | added, rule
    args = get_argument_parser(profiles=[str(out)]).parse_args([])
    assert args.executor == "slurm" and int(args.retries) == paper["retries"]
    teacher = {k: v.raw for k, v in args.set_resources["train_teacher"].items()}
    assert teacher == {
        "gpu": 1, "runtime": 1440, "mem_mb": 16000, "slurm_partition": "gpu", "gpu_model": "a100"
    }  # fmt: skip
    assert args.default_resources["slurm_account"].raw == "proj1"
    # an existing profile is not replaced without --force; a bad name is refused in one line
    assert main(argv) == 1
    assert main([*argv, "--force", "--gpus", "2"]) == 0
    assert (
        yaml.safe_load((out / "config.yaml").read_text())["set-resources"]["train_model"]["gpu"]
        == 2
    )
    assert main([*argv, "--force", "--account", "my project"]) == 1


def test_site_profile_errors_name_the_file(tmp_path, capsys):
    from aedistill.cli import main

    assert main(["profile", "--from", str(tmp_path / "nope"), "--out", str(tmp_path / "o")]) == 1
    assert capsys.readouterr().err.strip() == (
        f"error: {tmp_path / 'nope' / 'config.yaml'}: no such profile (expected a profile "
        "directory)"
    )
