#!/usr/bin/env bash
# The installed package, not the checkout: build a wheel from the checkout, install it WITHOUT torch into a
# fresh virtual environment outside the checkout, run it from outside the checkout, and compare it with the
# checkout's .venv (an editable install, as the README sets it up).
#
#   .ci/wheel_check.sh            (after .ci/run, or the README's set-up, has made .venv)
#
# Checks: the wheel holds every module and every shipped data file; torch is absent; `costsim list gpus` lists
# every hardware_profiles/*.yaml; the DeepSeek-V3 estimate (gpu_hours, cost_usd) and `validate public`
# (median_abs_error) are exactly the .venv's; the torch commands stop with one line saying how to install it;
# every other command works. Needs python3 and the package index (setuptools for the build, the dependencies).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
PY="${PYTHON:-python3}"
REF="$ROOT/.venv/bin/costsim"
[ -x "$REF" ] || { echo "wheel check: $REF is missing; run .ci/run (or the README's set-up) first" >&2; exit 2; }
unset COSTSIM_DATA_DIR PYTHONPATH  # the shipped data and the installed code only

WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
case "$WORK/" in "$ROOT"/*) echo "wheel check: temporary folder $WORK is inside the checkout" >&2; exit 2 ;; esac
SRC="$WORK/src" DIST="$WORK/dist" VENV="$WORK/venv" RUN="$WORK/run"
mkdir -p "$SRC" "$DIST" "$RUN"
say() { echo "wheel check: $*"; }

# 1. The wheel, built from the files git knows of (tracked, and untracked but not ignored), copied out of the
#    checkout: no stale build/ or *.egg-info of an earlier build can add or hide a file.
if git -C "$ROOT" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    (cd "$ROOT" && git ls-files -z --cached --others --exclude-standard) |
        (cd "$ROOT" && while IFS= read -r -d '' f; do [ -f "$f" ] && printf '%s\0' "$f"; done) |
        (cd "$ROOT" && tar --null -T - -cf -) | tar -xf - -C "$SRC"
else
    (cd "$ROOT" && tar --exclude=./.venv --exclude=./build --exclude=./dist --exclude='*.egg-info' \
        --exclude=.git --exclude=__pycache__ -cf - .) | tar -xf - -C "$SRC"
fi
"$PY" -m venv "$VENV"
"$VENV/bin/python" -m pip install -q --upgrade pip
"$VENV/bin/python" -m pip wheel -q --no-deps -w "$DIST" "$SRC"
WHEEL="$(ls "$DIST"/costsim-*.whl)"
say "built $(basename "$WHEEL")"

# 2. Its contents: every module of the three packages, and every yaml/json under the six data folders (as
#    simulator/data/<folder>/...) and simulator/data/fitted_constants.yaml.
"$VENV/bin/python" - "$WHEEL" "$SRC" <<'EOF'
import sys, zipfile
from pathlib import Path

wheel, src = sys.argv[1], Path(sys.argv[2])
names = set(zipfile.ZipFile(wheel).namelist())
expected = {"simulator/data/fitted_constants.yaml"}
for package in ("simulator", "cli", "calibrate"):
    expected |= {p.relative_to(src).as_posix() for p in (src / package).rglob("*.py")}
for folder in ("hardware_profiles", "model_specs", "plans", "validation", "prices", "fleets", "workloads"):
    for p in (src / folder).rglob("*"):
        if p.suffix in (".yaml", ".json", ".py") and "__pycache__" not in p.parts:
            expected.add(f"simulator/data/{p.relative_to(src).as_posix()}")
missing = sorted(expected - names)
if missing:
    sys.exit(f"wheel check: FAILED: {len(missing)} file(s) of the checkout are not in the wheel: {', '.join(missing)}")
data = sorted(n for n in expected if n.startswith("simulator/data/") and n.endswith((".yaml", ".json")))
print(f"wheel check: the wheel holds all {len(expected)} expected files ({len(data)} data files)")
EOF

# 3. Installed without torch; run from outside the checkout, the installed copy is what runs.
"$VENV/bin/python" -m pip install -q "$WHEEL"
NEW="$VENV/bin/costsim"
cd "$RUN"
"$VENV/bin/python" - "$VENV" <<'EOF'
import importlib.util, sys
from pathlib import Path

if importlib.util.find_spec("torch") is not None:
    sys.exit("wheel check: FAILED: torch is installed in the wheel's environment; the check needs it absent")
import simulator

where = Path(simulator.__file__).resolve()
if Path(sys.argv[1]).resolve() not in where.parents:
    sys.exit(f"wheel check: FAILED: simulator imported from {where}, not from the installed wheel")
EOF
say "installed without torch in $VENV"

# 4(a). `list gpus` lists every profile of hardware_profiles/*.yaml (the files, not a list kept here).
"$NEW" list gpus > "$WORK/gpus.txt"
"$VENV/bin/python" - "$ROOT/hardware_profiles" "$WORK/gpus.txt" <<'EOF'
import sys
from pathlib import Path

import yaml

files = sorted(Path(sys.argv[1]).glob("*.yaml"))
ids = [(yaml.safe_load(p.read_text()) or {}).get("name", p.stem) for p in files]
listed = {line.split()[0] for line in Path(sys.argv[2]).read_text().splitlines() if line.strip()}
missing = [i for i in ids if i not in listed]
if not files or missing:
    sys.exit(f"wheel check: FAILED: `costsim list gpus` does not list {missing or 'any profile'}")
print(f"wheel check: list gpus lists all {len(ids)} profiles of hardware_profiles/*.yaml")
EOF

# 4(b), (c). The same numbers as the checkout's .venv, exactly.
V3=(estimate deepseek-v3 --gpu h800 --num-gpus 2048 --tokens 14.8T --seq-len 4096 --global-batch-tokens 62914560
    --tp 1 --pp 16 --ep 64 --precision fp8 --schedule dualpipe --usd-per-gpu-hour 2 --format json)
"$NEW" "${V3[@]}" > "$WORK/v3.wheel.json"
(cd "$ROOT" && "$REF" "${V3[@]}") > "$WORK/v3.venv.json"
"$NEW" validate public --format json > "$WORK/public.wheel.json"
(cd "$ROOT" && "$REF" validate public --format json) > "$WORK/public.venv.json"
"$VENV/bin/python" - "$WORK" <<'EOF'
import json, math, sys
from pathlib import Path

work, failed = Path(sys.argv[1]), False
for name, keys in (("v3", ("gpu_hours", "cost_usd")), ("public", ("median_abs_error",))):
    wheel, venv = (json.loads((work / f"{name}.{side}.json").read_text()) for side in ("wheel", "venv"))
    for k in keys:
        a, b = wheel.get(k), venv.get(k)
        ok = isinstance(a, (int, float)) and math.isfinite(a) and a == b
        failed |= not ok
        print(f"wheel check: {name} {k}: wheel {a!r}, .venv {b!r}: {'same' if ok else 'FAILED'}")
sys.exit(1 if failed else 0)
EOF

# 4(d). Without torch the torch commands stop with one line (torch, how to install it), no traceback.
torch_stops() {
    local out rc=0
    out="$("$NEW" "$@" 2>&1)" || rc=$?
    if [ "$rc" -eq 0 ] || [ "$(grep -c . <<<"$out")" -ne 1 ] || grep -q Traceback <<<"$out" ||
        ! grep -q torch <<<"$out" || ! grep -q "pip install" <<<"$out"; then
        echo "wheel check: FAILED: costsim $* (exit $rc) should stop with one line naming torch and pip install:" >&2
        echo "$out" >&2
        exit 1
    fi
    say "costsim $* -> exit $rc: $out"
}
torch_stops calibrate --device cpu --smoke --output x.json
torch_stops validate local --device cpu
[ ! -e x.json ] || { echo "wheel check: FAILED: x.json was written" >&2; exit 1; }
# `calibrate check` verifies the file before it needs torch: give it a sealed one (the checkout's .venv has torch).
(cd "$ROOT" && "$REF" calibrate --device cpu --smoke --output "$WORK/cal.json" > /dev/null 2>&1) ||
    { echo "wheel check: FAILED: the checkout could not write a smoke calibration" >&2; exit 1; }
torch_stops calibrate check "$WORK/cal.json"

# Every other command works without torch.
works() { "$NEW" "$@" > "$WORK/out.txt" 2>&1 || { cat "$WORK/out.txt" >&2; echo "wheel check: FAILED: costsim $*" >&2; exit 1; }; }
SMALL=(llama-3.1-8b --gpu h100 --num-gpus 64 --tokens 1T --tp 1 --pp 1 --zero-stage 3 --micro-batch-size 1
       --schedule 1f1b --recompute none)
works --help
works calibrate --help
works validate local --help
works list models
works list workloads
works serve llama-3.1-70b --gpu h100-sxm --workload inferencemax-1k1k --format json
works estimate "${SMALL[@]}" --format csv
works estimate "${SMALL[@]}" --uncertainty --draws 500
works estimate --plan deepseek-v3 --format json
works compare llama-3.1-405b deepseek-v3 --plot "$RUN/waterfall.png"
works search llama-3.1-8b --gpu h100 --num-gpus 64 --tokens 1T --top 3
works sweep llama-3.1-8b --gpu h100,a100 --num-gpus 64,128 --tokens 1T
works claim deepseek-v3 --gpu h800 --gpu-hours 2.664M --tokens 14.8T --num-gpus 2048
works report "${SMALL[@]}" --output "$RUN/report"
works fit  # last: it rewrites the installed fitted_constants.yaml
[ -f "$RUN/waterfall.png" ] && [ -n "$(ls -A "$RUN/report")" ] || { echo "wheel check: FAILED: no chart or report" >&2; exit 1; }
say "every other command works without torch"
say "OK"
