"""What Snakemake and the SLURM plugin submit for the paper's profile with a site's settings,
recorded by a fake ``sbatch`` (no SLURM needed).

The fake tools record each ``sbatch`` call, answer a job id, and report every job as RUNNING
forever; the test stops Snakemake once the expected jobs are submitted (or a deadline
passes) and reads the recorded calls. The workflow's inputs are placeholder files: no job
runs, only the submissions are looked at.
"""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import time
from pathlib import Path

import yaml

from aedistill import paths
from aedistill.arch import Arch
from tests.helpers import BIN, copy_workflow

FAKES = {
    # the plugin runs `sbatch ... --wrap=...` through a shell; one recorded line per call
    "sbatch": """#!/bin/sh
cat > /dev/null
printf '%s\\n' "$*" >> "$FAKE_SLURM/sbatch.calls"
id=$((1000 + $(wc -l < "$FAKE_SLURM/sbatch.calls")))
echo "$id" >> "$FAKE_SLURM/ids"
echo "$id"
""",
    "squeue": """#!/bin/sh
[ -f "$FAKE_SLURM/ids" ] && sed 's/$/|RUNNING/' "$FAKE_SLURM/ids"
exit 0
""",
    "sinfo": "#!/bin/sh\nprintf 'PARTITION\\ncompute*\\ngpu\\n'\n",
    "scontrol": "#!/bin/sh\necho 'MinJobAge               = 300 sec'\n",
    "sacctmgr": "#!/bin/sh\necho proj1\n",
    "sshare": "#!/bin/sh\necho proj1\n",
    "sacct": "#!/bin/sh\nexit 0\n",
    "scancel": "#!/bin/sh\nexit 0\n",
}


def _fake_slurm(where: Path) -> Path:
    bindir = where / "bin"
    bindir.mkdir(parents=True)
    for name, text in FAKES.items():
        (bindir / name).write_text(text)
        (bindir / name).chmod(0o755)
    return bindir


def _placeholder(path: Path, mtime: float) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("placeholder\n")
    os.utime(path, (mtime, mtime))


def _submissions(record: Path) -> dict[str, list[list[str]]]:
    """rule -> the argument lists of its sbatch calls."""
    out: dict[str, list[list[str]]] = {}
    for line in record.read_text().splitlines() if record.exists() else []:
        args = shlex.split(line)
        rule = re.search(r"rule_(\w+?)_wildcards|rule_(\w+)", line)
        out.setdefault(next(g for g in rule.groups() if g), []).append(args)
    return out


def _option(args: list[str], *names: str) -> str | None:
    """The value of the first of ``names`` in ``args`` (``-t 60`` or ``--gpus=1``)."""
    for i, a in enumerate(args):
        for name in names:
            if a == name and i + 1 < len(args):
                return args[i + 1]
            if a.startswith(name + "="):
                return a.split("=", 1)[1]
    return None


def _workflow(repo: Path, tmp_path: Path) -> tuple[Path, list[str]]:
    """A copy of the workflow with a site profile (profiles/site: partitions cpu/gpu, account
    proj1), a config whose training and timing run on CUDA, and placeholder inputs; returns
    it and targets for one train_teacher, one train_model and two timing jobs."""
    wd = tmp_path / "wf"
    wd.mkdir()
    copy_workflow(repo, wd)
    r = subprocess.run(
        [str(BIN / "aedistill"), "profile", "--out", "profiles/site", "--partition", "compute",
         "--gpu-partition", "gpu", "--account", "proj1"],
        cwd=wd, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr

    cfg = yaml.safe_load((wd / "config" / "test.yaml").read_text())
    cfg["run_name"] = "sb"
    cfg["teachers"]["n_members"] = 3
    cfg["grid"]["roles"] = ["control"]
    cfg["training"]["device"] = "cuda"  # with hippynn's engine, as config/paper.yaml
    cfg["training"]["engine"] = "hippynn"
    cfg["training"]["stack_grid"] = False
    cfg["efficiency"]["device"] = "cuda"
    (wd / "sb.yaml").write_text(yaml.safe_dump(cfg))
    teacher = Arch.from_dict(cfg["teachers"]["arch"]).slug
    grid = Arch.from_dict(cfg["grid"]["architectures"][0]).slug

    # placeholders, oldest first: the data, then teachers 0 and 1 (teacher 2 is missing)
    now = time.time()
    for p in (paths.dataset("sb"), paths.split("sb"), paths.dataset_summary("sb")):
        _placeholder(wd / p, now - 100)
    for seed in (0, 1):
        for p in (paths.model, paths.history, paths.metrics):
            _placeholder(wd / p("sb", "teacher", teacher, seed), now - 50)
    targets = [
        str(paths.metrics("sb", "teacher", teacher, 2)),  # train_teacher
        str(paths.metrics("sb", "control", grid, 0)),  # train_model
        str(paths.timing("sb", "teacher", teacher, 0)),  # timing x 2
        str(paths.timing("sb", "teacher", teacher, 1)),
    ]
    return wd, targets


def _record_submissions(wd: Path, fake: Path, *args: str, expect: int) -> dict:
    """Run snakemake with ``args`` against the fake SLURM until ``expect`` jobs are submitted
    (or 90 s pass), kill it, and return rule -> sbatch argument lists."""
    bindir = _fake_slurm(fake)
    env = os.environ | {"PATH": f"{bindir}:{os.environ['PATH']}", "FAKE_SLURM": str(fake)}
    cmd = [str(BIN / "snakemake"), *args, "--slurm-init-seconds-before-status-checks", "1"]
    proc = subprocess.Popen(
        cmd, cwd=wd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True,
    )  # fmt: skip
    record = fake / "sbatch.calls"
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and proc.poll() is None:
        if record.exists() and len(record.read_text().splitlines()) >= expect:
            time.sleep(3)  # one more submission would show here
            break
        time.sleep(0.5)
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)  # SIGTERM waits for the (forever) running jobs
    out = proc.communicate(timeout=60)[0]
    jobs = _submissions(record)
    jobs["_output"] = out[-4000:]
    return jobs


