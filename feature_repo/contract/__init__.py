"""The raw data contract: schemas, conformance checks, the lake layout and the export loader."""
