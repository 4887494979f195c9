"""The conda environments of ``--use-conda`` agree with pyproject.toml and with the rules.

Conda channels cannot be reached here, so the environments are never built in the tests;
these checks are what keeps them correct for users:
* every version spec in envs/*.yaml (conda or pip section) admits only versions that
  pyproject.toml admits for the same package;
* every rule that runs code names an existing env file with a post-deploy script;
* the environments of the model rules hold all of the package's runtime dependencies, and
  the modules that the plots-env rules import load with only that env's distributions
  (and their own dependencies) installed.
"""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parents[2]
ENV_FILES = sorted((REPO / "envs").glob("*.yaml"))
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
# Needed by Snakemake's own process only (a job's script gets Snakemake from the host).
HOST_ONLY = {"snakemake", "snakemake-executor-plugin-slurm"}


def _pyproject_specs() -> dict[str, SpecifierSet]:
    reqs = list(PYPROJECT["project"]["dependencies"])
    for extra in PYPROJECT["project"].get("optional-dependencies", {}).values():
        reqs += extra
    reqs += PYPROJECT["build-system"]["requires"]
    specs = {canonicalize_name(Requirement(r).name): Requirement(r).specifier for r in reqs}
    specs["python"] = SpecifierSet(PYPROJECT["project"]["requires-python"])
    return specs


def _conda_requirement(spec: str) -> Requirement:
    """A conda match spec (``python=3.11``, ``lammps``, ``cython>=3``) as a requirement."""
    m = re.fullmatch(r"([A-Za-z0-9_.\-]+)\s*(.*)", spec.strip())
    assert m, spec
    name, version = m.groups()
    if re.fullmatch(r"=[^=<>!~]+", version):  # conda's `=3.11` means 3.11.*
        version = f"=={version[1:].removesuffix('.*')}.*"
    return Requirement(f"{name}{version}")


def _env_requirements(path: Path) -> list[Requirement]:
    env = yaml.safe_load(path.read_text())
    reqs = []
    for dep in env["dependencies"]:
        if isinstance(dep, dict):
            reqs += [Requirement(p) for p in dep["pip"]]
        else:
            reqs.append(_conda_requirement(dep))
    return reqs


def _admits_only_allowed(env_spec: SpecifierSet, project_spec: SpecifierSet) -> bool:
    """Every version the env spec admits is admitted by pyproject's spec.

    Either an exact pin (``==v`` / ``==v.*``) inside the project's range, or the same spec.
    """
    if str(env_spec) == str(project_spec):
        return True
    pins = [s for s in env_spec if s.operator == "=="]
    if len(pins) == 1 and len(env_spec) == 1:
        version = pins[0].version.removesuffix(".*")
        # 3.11.* lies inside ">=3.11" when its lowest and a high patch release do
        candidates = [version, version + ".999"] if pins[0].version.endswith(".*") else [version]
        return all(project_spec.contains(v, prereleases=True) for v in candidates)
    return False


def test_there_are_envs():
    assert {p.stem for p in ENV_FILES} >= {"train", "plots", "lammps"}


@pytest.mark.parametrize("path", ENV_FILES, ids=lambda p: p.name)
def test_env_specs_agree_with_pyproject(path):
    project = _pyproject_specs()
    env = yaml.safe_load(path.read_text())
    assert env["channels"][0] == "conda-forge", "conda-forge first (lammps, python)"
    compared = 0
    for req in _env_requirements(path):
        name = canonicalize_name(req.name)
        if name in project:
            assert _admits_only_allowed(req.specifier, project[name]), (
                f"{path.name}: {req} vs pyproject {name}{project[name]}"
            )
            compared += 1
        assert not req.url, f"{path.name}: {req} (the package comes from the post-deploy script)"
    assert compared >= 5


def test_the_comparison_rejects_disagreeing_pins():
    """The rule above is not vacuous: pins outside pyproject's range are caught."""
    assert _admits_only_allowed(SpecifierSet("==2.13.0"), SpecifierSet(">=2.6"))
    assert not _admits_only_allowed(SpecifierSet("==2.5.0"), SpecifierSet(">=2.6"))
    assert not _admits_only_allowed(SpecifierSet(">=3.20"), SpecifierSet(">=3.23"))
    assert not _admits_only_allowed(SpecifierSet("==0.1.2"), SpecifierSet("==0.1.3"))
    py = _conda_requirement("python=3.11").specifier
    assert _admits_only_allowed(py, SpecifierSet(">=3.11"))
    assert not _admits_only_allowed(py, SpecifierSet(">=3.12"))


@pytest.mark.parametrize("name", ["train", "lammps"])
def test_model_envs_hold_every_runtime_dependency(name):
    """Training/MD/LAMMPS code imports torch, hippynn, ase, ... : all of them must be there."""
    names = {canonicalize_name(r.name) for r in _env_requirements(REPO / "envs" / f"{name}.yaml")}
    needed = {canonicalize_name(Requirement(r).name) for r in PYPROJECT["project"]["dependencies"]}
    assert sorted(needed - HOST_ONLY - names) == []


RULE_RE = re.compile(r"^\s*rule (\w+):\s*$", re.M)


