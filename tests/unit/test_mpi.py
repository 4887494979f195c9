"""The MPI launch of aedistill's LAMMPS work (aedistill.mpi): the command, and one-line errors."""

from __future__ import annotations

import shutil
import sys

import pytest

from aedistill.errors import UserInputError
from aedistill.mpi import launch_command


def test_launch_command_starts_the_task_on_n_ranks():
    sh = shutil.which("sh")
    cmd = launch_command(f"{sh} --verbose", 4, "rdf", "/tmp/args.json")
    assert cmd == [sh, "--verbose", "-n", "4", sys.executable, "-m", "aedistill.mpi", "rdf"] + [
        "/tmp/args.json"
    ]


def test_a_missing_launcher_is_named_with_what_to_do():
    with pytest.raises(UserInputError, match=r"'no-such-mpirun' not found on PATH.*`mpi` resource"):
        launch_command("no-such-mpirun", 2, "rdf", "args.json")


def test_unknown_task_is_refused():
    with pytest.raises(ValueError, match="unknown MPI task"):
        launch_command("sh", 2, "train", "args.json")
