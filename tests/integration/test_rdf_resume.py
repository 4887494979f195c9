"""The liquid RDF MD resumes from LAMMPS restart files: a job killed (SIGKILL, as a SLURM
time limit ends one) after a restart point continues from it when run again, says so in its
log, and gives the g(r) of an uninterrupted run (MEAM liquid Al, 256 atoms, 1,200 steps).

Needs the LAMMPS Python module of scripts/install_lammps.sh (`make install`)."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.helpers import LIQUID

pytestmark = pytest.mark.lammps

REPO = Path(__file__).resolve().parents[2]
SETTINGS = {**LIQUID, "restart_every": 300}  # test_lammps' short liquid, restart points
# restart points at steps 300 (melt done), 600 (equilibration done), 900 (production half
# done, 15 frames); the job is killed right after the third
KILLED_RUN = """
import json, os, signal, sys
import aedistill.rdf_run as L
from aedistill.data.meam import meam_pair_commands
calls = []
write = L._write_restart_point
def write_then_die(*args, **kwargs):
    write(*args, **kwargs)
    calls.append(1)
    if len(calls) == 3:
        os.kill(os.getpid(), signal.SIGKILL)
L._write_restart_point = write_then_die
out = sys.argv[2]
L.run_rdf(None, json.loads(sys.argv[1]), out + "/rdf.csv", out + "/timing.json",
          pair_commands=meam_pair_commands())
"""


def _run(settings, out: Path):
    from aedistill.data.meam import meam_pair_commands
    from aedistill.rdf_run import run_rdf

    return run_rdf(
        None, settings, out / "rdf.csv", out / "timing.json", pair_commands=meam_pair_commands()
    )


def test_killed_rdf_run_resumes_from_its_last_restart(tmp_path, caplog):
    from aedistill.rdf import first_peak, read_rdf
    from aedistill.rdf_run import rdf_restart_dir

    killed = tmp_path / "killed"
    killed.mkdir()
    env = os.environ | {"PYTHONPATH": os.pathsep.join([str(REPO / "src"), str(REPO)])}
    r = subprocess.run(
        [sys.executable, "-c", KILLED_RUN, json.dumps(SETTINGS), str(killed)],
        capture_output=True,
        text=True,
        timeout=900,
        env=env,
    )
    assert r.returncode == -9, r.stderr[-2000:]  # died by SIGKILL, outputs not written
    assert not (killed / "rdf.csv").exists() and not (killed / "timing.json").exists()
    restart = rdf_restart_dir(killed / "rdf.csv")
    state = json.loads((restart / "state.json").read_text())
    assert state["step"] == 900 and state["rdf"]["n_frames"] == 15
    assert sorted(p.name for p in restart.iterdir()) == ["state.json", "step900.restart"]

    with caplog.at_level(logging.INFO, logger="aedistill.rdf_run"):
        resumed = _run(SETTINGS, killed)
    assert f"resumed from {restart / 'step900.restart'} at step 900" in caplog.text
    assert "(15 of 30 production frames done)" in caplog.text
    assert "melt:" not in caplog.text and "equilibrate:" not in caplog.text  # not redone
    assert resumed["resumed_from_step"] == 900 and resumed["frames"] == 30
    assert not restart.exists()  # removed once the run is complete

    whole = tmp_path / "whole"
    whole.mkdir()
    reference = _run(SETTINGS, whole)
    assert reference["resumed_from_step"] is None and reference["frames"] == 30
    r1, g1 = read_rdf(killed / "rdf.csv")
    r2, g2 = read_rdf(whole / "rdf.csv")
    np.testing.assert_allclose(r1, r2)
    # the same liquid, and here even the same trajectory: the restart file holds positions,
    # velocities and the thermostat's state exactly, and the run is one-threaded
    assert 2.7 <= first_peak(r1, g1) <= 2.9
    assert first_peak(r1, g1) == pytest.approx(first_peak(r2, g2), abs=1e-9)
    np.testing.assert_allclose(g1, g2, rtol=0, atol=1e-9)
    assert resumed["temperature_mean_K"] == pytest.approx(reference["temperature_mean_K"])


def test_restart_of_other_settings_is_not_used(tmp_path, caplog):
    """A restart directory left by a run with other settings is ignored with a warning."""
    from aedistill.rdf_run import rdf_restart_dir

    restart = rdf_restart_dir(tmp_path / "rdf.csv")
    restart.mkdir()
    (restart / "state.json").write_text(
        json.dumps({"fingerprint": "other", "step": 900, "restart_file": "step900.restart"})
    )
    (restart / "step900.restart").write_text("not a restart file")
    short = {
        **SETTINGS,
        "supercell": 3,
        "rdf_rmax": 5.0,
        "melt_steps": 10,
        "equilibration_steps": 10,
        "production_steps": 20,
        "rdf_every": 10,
        "restart_every": 10,
    }
    with caplog.at_level(logging.INFO, logger="aedistill.rdf_run"):
        timing = _run(short, tmp_path)
    assert "written for other settings or another model" in caplog.text
    assert "resumed" not in caplog.text
    assert timing["resumed_from_step"] is None and timing["frames"] == 2
    assert not restart.exists()
