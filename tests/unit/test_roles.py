"""Role planning: one role-name pattern for the DAG and plan_role; torch-free for the rules."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from aedistill.config import validate_config
from aedistill.errors import UserInputError
from aedistill.roles import plan_role, role_pattern


@pytest.mark.parametrize(
    "role,known",
    [
        ("teacher", True),
        ("born_again", True),
        ("augmented", True),
        ("student_wA2.5", True),
        ("student_wA1e+300", True),
        ("student_wA1.", True),
        ("student_wA1.2.3", False),
        ("student_wA.5", False),
        ("student_wA", False),
        ("student_wA-1", False),
        ("teacher2", False),
    ],
)
def test_the_dag_accepts_exactly_the_roles_plan_role_knows(role, known):
    config = validate_config({})
    assert (re.fullmatch(f"(?:{role_pattern()})", role) is not None) is known
    if known:
        assert plan_role(config, role).role == role
    else:
        with pytest.raises(UserInputError, match="unknown role"):
            plan_role(config, role)


@pytest.mark.parametrize("w_A", [0, 0.5, 2.5, 30, 1e-5, 1e300])
def test_swept_role_names_match_the_pattern(w_A):
    # common.smk names the w_A sweep f"student_wA{w:g}"
    role = f"student_wA{w_A:g}"
    assert re.fullmatch(f"(?:{role_pattern('teacher')})", role)
    assert plan_role(validate_config({}), role).weights.w_A == pytest.approx(w_A)
    assert not re.fullmatch(f"(?:{role_pattern('teacher')})", "teacher")


def _rule_imports(repo) -> list[str]:
    """aedistill modules imported by the Snakefile and the rule files."""
    modules = set()
    for f in [repo / "Snakefile", *(repo / "workflow" / "rules").glob("*.smk")]:
        for module, names in re.findall(
            r"^from (aedistill[\w.]*) import (.+)$", f.read_text(), re.M
        ):
            if module == "aedistill":  # from aedistill import paths, roles
                modules |= {f"aedistill.{n.strip()}" for n in names.split(",")}
            else:
                modules.add(module)
    return sorted(modules)


def test_parsing_the_snakefile_does_not_import_torch(repo):
    """Every aedistill module the rules import loads without torch or hippynn (a fresh
    interpreter), so that building the DAG stays fast."""
    modules = _rule_imports(repo)
    assert "aedistill.roles" in modules and "aedistill.paths" in modules, modules
    code = (
        "import importlib, sys\n"
        f"for m in {modules!r}: importlib.import_module(m)\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'hippynn')))"
    )
    env = os.environ | {"PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    r = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True
    )
    assert r.stdout.strip() == "[]", f"{modules} import {r.stdout.strip()}"
