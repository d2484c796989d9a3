#!/usr/bin/env bash
# Install what lambdascope needs, idempotently: a second run skips what is there.
#   scripts/setup.sh          Debian crates for the generator, the venv, torch (CPU), the project
#   scripts/setup.sh --test   also what the tests need (Chromium for the browser tests)
set -euo pipefail
cd "$(dirname "$0")/.."

want_test=0
[ "${1:-}" = "--test" ] && want_test=1

say() { printf '\033[1msetup:\033[0m %s\n' "$*" >&2; }

# --- Debian packages ------------------------------------------------------------------------
APT_PKGS=(librust-rayon-dev librust-clap-dev librust-indicatif-dev librust-serde-json-dev
          librust-assert-cmd-dev librust-predicates-dev librust-tempfile-dev)
command -v cargo >/dev/null 2>&1 || APT_PKGS+=(cargo)  # a rustup cargo will do too
if [ "$want_test" = 1 ]; then
  APT_PKGS+=(chromium postgresql)  # browser tests; a throwaway PostgreSQL cluster
fi
missing=()
for p in "${APT_PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  SUDO=""
  [ "$(id -u)" = 0 ] || SUDO="sudo"
  say "installing Debian packages: ${missing[*]}"
  $SUDO apt-get update -q >/dev/null
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
else
  say "Debian packages present"
fi

# --- Python ------------------------------------------------------------------------------------
if [ ! -x .venv/bin/python ]; then
  say "creating .venv"
  python3 -m venv .venv
fi
if ! .venv/bin/python -c "import torch" 2>/dev/null; then
  say "installing torch==2.13.0 (CPU)"
  .venv/bin/pip install -q torch==2.13.0
fi
stamp=.venv/.lambdascope-installed
sig=$(cat pyproject.toml | sha256sum | cut -c1-16)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$sig" ]; then
  say "installing lambdascope and its dependencies into .venv"
  .venv/bin/pip install -q -e '.[test]'
  echo "$sig" > "$stamp"
else
  say "Python packages present"
fi

# --- the generator -------------------------------------------------------------------------
say "building lambda-gen (cargo, offline, Debian crates)"
(cd lambda_gen_rs && cargo build --release --offline -q)
say "ready"
