#!/usr/bin/env bash
# Print the path of a CPython 3.10 interpreter: $PYTHON if given, else python3.10 on PATH
# (if it runs: pyenv shims refuse unless pyenv selects 3.10), else the newest 3.10 under
# `pyenv root`. Exits 1 with instructions when none is found.
set -u
ok() { "$1" -c 'import sys, venv; sys.exit(0 if sys.version_info[:2] == (3, 10) else 1)' >/dev/null 2>&1; }
if [ -n "${PYTHON:-}" ]; then
  if ok "$PYTHON"; then echo "$PYTHON"; exit 0; fi
  echo "error: PYTHON=$PYTHON is not a working CPython 3.10 with venv" >&2; exit 1
fi
for c in python3.10 /usr/bin/python3.10 /usr/local/bin/python3.10; do
  p=$(command -v "$c" 2>/dev/null) && ok "$p" && { echo "$p"; exit 0; }
done
if command -v pyenv >/dev/null 2>&1; then
  for p in $(ls -d "$(pyenv root)"/versions/3.10.*/bin/python3.10 2>/dev/null | sort -V -r); do
    ok "$p" && { echo "$p"; exit 0; }
  done
fi
cat >&2 <<'MSG'
error: no CPython 3.10 found. The pinned stack (torch 2.3.1, sal-detectron2 0.7.2) needs
Python 3.10 exactly. Install it (e.g. `pyenv install 3.10`, or `apt-get install python3.10
python3.10-venv`) or point to one with `make PYTHON=/path/to/python3.10 ...`.
MSG
exit 1
