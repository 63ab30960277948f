#!/usr/bin/env bash
# Two commits from fresh clones, one after the other on one machine: `make setup` with empty
# pip/uv caches, then `make pipeline` (the default params), then a byte comparison of the outputs.
#
# Study, 2026-12-06, on a 2-core Intel Xeon (AVX-512), nothing else running, three passes:
# 6170937 (pip from pyproject's ranges; the flat pkd/ layout) against the re-laid-out pkd/ with
# uv from requirements.lock: d001f72 in passes 1 (old first) and 2 (new first), 0c4a35e in pass 3.
# Result: `make setup` with pip 68.6 / 92.3 / 101.7 s, with uv 24.0 / 35.1 / 40.0 s (0.35x,
# 0.38x, 0.39x; pass 3 compiles bytecode), the same versions of all 185 packages (uv aside).
# Default run (`make pipeline`): every pass, all 36 metrics files but timing.json, the 18
# prediction files and the 90 model files are byte-identical between the two commits. Wall:
# 6170937 443 / 429 / 398 s; d001f72 520 / 533 s, 0c4a35e 412 s. d001f72 was 20% slower because
# uv installs no bytecode unless asked and this machine sets PYTHONDONTWRITEBYTECODE: each stage
# compiled ~5,500 modules on import (cProfile of `stages/prepare.py`: 4.9 s in compile).
# Decision: `make setup` installs from the lock with uv, `--compile-bytecode` (0c4a35e).
#
#   benchmarks/studies/fresh_clone.sh OLD NEW "setup old" "setup new" "pipeline old" "pipeline new" compare
#
# Clones go to $WORK (default /tmp/pkd-fresh-clone); timings to $WORK/times.log.
set -u
OLD=$(git rev-parse --short "$1"); NEW=$(git rev-parse --short "$2"); shift 2
ROOT=$(git rev-parse --show-toplevel)
W=${WORK:-/tmp/pkd-fresh-clone}; mkdir -p "$W"
log() { echo "$(date -u +%FT%TZ) $*" | tee -a "$W/times.log"; }
commit() { [ "$1" = old ] && echo "$OLD" || echo "$NEW"; }
seconds() { python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.1f}')" "$@"; }

setup() {  # a fresh clone, empty caches, `make setup`; then its package list
  rm -rf "${W:?}/$1" "$W/cache-$1"; git clone -q "$ROOT" "$W/$1" && git -C "$W/$1" checkout -q "$(commit "$1")"
  local t0; t0=$(date +%s.%N)
  (cd "$W/$1" && PIP_CACHE_DIR="$W/cache-$1/pip" UV_CACHE_DIR="$W/cache-$1/uv" make setup) > "$W/$1-setup.log" 2>&1
  log "setup $1 ($(commit "$1")) rc=$? seconds=$(seconds "$t0" "$(date +%s.%N)")"
  "$W/$1/.venv/bin/python" -m pip freeze --exclude-editable | sort > "$W/$1-freeze.txt"
}
pipeline() {
  local t0; t0=$(date +%s.%N)
  (cd "$W/$1" && make pipeline) > "$W/$1-pipeline.log" 2>&1
  log "pipeline $1 ($(commit "$1")) rc=$? seconds=$(seconds "$t0" "$(date +%s.%N)")"
}
compare() {
  log "packages differing: $(diff "$W/old-freeze.txt" "$W/new-freeze.txt" | grep '^[<>]' | tr '\n' ' ')"
  for dir in metrics predictions models; do
    local n=0 differ=()
    while read -r f; do
      n=$((n + 1)); cmp -s "$W/old/$f" "$W/new/$f" || differ+=("$f")
    done < <(cd "$W/old" && find "$dir" -type f | sort)
    log "$dir: $n files, ${#differ[@]} differ: ${differ[*]:-none}"
  done
}
log "old=$OLD new=$NEW cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2)"
for step in "$@"; do
  read -r what side <<< "$step"
  case $what in setup) setup "$side" ;; pipeline) pipeline "$side" ;; compare) compare ;; *) echo "unknown step: $step"; exit 2 ;; esac
done
