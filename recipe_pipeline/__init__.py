"""The ``recipe-pipeline`` command line: one entry point for every component."""
