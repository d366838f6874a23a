#!/bin/sh
# Create (or update) ./.venv with Python >= 3.12 and install ebm_ppl into it, editable.
#   sh scripts/venv.sh          # the package
#   sh scripts/venv.sh dev      # the package and the test tools (any extras: dev,docs)
# Finds the interpreter in $PYTHON, then python3.13 / python3.12 / python3 on PATH, then pyenv's
# installed versions (on machines where pyenv's global python is older).
set -eu
cd "$(dirname "$0")/.."
extras="${1:-}"

is_new_enough() { "$1" -c 'import sys; sys.exit(sys.version_info < (3, 12))' >/dev/null 2>&1; }

find_python() {
  for candidate in ${PYTHON:-} python3.13 python3.12 python3 python; do
    if command -v "$candidate" >/dev/null 2>&1 && is_new_enough "$candidate"; then
      command -v "$candidate"; return 0
    fi
  done
  if command -v pyenv >/dev/null 2>&1; then
    root="$(pyenv root)"
    for version in $(pyenv versions --bare 2>/dev/null | grep -E '^3\.(1[2-9]|[2-9][0-9])(\.[0-9]+)*$' | sort -t. -k1,1n -k2,2n -k3,3n -r); do
      if is_new_enough "$root/versions/$version/bin/python"; then
        echo "$root/versions/$version/bin/python"; return 0
      fi
    done
  fi
  return 1
}

if [ ! -x .venv/bin/python ] || ! is_new_enough .venv/bin/python; then
  python="$(find_python)" || { echo "scripts/venv.sh: no Python >= 3.12 found (set PYTHON=/path/to/python3.12)" >&2; exit 1; }
  echo "scripts/venv.sh: creating .venv with $("$python" -V 2>&1) ($python)" >&2
  rm -rf .venv
  "$python" -m venv .venv
fi
spec="."
[ -n "$extras" ] && spec=".[$extras]"
.venv/bin/python -m pip install --quiet --disable-pip-version-check --editable "$spec"
