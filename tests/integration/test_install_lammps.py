"""scripts/install_lammps.sh's source step on the real tarball: the one the install cached
(Debian's orig tarball, or LAMMPS' release tarball where the install fell back to it), given
as a local LAMMPS_TARBALL the way an offline cluster would, verified and unpacked into a
fresh cache (``--fetch-only``, ~20 s)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CACHE = Path(os.environ.get("LAMMPS_CACHE") or Path.home() / ".cache" / "aedistill-lammps")
KINDS = ["lammps_20250204+dfsg.1.orig.tar.xz", "lammps-patch_4Feb2025.tar.gz"]


def test_cached_source_tarball_verifies_and_unpacks_offline(tmp_path):
    tarballs = [CACHE / k for k in KINDS if (CACHE / k).is_file()]
    assert tarballs, f"no LAMMPS source tarball in {CACHE}: run `make install` first"
    env = {k: v for k, v in os.environ.items() if not k.startswith("LAMMPS_")}
    env |= {"LAMMPS_CACHE": str(tmp_path / "cache"), "LAMMPS_TARBALL": str(tarballs[0])}
    env["PATH"] = "/usr/bin:/bin"  # no network used: curl/wget are never called (below)
    r = subprocess.run(
        ["bash", str(REPO / "scripts" / "install_lammps.sh"), "--fetch-only"],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert r.returncode == 0, r.stderr
    assert "sha256 verified" in r.stdout and "downloading" not in r.stdout
    src = tmp_path / "cache" / "lammps-4Feb2025"
    # the files the build uses: cmake entry point, the ML-IAP couplers it patches, MEAM
    assert "project(lammps" in (src / "cmake" / "CMakeLists.txt").read_text()
    for f in ("mliap_unified_couple.pyx", "mliap_model_python_couple.pyx"):
        assert "torch.load(str_fname)" in (src / "src" / "ML-IAP" / f).read_text()
    assert (src / "src" / "MEAM" / "pair_meam.cpp").is_file()
    # and the project's ML-IAP patch applies to it
    with open(REPO / "scripts" / "lammps-mliap.patch") as patch:
        r = subprocess.run(
            ["patch", "-d", str(src), "-p1", "--dry-run", "-s", "-f"],
            stdin=patch,
            capture_output=True,
            text=True,
        )
    assert r.returncode == 0, r.stdout + r.stderr
