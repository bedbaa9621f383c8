#!/usr/bin/env bash
# Run a long job on the GPU machine across several commands, each of which may run at most 10 minutes.
#   scripts/bg.sh start 'COMMAND'   start COMMAND in its own process session (it survives the call)
#   scripts/bg.sh wait [SECONDS]    wait until it ends or SECONDS pass (default 570), then show its log
# The job logs to .work/bg.log (git-ignored, so the device tool keeps it between calls) and writes
# "BG_DONE rc=N" there when it ends. Issue the next `wait` right away: the machine goes back after
# 30 s idle. Jobs must write results under .work/, never into tracked files (re-copied every call).
set -uo pipefail
log=.work/bg.log
case "${1:-}" in
  start)
    mkdir -p .work
    setsid nohup bash -c "$2; echo \"BG_DONE rc=\$?\"" > "$log" 2>&1 < /dev/null &
    echo "started (log $log)";;
  wait)
    end=$((SECONDS + ${2:-570}))
    while [ $SECONDS -lt $end ] && ! grep -q '^BG_DONE' "$log" 2>/dev/null; do sleep 5; done
    # the log without compiler warnings and their source lines
    grep -v -i -E 'warn|^W[0-9]{4} |originates from|^\s*$|^ +File |^ +if |^ +return ' "$log" | tail -n 40
    grep -q '^BG_DONE' "$log" && echo "finished" || echo "still running";;
  *)
    echo "usage: scripts/bg.sh start 'COMMAND' | wait [SECONDS]" >&2; exit 2;;
esac
