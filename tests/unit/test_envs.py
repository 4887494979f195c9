"""The conda environments of ``--use-conda`` agree with pyproject.toml and with the rules.

Conda channels cannot be reached here, so the environments are never built in the tests;
these checks are what keeps them correct for users:
* every version spec in envs/*.yaml (conda or pip section) admits only versions that
  pyproject.toml admits for the same package;
* every rule that runs code names an existing env file with a post-deploy script;
* the environments of the model rules hold all of the package's runtime dependencies, and
  the modules that the plots-env rules import load with only that env's distributions
  (and their own dependencies) installed;
* for every config in config/ (rules and envs as Snakemake itself resolves them), each
  train/lammps-env rule's env holds every third-party package its script can reach, lazy
  imports included (e.g. LAMMPS for the dataset rule of `dataset.source: meam`).
"""

from __future__ import annotations

import ast
import functools
import json
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


CONFIGS = sorted((REPO / "config").glob("*.yaml")) + sorted(
    (REPO / "config" / "study").glob("*.yaml")
)
#: The configs of a run (the others are studies: a top-level `study` key, no model rules).
RUN_CONFIGS = [c for c in CONFIGS if "study" not in yaml.safe_load(c.read_text())]
# Each rule as Snakemake itself sees it for a config (an env may depend on the config, e.g.
# the dataset rule's on dataset.source): loaded through Snakemake's API in one subprocess.
PROBE = """
import json, sys
from pathlib import Path
from snakemake.api import SnakemakeApi
from snakemake.settings.types import (ConfigSettings, DeploymentMethod, DeploymentSettings,
    ResourceSettings, StorageSettings)
out = {}
for cf in sys.argv[1:]:
    with SnakemakeApi() as api:
        wf = api.workflow(
            resource_settings=ResourceSettings(),
            config_settings=ConfigSettings(configfiles=[Path(cf)]),
            storage_settings=StorageSettings(),
            deployment_settings=DeploymentSettings(deployment_method={DeploymentMethod.CONDA}),
            snakefile=Path("Snakefile"),
            workdir=Path("."),
        )._workflow
        rules = {}
        for r in wf.rules:
            base = Path(r.snakefile).parent
            runs = ("script" if r.script else "shell" if r.shellcmd else
                    "notebook" if r.notebook else "wrapper" if r.wrapper else
                    None if r.norun else "run")
            rules[r.name] = {
                "file": r.snakefile,
                "conda": str((base / r.conda_env).resolve()) if r.conda_env else None,
                "script": str((base / r.script).resolve()) if r.script else None,
                "runs": runs,
                "local": r.name in wf._localrules,
            }
        out[cf] = rules
print(json.dumps(out))
"""


