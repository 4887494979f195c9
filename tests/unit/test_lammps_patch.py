"""A LAMMPS without the project's ML-IAP patch (conda-forge's, envs/lammps.yaml) is refused in
one line for a run whose unpatched neighbour copy (atoms x all pairs) would not fit, and
warned about below; the project's build (scripts/install_lammps.sh) has the patch."""

from __future__ import annotations

import sys
import types

import pytest

from aedistill import lammps as aelammps
from aedistill.errors import UserInputError


def _fake_lammps(patched: bool) -> dict[str, types.ModuleType]:
    """A stand-in ``lammps`` package whose ML-IAP honours ``request_half_list`` iff patched."""
    loaded = {}

    class Instance:
        def __init__(self, cmdargs):
            self.closed = False

        def commands_string(self, text):
            if "pair_style mliap unified EXISTS" in text and patched:
                model = loaded["model"]
                model.half_list = bool(getattr(model, "request_half_list", False))

        def has_package(self, name):
            return True

        def close(self):
            self.closed = True

    class MLIAPUnifiedLJ:
        def __init__(self, elements):
            self.elements = elements

    pkg = types.ModuleType("lammps")
    pkg.__file__ = f"/fake/{'patched' if patched else 'conda-forge'}/lammps/__init__.py"
    pkg.lammps = Instance
    mliap = types.ModuleType("lammps.mliap")
    mliap.activate_mliappy = lambda lmp: None
    mliap.load_unified = lambda model: loaded.update(model=model)
    lj = types.ModuleType("lammps.mliap.mliap_unified_lj")
    lj.MLIAPUnifiedLJ = MLIAPUnifiedLJ
    pkg.mliap, mliap.mliap_unified_lj = mliap, lj
    return {"lammps": pkg, "lammps.mliap": mliap, "lammps.mliap.mliap_unified_lj": lj}


def _install(monkeypatch, modules):
    for name, module in modules.items():
        monkeypatch.setitem(sys.modules, name, module)
    monkeypatch.setattr(aelammps, "_PATCHED", {})


def test_the_unpatched_copy_is_the_issues_145_gb_at_the_paper_liquid():
    assert aelammps.unpatched_copy_bytes(4 * 17**3) == pytest.approx(145e9, rel=0.01)


def test_patched_lammps_runs_any_size(monkeypatch):
    modules = _fake_lammps(True)
    _install(monkeypatch, modules)
    assert aelammps.has_mliap_patch(modules["lammps"]) is True
    assert not aelammps.new_lammps(n_atoms=4 * 17**3).closed


def test_unpatched_lammps_is_refused_in_one_line_where_it_would_not_fit(monkeypatch, caplog):
    modules = _fake_lammps(False)
    _install(monkeypatch, modules)
    assert aelammps.has_mliap_patch(modules["lammps"]) is False
    with pytest.raises(UserInputError) as err:
        aelammps.new_lammps(n_atoms=4 * 17**3)  # config/paper.yaml's liquid
    msg = str(err.value)
    assert "\n" not in msg
    assert msg.startswith("the LAMMPS at /fake/conda-forge/lammps/__init__.py lacks the project's")
    assert "19,652 atoms" in msg and "~145 GB" in msg and "scripts/install_lammps.sh" in msg
    # config/test.yaml's 108 atoms (4 MB): a warning, and the run goes on
    with caplog.at_level("WARNING", logger="aedistill.lammps"):
        assert not aelammps.new_lammps(n_atoms=4 * 3**3).closed
    assert "lacks the project's ML-IAP patch" in caplog.text


def test_without_the_bundled_lj_model_the_lammps_counts_as_unpatched(monkeypatch):
    modules = _fake_lammps(True)
    del modules["lammps.mliap.mliap_unified_lj"]
    _install(monkeypatch, modules)
    monkeypatch.setitem(sys.modules, "lammps.mliap.mliap_unified_lj", None)  # ImportError
    assert aelammps.has_mliap_patch(modules["lammps"]) is False


def test_the_projects_lammps_has_the_patch(lammps_module):
    """The real build of scripts/install_lammps.sh passes the probe (skipped without LAMMPS;
    under CI=true a missing LAMMPS fails, conftest.lammps_module)."""
    assert aelammps.has_mliap_patch(lammps_module) is True
