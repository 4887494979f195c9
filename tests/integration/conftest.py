"""Fixtures of the workflow tests: private copies of the workflow, and one finished tiny run.

Helpers they build on (``copy_workflow``, ``run_snakemake``, ``job_stats``) are in
:mod:`tests.helpers`.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import copy_workflow, run_snakemake


@pytest.fixture(scope="session")
def finished_run(repo, tmp_path_factory) -> Path:
    """A private copy of the workflow in which the whole chain of ``config/test.yaml`` has
    run (``snakemake --cores 2``: data, teachers, labels, the grid, Born-Again, timings,
    memory, LAMMPS g(r), tables and figures; minutes). Shared by every test of the session
    that needs a finished run: tests may add files (a report, edited configs under
    ``config/``) and dry-run against it, but must not rerun its jobs."""
    wd = copy_workflow(repo, tmp_path_factory.mktemp("finished-run"))
    r = run_snakemake(wd, "--cores", "2", "--configfile", "config/test.yaml", timeout=1800)
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-4000:]
    return wd