@functools.cache
def _all_rules() -> dict[str, dict[str, dict]]:
    """config file (relative) -> rule -> {'file', 'conda', 'script', 'runs'}."""
    names = [str(c.relative_to(REPO)) for c in CONFIGS]
    env = os.environ | {"HIPPYNN_USE_CUSTOM_KERNELS": "_pytorch_raw"}
    r = subprocess.run(
        [sys.executable, "-c", PROBE, *names],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    data = json.loads(r.stdout.strip().splitlines()[-1])
    for rules in data.values():
        for info in rules.values():
            for key in ("file", "conda", "script"):
                info[key] = Path(info[key]) if info[key] else None
    return data


def _rules(configfile: str = "config/test.yaml") -> dict[str, dict]:
    return _all_rules()[configfile]


def test_rule_listing_sees_the_workflow():
    rules = _rules()
    assert "dataset" in rules and rules["dataset"]["conda"] == REPO / "envs" / "train.yaml"
    assert rules["all"]["runs"] is None and rules["report"]["runs"] == "shell"
    assert rules["train_model"]["script"] == REPO / "workflow" / "scripts" / "train.py"
    # MEAM labels come from LAMMPS: that config's dataset job runs in the LAMMPS env
    assert _rules("config/study/meam.yaml")["dataset"]["conda"] == REPO / "envs" / "lammps.yaml"
    # the ANI-Al downloads are local jobs (submit host: compute nodes may have no internet)
    assert "download" not in rules
    for configfile in ("config/paper.yaml", "config/study/ani-al-model.yaml"):
        download = _rules(configfile)["download"]
        assert download["local"] and download["runs"] == "script"
        assert not _rules(configfile)["dataset"]["local"]


#: Rules handed over to the calling Snakemake's interpreter (sys.executable): no env.
#: ``report`` in a run's workflow, ``study_run`` (a nested Snakemake per run) in a study's.
HOST_RULES = {"report", "study_run"}


def test_a_study_config_sees_the_study_rules():
    rules = _rules("config/study.yaml")
    assert set(rules) == {"study_config", "study_run", "study_tables", "study_figure", "study"}
    # the nested Snakemakes run on the submit host and start their own jobs
    assert rules["study_run"]["local"] and rules["study_config"]["local"]
    assert rules["study_tables"]["conda"] == REPO / "envs" / "plots.yaml"


@pytest.mark.parametrize("configfile", [str(c.relative_to(REPO)) for c in CONFIGS])
def test_every_rule_that_runs_code_has_an_existing_env(configfile):
    rules = _rules(configfile)
    assert HOST_RULES & set(rules), "no host rule: report (a run) or study_run (a study)"
    for rule in HOST_RULES & set(rules):
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


@pytest.mark.parametrize("name", ["train", "lammps"])
def test_post_deploy_installs_the_torch_build_of_torch_spec(name, tmp_path):
    """TORCH_SPEC chooses the envs' torch build as it does for make: torch is uninstalled
    (pip would keep a 2.13.0 of another build) and installed from the spec."""
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "python").write_text('#!/bin/sh\necho "$*" >> "$RECORD"\n')
    (fake / "python").chmod(0o755)
    spec = "torch==2.13.0 --index-url https://download.pytorch.org/whl/cu126"
    env = os.environ | {"PATH": f"{fake}:{os.environ['PATH']}", "RECORD": str(tmp_path / "rec"),
                        "TORCH_SPEC": spec, "CONDA_PREFIX": str(tmp_path)}  # fmt: skip
    script = REPO / "envs" / f"{name}.post-deploy.sh"
    r = subprocess.run(["bash", str(script)], cwd=REPO, env=env, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "rec").read_text().splitlines()[1:] == [
        "-m pip uninstall --quiet -y torch",
        f"-m pip install --quiet {spec}",
    ]
    assert (tmp_path / ".torch-spec").read_text() == spec + "\n"
    # the plots env has no torch: its script leaves TORCH_SPEC alone
    assert "TORCH_SPEC" not in (REPO / "envs" / "plots.post-deploy.sh").read_text()


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
    rules = [*_rules().values(), *_rules("config/study.yaml").values()]  # a run's, a study's
    scripts = {i["script"] for i in rules if i["conda"] == env and i["script"]}
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


# --- every model-env rule's env declares what its script can import --------------------
SRC = REPO / "src"
# aedistill.data.build imports one module per dataset.source, inside the dispatch
SOURCE_MODULES = {
    "emt": "aedistill.data.emt",
    "meam": "aedistill.data.meam",
    "ani-al": "aedistill.data.ani_al",
    "ani-al-model": "aedistill.data.ani_al_model",
    "extxyz": "aedistill.data.extxyz",
}


def _module_file(name: str) -> Path | None:
    p = SRC.joinpath(*name.split("."))
    for f in (p.with_suffix(".py"), p / "__init__.py"):
        if f.is_file():
            return f
    return None


def _imported(node: ast.AST) -> list[tuple[str, str | None]]:
    """(module, name or None) of one import statement; ``from M import x`` gives (M.x, None)
    when M.x is an aedistill module, else (M, x)."""
    if isinstance(node, ast.Import):
        return [(a.name, None) for a in node.names]
    if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
        return [
            (f"{node.module}.{a.name}", None)
            if _module_file(f"{node.module}.{a.name}")
            else (node.module, a.name)
            for a in node.names
        ]
    return []


@functools.cache
def _module_facts(path: Path) -> tuple[list, dict, dict]:
    """(module-level imports, {top-level def/class: imports inside it}, {def: top-level
    names it refers to}) of one source file."""
    tree = ast.parse(path.read_text())
    top_imports, inner, refs = [], {}, {}
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            inner[node.name] = [i for n in ast.walk(node) for i in _imported(n)]
            refs[node.name] = {n.id for n in ast.walk(node) if isinstance(n, ast.Name)}
        else:
            top_imports += [i for n in ast.walk(node) for i in _imported(n)]
    return top_imports, inner, refs


