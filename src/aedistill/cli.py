"""``aedistill`` command line: small entry points that do not need Snakemake.

``aedistill check-config FILE``   validate a config (defaults filled) and print it; for a
study config, the study and its runs
``aedistill dataset CONFIG OUTDIR``  build the canonical dataset and split without Snakemake
``aedistill study RUN_DIR... --out DIR``  compare finished runs on different references or
training subsets (criterion, paired and verdict tables, figures; the Snakemake target `study`
builds the runs too)
``aedistill protocol STUDY_CONFIG``  the paper-protocol tables (energy share, leak contrast)
of a study's finished runs, into results/<study>/tables/ (docs/study.md part 4)
``aedistill gpu-check``  preflight of a GPU node: tiny training, MD timing and max-atoms
search on CUDA (at most a few minutes); one line and exit 1 without a GPU
``aedistill profile --partition P [--account A] ...``  a site SLURM profile from the shipped
one, keeping its per-rule GPUs, wall times and memory
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import yaml

from aedistill.errors import UserInputError


def build_parser() -> argparse.ArgumentParser:
    """The ``aedistill`` argument parser (its subcommands and their options)."""
    parser = argparse.ArgumentParser(prog="aedistill", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("check-config", help="validate a config file and print it with defaults")
    p.add_argument("config")
    p = sub.add_parser("dataset", help="build dataset.h5, split.json, summary.json into OUTDIR")
    p.add_argument("config")
    p.add_argument("outdir")
    p = sub.add_parser("study", help="compare finished runs that differ in the reference data")
    p.add_argument("runs", nargs="+", help="results/<run_name> directories")
    p.add_argument("--out", required=True, help="output directory")
    p = sub.add_parser("protocol", help="energy share and leak contrast of a study's runs")
    p.add_argument("config", help="the study config, e.g. config/study/paper-protocol.yaml")
    p = sub.add_parser("gpu-check", help="preflight of a GPU node (tiny train, MD, memory on CUDA)")
    p.add_argument(
        "--memory-gib",
        type=float,
        default=0.25,
        help="GPU memory the max-atoms search may use (GiB; default 0.25)",
    )
    p.add_argument(
        "--md-supercell",
        type=int,
        default=10,
        help="MD cell: 4 n^3 fcc atoms (default 10: 4,000 atoms)",
    )
    p.add_argument("--workdir", help="keep the check's files here (default: a temporary dir)")
    p = sub.add_parser(
        "profile", help="write a site SLURM profile (partition, account, GPUs) from a shipped one"
    )
    p.add_argument("--out", default="profiles/site", help="profile directory to write")
    p.add_argument("--from", dest="source", default="profiles/slurm-paper", help="shipped profile")
    p.add_argument("--partition", help="SLURM partition of every job (sbatch -p)")
    p.add_argument("--account", help="SLURM account of every job (sbatch -A)")
    p.add_argument("--gpu-partition", help="partition of the GPU jobs (default: --partition)")
    p.add_argument("--gpu-model", help='GPU model of the GPU jobs, e.g. "a100" (--gpus=a100:1)')
    p.add_argument("--gpus", type=int, help="GPUs per training job (default: the profile's 1)")
    p.add_argument("--force", action="store_true", help="replace an existing profile")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    level = logging.WARNING if args.cmd == "gpu-check" else logging.INFO  # gpu-check: its lines
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    try:
        return run(args)
    except UserInputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


def run(args: argparse.Namespace) -> int:
    from aedistill.config import load_config

    if args.cmd == "study":
        from aedistill.study_figures import run_study

        run_study(args.runs, args.out)
        return 0

    if args.cmd == "protocol":
        from aedistill.config import read_config_file
        from aedistill.paths import run_dir
        from aedistill.protocol import study_runs, write_protocol_tables
        from aedistill.studyplan import plan_study

        study = plan_study(read_config_file(args.config), where=str(args.config))
        for name, path in write_protocol_tables(
            study_runs(study.runs), run_dir(study.name) / "tables"
        ).items():
            print(f"{name}: {path}")
        return 0

    if args.cmd == "gpu-check":
        from aedistill.gpucheck import report, run_checks

        workdir = Path(args.workdir) if args.workdir else None
        lines, status = report(run_checks(workdir, args.memory_gib, args.md_supercell))
        print("\n".join(lines), flush=True)
        return status

    if args.cmd == "profile":
        from aedistill.profile import write_site_profile

        dest = write_site_profile(
            args.source,
            args.out,
            force=args.force,
            partition=args.partition,
            account=args.account,
            gpu_partition=args.gpu_partition,
            gpu_model=args.gpu_model,
            gpus=args.gpus,
        )
        print(f"wrote {dest}: snakemake --profile {dest.parent} --configfile config/paper.yaml")
        return 0

    if args.cmd == "check-config":
        from aedistill.config import read_config_file

        raw = read_config_file(args.config)
        if "study" in raw:  # a study: its keys with defaults, then its runs
            from aedistill.studyplan import plan_study

            study = plan_study(raw, where=str(args.config))
            print(yaml.safe_dump(raw, sort_keys=False))
            for run in study.runs:
                print(
                    f"# run {run.name}: reference {run.reference}, train_subset {run.train_subset:g}"
                )
            return 0
        print(yaml.safe_dump(load_config(args.config), sort_keys=False))
        return 0
    config = load_config(args.config)
    from aedistill.data.build import run as build

    out = Path(args.outdir)
    build(config, out / "dataset.h5", out / "split.json", out / "summary.json", out / "cache")
    return 0


if __name__ == "__main__":
    sys.exit(main())
