"""The workflow through ``profiles/slurm`` on a real SLURM (``scripts/local_slurm.sh start``).

CI (``CI=true``, ``.ci/run``) starts the local SLURM first; there an unreachable SLURM is a
failure, never a skip. Outside CI the tests skip with the reason.

Every Snakemake call runs under ``timeout -k``: a SLURM status problem makes Snakemake wait
forever (the profile's ``slurm-status-command: squeue`` is what prevents that without
accounting). Only ``slurm-init-seconds-before-status-checks`` is lowered on the command line
(to 2 s: the jobs here last seconds, not hours); everything else is the profile's.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slurm, pytest.mark.slow]

BIN = Path(sys.executable).parent
FAST_POLL = ("--slurm-init-seconds-before-status-checks", "2")


def _slurm_problem() -> str | None:
    """Why SLURM cannot run jobs here, or None when it can."""
    for tool in ("sbatch", "squeue", "sinfo", "scontrol"):
        if shutil.which(tool) is None:
            return f"{tool} not on PATH (start SLURM with: bash scripts/local_slurm.sh start)"
    r = subprocess.run(["sinfo", "-h", "-o", "%t"], capture_output=True, text=True, timeout=30)
    states = r.stdout.split()
    if r.returncode != 0 or not any(s.rstrip("*") in ("idle", "mix", "alloc") for s in states):
        return f"no usable SLURM node (sinfo: {(r.stdout + r.stderr).strip()!r})"
    return None


@pytest.fixture(scope="module")
def slurm() -> None:
    problem = _slurm_problem()
    if problem is None:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI=true but SLURM is not reachable: {problem}")
    pytest.skip(problem)


def _copy_workflow(repo: Path, dest: Path) -> Path:
    """A private copy of the workflow so tests never touch the user's results/."""
    for item in ("Snakefile", "workflow", "config", "envs", "profiles", "src"):
        src = repo / item
        (shutil.copytree if src.is_dir() else shutil.copy)(src, dest / item)
    return dest


def snakemake(workdir: Path, *args: str, timeout: int = 540) -> subprocess.CompletedProcess:
    env = os.environ | {"HIPPYNN_USE_CUSTOM_KERNELS": "_pytorch_raw", "OMP_NUM_THREADS": "1"}
    r = subprocess.run(
        ["timeout", "-k", "10", str(timeout), str(BIN / "snakemake"), *args],
        cwd=workdir,
        capture_output=True,
        text=True,
        env=env,
    )
    assert r.returncode not in (124, 137), "snakemake hung (timeout):\n" + _tail(r)
    return r


def _tail(r: subprocess.CompletedProcess, n: int = 4000) -> str:
    return (r.stdout + r.stderr)[-n:]


def _slurm_jobs(r: subprocess.CompletedProcess) -> dict[str, list[int]]:
    """rule -> SLURM job ids, from the plugin's 'submitted with SLURM jobid' lines."""
    jobs: dict[str, list[int]] = {}
    # "Job 0 has been submitted with SLURM jobid 7 (log: .../slurm_logs/rule_dataset/7.log)."
    pattern = r"submitted with SLURM jobid (\d+) \(log: \S*/slurm_logs/rule_(\w+)/"
    for jobid, rule in re.findall(pattern, r.stdout + r.stderr):
        jobs.setdefault(rule, []).append(int(jobid))
    return jobs


def _scheduler_state(jobid: int) -> str:
    """The job's state as SLURM itself reports it (finished jobs stay for MinJobAge, 1 h in scripts/local_slurm.sh)."""
    r = subprocess.run(
        ["scontrol", "show", "job", str(jobid)], capture_output=True, text=True, timeout=30
    )
    m = re.search(r"JobState=(\w+)", r.stdout)
    return m.group(1) if m else f"unknown ({r.stdout.strip() or r.stderr.strip()})"


def _check_jobs_completed(r: subprocess.CompletedProcess, expected: dict[str, int]) -> None:
    """Each rule ran as many SLURM jobs as planned, and SLURM itself saw each one complete."""
    jobs = _slurm_jobs(r)
    assert {rule: len(ids) for rule, ids in jobs.items()} == expected, _tail(r)
    states = {j: _scheduler_state(j) for ids in jobs.values() for j in ids}
    assert set(states.values()) == {"COMPLETED"}, states


