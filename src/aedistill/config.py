"""Load and validate the YAML config against ``workflow/schemas/config.schema.yaml``.

The Snakefile checks its config with :func:`exit_on_bad_config` (the same one-line messages
as ``aedistill check-config``) and then Snakemake's ``validate()`` with the same schema; this
module gives the package, the CLI and the tests that behaviour (defaults filled, unknown keys
refused) without Snakemake, plus small typed accessors used by the rules.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from aedistill.arch import Arch
from aedistill.engine import check_engine_config
from aedistill.errors import UserInputError
from aedistill.roles import grid_roles

REPO_ROOT = Path(__file__).resolve().parents[2]
SCHEMA_PATH = REPO_ROOT / "workflow" / "schemas" / "config.schema.yaml"


def load_schema() -> dict[str, Any]:
    return yaml.safe_load(SCHEMA_PATH.read_text())


def _extend_with_default(validator_class):
    """jsonschema validator that fills ``default`` values (as Snakemake's validate does)."""
    validate_properties = validator_class.VALIDATORS["properties"]

    def set_defaults(validator, properties, instance, schema):
        if isinstance(instance, dict):
            for prop, sub in properties.items():
                if "default" in sub and prop not in instance:
                    import copy

                    instance[prop] = copy.deepcopy(sub["default"])
        yield from validate_properties(validator, properties, instance, schema)

    return jsonschema.validators.extend(validator_class, {"properties": set_defaults})


_Validator = _extend_with_default(jsonschema.Draft202012Validator)


def validate_with_schema(
    instance: dict[str, Any], schema: Mapping[str, Any], where: str = "config"
) -> dict[str, Any]:
    """Fill ``schema``'s defaults into ``instance`` in place and check it against ``schema``;
    raise :class:`UserInputError` naming the first offending key."""
    validator = _Validator(schema)
    # two passes: the first fills defaults of nested objects created as defaults themselves
    for _ in range(2):
        errors = sorted(validator.iter_errors(instance), key=lambda e: list(e.absolute_path))
        if errors:
            err = errors[0]
            key = ".".join(str(p) for p in err.absolute_path) or "<top level>"
            raise UserInputError(f"{where}: key '{key}': {err.message}")
    return instance


def validate_config(config: dict[str, Any], where: str = "config") -> dict[str, Any]:
    """Fill defaults in place and check ``config``; raise :class:`UserInputError` naming the key."""
    validate_with_schema(config, load_schema(), where)
    check_semantics(config, where)
    return config


def check_semantics(config: Mapping[str, Any], where: str = "config") -> None:
    """Cross-field checks a JSON schema cannot express."""
    m = config["model"]
    if not m["cutoff_soft_min"] < m["cutoff_soft_max"] <= m["cutoff_hard_max"]:
        raise UserInputError(
            f"{where}: key 'model': cutoffs must satisfy soft_min < soft_max <= hard_max, got "
            f"{m['cutoff_soft_min']}, {m['cutoff_soft_max']}, {m['cutoff_hard_max']}"
        )
    s = config["dataset"]["split"]
    total = s["train"] + s["valid"] + s["test"]
    if abs(total - 1.0) > 1e-6:
        raise UserInputError(f"{where}: key 'dataset.split': fractions sum to {total}, not 1")
    if config["dataset"]["source"] == "extxyz" and not config["dataset"]["path"]:
        raise UserInputError(f"{where}: key 'dataset.path' is required for source extxyz")
    target = config["labels"]["target"]
    if target != "mean" and not (
        isinstance(target, int) and 0 <= target < config["teachers"]["n_members"]
    ):
        raise UserInputError(
            f"{where}: key 'labels.target': 'mean' or a member index 0..{config['teachers']['n_members'] - 1}, got {target!r}"
        )
    unknown = [r for r in config["grid"]["roles"] if r not in grid_roles()]
    if unknown:
        raise UserInputError(
            f"{where}: key 'grid.roles': {unknown[0]!r} is not one of {', '.join(grid_roles())}"
        )
    sched = [row["epoch"] for row in config["born_again"]["schedule"]]
    if sched != sorted(sched) or sched[0] != 1:
        raise UserInputError(
            f"{where}: key 'born_again.schedule': epochs must start at 1 and increase, got {sched}"
        )
    check_engine_config(config, where)


def exit_on_bad_config(
    config: dict[str, Any], configfiles: Sequence[str | os.PathLike[str]]
) -> None:
    """The Snakefile's check: validate ``config`` (read from ``configfiles``) as
    :func:`load_config` does; on a user error print ``error: <one line>`` to stderr -- the
    line ``aedistill check-config FILE`` prints -- and exit 1 instead of Snakemake's
    traceback or jsonschema dump."""
    where = ", ".join(str(f) for f in configfiles) or "config"
    try:
        validate_config(config, where=where)
    except UserInputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(1)


def read_config_file(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The YAML mapping of a config file as written (no defaults filled, not validated)."""
    p = Path(path)
    if not p.exists():
        raise UserInputError(f"{p}: config file not found")
    try:
        config = yaml.safe_load(p.read_text()) or {}
    except yaml.YAMLError as exc:
        raise UserInputError(f"{p}: not valid YAML ({exc})") from exc
    if not isinstance(config, dict):
        raise UserInputError(f"{p}: expected a mapping of config keys, got {type(config).__name__}")
    return config


def load_config(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a YAML config file, fill defaults and validate it."""
    return validate_config(read_config_file(path), where=str(path))


def teacher_arch(config: Mapping[str, Any]) -> Arch:
    return Arch.from_dict(config["teachers"]["arch"])


def grid_archs(config: Mapping[str, Any]) -> list[Arch]:
    return [Arch.from_dict(a) for a in config["grid"]["architectures"]]
