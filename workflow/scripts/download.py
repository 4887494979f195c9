"""Shim: fetch what dataset.source needs from the internet (aedistill.data.build.download_source)."""

from aedistill.data.build import download_source
from aedistill.workflow import script_logging

with script_logging(snakemake):  # noqa: F821 - injected by Snakemake
    download_source(snakemake.params.config, snakemake.params.cache_dir)  # noqa: F821
