"""Datasets, prompts and the run directory's files."""
