package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/fathom-scheduler/fathom/internal/cli"
)

// apiClient talks REST to the control plane (--server / FATHOM_ADDR).
type apiClient struct {
	base string
	http *http.Client
}

func newAPIClient(g *cli.Globals) *apiClient {
	return &apiClient{base: g.ServerURL(), http: &http.Client{Timeout: 60 * time.Second}}
}

// rpcStatus is google.rpc.Status as the gateway writes it.
type rpcStatus struct {
	Code    int    `json:"code"`
	Message string `json:"message"`
	Details []struct {
		Type            string `json:"@type"`
		FieldViolations []struct {
			Field       string `json:"field"`
			Description string `json:"description"`
		} `json:"field_violations"`
	} `json:"details"`
}

// call sends body (nil = none) and decodes a 200 into out (nil = ignore). A
// 400 becomes a usage error (exit 2) carrying the server's message.
func (c *apiClient) call(ctx context.Context, method, path string, query url.Values, contentType string, body []byte, out proto.Message) error {
	u := c.base + path
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return err
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return reachError(c.base, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return fmt.Errorf("%s %s: reading the reply: %w", method, path, err)
	}
	if resp.StatusCode != http.StatusOK {
		return apiError(resp.StatusCode, data)
	}
	if out == nil {
		return nil
	}
	if err := (protojson.UnmarshalOptions{DiscardUnknown: true}).Unmarshal(data, out); err != nil {
		return fmt.Errorf("%s %s: unexpected reply: %w", method, path, err)
	}
	return nil
}

// reachError is the error for a request that got no HTTP reply. An
// HTTP/1.1 client that reaches a gRPC-only port reads an HTTP/2 SETTINGS
// frame, which net/http reports as a malformed response starting with zero
// bytes; say which port to use instead (exit 2: the address is bad input).
func reachError(base string, err error) error {
	if strings.Contains(err.Error(), `malformed HTTP response "\x00\x00`) {
		return cli.UsageErrorf("%s answered in HTTP/2 binary framing: that is the control plane's gRPC port (fathom server --grpc-addr, 7071 by default); point --server or FATHOM_ADDR at its REST address (--http-addr, e.g. http://127.0.0.1:7070)", base)
	}
	return fmt.Errorf("cannot reach the control plane at %s (set --server or FATHOM_ADDR): %w", base, err)
}

func apiError(code int, data []byte) error {
	var st rpcStatus
	msg := string(bytes.TrimSpace(data))
	if json.Unmarshal(data, &st) == nil && st.Message != "" {
		msg = st.Message
	}
	if code == http.StatusBadRequest {
		return cli.UsageErrorf("%s", msg)
	}
	return &httpError{Code: code, Msg: msg}
}

// httpError is a non-200, non-400 reply.
type httpError struct {
	Code int
	Msg  string
}

func (e *httpError) Error() string { return fmt.Sprintf("%s (HTTP %d)", e.Msg, e.Code) }

func isNotFound(err error) bool {
	var he *httpError
	return errors.As(err, &he) && he.Code == http.StatusNotFound
}

// marshalOut converts a proto message to a plain value for -o json|yaml with
// the API's field names.
func marshalOut(m proto.Message) (any, error) {
	b, err := protojson.MarshalOptions{UseProtoNames: true}.Marshal(m)
	if err != nil {
		return nil, err
	}
	var v any
	return v, json.Unmarshal(b, &v)
}
