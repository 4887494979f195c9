"""Shim: RDF error of every model against the reference teacher (aedistill.rdf)."""

from aedistill.workflow import script_logging

smk = snakemake  # noqa: F821 - injected by Snakemake

with script_logging(smk):
    from aedistill.rdf import write_rdf_errors

    write_rdf_errors(
        smk.params.models,
        smk.input.rdfs,
        smk.params.reference,
        smk.output.table,
        smk.params.temperature_K,
    )
