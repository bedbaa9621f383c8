"""Every section of the writeup, in writeup order; importing this package registers them.

A module listed here but not (yet) present is skipped; an import error in a present one is raised.
"""
import importlib
import importlib.util

ORDER = [
    # Part 1
    "noising", "single_step_denoiser", "out_of_distribution", "pure_noise",
    # Part 2
    "time_conditioned", "class_conditioned",
    # Evaluation
    "classifier", "evaluation", "better_recipe",
    # Part 3
    "forward_process", "classical_vs_learned", "iterative_denoising", "cfg", "sdedit", "inpainting",
    "visual_anagrams", "hybrid_images",
    # Beyond the reference
    "peer", "ablations", "fast_sampling",
]

for _name in ORDER:
    if importlib.util.find_spec(f"{__name__}.{_name}") is not None:
        importlib.import_module(f"{__name__}.{_name}")
