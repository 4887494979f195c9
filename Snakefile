# aedistill: teacher-student (atomic-energy) distillation of HIPNN potentials.
# Default target: the whole chain for config/config.yaml. See README.md for named targets.
# A config with a top-level `study` key (config/study.yaml) is a study instead: the target
# `study` runs every reference × training subset and compares them (workflow/rules/study.smk).

import sys
from pathlib import Path

from snakemake.utils import min_version, validate

min_version("9.0")

sys.path.insert(0, str(Path(workflow.basedir) / "src"))

from aedistill.config import exit_on_bad_config
from aedistill.studyplan import exit_on_bad_study

# A --configfile given on the command line replaces config/config.yaml (it is not merged
# on top of it): each config file is complete with the schema's defaults.
if not workflow.overwrite_configfiles:

    configfile: "config/config.yaml"


if "study" in config:
    # a study (workflow/schemas/study.schema.yaml): one nested run per reference × training
    # subset, then the tables across them; the same one-line messages for a bad study
    STUDY = exit_on_bad_study(config, workflow.overwrite_configfiles)
    validate(config, "workflow/schemas/study.schema.yaml")

    include: "workflow/rules/study.smk"

else:
    # the one-line message of `aedistill check-config FILE` for a bad config (then Snakemake's
    # own validate() passes: the config is complete and valid)
    exit_on_bad_config(config, workflow.overwrite_configfiles or ["config/config.yaml"])
    validate(config, "workflow/schemas/config.schema.yaml")

    include: "workflow/rules/common.smk"

    wildcard_constraints:
        role=roles.role_pattern(),
        arch=paths.ARCH_PATTERN,
        seed=r"[0-9]+",

    include: "workflow/rules/data.smk"
    include: "workflow/rules/teacher.smk"
    include: "workflow/rules/labels.smk"
    include: "workflow/rules/augment.smk"
    include: "workflow/rules/distill.smk"
    include: "workflow/rules/efficiency.smk"
    include: "workflow/rules/lammps.smk"
    include: "workflow/rules/figures.smk"

    rule all:
        default_target: True
        input:
            all_targets(),

    rule report:
        input:
            all_targets(),
        output:
            paths.run_dir(RUN) / "report.html",
        log:
            log_of(paths.run_dir(RUN) / "report.html"),
        # handed over to a second Snakemake, run locally by the calling Snakemake's own
        # interpreter (params.python): no conda env, which that interpreter would not use
        handover: True
        threads: 1
        resources:
            mem_mb=2000,
            runtime=15,
        params:
            configfiles=" ".join(
                str(f)
                for f in (workflow.overwrite_configfiles or ["config/config.yaml"])
            ),
            python=sys.executable,
        message:
            "Snakemake HTML report of run {RUN} (every figure and table with its caption)"
        shell:
            "{params.python} -m snakemake --nolock --report {output} "
            "--configfile {params.configfiles} > {log} 2>&1"
