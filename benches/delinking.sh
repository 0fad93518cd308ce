#!/usr/bin/env bash
# What de-linking costs and what it buys: for fleets of several sizes and a
# few values of k, runs `delink gen` (200,000 observations), `delink run`
# with the shipped policy (k changed where asked), `delink risk`, and
# compares the analysts' questions answered from devices/ with the truth
# of the generated input.
#
#   bash benches/delinking.sh [FLEETS] [KS]     e.g. "50 1000 4000 20000" "5 10 20"
set -euo pipefail
cd "$(dirname "$0")/.."
fleets=${1:-"50 1000 4000 20000"}
ks=${2:-"10"}
cargo build --release --quiet --bin delink
bash tests/support/python-env.sh >/dev/null
delink=target/release/delink
python=target/test-venv/bin/python
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export DELINK_KEYRING_DIR="$work/keyrings"
for fleet in $fleets; do
  "$delink" gen --count 200000 --seed 7 --chargers "$fleet" --output "$work/in.ndjson" 2>/dev/null
  for k in $ks; do
    sed "s/^k = 10$/k = $k/" config/policy.toml > "$work/policy.toml"
    data="$work/data-$fleet-$k"
    "$delink" run --progress never --policy "$work/policy.toml" --data-dir "$data" "$work/in.ndjson" \
      | grep -E "elapsed" | sed "s/^ */  run: /"
    echo "fleet of $fleet chargers, k = $k"
    DELINK__RISK__K=$k "$delink" risk "$data" | sed -n '3,7p' || true
    "$python" benches/delinking.py "$work/in.ndjson" "$data"
  done
done
