"""Data sources: EMT generator, ANI-Al reader on a synthetic archive, extxyz, validation, split."""

from __future__ import annotations

import io
import json
import math
import tarfile

import numpy as np
import pytest
from ase.calculators.emt import EMT
from ase.units import Hartree

from aedistill.data.ani_al import (
    git_blob_sha1_of,
    read_ani_directory,
    safe_extract,
    sha256_of,
    verify_archive,
)
from aedistill.data.canonical import load_dataset, save_dataset, validate_dataset
from aedistill.data.extxyz import read_labelled_file, write_labelled_file
from aedistill.data.split import load_split, make_split, save_split
from aedistill.errors import UserInputError
from tests.helpers import make_ani_archive


def test_emt_dataset_is_deterministic_and_sums(tiny_config, tiny_dataset):
    from aedistill.data.emt import build_emt_dataset

    again = build_emt_dataset(tiny_config)
    np.testing.assert_array_equal(again.positions, tiny_dataset.positions)
    np.testing.assert_array_equal(again.energy, tiny_dataset.energy)
    ds = tiny_dataset
    # Σε = E exactly for EMT, and padding carries nothing
    np.testing.assert_allclose(ds.atom_energies.sum(axis=1), ds.energy, atol=1e-10)
    assert np.all(ds.atom_energies[ds.species == 0] == 0)
    assert np.all(ds.forces[ds.species == 0] == 0)


def test_emt_labels_match_an_independent_emt_call(tiny_dataset):
    ds = tiny_dataset
    for i in (0, ds.n_conf - 1):
        a = ds.to_atoms(i)
        a.calc = EMT()
        assert a.get_potential_energy() == pytest.approx(ds.energy[i], abs=1e-9)
        np.testing.assert_allclose(a.get_forces(), ds.forces[i][: len(a)], atol=1e-9)


def test_emt_families_cover_liquid_and_surfaces(tiny_config, tiny_dataset):
    ds = tiny_dataset
    vol_per_atom = np.abs(np.linalg.det(ds.cell)) / ds.n_atoms
    assert (vol_per_atom > 25).sum() == tiny_config["dataset"]["generate"]["n_surface"]
    # the last 8 frames are MD: 4 at 300 K then 4 at 1500 K (liquid): hotter → larger forces
    rms = np.sqrt((ds.forces[-8:] ** 2).sum(axis=(1, 2)) / ds.n_atoms[-8:])
    assert rms[4:].mean() > 2 * rms[:4].mean()
    # the liquid cells have the configured liquid density (mass / volume, g/cm³)
    from ase.data import atomic_masses

    grams = atomic_masses[13] * ds.n_atoms[-4:] / 6.02214076e23
    density = grams / (np.abs(np.linalg.det(ds.cell[-4:])) * 1e-24)
    liquid = tiny_config["dataset"]["generate"]["liquid_density"]
    np.testing.assert_allclose(density, liquid, rtol=1e-5)  # Al mass: 26.9815 vs ASE 26.98154
    solid = grams / (np.abs(np.linalg.det(ds.cell[-8:-4])) * 1e-24)
    assert np.all(solid > 2.6)  # 300 K: the crystal (2.70 g/cm³ at a = 4.05 Å)


def test_compressed_family_holds_the_short_pairs_it_promises(tiny_config):
    """dataset.generate.n_compressed: the same configurations as without it, followed by
    cells whose closest pair lies in SHORT_PAIR_A, on EMT's repulsive wall (the pair's
    EMT forces push it apart); absent from a config, nothing is added and nothing filled."""
    from ase.neighborlist import neighbor_list

    from aedistill.config import validate_config
    from aedistill.data.generate import SHORT_PAIR_A, generate_configurations

    g = tiny_config["dataset"]["generate"]
    assert "n_compressed" not in g  # no schema default: today's datasets and params
    base = generate_configurations(g, EMT)
    more = generate_configurations({**g, "n_compressed": 6}, EMT)
    assert len(more) == len(base) + 6
    for a, b in zip(base, more, strict=False):
        np.testing.assert_array_equal(a.positions, b.positions)
    lo, hi = SHORT_PAIR_A
    for atoms in more[len(base) :]:
        i, j, d, vec = neighbor_list("ijdD", atoms, 3.0)  # vec: from atom i to atom j
        k = int(np.argmin(d))
        assert lo <= d[k] <= hi
        atoms.calc = EMT()
        f = atoms.get_forces()
        unit = vec[k] / d[k]
        assert np.dot(f[j[k]] - f[i[k]], unit) > 1.0  # eV/Å, repulsive
    with pytest.raises(UserInputError, match="n_compressed"):
        validate_config({"dataset": {"generate": {"n_compressed": -1}}})


