package server

import (
	"encoding/base64"
	"strconv"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Pagination of the list calls (ListJobs, ListTasks, ListNodes): page_size
// bounds an answer (0 = everything, as before pages existed; at most
// maxPageSize), next_page_token says where the next answer starts. Tokens
// are opaque to clients: the key of the last item sent (a job id, a node
// name) or the next task index, base64 with the list's kind, so a token of
// one list is refused by another.

// maxPageSize is the largest page.
const maxPageSize = 10000

func pageSize(n int32) (int, error) {
	if n < 0 || n > maxPageSize {
		return 0, status.Errorf(codes.InvalidArgument, "page_size %d: allowed 0 (everything) to %d", n, maxPageSize)
	}
	return int(n), nil
}

func pageToken(kind, key string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(kind + ":" + key))
}

// parseToken returns the key of a token of kind ("" for no token).
func parseToken(kind, tok string) (string, error) {
	if tok == "" {
		return "", nil
	}
	b, err := base64.RawURLEncoding.DecodeString(tok)
	key, ok := strings.CutPrefix(string(b), kind+":")
	if err != nil || !ok || key == "" {
		return "", status.Errorf(codes.InvalidArgument, "page_token %q is not a token of this list; pass next_page_token of the previous answer", tok)
	}
	return key, nil
}

func parseIndexToken(kind, tok string) (int32, error) {
	key, err := parseToken(kind, tok)
	if err != nil || key == "" {
		return 0, err
	}
	n, err := strconv.ParseInt(key, 10, 32)
	if err != nil || n < 0 {
		return 0, status.Errorf(codes.InvalidArgument, "page_token %q is not a token of this list; pass next_page_token of the previous answer", tok)
	}
	return int32(n), nil
}
