#!/usr/bin/env bash
# Installs the independent Parquet readers the tests use (pyarrow, DuckDB) into
# target/test-venv. Idempotent; run by .ci/run and, when missing, by the tests.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
venv="$root/target/test-venv"
if [ -x "$venv/bin/python" ] && "$venv/bin/python" -c 'import pyarrow, duckdb' 2>/dev/null; then
  exit 0
fi
mkdir -p "$root/target"
python3 -m venv "$venv"
"$venv/bin/pip" install --quiet --disable-pip-version-check 'pyarrow>=14' 'duckdb>=1.0'
"$venv/bin/python" -c 'import pyarrow, duckdb; print("test readers: pyarrow", pyarrow.__version__, "duckdb", duckdb.__version__)'
