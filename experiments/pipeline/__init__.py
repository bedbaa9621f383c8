"""Orchestration: the section registry, runs, results on disk, provenance, staleness and the summary.

Nothing here changes a number or a figure, so no section's fingerprint covers it.
"""
