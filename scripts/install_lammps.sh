#!/usr/bin/env bash
# Build the LAMMPS Python module with ML-IAP (incl. "pair_style mliap unified")
# + ML-SNAP + PYTHON from Debian trixie's orig tarball (upstream 4Feb2025) and
# install it into a venv.  Needed by hippynn's MLIAPInterface.
#
# usage: build_lammps.sh [VENV]          (default VENV=./.venv)
# env:   LAMMPS_CACHE  cache dir (default ~/.cache/lammps-mliap); keeps the
#        tarball, source, build tree and the finished wheel -> 2nd run ~seconds.
# A missing venv is created (python3 -m venv + numpy); cython is added here.
set -euo pipefail
VENV=$(realpath -m "${1:-.venv}")
[ -x "$VENV/bin/python" ] || { python3 -m venv "$VENV"; "$VENV/bin/pip" install -q numpy; }
CACHE=${LAMMPS_CACHE:-$HOME/.cache/aedistill-lammps}
DEBVER=20250204+dfsg.1-2                           # trixie source version
TARBALL=lammps_20250204+dfsg.1.orig.tar.xz         # 132,367,436 bytes
SHA256=3671165bd52fad36734e0a9136c5bc5ecb225e03988f8c89aa13366a8b53b1c7
SRCDIR=$CACHE/lammps-4Feb2025
PY=$VENV/bin/python
PYTAG=$("$PY" -c 'import sys;print(f"cp{sys.version_info[0]}{sys.version_info[1]}")')
BUILD=$CACHE/build-$PYTAG
WHEELDIR=$CACHE/wheels-$PYTAG
t0=$SECONDS; step() { echo "== [$((SECONDS-t0))s] $*"; }
mkdir -p "$CACHE"

# 0. fast path: a wheel built earlier for this Python ABI -> just install it
if ls "$WHEELDIR"/lammps-*.whl >/dev/null 2>&1; then
  step "installing cached wheel"
  "$PY" -m pip install -q --force-reinstall --no-deps "$WHEELDIR"/lammps-*.whl
