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

# pytest (pluggy) loads `pytest11` entry points in the order importlib.metadata lists the
# installed distributions: the order of site-packages as the file system returns it, so
# one environment loads paygate's plugin first and another pytest-recording's. With
# autoloading off, `-p` (imported before anything else, in the order given) fixes it;
# `--trace-config` shows the order really taken.
export PYTEST_DISABLE_PLUGIN_AUTOLOAD=1
orders=("-p paygate -p recording" "-p recording -p paygate")

check_order() {  # check_order DIR -p A -p B: pytest registers the two plugins as A, B
    local dir=$1
    shift
    local want got
    want=$(printf '%s\n' "$@" | sed -n 's/^paygate$/paygate.testing._plugin/p; s/^recording$/pytest_recording.plugin/p' | tr '\n' ' ')
    got=$(cd "$dir" && "$py" -m pytest "$@" --trace-config --collect-only -q 2>/dev/null |
        sed -n "s/^PLUGIN registered: <module '\(paygate\.testing\._plugin\|pytest_recording\.plugin\)'.*/\1/p" |
        tr '\n' ' ')
    if [ "$got" != "$want" ]; then
        echo "plugin order: wanted '$want', pytest took '$got'" >&2
        return 1
    fi
    echo "plugin order: $got" >&2
}

for record in "${orders[@]}"; do
    app="$work/app-${record//[^a-z]/}"
    cp -R "$repo/examples/merchant_app" "$app"
    rm -rf "$app/tests/cassettes"
    # shellcheck disable=SC2086
    check_order "$app" $record
    log "merchant app: record against the sandbox ($record)"
    # shellcheck disable=SC2086
    (cd "$app" && "$py" -m pytest -q $record --record-mode=rewrite)
    for replay in "${orders[@]}"; do
        log "merchant app: check and replay offline ($replay)"
        # shellcheck disable=SC2086
        check_order "$app" $replay
        # shellcheck disable=SC2086
        (cd "$app" && "$py" -m pytest -q $replay --record-mode=none --block-network \
            tests/test_orders.py tests/test_cassettes_clean.py)
    done
done
log "passed"
