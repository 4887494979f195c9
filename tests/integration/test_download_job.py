"""ANI-Al downloads run as a local job on the submit host (compute nodes often have no
internet), and an archive pre-placed at its path is used without downloading.

The "download" reads a small ANI-format archive made here through a file:// URL (urllib
treats it like any other URL), checked by its git blob id as the real one is."""

from __future__ import annotations

import os
import re

import numpy as np
import yaml

from aedistill.data.ani_al import git_blob_sha1_of
from aedistill.data.canonical import load_dataset
from tests.helpers import copy_workflow, make_ani_archive, run_snakemake


def _config(workdir, archive, url: str) -> str:
    cfg = yaml.safe_load((workdir / "config" / "test.yaml").read_text())
    cfg["run_name"] = "dl"
    cfg["dataset"] = {
        "source": "ani-al",
        "ani_al": {"url": url, "git_blob_sha1": git_blob_sha1_of(archive), "retries": 1},
        "split": {"train": 0.5, "valid": 0.25, "test": 0.25},
    }
    path = workdir / "dl.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return str(path)


def test_download_is_a_local_job_and_feeds_the_dataset(repo, tmp_path):
    archive, _ = make_ani_archive(tmp_path, np.random.default_rng(3))
    (tmp_path / "wf").mkdir()
    workdir = copy_workflow(repo, tmp_path / "wf")
    cfg = _config(workdir, archive, archive.as_uri())
    r = run_snakemake(workdir, "dataset", "--cores", "1", "--configfile", cfg)
    out = r.stdout + r.stderr
    assert r.returncode == 0, out[-3000:]
    # (that the download is a localrule, never submitted: tests/unit/test_envs.py)
    assert "Downloading the ani-al files (local job, on this host)" in out
    cached = workdir / "results" / "dl" / "data" / "cache" / "Al-data.tgz"
    assert cached.read_bytes() == archive.read_bytes()
    assert load_dataset(workdir / "results" / "dl" / "data" / "dataset.h5").n_conf == 6
    assert (
        "downloading" in (workdir / "logs" / "dl" / "data" / "cache" / "download.log").read_text()
    )


def test_preplaced_archive_is_used_without_a_download(repo, tmp_path):
    archive, _ = make_ani_archive(tmp_path, np.random.default_rng(4))
    (tmp_path / "wf").mkdir()
    workdir = copy_workflow(repo, tmp_path / "wf")
    cfg = _config(workdir, archive, (tmp_path / "nowhere.tgz").as_uri())  # would fail
    cached = workdir / "results" / "dl" / "data" / "cache" / "Al-data.tgz"
    cached.parent.mkdir(parents=True)
    cached.write_bytes(archive.read_bytes())
    r = run_snakemake(workdir, "dataset", "-n", "--configfile", cfg)
    assert r.returncode == 0, (r.stdout + r.stderr)[-3000:]
    assert "download" not in r.stdout.split("Job stats:")[1]  # only the dataset job
    r = run_snakemake(workdir, "dataset", "--cores", "1", "--configfile", cfg)
    assert r.returncode == 0, (r.stdout + r.stderr)[-3000:]
    assert load_dataset(workdir / "results" / "dl" / "data" / "dataset.h5").n_conf == 6
    # a pre-placed archive that is not the configured one stops the job in one line
    cached.write_bytes(b"not the archive")
    (workdir / "results" / "dl" / "data" / "dataset.h5").unlink()
    r = run_snakemake(workdir, "dataset", "--cores", "1", "--configfile", cfg)
    assert (
        r.returncode != 0 and "does not match dataset.ani_al.git_blob_sha1" in r.stdout + r.stderr
    )


def test_placed_archive_older_than_the_code_is_never_deleted(repo, tmp_path):
    """An archive placed long ago (scp -p, rsync -a, downloaded before the clone) is older than
    the download rule's script: Snakemake used to plan the download for it ("code has
    changed"), deleting the file, then fail offline. It is no rule's output now."""
    archive, _ = make_ani_archive(tmp_path, np.random.default_rng(5))
    (tmp_path / "wf").mkdir()
    workdir = copy_workflow(repo, tmp_path / "wf")
    cfg = _config(workdir, archive, (tmp_path / "nowhere.tgz").as_uri())  # offline
    cached = workdir / "results" / "dl" / "data" / "cache" / "Al-data.tgz"
    cached.parent.mkdir(parents=True)
    cached.write_bytes(archive.read_bytes())
    past = 946684800  # 2000-01-01, older than every file of the checkout
    os.utime(cached, (past, past))
    script = workdir / "workflow" / "scripts" / "download.py"
    assert cached.stat().st_mtime < script.stat().st_mtime
    r = run_snakemake(workdir, "dataset", "-n", "--configfile", cfg)
    assert r.returncode == 0, (r.stdout + r.stderr)[-3000:]
    assert _job_counts(r.stdout) == {"dataset": 1, "total": 1}, r.stdout[-2000:]
    r = run_snakemake(workdir, "dataset", "--cores", "1", "--configfile", cfg)
    assert r.returncode == 0, (r.stdout + r.stderr)[-3000:]
    assert cached.read_bytes() == archive.read_bytes() and cached.stat().st_mtime == past
    assert load_dataset(workdir / "results" / "dl" / "data" / "dataset.h5").n_conf == 6
    r = run_snakemake(workdir, "dataset", "-n", "--configfile", cfg)
    assert "Nothing to be done" in r.stdout + r.stderr, r.stdout[-2000:]


def _job_counts(out: str) -> dict[str, int]:
    block = out.split("Job stats:", 1)[1].split("\n\n", 1)[0]
    return {m[0]: int(m[1]) for m in re.findall(r"^(\w+)\s+(\d+)$", block, re.M)}
