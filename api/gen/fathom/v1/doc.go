// Package fathomv1 is the generated Go for Fathom's wire contract
// (api/proto/fathom/v1): protobuf messages, gRPC clients and servers, and the
// grpc-gateway REST handlers. Regenerate with `make generate`; do not edit.
package fathomv1
