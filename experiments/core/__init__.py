"""The library every result depends on: configs, data, models, diffusion maths, training, evaluation.

Nothing here imports the pipeline or a section; a section's code fingerprint is the part of this
package it imports.
"""
