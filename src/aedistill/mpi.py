"""aedistill's LAMMPS work on several MPI ranks: the launch, and what each rank runs.

A job that wants ``ranks`` > 1 (the RDF run with ``lammps.ranks``, tests, benchmarks) does not
initialise MPI itself: :func:`run_ranks` writes the task's arguments to a JSON file and starts
``LAUNCHER -n RANKS python -m aedistill.mpi TASK ARGS.json`` (``mpirun``/``mpiexec`` of the
MPI that LAMMPS was built with, or ``srun`` inside a SLURM allocation), waits for it and
raises with the end of its output if it fails. Every rank runs the same LAMMPS commands on
``MPI_COMM_WORLD``; rank 0 writes the outputs.

Tasks (:data:`TASKS`): ``rdf`` = :func:`aedistill.rdf_run.run_rdf`; ``point`` = energy and
forces of a structure (:func:`point`).
"""

from __future__ import annotations

import collections
import json
import logging
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from aedistill.errors import UserInputError

log = logging.getLogger(__name__)

TASKS = ("rdf", "point")
# where MPICH, Open MPI and SLURM tell a process its rank (for log lines before MPI starts)
RANK_VARS = ("PMI_RANK", "OMPI_COMM_WORLD_RANK", "SLURM_PROCID")


def launch_command(launcher: str, ranks: int, task: str, args_json: str | os.PathLike[str]):
    """argv of ``LAUNCHER -n RANKS python -m aedistill.mpi TASK ARGS.json``."""
    if task not in TASKS:
        raise ValueError(f"unknown MPI task {task!r}; one of {TASKS}")
    words = shlex.split(launcher)
    if not words or shutil.which(words[0]) is None:
        raise UserInputError(
            f"MPI launcher {launcher!r} not found on PATH (lammps.ranks > 1 needs the mpirun of "
            "the MPI that scripts/install_lammps.sh built LAMMPS with, or srun on SLURM: set "
            "the lammps_rdf rule's `mpi` resource in the profile)"
        )
    return [
        *words,
        "-n",
        str(int(ranks)),
        sys.executable,
        "-m",
        "aedistill.mpi",
        task,
        str(args_json),
    ]


def run_ranks(
    task: str, kwargs: Mapping[str, Any], ranks: int, launcher: str = "mpirun", timeout=None
) -> None:
    """Run ``task`` with ``kwargs`` on ``ranks`` MPI ranks; their output (stdout and stderr)
    goes to this process' log line by line as it comes. Open MPI refuses root without its
    two ALLOW variables, set here (MPICH and srun ignore them)."""
    env = dict(os.environ)
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        env.setdefault("OMPI_ALLOW_RUN_AS_ROOT", "1")
        env.setdefault("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
    tail: collections.deque[str] = collections.deque(maxlen=30)
    with tempfile.TemporaryDirectory(prefix="aedistill-mpi-") as tmp:
        args_json = Path(tmp) / "args.json"
        args_json.write_text(json.dumps(dict(kwargs), default=str))
        cmd = launch_command(launcher, ranks, task, args_json)
        with subprocess.Popen(
            cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        ) as proc:
            assert proc.stdout is not None
            for line in proc.stdout:
                tail.append(line.rstrip())
                log.info("%s", tail[-1])
            code = proc.wait(timeout=timeout)
    if code != 0:
        lines = "\n".join(tail)
        raise RuntimeError(f"{shlex.join(cmd)} failed (exit {code}):\n{lines}")


def point(structure: str, mliap: str, out: str, attach: bool = False) -> None:
    """Energy (eV), forces (n, 3, eV/Å, by atom order) of the structure file ``structure``
    (ASE-readable) with the ML-IAP file ``mliap``; rank 0 writes ``out`` (.npz) with them and
    what the fast model saw, summed over ranks: ``npairs`` (pairs within the cutoff handed
    to it), ``half_list`` and ``ghost_comm`` (on every rank)."""
    import ase.io
    import numpy as np
    from mpi4py import MPI

    from aedistill.lammps import lammps_energy_forces
    from aedistill.mliap_model import FastMLIAPModel

    seen = {"npairs": 0, "half_list": [], "ghost_comm": []}
    compute = FastMLIAPModel.compute_forces

    def spy(self, data):
        n = int(data.npairs)
        if n and getattr(data, "rawpairs", 0):  # the whole list: count those within the cutoff
            x = np.asarray(data.x)
            d = x[np.asarray(data.pair_j)] - x[np.asarray(data.pair_i)]
            n = int(((d * d).sum(1) < self.pair_model.rc**2).sum())
        seen["npairs"] = n
        seen["half_list"].append(bool(self.half_list))
        seen["ghost_comm"].append(bool(self.ghost_comm))
        compute(self, data)

    FastMLIAPModel.compute_forces = spy
    atoms = ase.io.read(structure)
    energy, forces = lammps_energy_forces(mliap, atoms, attach=attach)
    comm = MPI.COMM_WORLD
    npairs = comm.allreduce(seen["npairs"])
    half = comm.allreduce(all(seen["half_list"]) and bool(seen["half_list"]), op=MPI.LAND)
    ghost = comm.allreduce(all(seen["ghost_comm"]) and bool(seen["ghost_comm"]), op=MPI.LAND)
    if comm.rank == 0:
        np.savez(
            out,
            energy=energy,
            forces=forces,
            npairs=npairs,
            half_list=half,
            ghost_comm=ghost,
            ranks=comm.size,
        )


def main(argv: list[str] | None = None) -> int:
    """Entry point of each rank: ``python -m aedistill.mpi TASK ARGS.json``."""
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 2 or argv[0] not in TASKS:
        print(f"usage: python -m aedistill.mpi {{{','.join(TASKS)}}} ARGS.json", file=sys.stderr)
        return 2
    task, args_json = argv
    kwargs = json.loads(Path(args_json).read_text())
    rank = next((int(os.environ[v]) for v in RANK_VARS if v in os.environ), 0)
    logging.basicConfig(
        level=logging.INFO if rank == 0 else logging.WARNING,
        format=f"%(asctime)s %(levelname)s [rank {rank}] %(name)s: %(message)s",
    )
    if task == "rdf":
        from aedistill.rdf_run import run_rdf

        run_rdf(**kwargs)
    else:
        point(**kwargs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
