"""One module per section of the writeup. Each defines `SECTION = Section(...)` and a `run(ctx)`.

Sections are leaves: a section imports the core library (`experiments.core`) and never another
section or the pipeline. `experiments.pipeline.registry` lists and loads them.
"""
