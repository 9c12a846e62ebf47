#!/usr/bin/env bash
# Installs everything into ./.venv on a fresh Debian machine:
#   ./scripts/install.sh          the framework, the examples and the demo
#   ./scripts/install.sh --test   plus what the tests need (Debian's chromium and redis-server,
#                                 pytest, hypothesis, Playwright's Python driver)
set -euo pipefail
cd "$(dirname "$0")/.."

want_test=0
[ "${1:-}" = "--test" ] && want_test=1

apt_packages=()
command -v node >/dev/null 2>&1 || apt_packages+=(nodejs npm)
if [ "$want_test" = 1 ]; then
  command -v chromium >/dev/null 2>&1 || apt_packages+=(chromium)
  command -v redis-server >/dev/null 2>&1 || apt_packages+=(redis-server)
fi
if [ "${#apt_packages[@]}" -gt 0 ]; then
  sudo_cmd=""
  [ "$(id -u)" = 0 ] || sudo_cmd="sudo"
  echo "install.sh: apt-get install ${apt_packages[*]}"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq "${apt_packages[@]}" >/dev/null
fi

# Browser assets (Socket.IO client, uPlot) from the npm registry; postinstall copies them into
# ivoryos_plugin/static/vendor, where the framework serves them.
npm ci --no-audit --no-fund --loglevel=error

python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
if [ "$want_test" = 1 ]; then
  .venv/bin/python -m pip install -q -r requirements-test.txt
fi
.venv/bin/python -m pip install -q -e . -e examples/hello
for example in examples/*/; do
  [ -f "$example/pyproject.toml" ] && [ "$example" != "examples/hello/" ] && .venv/bin/python -m pip install -q -e "$example"
done
echo "install.sh: done (.venv)"
