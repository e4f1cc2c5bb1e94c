#!/usr/bin/env bash
# Generates Go (protobuf + gRPC), the grpc-gateway reverse proxy and the OpenAPI v2
# document from api/proto/fathom/v1/*.proto. protoc comes from Debian
# (protobuf-compiler 3.21, `scripts/deps.sh generate`); the plugins are pinned here
# and built from the Go module proxy into a temporary GOBIN.
set -euo pipefail
cd "$(dirname "$0")/../.."

PROTOC_GEN_GO=google.golang.org/protobuf/cmd/protoc-gen-go@v1.36.12
PROTOC_GEN_GO_GRPC=google.golang.org/grpc/cmd/protoc-gen-go-grpc@v1.6.2
PROTOC_GEN_GATEWAY=github.com/grpc-ecosystem/grpc-gateway/v2/protoc-gen-grpc-gateway@v2.33.0
PROTOC_GEN_OPENAPI=github.com/grpc-ecosystem/grpc-gateway/v2/protoc-gen-openapiv2@v2.33.0

if ! command -v protoc >/dev/null; then
  ./scripts/deps.sh generate
fi
command -v protoc >/dev/null || { echo "10-proto: protoc not found; run scripts/deps.sh generate" >&2; exit 1; }

bin=$(mktemp -d)
trap 'rm -rf "$bin"' EXIT
for p in "$PROTOC_GEN_GO" "$PROTOC_GEN_GO_GRPC" "$PROTOC_GEN_GATEWAY" "$PROTOC_GEN_OPENAPI"; do
  (cd "$bin" && GOBIN="$bin" GOFLAGS=-mod=mod go install "$p")
done

out=api/gen/fathom/v1
rm -rf "$out" api/openapi
mkdir -p "$out" api/openapi
protoc \
  -I api/proto -I api/proto/third_party -I /usr/include \
  --plugin=protoc-gen-go="$bin/protoc-gen-go" \
  --plugin=protoc-gen-go-grpc="$bin/protoc-gen-go-grpc" \
  --plugin=protoc-gen-grpc-gateway="$bin/protoc-gen-grpc-gateway" \
  --plugin=protoc-gen-openapiv2="$bin/protoc-gen-openapiv2" \
  --go_out=api/gen --go_opt=paths=source_relative \
  --go-grpc_out=api/gen --go-grpc_opt=paths=source_relative \
  --grpc-gateway_out=api/gen --grpc-gateway_opt=paths=source_relative \
  --openapiv2_out=api/openapi --openapiv2_opt=allow_merge=true,merge_file_name=fathom \
  api/proto/fathom/v1/*.proto
cat > "$out/doc.go" <<'GO'
// Package fathomv1 is the generated Go for Fathom's wire contract
// (api/proto/fathom/v1): protobuf messages, gRPC clients and servers, and the
// grpc-gateway REST handlers. Regenerate with `make generate`; do not edit.
package fathomv1
GO
echo "10-proto: wrote $out and api/openapi/fathom.swagger.json"