def _rules() -> dict[str, dict]:
    """rule -> {'file', 'conda', 'script', 'runs'} from workflow/rules/*.smk and the Snakefile."""
    rules = {}
    for smk in [REPO / "Snakefile", *sorted((REPO / "workflow" / "rules").glob("*.smk"))]:
        text = smk.read_text()
        heads = list(RULE_RE.finditer(text))
        for i, head in enumerate(heads):
            block = text[head.end() : heads[i + 1].start() if i + 1 < len(heads) else None]
            conda = re.search(r"^\s*conda:\s*\n\s*\"([^\"]+)\"", block, re.M)
            script = re.search(r"^\s*script:\s*\n\s*\"([^\"]+)\"", block, re.M)
            runs = re.search(r"^\s*(script|shell|notebook|wrapper|run):", block, re.M)
            rules[head.group(1)] = {
                "file": smk,
                "conda": (smk.parent / conda.group(1)).resolve() if conda else None,
                "script": (smk.parent / script.group(1)).resolve() if script else None,
                "runs": runs.group(1) if runs else None,
            }
    return rules


def test_rule_parser_sees_the_workflow():
    rules = _rules()
    assert "dataset" in rules and rules["dataset"]["conda"] == REPO / "envs" / "train.yaml"


#: Rules handed over to the calling Snakemake's interpreter (sys.executable): no env.
HOST_RULES = {"report"}


def test_every_rule_that_runs_code_has_an_existing_env():
    rules = _rules()
    for rule in HOST_RULES:
        assert rules[rule]["runs"] == "shell" and rules[rule]["conda"] is None, rule
    for rule, info in rules.items():
        if info["runs"] is None or rule in HOST_RULES:
            continue  # a target rule (input only), or one without an env
        assert info["runs"] != "run", f"rule {rule}: `run:` cannot use conda; use script:"
        assert info["conda"] is not None, f"rule {rule} ({info['file'].name}) has no conda:"
        assert info["conda"].is_file(), f"rule {rule}: {info['conda']} missing"
        assert info["conda"].parent == REPO / "envs"
        if info["script"] is not None:
            assert info["script"].is_file(), f"rule {rule}: {info['script']} missing"


@pytest.mark.parametrize("path", ENV_FILES, ids=lambda p: p.name)
def test_post_deploy_installs_the_package_from_the_repository(path, tmp_path):
    """Run the post-deploy script with a stand-in `python` that records its arguments."""
    script = path.with_suffix(".post-deploy.sh")
    assert script.is_file() and os.access(script, os.X_OK)
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "python").write_text('#!/bin/sh\necho "$PWD $*" >> "$RECORD"\n')
    (fake / "python").chmod(0o755)
    env = os.environ | {"PATH": f"{fake}:{os.environ['PATH']}", "RECORD": str(tmp_path / "rec")}
    r = subprocess.run(["bash", str(script)], cwd=REPO, env=env, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    recorded = (tmp_path / "rec").read_text().split()
    assert recorded[0] == str(REPO)
    assert recorded[1:4] == ["-m", "pip", "install"] and recorded[-2:] == ["-e", "."]
    assert "--no-deps" in recorded
    # from anywhere else it refuses, naming the problem
    r = subprocess.run(["bash", str(script)], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert r.returncode != 0 and "pyproject.toml" in r.stderr


def _allowed_distributions(env_path: Path) -> set[str]:
    """The env's distributions and, recursively, what they require (installed metadata)."""
    import importlib.metadata as md

    todo = [canonicalize_name(r.name) for r in _env_requirements(env_path)]
    seen: set[str] = set()
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        try:
            requires = md.requires(name) or []
        except md.PackageNotFoundError:
            continue
        for r in map(Requirement, requires):
            if r.marker is None or r.marker.evaluate({"extra": ""}):
                todo.append(canonicalize_name(r.name))
    return seen | {"aedistill", *HOST_ONLY}


BLOCKER = """
import importlib.metadata as md, sys
from packaging.utils import canonicalize_name
allowed = set(sys.argv[1].split(","))
owners = md.packages_distributions()
class Blocker:
    def find_spec(self, name, path=None, target=None):
        top = name.partition(".")[0]
        dists = {canonicalize_name(d) for d in owners.get(top, [])}
        if dists and not dists & allowed:
            raise ImportError(f"{name} comes from {sorted(dists)}, which the env lacks")
sys.meta_path.insert(0, Blocker())
for module in sys.argv[2:]:
    __import__(module)
"""


def _script_imports(script: Path) -> set[str]:
    tree = ast.parse(script.read_text())
    mods = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    mods |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    return mods


def test_plots_env_rules_import_with_only_its_packages():
    """The plots env has no torch: its rules' modules must load without it (import time)."""
    env = REPO / "envs" / "plots.yaml"
    scripts = {i["script"] for i in _rules().values() if i["conda"] == env and i["script"]}
    assert scripts, "no rule uses envs/plots.yaml"
    modules = sorted(set().union(*map(_script_imports, scripts)))
    allowed = _allowed_distributions(env)
    assert "torch" not in allowed
    r = subprocess.run(
        [sys.executable, "-c", BLOCKER, ",".join(sorted(allowed)), *modules],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    # and the blocker works: torch is refused under the same allowance
    r = subprocess.run(
        [sys.executable, "-c", BLOCKER, ",".join(sorted(allowed)), "torch"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode != 0 and "which the env lacks" in r.stderr