else
  # 1. build tools (all preinstalled on this image). --no-upgrade: never upgrade
  #    an installed package.  python3-dev/-venv only matter for a venv built on
  #    Debian's /usr/bin/python3 (pyenv's Python ships headers and ensurepip).
  PKGS=()
  for t in cmake:cmake g++:g++ make:make xz:xz-utils; do command -v "${t%%:*}" >/dev/null || PKGS+=("${t#*:}"); done
  [ -f "$("$PY" -c 'import sysconfig;print(sysconfig.get_paths()["include"])')/Python.h" ] || PKGS+=(python3-dev)
  "$PY" -c 'import ensurepip' 2>/dev/null || PKGS+=(python3-venv)   # install-python makes a venv
  if [ ${#PKGS[@]} -gt 0 ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends --no-upgrade "${PKGS[@]}"
  fi
  "$PY" -m pip install -q cython          # build-time only (cythonize for the .pyx couplers)

  # 2. orig tarball from trixie via a deb-src-only entry (adds no binary
  #    packages, so nothing can be upgraded).  --tar-only skips the .dsc,
  #    which this mirror answers 404 for (that made plain --download-only exit 100).
  if [ ! -f "$CACHE/$TARBALL" ]; then
    step "fetching $TARBALL"
    # reuse the Debian mirror this machine's apt already uses
    MIRROR=$(sed -n 's/^URIs: *//p' /etc/apt/sources.list.d/debian.sources 2>/dev/null | head -1)
    [ -n "$MIRROR" ] || MIRROR=$(awk '$1=="deb"{print $2; exit}' /etc/apt/sources.list)
    cat > /etc/apt/sources.list.d/trixie-src.sources <<EOF
Types: deb-src
URIs: $MIRROR
Suites: trixie
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
    apt-get update -qq
    # must name the exact version: 'lammps' or 'lammps/trixie' resolve to bookworm's binary version and fail
    (cd "$CACHE" && apt-get source -qq --download-only --tar-only "lammps=$DEBVER")
  fi
  echo "$SHA256  $CACHE/$TARBALL" | sha256sum -c -
  [ -d "$SRCDIR" ] || { step "unpacking"; tar -C "$CACHE" --no-same-owner -xf "$CACHE/$TARBALL"; }
  # torch>=2.6 defaults torch.load(weights_only=True), which refuses the pickled
  # hippynn MLIAPInterface in 'pair_style mliap unified model.pt 0'. Patch the
  # two loaders (alternative without patch: export TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1).
  sed -i 's/torch\.load(str_fname)/torch.load(str_fname, weights_only=False)/' \
    "$SRCDIR"/src/ML-IAP/mliap_unified_couple.pyx "$SRCDIR"/src/ML-IAP/mliap_model_python_couple.pyx

  # 3. configure.  Python_EXECUTABLE pins the venv interpreter (headers/lib come
  #    from its base install); cythonize is found next to it.  Optional libs are
  #    switched off so the result doesn't depend on which -dev packages exist.
  step "cmake configure"
  cmake -S "$SRCDIR/cmake" -B "$BUILD" -D CMAKE_BUILD_TYPE=Release \
    -D Python_EXECUTABLE="$PY" \
    -D BUILD_SHARED_LIBS=on -D BUILD_MPI=off -D BUILD_OMP=on \
    -D PKG_ML-IAP=on -D PKG_ML-SNAP=on -D PKG_MEAM=on -D PKG_MANYBODY=on -D PKG_PYTHON=on -D MLIAP_ENABLE_PYTHON=on \
    -D WITH_JPEG=off -D WITH_PNG=off -D WITH_FFMPEG=off \
    > "$CACHE/cmake-configure.log"
  grep -E 'Enabled packages|Found Cythonize|Defines' "$CACHE/cmake-configure.log" || true

  # 4. compile (incremental if $BUILD survives)
  step "compiling"
  cmake --build "$BUILD" -j"$(nproc)" > "$CACHE/build.log" 2>&1 || { tail -30 "$CACHE/build.log"; exit 1; }

  # 5. install-python: builds a wheel (in a throw-away venv, pulling pip/build/
  #    wheel/setuptools from PyPI) and pip-installs it with the 'python' found on
  #    PATH when VIRTUAL_ENV is set -> the venv must be "activated" here.
  step "install-python"
  VIRTUAL_ENV=$VENV PATH=$VENV/bin:$PATH cmake --build "$BUILD" --target install-python \
    > "$CACHE/install-python.log" 2>&1 || { tail -30 "$CACHE/install-python.log"; exit 1; }
  mkdir -p "$WHEELDIR" && cp "$BUILD"/lammps-*.whl "$WHEELDIR"/
fi

# 6. verify
step "verify"
cd /tmp   # not inside the source tree (its python/lammps would shadow the install)
"$PY" - <<'EOF'
import lammps, lammps.mliap
L = lammps.lammps(cmdargs=["-log", "none", "-screen", "none"])
print("version", L.version(), "ML-IAP", L.has_package("ML-IAP"), "PYTHON", L.has_package("PYTHON"),
      "ML-SNAP", L.has_package("ML-SNAP"))
assert L.has_package("ML-IAP") and L.has_package("PYTHON")
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
# pair_style mliap unified with the Python LJ model bundled in lammps.mliap ...
lammps.mliap.activate_mliappy(L)
L.commands_string(SETUP)
from lammps.mliap.mliap_unified_lj import MLIAPUnifiedLJ
lammps.mliap.load_unified(MLIAPUnifiedLJ(["Ar"]))
L.commands_string("pair_style mliap unified EXISTS 0\n" + RUN.format("Ar"))
pe_ml = L.get_thermo("pe"); L.close()
# ... must match the native lj/cut 2.5 run
R = lammps.lammps(cmdargs=["-log", "none", "-screen", "none"])
R.commands_string(SETUP + "\npair_style lj/cut 2.5\n" + RUN.format("1.0 1.0"))
pe_ref = R.get_thermo("pe"); R.close()
print(f"pe after 20 steps: mliap unified {pe_ml:.6f}  lj/cut {pe_ref:.6f}")
assert abs(pe_ml - pe_ref) < 1e-6
print("OK")
EOF
step "done"
