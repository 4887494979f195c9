"""``aedistill`` command line: small entry points that do not need Snakemake.

``aedistill check-config FILE``   validate a config (defaults filled) and print it; for a
study config, the study and its runs
``aedistill dataset CONFIG OUTDIR``  build the canonical dataset and split without Snakemake
``aedistill study RUN_DIR... --out DIR``  compare finished runs on different references or
training subsets (criterion, paired and verdict tables, figures; the Snakemake target `study`
builds the runs too)
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import yaml

from aedistill.errors import UserInputError


def main(argv: list[str] | None = None) -> int:
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
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
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
