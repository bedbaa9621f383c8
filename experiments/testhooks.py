"""Test hooks: let a test stop a run at a chosen moment so it can SIGKILL it exactly there.

`FUNDIFF_TEST_PAUSE_AT=<point>` makes the run print one line to stderr and sleep when it reaches
<point>; the reliability tests kill it then. Points: `training` (after an epoch's checkpoint, with
epochs still to go), `writing` (a section's results complete in the temporary folder, before the
swap). Unset (always, outside tests), the hooks cost one environment lookup.
"""
from __future__ import annotations

import os
import sys
import time

ENV_VAR = "FUNDIFF_TEST_PAUSE_AT"
POINTS = ("training", "writing")


def pause_at(point: str, detail: str = "") -> None:
    """Sleep (up to 10 minutes) if the test asked to pause at `point`; a no-op otherwise."""
    if os.environ.get(ENV_VAR) != point:
        return
    print(f"test hook: paused at {point} {detail}".rstrip(), file=sys.stderr, flush=True)
    time.sleep(600)