@pytest.mark.parametrize("subset", [1.0, 0.5])
def test_compressed_cells_train_only_and_leave_the_split_alone(subset):
    """The last train_only configurations (the compressed cells) are in train, in every
    subset; valid, test and the rest of train are the split without them."""
    from aedistill.data.build import n_train_only

    plain = make_split(160, 0.8, 0.1, 0.1, seed=0, train_subset=subset)
    more = make_split(168, 0.8, 0.1, 0.1, seed=0, train_subset=subset, train_only=8)
    np.testing.assert_array_equal(more.valid, plain.valid)
    np.testing.assert_array_equal(more.test, plain.test)
    np.testing.assert_array_equal(more.train, np.concatenate([plain.train, np.arange(160, 168)]))
    assert more.n_train_full == plain.n_train_full + 8
    cfg = {"dataset": {"source": "emt", "generate": {"n_compressed": 8}}}
    assert n_train_only(cfg) == 8
    assert n_train_only({"dataset": {"source": "extxyz", "generate": {"n_compressed": 8}}}) == 0
    assert n_train_only({"dataset": {"source": "emt", "generate": {}}}) == 0
    with pytest.raises(UserInputError, match="n_compressed"):
        make_split(10, 0.8, 0.1, 0.1, seed=0, train_only=11)


def test_canonical_roundtrip(tmp_path, tiny_dataset):
    p = tmp_path / "d.h5"
    save_dataset(p, tiny_dataset)
    back = load_dataset(p)
    np.testing.assert_array_equal(back.forces, tiny_dataset.forces)
    np.testing.assert_array_equal(back.atom_energies, tiny_dataset.atom_energies)
    assert back.source == "emt"
    assert not list(tmp_path.glob(".*.tmp")), "no temporary files left behind"


def test_extxyz_roundtrip(tmp_path, tiny_dataset):
    p = tmp_path / "data.extxyz"
    write_labelled_file(p, tiny_dataset)
    back = read_labelled_file(p)
    # extxyz stores per-atom columns with 8 decimals
    np.testing.assert_allclose(back.energy, tiny_dataset.energy, rtol=1e-12)
    np.testing.assert_allclose(back.forces, tiny_dataset.forces, atol=1e-8)
    np.testing.assert_allclose(back.atom_energies, tiny_dataset.atom_energies, atol=1e-8)
    np.testing.assert_allclose(back.positions, tiny_dataset.positions, atol=1e-8)
    np.testing.assert_allclose(back.cell, tiny_dataset.cell, atol=1e-8)


