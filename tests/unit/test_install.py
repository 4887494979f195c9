"""The install path beyond Debian-with-root: scripts/install_lammps.sh's source fallback and
its prerequisite messages, and the Makefile's TORCH_SPEC stamp.

The source step runs for real (``--fetch-only``: get, verify, unpack) on small tarballs made
here in both LAMMPS layouts; the Debian orig tarball itself is unpacked by
tests/integration/test_install_lammps.py.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "install_lammps.sh"


def _tarball(tmp: Path, top: str, name: str = "src.tar.gz", cmake: bool = True) -> Path:
    root = tmp / "make" / top
    (root / "src" / "ML-IAP").mkdir(parents=True)
    (root / "src" / "ML-IAP" / "mliap_unified_couple.pyx").write_text("# stand-in\n")
    if cmake:
        (root / "cmake").mkdir()
        (root / "cmake" / "CMakeLists.txt").write_text("project(lammps CXX)\n")
    out = tmp / name
    with tarfile.open(out, "w:gz") as tar:
        tar.add(root, arcname=top)
    shutil.rmtree(tmp / "make")
    return out


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _fetch(cache: Path, **env: str) -> subprocess.CompletedProcess:
    run_env = {k: v for k, v in os.environ.items() if not k.startswith("LAMMPS_")}
    run_env |= {"LAMMPS_CACHE": str(cache), **env}
    return subprocess.run(
        ["bash", str(SCRIPT), "--fetch-only"],
        env=run_env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_upstream_layout_is_unpacked_into_the_common_source_dir(tmp_path):
    """LAMMPS' GitHub tarball has top directory lammps-patch_4Feb2025/, Debian's
    lammps-4Feb2025/: both end up as $LAMMPS_CACHE/lammps-4Feb2025."""
    tar = _tarball(tmp_path, "lammps-patch_4Feb2025")
    cache = tmp_path / "cache"
    r = _fetch(cache, LAMMPS_TARBALL=str(tar), LAMMPS_TARBALL_SHA256=_sha256(tar))
    assert r.returncode == 0, r.stderr
    src = cache / "lammps-4Feb2025"
    assert (src / "cmake" / "CMakeLists.txt").read_text() == "project(lammps CXX)\n"
    assert (src / "src" / "ML-IAP" / "mliap_unified_couple.pyx").is_file()
    assert sorted(p.name for p in cache.iterdir()) == ["lammps-4Feb2025"]  # no scratch left
    assert "sha256 verified" in r.stdout
    # a second call finds the source and neither verifies nor unpacks again
    r2 = _fetch(cache, LAMMPS_TARBALL=str(tar), LAMMPS_TARBALL_SHA256=_sha256(tar))
    assert r2.returncode == 0 and "unpacking" not in r2.stdout


def test_wrong_checksum_is_refused_in_one_line_before_unpacking(tmp_path):
    tar = _tarball(tmp_path, "lammps-4Feb2025")
    cache = tmp_path / "cache"
    r = _fetch(cache, LAMMPS_TARBALL=str(tar), LAMMPS_TARBALL_SHA256="0" * 64)
    assert r.returncode != 0
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith(f"install_lammps: {tar}: sha256 {_sha256(tar)} is neither")
    assert "refusing to unpack" in lines[0]
    # the recorded checksums of both kinds are named, and nothing was unpacked
    assert "3671165bd52fad36734e0a9136c5bc5ecb225e03988f8c89aa13366a8b53b1c7" in lines[0]
    assert "a4cb0a58451d47ac31ee3e1f148d92f445298d6e27f2d06f161b9b4168d79eb1" in lines[0]
    assert not (cache / "lammps-4Feb2025").exists() and not (cache / "unpack.tmp").exists()
    # without LAMMPS_TARBALL_SHA256 an unknown tarball is refused just the same
    r = _fetch(cache, LAMMPS_TARBALL=str(tar))
    assert r.returncode != 0 and "refusing to unpack" in r.stderr
    assert not (cache / "lammps-4Feb2025").exists()


def test_missing_or_foreign_tarball_is_named(tmp_path):
    cache = tmp_path / "cache"
    r = _fetch(cache, LAMMPS_TARBALL=str(tmp_path / "nope.tar.gz"))
    assert r.returncode != 0
    assert (
        r.stderr.strip()
        == f"install_lammps: LAMMPS_TARBALL={tmp_path / 'nope.tar.gz'}: file not found"
    )
    other = _tarball(tmp_path, "something-else", cmake=False)
    r = _fetch(cache, LAMMPS_TARBALL=str(other), LAMMPS_TARBALL_SHA256=_sha256(other))
    assert r.returncode != 0 and len(r.stderr.strip().splitlines()) == 1
    assert "not a LAMMPS source tarball" in r.stderr
    assert not (cache / "lammps-4Feb2025").exists()


def _bare_path(tmp: Path, without: set[str]) -> str:
    """A PATH with the tools the script needs, minus ``without`` and minus apt-get/sudo
    (a machine where nothing can be installed system-wide)."""
    tools = (
        "bash sha256sum cut sed id realpath dirname cat ls mkdir rm sort head tail tr tar "
        "mv awk grep xargs nproc gzip xz cmake cc c++ make patch env"
    ).split()
    bindir = tmp / "bin"
    bindir.mkdir()
    for tool in tools:
        found = shutil.which(tool)
        if tool not in without and found:
            (bindir / tool).symlink_to(found)
    return str(bindir)


def test_missing_build_tools_are_named_in_one_line(tmp_path):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("LAMMPS_")}
    env |= {
        "PATH": _bare_path(tmp_path, {"cc", "c++", "cmake"}),
        "LAMMPS_CACHE": str(tmp_path / "cache"),
    }
    r = subprocess.run(
        ["bash", str(SCRIPT), str(venv)], env=env, capture_output=True, text=True, timeout=120
    )
    assert r.returncode != 0
    lines = r.stderr.strip().splitlines()
    assert lines == [
        "install_lammps: missing C compiler (cc), C++ compiler (c++), cmake: install or load "
        "them (e.g. `module load gcc cmake python`) and rerun"
    ], r.stderr


def _fake_python(venv: Path) -> Path:
    """A stand-in ``python`` that records its arguments (what make asks pip to do)."""
    (venv / "bin").mkdir(parents=True)
    py = venv / "bin" / "python"
    py.write_text(f'#!/bin/sh\necho "$*" >> "{venv}/record"\n')
    py.chmod(0o755)
    return venv / "record"


def _make_installed(venv: Path, spec: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["make", "-C", str(REPO), f"VENV={venv}", f"TORCH_SPEC={spec}", f"{venv}/.installed"],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_torch_spec_change_reinstalls_torch(tmp_path):
    venv = tmp_path / "venv"
    record = _fake_python(venv)
    r = _make_installed(venv, "torch==2.13.0")
    assert r.returncode == 0, r.stderr
    assert record.read_text().splitlines() == [
        "-m pip install -q torch==2.13.0",
        "-m pip install -q -e .[dev]",
    ]
    assert (venv / ".torch-spec").read_text() == "torch==2.13.0\n"
    record.unlink()
    # same spec: nothing is installed
    assert _make_installed(venv, "torch==2.13.0").returncode == 0
    assert not record.exists()
    # another spec: torch is uninstalled (pip would take 2.13.0+cpu as satisfying it) and
    # installed from the new spec
    cuda = "torch==2.13.0 --index-url https://download.pytorch.org/whl/cu126"
    r = _make_installed(venv, cuda)
    assert r.returncode == 0, r.stderr
    assert "TORCH_SPEC changed (torch==2.13.0 -> " in r.stdout
    assert record.read_text().splitlines() == [
        "-m pip uninstall -q -y torch",
        f"-m pip install -q {cuda}",
        "-m pip install -q -e .[dev]",
    ]
    assert (venv / ".torch-spec").read_text() == cuda + "\n"
    record.unlink()
    # a later make without TORCH_SPEC (make run, make gpu-check) keeps the installed build
    env = {k: v for k, v in os.environ.items() if k != "TORCH_SPEC"}
    r = subprocess.run(
        ["make", "-C", str(REPO), f"VENV={venv}", f"{venv}/.installed"],
        capture_output=True, text=True, timeout=60, env=env,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert not record.exists() and "TORCH_SPEC changed" not in r.stdout
    assert (venv / ".torch-spec").read_text() == cuda + "\n"


def test_without_apt_the_upstream_tarball_is_downloaded(tmp_path):
    """No apt-get (or no root): the script goes to LAMMPS' pinned release URL; a node
    without internet gets one line that says how to pre-place the tarball."""
    bindir = Path(_bare_path(tmp_path, set()))
    (bindir / "curl").write_text(f'#!/bin/sh\necho "$*" > "{tmp_path}/curl-args"\nexit 7\n')
    (bindir / "curl").chmod(0o755)
    env = {k: v for k, v in os.environ.items() if not k.startswith("LAMMPS_")}
    env |= {"PATH": str(bindir), "LAMMPS_CACHE": str(tmp_path / "cache")}
    r = subprocess.run(
        ["bash", str(SCRIPT), "--fetch-only"], env=env, capture_output=True, text=True, timeout=60
    )
    assert r.returncode != 0
    url = "https://github.com/lammps/lammps/archive/patch_4Feb2025.tar.gz"
    assert (tmp_path / "curl-args").read_text().split()[-1] == url
    assert r.stderr.strip().splitlines() == [
        f"install_lammps: could not download {url} (no internet on this node?); download it "
        "elsewhere and set LAMMPS_TARBALL=/path/to/lammps-patch_4Feb2025.tar.gz"
    ]
    assert not (tmp_path / "cache" / "lammps-patch_4Feb2025.tar.gz").exists()


def _run_install(tmp: Path, bindir: str, **env: str) -> subprocess.CompletedProcess:
    venv = tmp / "venv"
    if not venv.exists():
        subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    run_env = {k: v for k, v in os.environ.items() if not k.startswith("LAMMPS_")}
    run_env |= {"PATH": bindir, "LAMMPS_CACHE": str(tmp / "cache"), **env}
    return subprocess.run(
        ["bash", str(SCRIPT), str(venv)], env=run_env, capture_output=True, text=True, timeout=120
    )


def _mpi_lines(r: subprocess.CompletedProcess) -> list[str]:
    return [ln for ln in r.stdout.splitlines() if ln.startswith("== install_lammps: MPI")]


def test_without_an_mpi_wrapper_lammps_is_built_without_mpi_and_says_so(tmp_path):
    """No mpicxx and nothing installable (no apt-get): one line says MPI is off and why; the
    build goes on (here it stops at the missing compilers, after that line)."""
    r = _run_install(tmp_path, _bare_path(tmp_path, {"cc", "c++"}))
    assert _mpi_lines(r) == [
        "== install_lammps: MPI off (no MPI compiler wrapper (mpicxx) on PATH): LAMMPS runs "
        "on one process"
    ], r.stdout
    assert "missing C compiler (cc), C++ compiler (c++)" in r.stderr


def test_an_mpi_wrapper_on_path_turns_mpi_on(tmp_path):
    bindir = Path(_bare_path(tmp_path, {"cc", "c++"}))
    for tool in ("mpicxx", "mpicc", "mpirun"):
        (bindir / tool).write_text('#!/bin/sh\necho "g++ -I/opt/mpi/include -lmpi"\n')
        (bindir / tool).chmod(0o755)
    r = _run_install(tmp_path, str(bindir))
    assert _mpi_lines(r) == [
        f"== install_lammps: MPI on: LAMMPS runs on N ranks (wrapper {bindir}/mpicxx, launcher "
        f"{bindir}/mpirun; mpi4py into the venv)"
    ], r.stdout
    # LAMMPS_MPI=off: a serial build although a wrapper is there
    r = _run_install(tmp_path, str(bindir), LAMMPS_MPI="off")
    assert _mpi_lines(r) == [
        "== install_lammps: MPI off (LAMMPS_MPI=off): LAMMPS runs on one process"
    ], r.stdout


def test_mpi_on_without_a_wrapper_and_a_wrong_choice_are_named_in_one_line(tmp_path):
    bindir = _bare_path(tmp_path, set())
    r = _run_install(tmp_path, bindir, LAMMPS_MPI="on")
    assert r.returncode != 0
    assert r.stderr.strip().splitlines() == [
        "install_lammps: LAMMPS_MPI=on but no MPI C++ compiler wrapper (mpicxx) on PATH: "
        "install or load MPI (e.g. `module load openmpi`) and rerun"
    ]
    r = _run_install(tmp_path, bindir, LAMMPS_MPI="yes")
    assert r.returncode != 0
    assert r.stderr.strip().splitlines() == [
        "install_lammps: LAMMPS_MPI=yes: expected auto, on or off"
    ]


def test_the_cache_stamp_includes_the_mpi_choice(tmp_path):
    """A wheel (or a venv's LAMMPS) built without MPI, or against another MPI library, is
    not reused: the stamp it must match names the MPI flags and the wrapper's link line."""
    bindir = Path(_bare_path(tmp_path, set()))

    def stamp(**env: str) -> str:
        run_env = {k: v for k, v in os.environ.items() if not k.startswith("LAMMPS_")}
        run_env |= {"PATH": str(bindir), **env}
        r = subprocess.run(
            ["bash", str(SCRIPT), "--stamp"], env=run_env, capture_output=True, text=True
        )
        assert r.returncode == 0, r.stderr
        return r.stdout.strip()

    serial = stamp()
    for tool in ("mpicxx", "mpicc"):
        (bindir / tool).write_text('#!/bin/sh\necho "g++ -lmpich"\n')
        (bindir / tool).chmod(0o755)
    mpich = stamp()
    (bindir / "mpicxx").write_text('#!/bin/sh\necho "g++ -lmpi_cxx -lmpi"\n')
    openmpi = stamp()
    assert "BUILD_MPI=off" in serial and "BUILD_MPI=on" in mpich
    assert len({serial, mpich, openmpi}) == 3
    assert stamp(LAMMPS_MPI="off") == serial and stamp() == openmpi  # deterministic
