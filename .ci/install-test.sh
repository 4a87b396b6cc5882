#!/usr/bin/env bash
# Install test: paygate as a merchant gets it. Builds every wheel, installs
# `paygate-jp[all,testing]` from them into a fresh virtual environment outside the
# checkout (the package index stays reachable for the dependencies), then runs
# `paygate demo`, `paygate providers` and the merchant test project in
# examples/merchant_app: it records cassettes against the sandbox, checks them for every
# sandbox secret and the customer's personal data, and replays them with the network
# blocked, with pytest loading the paygate and pytest-recording plugins in both orders.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/paygate-install-test.XXXXXX")
trap 'rm -rf "$work"' EXIT

log() { printf '\n== install test: %s\n' "$*" >&2; }

version=$(sed -n 's/^__version__ = "\(.*\)"$/\1/p' "$repo/paygate/_version.py")

log "wheels (paygate-jp $version and the five providers)"
(cd "$repo" && uv build --quiet --all-packages --wheel --out-dir "$work/dist")
ls "$work/dist" >&2

log "fresh virtual environment in $work"
uv venv --quiet "$work/venv"
py="$work/venv/bin/python"
# The exact version from the wheels: a distribution of that name on the index cannot be
# taken instead, and the unrelated `paygate` distribution is never asked for.
uv pip install --quiet --python "$py" --find-links "$work/dist" "paygate-jp[all,testing]==$version"

cd "$work"  # outside the checkout: nothing is imported from it
"$py" - "$repo" <<'PY'
import importlib.metadata as md
import sys
from pathlib import Path

import paygate

names = sorted(d.metadata["Name"] for d in md.distributions())
ours = [n for n in names if n.startswith("paygate")]
assert ours == ["paygate-jp", *(f"paygate-jp-{p}" for p in
                sorted(["elepay", "payjp", "pokepay", "smaregi", "univapay"]))], ours
location = Path(paygate.__file__).resolve()
assert Path(sys.argv[1]).resolve() not in location.parents, f"imported from the checkout: {location}"
providers = sorted(ep.name for ep in md.entry_points(group="paygate.providers"))
assert providers == ["elepay", "payjp", "pokepay", "smaregi", "univapay"], providers
print("installed:", ", ".join(f"{n} {md.version(n)}" for n in ours), file=sys.stderr)
PY

log "paygate demo"
"$work/venv/bin/paygate" demo
log "paygate providers"
"$work/venv/bin/paygate" providers

# pytest loads entry-point plugins in the order the environment lists the distributions;
# with autoloading off, `-p` fixes the order.
export PYTEST_DISABLE_PLUGIN_AUTOLOAD=1
orders=("-p paygate -p recording" "-p recording -p paygate")
for record in "${orders[@]}"; do
    app="$work/app-${record//[^a-z]/}"
    cp -R "$repo/examples/merchant_app" "$app"
    rm -rf "$app/tests/cassettes"
    log "merchant app: record against the sandbox ($record)"
    # shellcheck disable=SC2086
    (cd "$app" && "$py" -m pytest -q $record --record-mode=rewrite)
    for replay in "${orders[@]}"; do
        log "merchant app: check and replay offline ($replay)"
        # shellcheck disable=SC2086
        (cd "$app" && "$py" -m pytest -q $replay --record-mode=none --block-network \
            tests/test_orders.py tests/test_cassettes_clean.py)
    done
done
log "passed"
