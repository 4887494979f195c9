"""docs/paper-run.md walked where a test can: the commands it shows exist with the options it
gives (``aedistill`` through its own parser, ``snakemake`` through Snakemake's, ``make``
targets and variables in the Makefile), its config keys are in the schema and its
``key: value`` settings validate, and the repository files it names exist."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
DOC = REPO / "docs" / "paper-run.md"
TEXT = DOC.read_text()
SCHEMA = yaml.safe_load((REPO / "workflow" / "schemas" / "config.schema.yaml").read_text())
#: programs the page runs that are not this project's (their options are not checked)
EXTERNAL = {"git", "cd", "curl", "tmux", "srun", "sbatch", "squeue", "scancel", "module", "python3"}


def _commands() -> list[str]:
    """Every command line of the page's ```bash blocks (continuations joined, comments cut)."""
    out = []
    for block in re.findall(r"```bash\n(.*?)```", TEXT, re.S):
        for line in block.replace("\\\n", " ").splitlines():
            line = line.split(" #", 1)[0].strip()
            if line and not line.startswith("#"):
                out.append(line)
    return out


def _argv(command: str) -> list[str]:
    """The command's words without leading VAR=value assignments."""
    words = shlex.split(command)
    while words and re.match(r"^[A-Z_]+=", words[0]):
        words.pop(0)
    return words


def _project_commands(program: str) -> list[list[str]]:
    """Argument lists of every ``.venv/bin/<program>`` call, also inside srun/sbatch --wrap."""
    found = []
    for command in _commands():
        words = _argv(command)
        for i, w in enumerate(words):
            if w == f".venv/bin/{program}":
                found.append(words[i + 1 :])
                break
            if w.startswith(f"--wrap=.venv/bin/{program} "):  # sbatch --wrap "<command>"
                found.append(shlex.split(w.removeprefix("--wrap="))[1:])
    return found


def test_the_page_has_commands():
    assert len(_commands()) >= 10
    assert _project_commands("aedistill") and _project_commands("snakemake")


def test_every_command_is_a_project_path_or_a_known_program():
    """No bare `aedistill`/`snakemake`/`python` (the venv is never activated on this page)."""
    for command in _commands():
        program = _argv(command)[0]
        assert program.startswith(".venv/bin/") or program in EXTERNAL | {"make"}, command


def test_aedistill_commands_parse():
    from aedistill.cli import build_parser

    subs = set()
    for args in _project_commands("aedistill"):
        parsed = build_parser().parse_args(args)  # SystemExit (a failure) on a bad option
        subs.add(parsed.cmd)
    assert {"gpu-check", "profile", "check-config"} <= subs
    # the inline `aedistill <sub> ...` mentions name real subcommands too
    parser_subs = set(build_parser()._subparsers._group_actions[0].choices)
    for sub in re.findall(r"`(?:\.venv/bin/)?aedistill ([a-z-]+)", TEXT):
        assert sub in parser_subs, sub


def test_snakemake_commands_parse_with_the_profile_the_page_writes(tmp_path):
    """The page's `aedistill profile` command, run for real (into tmp), then each snakemake
    command through Snakemake's own parser with that profile."""
    from snakemake.cli import get_argument_parser

    from aedistill.cli import main

    profile_commands = [a for a in _project_commands("aedistill") if a[0] == "profile"]
    assert profile_commands
    for i, args in enumerate(profile_commands):
        site = tmp_path / f"site{i}"
        assert main([*args, "--out", str(site)]) == 0
    commands = _project_commands("snakemake")
    assert len(commands) >= 3
    for args in commands:
        assert args[args.index("--profile") + 1] == "profiles/site", args
        args = [str(site) if a == "profiles/site" else a for a in args]
        profile = args[args.index("--profile") + 1]
        parsed = get_argument_parser(profiles=[profile]).parse_args(args)
        assert parsed.executor == "slurm"
        assert [str(c) for c in parsed.configfile] == ["config/paper.yaml"]
        assert parsed.set_resources["train_teacher"]["gpu"] == 1


def test_make_targets_and_variables_exist():
    makefile = (REPO / "Makefile").read_text()
    targets = set(re.findall(r"^([a-z][\w-]*):", makefile, re.M))
    named = {t for t in re.findall(r"`make ([a-z][\w-]*)", TEXT)}
    for command in _commands():
        words = _argv(command)
        if words[0] == "make":
            named |= {w for w in words[1:] if "=" not in w}
            for var in re.findall(r"\b([A-Z_]+)=", command):
                assert var in makefile or var.startswith(("PIP_", "LAMMPS_")), var
    assert {"install", "gpu-check"} <= named
    assert named <= targets, named - targets
    for var in re.findall(r"\b(LAMMPS_[A-Z_]+)=", TEXT):
        assert var in (REPO / "scripts" / "install_lammps.sh").read_text(), var


def _schema_node(key: str):
    node = SCHEMA
    for part in key.split("."):
        props = node.get("properties", {})
        if part not in props:
            return None
        node = props[part]
    return node


def test_config_keys_are_in_the_schema():
    top = set(SCHEMA["properties"])
    keys = [
        k for k in re.findall(r"`([a-z0-9_]+(?:\.[a-z0-9_]+)+)", TEXT) if k.split(".")[0] in top
    ]
    assert len(keys) >= 10
    missing = sorted({k for k in keys if _schema_node(k) is None})
    assert not missing, missing


def test_config_settings_validate():
    """`section.key: value` settings the page names are, together, a valid config (they
    describe one run: training.device cuda needs training.engine hippynn beside it)."""
    from aedistill.config import validate_config

    settings = re.findall(r"`([a-z0-9_]+(?:\.[a-z0-9_]+)+): ([^`]+)`", TEXT)
    assert ("training.device", "cuda") in settings
    config: dict = {}
    for key, value in settings:
        node = config
        *parents, last = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = yaml.safe_load(value)
    validate_config(config, where=f"{DOC.name}: {settings}")


@pytest.mark.parametrize(
    "prefix", ["config/", "profiles/", "scripts/", "bench/", "tests/", "docs/", "envs/", "src/"]
)
def test_named_repository_files_exist(prefix):
    names = set(re.findall(rf"`({re.escape(prefix)}[\w./-]+)", TEXT))
    names |= set(re.findall(rf"\(({re.escape(prefix)}[\w./-]+)\)", TEXT))
    for name in names:
        if name.startswith("profiles/site"):
            continue  # written by `aedistill profile`
        assert (REPO / name).exists(), name
