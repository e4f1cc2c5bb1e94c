#!/usr/bin/env bash
# make build: bin/fathom and bin/fathom-agent, with a progress line. The first
# build on a fresh machine downloads the Go modules (go prints each) and then
# compiles several hundred packages, a few minutes on 2 cores, during which
# `go build` alone prints nothing; this prints how far it is instead.
#   GO        the go command (default go)
#   LDFLAGS   passed to go build -ldflags
set -euo pipefail
cd "$(dirname "$0")/.."
GO="${GO:-go}"
LDFLAGS="${LDFLAGS:-}"
mkdir -p bin
tty=false
[ -t 2 ] && tty=true
start=$SECONDS
# Every package the two binaries link (standard library included): go build
# compiles those not in the build cache; the count is the most it can be.
echo "build: resolving modules (the first build downloads them)" >&2
total=$("$GO" list -deps ./cmd/fathom ./cmd/fathom-agent | wc -l)
build() { # out pkg
  local n=0 line status
  set +e
  "$GO" build -v -ldflags "$LDFLAGS" -o "$1" "$2" 2>&1 | while IFS= read -r line; do
    case "$line" in
      # go build -v names each package as it compiles it; anything else
      # (an error, a download) is printed as it is.
      *" "*|*:*) $tty && printf '\r\033[K' >&2; printf '%s\n' "$line" >&2 ;;
      *)
        n=$((n + 1))
        if $tty; then
          printf '\r\033[Kbuild: %s: %d/%d packages compiled (%ds) %s' "$1" "$n" "$total" $((SECONDS - start)) "${line:0:60}" >&2
        elif [ $((n % 100)) -eq 0 ]; then
          printf 'build: %s: %d/%d packages compiled (%ds)\n' "$1" "$n" "$total" $((SECONDS - start)) >&2
        fi ;;
    esac
  done
  status=${PIPESTATUS[0]}
  set -e
  $tty && printf '\r\033[K' >&2
  return "$status"
}
build bin/fathom ./cmd/fathom
build bin/fathom-agent ./cmd/fathom-agent
echo "build: bin/fathom and bin/fathom-agent ($((SECONDS - start))s)" >&2
