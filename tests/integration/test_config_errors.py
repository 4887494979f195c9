"""The README's bad-input table holds under Snakemake too: `snakemake --configfile bad.yaml`
stops with the one line `aedistill check-config bad.yaml` prints (no jsonschema dump, no
traceback), exit status 1."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.helpers import BIN, copy_workflow


def _test_config(repo: Path) -> dict:
    return yaml.safe_load((repo / "config" / "test.yaml").read_text())


def _unknown_key(cfg):
    cfg["training"]["max_epoch"] = 3


def _negative_width(cfg):
    cfg["grid"]["architectures"][0]["width"] = -8


def _no_seeds(cfg):
    cfg["grid"]["seeds"] = []


def _cutoffs(cfg):
    cfg["model"] = dict(cfg.get("model", {}), cutoff_soft_min=5.0, cutoff_soft_max=4.0)
    cfg["model"]["cutoff_hard_max"] = 7.5


# README "Bad input" rows: problem -> the message's key part
CASES = {
    "unknown config key": (
        _unknown_key,
        "key 'training': Additional properties are not allowed ('max_epoch' was unexpected)",
    ),
    "out of range": (
        _negative_width,
        "key 'grid.architectures.0.width': -8 is less than the minimum of 1",
    ),
    "no seeds": (_no_seeds, "key 'grid.seeds': [] should be non-empty"),
    "cutoffs out of order": (
        _cutoffs,
        "key 'model': cutoffs must satisfy soft_min < soft_max <= hard_max, got 5.0, 4.0, 7.5",
    ),
}


@pytest.fixture(scope="module")
def workdir(repo, tmp_path_factory):
    return copy_workflow(repo, tmp_path_factory.mktemp("cfgerr"))


def _error_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


@pytest.mark.parametrize("case", sorted(CASES))
def test_snakemake_prints_the_check_config_line(case, repo, workdir, tmp_path):
    mutate, expected = CASES[case]
    cfg = _test_config(repo)
    mutate(cfg)
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(cfg))
    env = os.environ | {"HIPPYNN_USE_CUSTOM_KERNELS": "_pytorch_raw"}
    check = subprocess.run(
        [sys.executable, "-m", "aedistill.cli", "check-config", str(bad)],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    line = f"error: {bad}: {expected}"
    assert check.returncode == 1 and _error_lines(check.stderr) == [line], check.stderr
    r = subprocess.run(
        ["timeout", "-k", "5", "300", str(BIN / "snakemake"), "-n", "--configfile", str(bad)],
        cwd=workdir,
        capture_output=True,
        text=True,
        env=env,
    )
    assert r.returncode == 1
    out = _error_lines(r.stdout + r.stderr)
    # Snakemake's own notice about the workflow profile, then exactly the one line
    assert [x for x in out if not x.startswith("Using workflow specific profile")] == [line], (
        r.stdout + r.stderr
    )
    assert "Traceback" not in r.stderr and "jsonschema" not in r.stderr


@pytest.mark.parametrize(
    ("study", "expected"),
    [
        (
            {"train_subsets": [0.5, 2]},
            "key 'study.train_subsets.1': 2 is greater than the maximum of 1",
        ),
        (
            {"overrides": {"grid": {"seeds": []}}},
            "run s-test-f100 (config/test.yaml + study.overrides): key 'grid.seeds': [] should be non-empty",
        ),
    ],
)
def test_snakemake_prints_one_line_for_a_bad_study(study, expected, workdir, tmp_path):
    """A study config (top-level `study`) is checked the same way, its runs' merged configs
    included: one line naming the study file, the run and the key."""
    bad = tmp_path / "bad-study.yaml"
    references = [{"name": "test", "config": "config/test.yaml"}]
    bad.write_text(yaml.safe_dump({"study": {"name": "s", "references": references, **study}}))
    env = os.environ | {"HIPPYNN_USE_CUSTOM_KERNELS": "_pytorch_raw"}
    r = subprocess.run(
        ["timeout", "-k", "5", "300", str(BIN / "snakemake"), "-n", "--configfile", str(bad)],
        cwd=workdir,
        capture_output=True,
        text=True,
        env=env,
    )
    assert r.returncode == 1
    out = _error_lines(r.stdout + r.stderr)
    assert [x for x in out if not x.startswith("Using workflow specific profile")] == [
        f"error: {bad}: {expected}"
    ], r.stdout + r.stderr
