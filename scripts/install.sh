#!/usr/bin/env bash
# Installs everything into ./.venv on a fresh Debian machine:
#   ./scripts/install.sh          the framework, the examples and the demo
#   ./scripts/install.sh --test   plus what the tests need (Debian's chromium and redis-server,
#                                 pytest, hypothesis, Playwright's Python driver)
# The examples are installed for the demo only (entry point group ivoryos_plugin.examples): a deck
# script of yours that calls ivoryos_plugin.run(__name__) in this venv does not load them.
set -euo pipefail
cd "$(dirname "$0")/.."

want_test=0
[ "${1:-}" = "--test" ] && want_test=1

apt_packages=()
command -v node >/dev/null 2>&1 || apt_packages+=(nodejs npm)
python3 -c "import ensurepip, venv" >/dev/null 2>&1 || apt_packages+=(python3-venv)
if [ "$want_test" = 1 ]; then
  command -v chromium >/dev/null 2>&1 || apt_packages+=(chromium)
  command -v redis-server >/dev/null 2>&1 || apt_packages+=(redis-server)
  ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || apt_packages+=(postgresql)  # the history tests
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
echo "install.sh: browser assets from the npm registry (npm ci)"
npm ci --no-audit --no-fund --loglevel=error

echo "install.sh: Python packages into .venv (a few minutes the first time)"
python3 -m venv .venv
pip=(.venv/bin/python -m pip --disable-pip-version-check --no-input)
# setuptools prints an "Editable installation: be careful with folders named like your package"
# notice for every editable install, which pip >= 25 shows even with -q: that notice only
export PYTHONWARNINGS="ignore:Editable installation:UserWarning"
"${pip[@]}" install -q --upgrade pip
if [ "$want_test" = 1 ]; then
  "${pip[@]}" install -q -r requirements-test.txt
fi
examples=()
for example in examples/*/; do
  [ -f "$example/pyproject.toml" ] && examples+=(-e "$example")
done
# one resolver run: the examples' dependency on the framework is the checkout itself
"${pip[@]}" install -q -e . "${examples[@]}"
# Bytecode for the checkout, as pip writes it for a package it copies: an editable install is read
# from here, and where PYTHONDONTWRITEBYTECODE is set Python never writes it at import, so every
# process would compile the framework again (about 0.4 s of CPU for each server or CLI run).
.venv/bin/python -m compileall -q -j 0 ivoryos_plugin examples tests >/dev/null
echo "install.sh: done (.venv). The demo: .venv/bin/ivoryos-plugin demo"
