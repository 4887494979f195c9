"""scripts/install_lammps.sh's source step on the real tarball: the one the install cached
(Debian's orig tarball, or LAMMPS' release tarball where the install fell back to it), given
as a local LAMMPS_TARBALL the way an offline cluster would, verified and unpacked into a
fresh cache (``--fetch-only``, ~20 s)."""

from __future__ import annotations

import difflib
import os
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CACHE = Path(os.environ.get("LAMMPS_CACHE") or Path.home() / ".cache" / "aedistill-lammps")
KINDS = ["lammps_20250204+dfsg.1.orig.tar.xz", "lammps-patch_4Feb2025.tar.gz"]


def _offline_env(tmp_path: Path) -> dict[str, str]:
    """The environment of an offline install into a fresh cache under ``tmp_path``: the
    cached source tarball given as LAMMPS_TARBALL, no other LAMMPS_ variable, and a PATH
    without network tools (curl/wget are never called)."""
    tarballs = [CACHE / k for k in KINDS if (CACHE / k).is_file()]
    assert tarballs, f"no LAMMPS source tarball in {CACHE}: run `make install` first"
    env = {k: v for k, v in os.environ.items() if not k.startswith("LAMMPS_")}
    env |= {"LAMMPS_CACHE": str(tmp_path / "cache"), "LAMMPS_TARBALL": str(tarballs[0])}
    env["PATH"] = "/usr/bin:/bin"
    return env


def _install_step(env, option: str) -> str:
    """stdout of ``install_lammps.sh OPTION`` (``--fetch-only``, ``--source-only``), which
    must succeed."""
    r = subprocess.run(
        ["bash", str(REPO / "scripts" / "install_lammps.sh"), option],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    return r.stdout


def test_cached_source_tarball_verifies_and_unpacks_offline(tmp_path):
    out = _install_step(_offline_env(tmp_path), "--fetch-only")
    assert "sha256 verified" in out and "downloading" not in out
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


def _patched(src: Path, patch: Path) -> bool:
    """Whether ``patch`` is applied to ``src`` (it reverse-applies cleanly)."""
    with open(patch) as p:
        r = subprocess.run(["patch", "-d", str(src), "-p1", "-R", "--dry-run", "-s", "-f"], stdin=p)
    return r.returncode == 0


def test_a_new_mliap_patch_replaces_an_older_one_in_a_cached_source(tmp_path):
    """A cached source patched by an earlier scripts/lammps-mliap.patch gets the current one
    (``--source-only``, the build's source step): a patch the script recorded beside the
    source is taken back first; a source patched without that record (an earlier version of
    the script) has its src/ML-IAP re-extracted from the verified tarball. Either way the
    result is the release's ML-IAP with exactly the current patch, and a second run changes
    nothing."""
    env = _offline_env(tmp_path)
    current = REPO / "scripts" / "lammps-mliap.patch"
    src = tmp_path / "cache" / "lammps-4Feb2025"
    marker = src / ".aedistill-mliap.patch"
    out = _install_step(env, "--source-only")
    assert "patching ML-IAP" in out and _patched(src, current)
    assert marker.read_bytes() == current.read_bytes()

    # an older patch on record: a line added to pair_mliap.h
    header = src / "src" / "ML-IAP" / "pair_mliap.h"
    subprocess.run(["patch", "-d", str(src), "-p1", "-R", "-s"], stdin=open(current), check=True)
    before = header.read_text().splitlines(keepends=True)
    after = [*before[:1], "// an older aedistill patch\n", *before[1:]]
    older = "".join(
        difflib.unified_diff(
            before, after, "a/src/ML-IAP/pair_mliap.h", "b/src/ML-IAP/pair_mliap.h"
        )
    )
    header.write_text("".join(after))
    marker.write_text(older)
    out = _install_step(env, "--source-only")
    assert "taking back the previous ML-IAP patch" in out and "re-extracting" not in out
    assert "an older aedistill patch" not in header.read_text() and _patched(src, current)

    # patched without a record (an earlier script): src/ML-IAP comes from the tarball again
    data_cpp = src / "src" / "ML-IAP" / "mliap_data.cpp"
    text = data_cpp.read_text()
    assert "static int raw_fills = 0;" in text
    data_cpp.write_text(
        text.replace("static int raw_fills = 0;", "static int raw_fills = 1;  // an earlier patch")
    )
    marker.unlink()
    out = _install_step(env, "--source-only")
    assert "re-extracting src/ML-IAP" in out
    assert "an earlier patch" not in data_cpp.read_text() and _patched(src, current)
    assert marker.read_bytes() == current.read_bytes()
    pyx = (src / "src" / "ML-IAP" / "mliap_unified_couple.pyx").read_text()
    assert "torch.load(str_fname, weights_only=False)" in pyx

    out = _install_step(env, "--source-only")
    assert "patching" not in out and "re-extracting" not in out and _patched(src, current)
