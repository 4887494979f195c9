"""Schema: defaults fill, unknown keys and bad values fail naming the key."""

from __future__ import annotations

import copy

import pytest
import yaml

from aedistill.config import load_config, load_schema, validate_config
from aedistill.errors import UserInputError


def test_defaults_fill_the_paper_values():
    c = validate_config({})
    assert c["loss"]["student"] == {"w_E": 1.0, "w_F": 30.0, "w_A": 100.0}
    assert c["loss"]["control"] == {"w_E": 1.0, "w_F": 10.0}
    assert (c["loss"]["w_L2"], c["loss"]["w_R"]) == (1e-6, 0.01)
    assert c["teachers"]["arch"] == {"atom_layers": 4, "width": 128, "sensitivities": 40}
    assert c["model"]["cutoff_hard_max"] == 7.5
    assert [r["epoch"] for r in c["born_again"]["schedule"]] == [1, 200, 250, 300, 350, 400]
    assert c["dataset"]["generate"]["n_md"] == 80  # nested defaults are filled too


@pytest.mark.parametrize(
    ("config", "key"),
    [
        ({"dataset": {"sourc": "emt"}}, "dataset"),
        ({"trainig": {}}, "<top level>"),
        (
            {"grid": {"architectures": [{"atom_layers": 1, "width": 8, "sensitivites": 4}]}},
            "grid.architectures.0",
        ),
    ],
)
def test_unknown_key_fails_naming_it(config, key):
    with pytest.raises(UserInputError, match=rf"key '{key}'.*unexpected"):
        validate_config(config)


@pytest.mark.parametrize(
    ("config", "match"),
    [
        (
            {"grid": {"architectures": [{"atom_layers": 1, "width": -8, "sensitivities": 4}]}},
            "grid.architectures.0.width",
        ),
        ({"grid": {"seeds": []}}, "grid.seeds"),
        ({"model": {"cutoff_soft_min": 5.0, "cutoff_soft_max": 4.0}}, "cutoffs must satisfy"),
        ({"dataset": {"split": {"train": 0.5, "valid": 0.1, "test": 0.1}}}, "sum to"),
        ({"dataset": {"source": "extxyz"}}, "dataset.path"),
        ({"training": {"batch_size": "big"}}, "training.batch_size"),
        ({"labels": {"target": 7}}, "labels.target"),
    ],
)
def test_bad_values_fail_naming_the_key(config, match):
    with pytest.raises(UserInputError, match=match):
        validate_config(copy.deepcopy(config))


def test_every_schema_key_has_a_description_and_closed_objects():
    missing = []

    def walk(node, path):
        if not isinstance(node, dict):
            return
        if node.get("type") == "object" and "properties" in node:
            assert node.get("additionalProperties") is False, path
        for name, sub in node.get("properties", {}).items():
            if "description" not in sub:
                missing.append(f"{path}.{name}")
            walk(sub, f"{path}.{name}")
            walk(sub.get("items", {}), f"{path}.{name}[]")

    schema = load_schema()
    walk(schema, "")
    for name, sub in schema["$defs"].items():
        walk(sub, f"$defs.{name}")
    assert not missing, f"keys without description: {missing}"


def test_shipped_configs_validate(repo):
    for name in ("config.yaml", "test.yaml", "paper.yaml"):
        c = load_config(repo / "config" / name)
        assert c["run_name"] in ("default", "test", "paper")


def test_missing_and_broken_config_file(tmp_path):
    with pytest.raises(UserInputError, match="not found"):
        load_config(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("dataset: [unclosed\n")
    with pytest.raises(UserInputError, match="not valid YAML"):
        load_config(bad)
    ok = tmp_path / "ok.yaml"
    ok.write_text(yaml.safe_dump({"run_name": "x"}))
    assert load_config(ok)["run_name"] == "x"
