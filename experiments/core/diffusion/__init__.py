"""Diffusion maths as pure tensor functions: schedule, forward process, sampler steps, guidance."""
from experiments.core.diffusion.schedule import Schedule, extract, linear_betas, make_schedule

__all__ = ["Schedule", "extract", "linear_betas", "make_schedule"]