def _third_party_closure(script: Path, skip: frozenset[str] = frozenset()) -> set[str]:
    """Top-level third-party modules that running ``script`` may import, lazy imports
    included, at the granularity of functions: ``from aedistill.m import f`` brings in m's
    module-level imports and what f (and the functions of m that f refers to) imports
    inside; modules in ``skip`` are not followed (the dataset sources not configured)."""
    found: set[str] = set()
    seen: set[tuple[str, str | None]] = set()
    todo: list[tuple[str, str | None]] = [
        i for n in ast.walk(ast.parse(script.read_text())) for i in _imported(n)
    ]
    while todo:
        mod, name = todo.pop()
        if (mod, name) in seen:
            continue
        seen.add((mod, name))
        top = mod.partition(".")[0]
        if top != "aedistill":
            if top not in sys.stdlib_module_names and top != "__future__":
                found.add(top)
            continue
        if mod in skip:
            continue
        parts = mod.split(".")
        todo += [(".".join(parts[:i]), None) for i in range(1, len(parts))]  # packages
        f = _module_file(mod)
        if f is None:
            continue
        top_imports, inner, refs = _module_facts(f)
        todo += top_imports
        # a name imported at module level may be called by any function of the module
        todo += [(m, n) for m, n in top_imports if n is not None]
        if name is None:  # the whole module (import m / from package import m)
            names = set(inner)
        else:
            names, grow = {name} & set(inner), {name} & set(inner)
            while grow:  # functions of the module that the named one refers to
                grow = {r for g in grow for r in refs[g] if r in inner} - names
                names |= grow
        for n in sorted(names):
            todo += inner[n]
    return found


def test_source_modules_are_the_ones_the_dataset_dispatch_imports():
    build = SRC / "aedistill" / "data" / "build.py"
    lazy = {m for n in ast.walk(ast.parse(build.read_text())) for m, _ in _imported(n)}
    assert lazy >= set(SOURCE_MODULES.values())
    schema = yaml.safe_load((REPO / "workflow" / "schemas" / "config.schema.yaml").read_text())
    assert set(schema["properties"]["dataset"]["properties"]["source"]["enum"]) == set(
        SOURCE_MODULES
    )


@pytest.mark.parametrize("configfile", [str(c.relative_to(REPO)) for c in RUN_CONFIGS])
def test_model_env_rules_declare_what_their_scripts_import(configfile):
    """For every rule in envs/train.yaml or envs/lammps.yaml, each third-party module its
    script can reach (lazy imports too; for the dataset rule only the configured source)
    belongs to a distribution of that env (or one it requires). The plots env is checked by
    importing (test_plots_env_rules_import_with_only_its_packages): its modules reach torch
    only through lazy imports those rules never run."""
    import importlib.metadata as md

    config = yaml.safe_load((REPO / configfile).read_text())
    source = config["dataset"]["source"]
    skip = frozenset(m for s, m in SOURCE_MODULES.items() if s != source)
    owners = md.packages_distributions()
    checked = 0
    for rule, info in _rules(configfile).items():
        env = info["conda"]
        if info["script"] is None or env is None or env.stem not in ("train", "lammps"):
            continue
        allowed = _allowed_distributions(env)
        for top in sorted(_third_party_closure(info["script"], skip)):
            dists = {canonicalize_name(d) for d in owners.get(top, [])}
            assert dists, f"rule {rule}: {top} is imported but installed nowhere here"
            assert dists & allowed, (
                f"{configfile}: rule {rule} ({env.name}) can import {top} "
                f"(from {sorted(dists)}), which the env lacks"
            )
        checked += 1
    assert checked >= 5


def test_the_closure_finds_lazy_imports():
    """The check above is not vacuous: the MEAM source reaches LAMMPS only through a lazy
    import, and the train env (which has no LAMMPS) would be refused for it."""
    build = REPO / "workflow" / "scripts" / "build_dataset.py"
    meam = _third_party_closure(
        build, frozenset(set(SOURCE_MODULES.values()) - {SOURCE_MODULES["meam"]})
    )
    emt = _third_party_closure(
        build, frozenset(set(SOURCE_MODULES.values()) - {SOURCE_MODULES["emt"]})
    )
    assert "lammps" in meam and "lammps" not in emt
    assert "lammps" not in _allowed_distributions(REPO / "envs" / "train.yaml")
    assert "lammps" in _allowed_distributions(REPO / "envs" / "lammps.yaml")
