"""Each rule's params: the settings its job reads, and nothing else (torch-free: the rules
import this module while Snakemake builds the DAG).

Snakemake reruns a job whose recorded params changed, so a job that saw a whole config
section would rerun for every edit of that section: a student-only loss weight would
retrain the teachers. Each function here returns the part of the validated config that
decides one job's outputs, as plain dicts and lists (what Snakemake records and compares;
it ignores params it cannot represent, such as dataclass instances), with their keys
sorted (:func:`canonical`: Snakemake compares the params' ``repr``, so the order of the keys
in a config file must not matter). A training job's
settings keep the shape of the config (``settings["loss"]["student"]["w_A"]``), so
:func:`aedistill.training.run` and :func:`aedistill.training.run_stack` read them as a config.

What a job reads but what does not decide its outputs is not in its settings:

* ``training.max_wall_minutes`` (a killed or wall-limited job resumes from its checkpoint
  to the same model) travels as the resource ``max_wall_minutes`` (a string, ``"None"`` for
  no limit) and is merged back by :func:`with_wall_limit`;
* ``training.stack_grid`` only chooses which rule trains the grid (read by the rules);
* ``lammps.seeds``, ``efficiency.seeds``: which models get a job (read by the rules).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from aedistill.roles import role_spec


def canonical(value: Any) -> Any:
    """``value`` with every mapping's keys sorted, recursively (lists keep their order): the
    same settings give the same ``repr`` however the config file orders its keys."""
    if isinstance(value, Mapping):
        return {k: canonical(value[k]) for k in sorted(value)}
    if isinstance(value, list | tuple):
        return [canonical(v) for v in value]
    return value


#: training keys that are not settings of any model (see the module docstring)
_NOT_MODEL_TRAINING_KEYS = ("max_wall_minutes", "stack_grid")
#: loss keys every role reads (regularisation and the energy term's scale)
_SHARED_LOSS_KEYS = ("w_L2", "w_R", "energy")


def train_settings(config: Mapping[str, Any], roles: Iterable[str]) -> dict[str, Any]:
    """What the training jobs of ``roles`` read (one role per model, several for a stack):
    ``run_name``, ``dataset.species`` (and ``dataset.split`` for the teacher, whose split
    ``labels.teacher_split_seed`` may redraw), ``model``, ``training`` (but its
    :data:`_NOT_MODEL_TRAINING_KEYS`; ``teacher_max_epochs`` for teachers only;
    ``max_epochs`` not for Born-Again alone), the ``loss`` keys the roles' weights read
    (:attr:`aedistill.roles.RoleSpec.loss`) with ``w_L2``, ``w_R`` and ``energy``,
    ``labels.target`` (None where no role learns teacher labels), and ``born_again`` for
    Born-Again students."""
    roles = list(dict.fromkeys(roles))
    specs = [role_spec(r) for r in roles]
    dataset: dict[str, Any] = {"species": config["dataset"]["species"]}
    training = {k: v for k, v in config["training"].items() if k not in _NOT_MODEL_TRAINING_KEYS}
    labels: dict[str, Any] = {
        "target": (
            config["labels"]["target"] if any(s.labels == "teacher" for s in specs) else None
        )
    }
    if "teacher" in roles:
        dataset["split"] = config["dataset"]["split"]
        labels["teacher_split_seed"] = config["labels"].get("teacher_split_seed")
    else:
        training.pop("teacher_max_epochs", None)
    if roles == ["born_again"]:  # its epochs: born_again.max_epochs or its schedule
        training.pop("max_epochs", None)
    loss: dict[str, Any] = {k: config["loss"][k] for k in _SHARED_LOSS_KEYS if k in config["loss"]}
    for spec in specs:
        for section, keys in spec.loss.items():
            loss.setdefault(section, {}).update({k: config["loss"][section][k] for k in keys})
    out = {
        "run_name": config["run_name"],
        "dataset": dataset,
        "model": config["model"],
        "training": training,
        "loss": loss,
        "labels": labels,
    }
    if "born_again" in roles:
        out["born_again"] = config["born_again"]
    return canonical(out)


def wall_limit_resource(config: Mapping[str, Any]) -> str:
    """``training.max_wall_minutes`` as the training rules' resource ``max_wall_minutes``
    (a string: Snakemake resources are integers or strings; ``"None"``: no limit)."""
    return str(config["training"]["max_wall_minutes"])


def with_wall_limit(settings: Mapping[str, Any], max_wall_minutes: str) -> dict[str, Any]:
    """A training job's config: its ``settings`` with ``training.max_wall_minutes`` from the
    job's resource (:func:`wall_limit_resource`)."""
    limit = None if str(max_wall_minutes) == "None" else float(max_wall_minutes)
    return {**settings, "training": {**settings["training"], "max_wall_minutes": limit}}


def _efficiency(config: Mapping[str, Any], keys: Iterable[str]) -> dict[str, Any]:
    e = config["efficiency"]
    return canonical(
        {
            "efficiency": {k: e[k] for k in keys if k in e},
            "dataset": {
                "generate": {"lattice_constant": config["dataset"]["generate"]["lattice_constant"]}
            },
        }
    )


def timing_settings(config: Mapping[str, Any]) -> dict[str, Any]:
    """What a timing job reads (:func:`aedistill.md.time_model`, :class:`TimingSettings`):
    the NVE run's sizes and steps, its calculator and device, the lattice constant."""
    keys = ("supercell", "temperature", "timestep", "warmup_steps", "steps_per_block")
    keys += ("blocks", "velocity_seed", "device", "calculator", "skin")
    return _efficiency(config, keys)


def memory_settings(config: Mapping[str, Any]) -> dict[str, Any]:
    """What a memory probe reads (:func:`aedistill.memory.probe_memory`)."""
    keys = ("device", "calculator", "skin", "memory_probe_supercells", "memory_budget_gb")
    return _efficiency(config, keys)


#: lammps keys that are not settings of an RDF run (which models run; the export's)
_NOT_RDF_KEYS = ("enabled", "seeds", "implementation", "ranks")


def rdf_settings(config: Mapping[str, Any]) -> dict[str, Any]:
    """What one LAMMPS g(r) run reads (:func:`aedistill.lammps.run_rdf`; its restart
    fingerprint hashes exactly these): the ``lammps`` section without
    :data:`_NOT_RDF_KEYS`."""
    return canonical({k: v for k, v in config["lammps"].items() if k not in _NOT_RDF_KEYS})
