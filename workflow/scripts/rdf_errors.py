"""Shim: RDF error of every model against the reference teacher (aedistill.rdf)."""

from aedistill.workflow import script_logging

with script_logging(snakemake):
    from aedistill.rdf import write_rdf_errors

    write_rdf_errors(
        snakemake.params.models,
        snakemake.input.rdfs,
        snakemake.params.references,
        snakemake.input.references,
        snakemake.output.table,
        snakemake.params.temperature_K,
    )