def test_training_chain_through_slurm_profile(slurm, repo, tmp_path, tiny_config):
    """dataset -> teacher ensemble -> atomic-energy labels -> students, all as SLURM jobs."""
    wd = _copy_workflow(repo, tmp_path)
    r = snakemake(
        wd, "students", "--profile", "profiles/slurm", "--configfile", "config/test.yaml",
        *FAST_POLL,
    )  # fmt: skip
    assert r.returncode == 0, _tail(r)
    n_teachers = tiny_config["teachers"]["n_members"]
    n_students = len(tiny_config["grid"]["architectures"]) * len(tiny_config["grid"]["seeds"])
    _check_jobs_completed(
        r, {"dataset": 1, "train_teacher": n_teachers, "labels": 1, "train_model": n_students}
    )
    res = wd / "results" / "test"
    for name in ("dataset.h5", "split.json", "summary.json"):
        assert (res / "data" / name).stat().st_size > 0, name
    assert (res / "labels" / "atom_energies.h5").stat().st_size > 0
    models = sorted(res.glob("models/student/*/seed*/model.pt"))
    assert len(models) == n_students, models
    for model in models:
        assert (model.parent / "metrics.json").stat().st_size > 0
    # logs and benchmarks written on the node, in the workflow's mirror trees
    assert (wd / "logs" / "test" / "data" / "dataset.h5.log").stat().st_size > 0
    assert (wd / "benchmarks" / "test" / "data" / "dataset.h5.tsv").exists()
    # nothing left to do afterwards
    r = snakemake(wd, "students", "-n", "--configfile", "config/test.yaml")
    assert "Nothing to be done" in r.stdout + r.stderr, _tail(r)


@pytest.mark.skipif(
    os.environ.get("AEDISTILL_SLURM_FULL") != "1",
    reason="whole config/test.yaml through SLURM takes ~8 min on 2 cores; "
    "opt in with AEDISTILL_SLURM_FULL=1",
)
def test_whole_test_config_through_slurm_profile(slurm, repo, tmp_path):
    wd = _copy_workflow(repo, tmp_path)
    r = snakemake(
        wd, "--profile", "profiles/slurm", "--configfile", "config/test.yaml", *FAST_POLL,
        timeout=1500,
    )  # fmt: skip
    assert r.returncode == 0, _tail(r)
    res = wd / "results" / "test"
    for table in ("models", "efficiency", "rdf_errors", "analysis"):
        assert (res / "tables" / f"{table}.csv").stat().st_size > 0, table
    for fig in (2, 3, 4, 5):
        assert (res / "figures" / f"fig{fig}.png").stat().st_size > 0, fig
    assert all(_scheduler_state(j) == "COMPLETED" for ids in _slurm_jobs(r).values() for j in ids)


FAILING_SNAKEFILE = """
rule all:
    input:
        "a.txt",
        "b.txt",
        "c.txt",


rule make_a:
    output:
        "a.txt",
    shell:
        "echo a > {output}"


rule make_b:
    output:
        "b.txt",
    shell:
        # fails until the file `fixed` exists
        "test -e fixed || {{ echo 'make_b: failing on purpose' >&2; exit 3; }}; echo b > {output}"


rule make_c:
    input:
        "a.txt",
    output:
        "c.txt",
    shell:
        "cat {input} > {output}"
"""


def _job_stats(r: subprocess.CompletedProcess) -> dict[str, int]:
    """The 'Job stats' table Snakemake prints before running: rule -> job count."""
    text = r.stdout + r.stderr
    block = text.split("Job stats:", 1)[1].split("total", 1)[0]
    return {m[0]: int(m[1]) for m in re.findall(r"^(\w+)\s+(\d+)$", block, re.M)}


def test_failing_job_is_reported_and_rerun_alone(slurm, repo, tmp_path):
    """Our profile: a failed SLURM job fails the run, the others finish, a rerun redoes it only."""
    shutil.copytree(repo / "profiles", tmp_path / "profiles")
    (tmp_path / "Snakefile").write_text(FAILING_SNAKEFILE)
    r = snakemake(tmp_path, "--profile", "profiles/slurm", *FAST_POLL)
    out = r.stdout + r.stderr
    assert r.returncode != 0, _tail(r)
    assert "SLURM status is: 'FAILED'" in out, _tail(r)
    assert "Error in rule make_b" in out
    jobs = _slurm_jobs(r)
    # retries: 1 in the profile -> the failing job was submitted twice, SLURM saw both fail
    assert len(jobs["make_b"]) == 2, jobs
    assert all(_scheduler_state(j) == "FAILED" for j in jobs["make_b"])
    # keep-going: the independent jobs still ran
    assert (tmp_path / "a.txt").read_text() == "a\n"
    assert (tmp_path / "c.txt").read_text() == "a\n"
    assert not (tmp_path / "b.txt").exists()
    a_mtime = (tmp_path / "a.txt").stat().st_mtime_ns

    (tmp_path / "fixed").touch()
    r = snakemake(tmp_path, "--profile", "profiles/slurm", *FAST_POLL)
    assert r.returncode == 0, _tail(r)
    assert _job_stats(r) == {"all": 1, "make_b": 1}, _tail(r)
    assert list(_slurm_jobs(r)) == ["make_b"]
    assert (tmp_path / "b.txt").read_text() == "b\n"
    assert (tmp_path / "a.txt").stat().st_mtime_ns == a_mtime
