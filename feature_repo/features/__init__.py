"""Spark feature builds: one job per offline feature table, each overwriting exactly its date's partition."""
