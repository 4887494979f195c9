"""``aedistill profile``: a site SLURM profile from a shipped one, keeping its per-rule GPUs.

Snakemake replaces a profile's whole ``set-resources`` (and ``default-resources``) block
with the one given on the command line: ``--set-resources train_teacher:slurm_partition=gpu``
submits ``train_teacher`` without ``--gpus`` and ``timing`` with the rules' own 60 min and
4 GB (seen on recorded ``sbatch`` calls, snakemake 9.27 + SLURM plugin 2.8). A site's
partition, account and GPU settings therefore go into a profile of its own, written here
from ``profiles/slurm-paper``: the same keys, ``default-resources`` with the partition and
account, and each GPU rule's block with the GPU partition and model added to (never
replacing) its ``gpu``, ``runtime`` and ``mem_mb``.

The GPU rules are those of :data:`GPU_RULES`: the training rules (``gpu: 1`` in the
profile) and ``timing``/``memory``, which ask for their GPU themselves when
``efficiency.device`` is ``cuda`` (config/paper.yaml).
"""

from __future__ import annotations

import os
import shlex
from pathlib import Path
from typing import Any

import yaml

from aedistill.errors import UserInputError

#: rules that run on CUDA with config/paper.yaml (training: training.device; timing and
#: memory: efficiency.device); they get the GPU partition and model
GPU_RULES = ("train_teacher", "train_model", "timing", "memory")


def site_profile(
    base: dict[str, Any],
    partition: str | None = None,
    account: str | None = None,
    gpu_partition: str | None = None,
    gpu_model: str | None = None,
    gpus: int | None = None,
) -> dict[str, Any]:
    """``base`` (a profile's YAML mapping) with the site's settings added.

    ``partition`` and ``account`` go to ``default-resources`` (every job); ``gpu_partition``
    (default: ``partition``) and ``gpu_model`` to each :data:`GPU_RULES` block of
    ``set-resources``; ``gpus`` replaces the training rules' GPU count. Every other value of
    ``base`` is kept.
    """
    out = dict(base)
    defaults = dict(out.get("default-resources") or {})
    if partition:
        defaults["slurm_partition"] = partition
    if account:
        defaults["slurm_account"] = account
    out["default-resources"] = defaults
    per_rule = {rule: dict(res or {}) for rule, res in (out.get("set-resources") or {}).items()}
    for rule in GPU_RULES:
        res = dict(per_rule.get(rule, {}))
        if gpu_partition or partition:
            res["slurm_partition"] = gpu_partition or partition
        if gpu_model:
            res["gpu_model"] = gpu_model
        if gpus is not None and "gpu" in res:
            res["gpu"] = int(gpus)
        if res:
            per_rule[rule] = res
    out["set-resources"] = per_rule
    return out


def write_site_profile(
    source: str | os.PathLike[str], out: str | os.PathLike[str], force: bool = False, **site: Any
) -> Path:
    """Write ``out/config.yaml``: :func:`site_profile` of ``source/config.yaml`` (a profile
    directory). Refuses to overwrite an existing file unless ``force``."""
    src = Path(source) / "config.yaml"
    if not src.is_file():
        raise UserInputError(f"{src}: no such profile (expected a profile directory)")
    base = yaml.safe_load(src.read_text())
    if not isinstance(base, dict):
        raise UserInputError(f"{src}: not a YAML mapping")
    dest = Path(out) / "config.yaml"
    if dest.exists() and not force:
        raise UserInputError(f"{dest} exists (use --force to replace it)")
    for key, value in site.items():
        if isinstance(value, str) and (not value.strip() or any(c.isspace() for c in value)):
            raise UserInputError(f"--{key.replace('_', '-')}: {value!r} is not a SLURM name")
    if site.get("gpus") is not None and int(site["gpus"]) < 1:
        raise UserInputError(f"--gpus: {site['gpus']} is not a GPU count >= 1")
    profile = site_profile(base, **site)
    args = " ".join(
        f"--{k.replace('_', '-')} {shlex.quote(str(v))}" for k, v in site.items() if v is not None
    )
    header = (
        f"# Site profile written by `aedistill profile {args}` from {src}:\n"
        "# its settings plus this site's partition, account and GPUs (the GPU rules keep their\n"
        "# gpu, runtime and mem_mb). Read the source profile's comments; regenerate rather than\n"
        "# edit when the shipped profile changes.\n"
    )
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_suffix(".yaml.tmp")
    tmp.write_text(header + yaml.safe_dump(profile, sort_keys=False))
    tmp.replace(dest)
    return dest
