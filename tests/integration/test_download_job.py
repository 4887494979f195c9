"""ANI-Al downloads run as a local job on the submit host (compute nodes often have no
internet), and an archive pre-placed at its path is used without downloading.

The "download" reads a small ANI-format archive made here through a file:// URL (urllib
treats it like any other URL), checked by its git blob id as the real one is."""

from __future__ import annotations

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