def test_extxyz_missing_and_corrupt(tmp_path, tiny_dataset):
    with pytest.raises(UserInputError, match="not found"):
        read_labelled_file(tmp_path / "none.xyz")
    p = tmp_path / "data.extxyz"
    write_labelled_file(p, tiny_dataset)
    text = p.read_text()
    p.write_text(text[: len(text) // 3])  # truncated mid-frame
    with pytest.raises(UserInputError, match=str(p)):
        read_labelled_file(p)


# --- validation at the boundary -------------------------------------------------------


@pytest.mark.parametrize(
    ("corrupt", "match"),
    [
        (lambda d: d.forces.__setitem__((3, 0, 0), np.nan), "configuration 3: forces contains NaN"),
        (lambda d: d.energy.__setitem__(2, np.inf), "configuration 2: energy contains NaN"),
        (lambda d: d.species.__setitem__((1, 0), 29), r"configuration 1 has elements \[29\]"),
        (lambda d: d.cell.__setitem__(4, np.zeros((3, 3))), "configuration 4 is periodic"),
        (lambda d: d.energy.__setitem__(5, d.energy[5] - 1e6), "configuration 5: .E./atom"),
    ],
)
def test_validation_names_the_configuration(tiny_dataset, corrupt, match):
    ds = tiny_dataset.subset(np.arange(tiny_dataset.n_conf))  # a copy
    corrupt(ds)
    with pytest.raises(UserInputError, match=match):
        validate_dataset(ds, "data.h5", [13])


def test_validation_shape_mismatch_and_empty(tiny_dataset):
    ds = tiny_dataset.subset(np.arange(tiny_dataset.n_conf))
    ds.forces = ds.forces[:, :, :2]
    with pytest.raises(UserInputError, match="forces has shape"):
        validate_dataset(ds, "data.h5", [13])
    with pytest.raises(UserInputError, match="empty"):
        validate_dataset(tiny_dataset.subset(np.arange(0)), "data.h5", [13])


# --- split --------------------------------------------------------------------------------


def test_split_disjoint_complete_stable(tmp_path):
    s = make_split(103, 0.8, 0.1, 0.1, seed=3)
    parts = [s.train, s.valid, s.test]
    assert sum(len(p) for p in parts) == 103
    assert len(np.unique(np.concatenate(parts))) == 103
    assert (len(s.valid), len(s.test)) == (10, 10)
    again = make_split(103, 0.8, 0.1, 0.1, seed=3)
    for a, b in zip(parts, [again.train, again.valid, again.test], strict=True):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(make_split(103, 0.8, 0.1, 0.1, seed=4).test, s.test)
    save_split(tmp_path / "s.json", s, 103, 3)
    np.testing.assert_array_equal(load_split(tmp_path / "s.json", 103).train, s.train)
    with pytest.raises(UserInputError, match="split made for 103"):
        load_split(tmp_path / "s.json", 50)


def test_train_subsets_are_nested_with_unchanged_valid_and_test(tmp_path):
    """The training-set-size sweep: for one seed the 25 % set ⊂ the 50 % set ⊂ the full set,
    ceil(f × n_train) configurations each; valid and test are those of the full split."""
    full = make_split(103, 0.8, 0.1, 0.1, seed=3)
    n_train = len(full.train)  # 103 - 10 - 10 = 83
    assert n_train == 83 and full.train_subset == 1.0 and full.n_train_full == 83
    previous = set()
    for f, size in ((0.1, 9), (0.25, 21), (0.5, 42), (0.9, 75), (1.0, 83)):
        s = make_split(103, 0.8, 0.1, 0.1, seed=3, train_subset=f)
        assert len(s.train) == size == math.ceil(f * n_train), f
        assert previous <= set(s.train.tolist()) <= set(full.train.tolist()), f
        np.testing.assert_array_equal(s.valid, full.valid)
        np.testing.assert_array_equal(s.test, full.test)
        assert (s.train_subset, s.n_train_full) == (f, n_train)
        previous = set(s.train.tolist())
    # deterministic; another seed draws another subset
    half = make_split(103, 0.8, 0.1, 0.1, seed=3, train_subset=0.5)
    again = make_split(103, 0.8, 0.1, 0.1, seed=3, train_subset=0.5)
    np.testing.assert_array_equal(half.train, again.train)
    other = make_split(103, 0.8, 0.1, 0.1, seed=4, train_subset=0.5)
    assert not np.array_equal(other.train, half.train)
    # 0.3 × 10 is 3.0000000000000004 in floating point: still 3 configurations
    assert len(make_split(14, 0.72, 0.14, 0.14, seed=0, train_subset=0.3).train) == 3
    # at least one configuration; split.json keeps the subset and records what it came from
    assert len(make_split(103, 0.8, 0.1, 0.1, seed=3, train_subset=1e-6).train) == 1
    save_split(tmp_path / "s.json", half, 103, 3)
    saved = json.loads((tmp_path / "s.json").read_text())
    assert (saved["train_subset"], saved["n_train_full"], len(saved["train"])) == (0.5, 83, 42)
    back = load_split(tmp_path / "s.json", 103)
    np.testing.assert_array_equal(back.train, half.train)
    assert (back.train_subset, back.n_train_full) == (0.5, 83)
    with pytest.raises(UserInputError, match="train_subset"):
        make_split(103, 0.8, 0.1, 0.1, seed=3, train_subset=0)


def test_split_json_without_train_subset_is_the_full_set(tmp_path):
    """A split.json written before train_subset existed reads as the full training set."""
    (tmp_path / "s.json").write_text(
        json.dumps({"n_conf": 5, "seed": 0, "train": [0, 1, 2], "valid": [3], "test": [4]})
    )
    s = load_split(tmp_path / "s.json", 5)
    assert (s.train_subset, s.n_train_full, s.train.tolist()) == (1.0, 3, [0, 1, 2])


# --- ANI-Al on a synthetic archive with the real layout -----------------------------------


def test_ani_al_reader_converts_units(tmp_path):
    archive, truth = make_ani_archive(tmp_path, np.random.default_rng(0))
    files = safe_extract(archive, tmp_path / "out")
    assert any(f.suffix == ".h5" for f in files)
    ds = read_ani_directory(tmp_path / "out", energy_shift_per_atom=72.0)
    assert ds.n_conf == 6 and ds.species.shape[1] == 12
    e_expected = np.concatenate([e * Hartree + 72.0 * n for n, e, _ in truth])
    np.testing.assert_allclose(np.sort(ds.energy), np.sort(e_expected), rtol=1e-12)
    n8 = ds.n_atoms == 8
    np.testing.assert_allclose(
        np.sort(np.abs(ds.forces[n8][:, :8]).ravel()),
        np.sort(np.abs(truth[0][2] * Hartree).ravel()),
    )
    assert set(np.unique(ds.species)) == {0, 13}
    validate_dataset(ds, "ani", [13])  # plausible eV energies after the shift


def test_ani_al_checksums_and_unsafe_archives(tmp_path):
    archive, _ = make_ani_archive(tmp_path, np.random.default_rng(1))
    verify_archive(archive, sha256_of(archive), None)
    verify_archive(archive, None, git_blob_sha1_of(archive))
    with pytest.raises(UserInputError, match="sha256 .* does not match"):
        verify_archive(archive, "0" * 64, None)
    with pytest.raises(UserInputError, match="git blob id"):
        verify_archive(archive, None, "0" * 40)
    # git's blob id of a known content (`printf hello | git hash-object --stdin`)
    hello = tmp_path / "hello"
    hello.write_bytes(b"hello")
    assert git_blob_sha1_of(hello) == "b6fc4c620b67d95f953a5c1c1230aaab5db5a1b0"

    evil = tmp_path / "evil.tgz"
    with tarfile.open(evil, "w:gz") as tar:
        info = tarfile.TarInfo("../escape.txt")
        info.size = 3
        tar.addfile(info, io.BytesIO(b"bad"))
    with pytest.raises(UserInputError, match="outside"):
        safe_extract(evil, tmp_path / "x")
    assert not (tmp_path / "escape.txt").exists()
    (tmp_path / "corrupt.tgz").write_bytes(b"not a tar")
    with pytest.raises(UserInputError, match="not a readable tar"):
        safe_extract(tmp_path / "corrupt.tgz", tmp_path / "y")


def test_atomic_path_leaves_nothing_on_error_and_usual_permissions(tmp_path):
    from aedistill.io import atomic_path, write_json

    target = tmp_path / "out.json"
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("interrupted")
    assert not target.exists() and not list(tmp_path.iterdir())
    write_json(target, {"a": 1})
    assert target.stat().st_mode & 0o044 == 0o044  # group/other readable under umask 022


def test_downloads_in_place_are_no_rules_output(tmp_path, monkeypatch):
    """paths.pending_downloads: a non-empty archive, or a model folder with every manifest
    file, is in place (no download rule then); an empty file or a partial folder is not."""
    from aedistill import paths

    monkeypatch.chdir(tmp_path)
    cache = paths.download_cache("r")
    assert paths.pending_downloads("r", "ani-al", {}) == [cache / "Al-data.tgz"]
    cache.mkdir(parents=True)
    (cache / "Al-data.tgz").write_bytes(b"")
    assert paths.pending_downloads("r", "ani-al", {}) == [cache / "Al-data.tgz"]
    (cache / "Al-data.tgz").write_bytes(b"x")
    assert paths.pending_downloads("r", "ani-al", {}) == []
    assert paths.pending_downloads("r", "emt", {}) == []
    model = cache / "ani-al-model"
    rels = [
        line.split()[1].removeprefix("model/")
        for line in paths.ANI_AL_MODEL_MANIFEST.read_text().splitlines()
        if line.strip()
    ]
    assert len(rels) > 8
    for rel in rels[:-1]:
        (model / rel).parent.mkdir(parents=True, exist_ok=True)
        (model / rel).write_text("placed")
    assert paths.pending_downloads("r", "ani-al-model", {}) == [model]  # one file missing
    (model / rels[-1]).write_text("placed")
    assert paths.pending_downloads("r", "ani-al-model", {}) == []
    # a local copy elsewhere: nothing to download at all
    assert paths.downloads("r", "ani-al-model", {"ani_al_model": {"local_dir": "/x"}}) == []
