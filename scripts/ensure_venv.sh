#!/usr/bin/env bash
# Create .venv when missing and install vcpred with its pinned dependencies into it.
# Reinstalls only when pyproject.toml (the dependency list) changed: its hash is kept in a stamp.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=${VCPRED_VENV:-.venv}
stamp="$venv/.vcpred-deps.sha256"
want=$(cat pyproject.toml scripts/ensure_venv.sh | sha256sum | cut -d' ' -f1)

if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && [ -x "$venv/bin/python" ]; then
  exit 0
fi
if [ ! -x "$venv/bin/python" ]; then
  echo "creating $venv (python3.11)"
  python3.11 -m venv "$venv" 2>/dev/null || python3 -m venv "$venv"
fi
"$venv/bin/python" -m pip install --quiet --upgrade pip
# torch/torchvision first and pinned exactly: pip takes these builds from local disk here.
# --no-compile: Python compiles a module the first time it is imported instead (pip compiling all of
# torch took 30 of the 75 s its install takes on a 2-core machine; most of it is never imported).
"$venv/bin/python" -m pip install --quiet --no-compile "torch==2.14.1" "torchvision==0.29.1"
"$venv/bin/python" -m pip install --quiet --no-compile -e ".[test,slurm]"
echo "$want" > "$stamp"
echo "installed vcpred into $venv"
