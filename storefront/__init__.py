"""Storefront ML's command line: one ``storefront`` command whose subcommands are the stages."""
