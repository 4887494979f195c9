# aedistill: teacher-student (atomic-energy) distillation of HIPNN potentials.
# Default target: the whole chain for config/config.yaml. See README.md for named targets.

from snakemake.utils import min_version, validate

min_version("9.0")


# A --configfile given on the command line replaces config/config.yaml (it is not merged
# on top of it): each config file is complete with the schema's defaults.
if not workflow.overwrite_configfiles:

    configfile: "config/config.yaml"


validate(config, "workflow/schemas/config.schema.yaml")


include: "workflow/rules/common.smk"


wildcard_constraints:
    role=paths.ROLE_PATTERN,
    arch=paths.ARCH_PATTERN,
    seed=r"[0-9]+",


include: "workflow/rules/data.smk"
include: "workflow/rules/teacher.smk"
include: "workflow/rules/labels.smk"
include: "workflow/rules/distill.smk"
include: "workflow/rules/efficiency.smk"
include: "workflow/rules/lammps.smk"
include: "workflow/rules/figures.smk"


rule all:
    default_target: True
    input:
        all_targets(),
