"""Each rule's params (aedistill.settings): what the job reads, the same plan as the whole
config gives, and nothing that another job reads (what an edit reruns: test_rerun.py)."""

from __future__ import annotations

import pytest

from aedistill import settings
from aedistill.arch import Arch
from aedistill.config import validate_config
from aedistill.models import ModelSpec
from aedistill.roles import plan_role

ROLES = [
    "teacher",
    "student",
    "control",
    "matched_control",
    "oracle",
    "augmented",
    "student_wA2.5",
    "born_again",
]


@pytest.fixture
def config():
    return validate_config(
        {"labels": {"teacher_split_seed": 3}, "training": {"max_wall_minutes": 90}}
    )


@pytest.mark.parametrize("role", ROLES)
def test_a_role_s_settings_give_the_plan_and_model_of_the_whole_config(config, role):
    s = settings.train_settings(config, [role])
    assert plan_role(s, role) == plan_role(config, role)
    arch = Arch.parse("L1-W8-S4")
    assert ModelSpec.from_config(s, arch) == ModelSpec.from_config(config, arch)
    assert "stack_grid" not in s["training"] and "max_wall_minutes" not in s["training"]
    for key in ("energy", "w_L2", "w_R"):
        assert s["loss"][key] == config["loss"][key]


def test_settings_hold_only_what_the_role_reads(config):
    def loss_sections(*roles):
        return {k for k, v in settings.train_settings(config, roles)["loss"].items() if isinstance(v, dict)}  # fmt: skip

    assert loss_sections("teacher") == {"teacher"}
    assert loss_sections("control") == {"control"}
    assert loss_sections("student") == {"student"}
    assert loss_sections("born_again") == set()
    assert loss_sections("student", "control") == {"student", "control"}  # a grid stack
    wa = settings.train_settings(config, ["student_wA2.5"])["loss"]["student"]
    assert "w_A" not in wa  # its w_A is in its name
    matched = settings.train_settings(config, ["matched_control"])["loss"]
    assert matched["student"] == {"w_F": config["loss"]["student"]["w_F"]}
    teacher = settings.train_settings(config, ["teacher"])
    assert teacher["labels"] == {"target": None, "teacher_split_seed": 3}
    assert "teacher_max_epochs" in teacher["training"]
    control = settings.train_settings(config, ["control"])
    assert control["labels"] == {"target": None} and "split" not in control["dataset"]
    assert "teacher_max_epochs" not in control["training"]
    assert settings.train_settings(config, ["student"])["labels"] == {"target": "mean"}
    assert "max_epochs" not in settings.train_settings(config, ["born_again"])["training"]


@pytest.mark.parametrize("minutes,expected", [(90, 90.0), (0.5, 0.5), (None, None)])
def test_the_wall_limit_travels_as_a_resource(config, minutes, expected):
    config["training"]["max_wall_minutes"] = minutes
    resource = settings.wall_limit_resource(config)
    assert isinstance(resource, str)
    job = settings.with_wall_limit(settings.train_settings(config, ["control"]), resource)
    assert job["training"]["max_wall_minutes"] == expected


def test_timing_memory_and_rdf_settings(config):
    timing = settings.timing_settings(config)["efficiency"]
    memory = settings.memory_settings(config)["efficiency"]
    assert "blocks" in timing and "blocks" not in memory
    assert "memory_probe_supercells" in memory and "memory_probe_supercells" not in timing
    assert "seeds" not in timing and "seeds" not in memory
    rdf = settings.rdf_settings(config)
    assert "production_steps" in rdf and not {"seeds", "enabled", "implementation"} & set(rdf)