def test_site_profile_keeps_gpus_and_timing_jobs_run_in_parallel(repo, tmp_path):
    wd, targets = _workflow(repo, tmp_path)
    jobs = _record_submissions(
        wd, tmp_path / "fake", *targets, "--profile", "profiles/site", "--configfile", "sb.yaml",
        expect=4,
    )  # fmt: skip
    out = jobs.pop("_output")
    assert {rule: len(calls) for rule, calls in jobs.items()} == {
        "train_teacher": 1,
        "train_model": 1,
        "timing": 2,  # both at once: the timing slot limits the local machine only
    }, out[-4000:]
    for rule, gpu_runtime_mem in {
        "train_teacher": ("1", "1440", "16000"),
        "train_model": ("1", "1440", "16000"),
        "timing": ("1", "240", "32000"),
    }.items():
        for args in jobs[rule]:
            got = (
                _option(args, "--gpus", "--gres"),
                _option(args, "-t", "--time"),
                _option(args, "--mem"),
            )
            assert got == gpu_runtime_mem, (rule, args)
            assert _option(args, "-p", "--partition") == "gpu", (rule, args)
            assert _option(args, "-A", "--account") == "proj1", (rule, args)


def test_command_line_resources_replace_the_profiles_block(repo, tmp_path):
    """Why `aedistill profile` exists: the partition given with --set-resources on the
    command line replaces the paper profile's whole set-resources block (Snakemake 9.27):
    train_teacher loses --gpus and its 24 h, timing its 4 h and 32 GB."""
    wd, targets = _workflow(repo, tmp_path)
    jobs = _record_submissions(
        wd, tmp_path / "fake", *targets, "--profile", "profiles/slurm-paper",
        "--set-resources", "train_teacher:slurm_partition=gpu", "--configfile", "sb.yaml",
        expect=4,
    )  # fmt: skip
    out = jobs.pop("_output")
    assert len(jobs.get("train_teacher", [])) == 1, out
    (teacher,) = jobs["train_teacher"]
    assert _option(teacher, "-p", "--partition") == "gpu"
    assert _option(teacher, "--gpus", "--gres") is None  # the GPU is gone
    assert _option(teacher, "-t", "--time") != "1440"
    for args in jobs["timing"]:
        assert _option(args, "-t", "--time") == "60" and _option(args, "--mem") == "4000"


def test_the_slot_depends_on_where_jobs_run(repo):
    """timing_slot() (common.smk) claims the slot where `workflow.local_exec` is true: the
    executors that run jobs on this machine (local; dryrun for plans), not SLURM's (whose
    parallel timing jobs the test above records)."""
    from snakemake_interface_executor_plugins.registry import ExecutorPluginRegistry

    registry = ExecutorPluginRegistry()
    assert registry.get_plugin("local").common_settings.local_exec
    assert registry.get_plugin("dryrun").common_settings.local_exec
    assert not registry.get_plugin("slurm").common_settings.local_exec
    common = (repo / "workflow" / "rules" / "common.smk").read_text()
    assert "return 1 if workflow.local_exec else 0" in common
    efficiency = (repo / "workflow" / "rules" / "efficiency.smk").read_text()
    assert "timing_slot=timing_slot," in efficiency
