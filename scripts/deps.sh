#!/usr/bin/env bash
# Installs the Debian packages Fathom's targets use. Idempotent; never fatal for
# optional parts: a test that needs a missing package skips and says why.
#   deps.sh test       prometheus (integration test against a real server), chromium
#                      (the console's browser test, e2e/console) and the notebook
#                      packages (the notebooks test executes them headless)
#   deps.sh browser    chromium alone (make screenshots)
#   deps.sh generate   protobuf-compiler and libprotobuf-dev (google/protobuf/*.proto)
#   deps.sh notebooks  jupyter-nbconvert, python3-pandas, python3-matplotlib, python3-ipykernel
#   deps.sh all        all of the above
set -uo pipefail
want=()
case "${1:-all}" in
  test) want=(prometheus chromium jupyter-nbconvert python3-pandas python3-matplotlib python3-ipykernel python3-nbformat) ;;
  browser) want=(chromium) ;;
  generate) want=(protobuf-compiler libprotobuf-dev) ;;
  notebooks) want=(jupyter-nbconvert python3-pandas python3-matplotlib python3-ipykernel python3-nbformat) ;;
  all) want=(prometheus chromium protobuf-compiler libprotobuf-dev jupyter-nbconvert python3-pandas python3-matplotlib python3-ipykernel python3-nbformat stress-ng) ;;
  *) echo "usage: $0 test|browser|generate|notebooks|all" >&2; exit 2 ;;
esac
missing=()
for p in "${want[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if ! command -v apt-get >/dev/null; then
  echo "deps: apt-get not found; install ${missing[*]} yourself (tests that need them will skip)" >&2
  exit 0
fi
sudo=""
[ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null && sudo="sudo"
echo "deps: installing ${missing[*]}" >&2
$sudo apt-get update -qq >/dev/null 2>&1 || echo "deps: apt-get update failed" >&2
if ! DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/tmp/fathom-deps.log 2>&1; then
  echo "deps: could not install ${missing[*]} (see /tmp/fathom-deps.log); tests that need them will skip" >&2
fi
# Debian starts a prometheus service on install; Fathom's tests start their own
# instance on a free loopback port, so stop the packaged one where it started.
if printf '%s\n' "${missing[@]}" | grep -qx prometheus; then
  (command -v systemctl >/dev/null && $sudo systemctl stop prometheus prometheus-node-exporter) >/dev/null 2>&1 || true
  (command -v service >/dev/null && $sudo service prometheus stop) >/dev/null 2>&1 || true
fi
exit 0
