package server

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"unicode/utf8"

	"github.com/danielgtaylor/huma/v2"
	"github.com/danielgtaylor/huma/v2/adapters/humago"

	"github.com/corral-project/corral/api"
	"github.com/corral-project/corral/internal/errs"
)

// decodeServer serves one operation that takes an api.UserCreate through
// the same register path, error mapping and schema validation as the daemon.
func decodeServer() (*http.ServeMux, *[]api.UserCreate) {
	mux := http.NewServeMux()
	s := &Server{mux: mux, Deps: Deps{Log: slog.New(slog.NewTextHandler(io.Discard, nil))}}
	s.api = humago.New(mux, huma.DefaultConfig("fuzz", "0"))
	var accepted []api.UserCreate
	register(s, huma.Operation{OperationID: "fuzz-user", Method: "POST", Path: "/users"}, Perm{Public: true},
		func(ctx context.Context, in *userCreateIn) (*struct{}, error) {
			if in.Body.UserID == "reject" {
				return nil, errs.Invalid("userid", "rejected by the handler")
			}
			accepted = append(accepted, in.Body)
			return nil, nil
		})
	return mux, &accepted
}

func post(mux *http.ServeMux, body []byte) *httptest.ResponseRecorder {
	req := httptest.NewRequest("POST", "/api/v1/users", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	rec := httptest.NewRecorder()
	mux.ServeHTTP(rec, req)
	return rec
}

func TestDecodeUserCreate(t *testing.T) {
	mux, accepted := decodeServer()
	tests := []struct {
		name   string
		body   string
		status int
		field  string
	}{
		{"valid", `{"userid":"a@corral","password":"12345678"}`, 200, ""},
		{"malformed", `{"userid":`, 400, ""},
		{"unknown field", `{"userid":"a@corral","password":"12345678","x":1}`, 422, "x"},
		{"wrong type", `{"userid":1,"password":"12345678"}`, 422, "userid"},
		{"too short", `{"userid":"a@corral","password":"1"}`, 422, "password"},
		{"too many groups", `{"userid":"a@corral","password":"12345678","groups":[` + repeat(`"g",`, 256) + `"g"]}`, 422, "groups"},
		{"handler field error", `{"userid":"reject","password":"12345678"}`, 422, "userid"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := post(mux, []byte(tt.body))
			if rec.Code != tt.status {
				t.Fatalf("status %d want %d: %s", rec.Code, tt.status, rec.Body)
			}
			if tt.status >= 400 {
				if ct := rec.Header().Get("Content-Type"); ct != "application/problem+json" {
					t.Fatalf("content type %q", ct)
				}
				var p api.Problem
				if err := json.Unmarshal(rec.Body.Bytes(), &p); err != nil || p.Status != tt.status {
					t.Fatalf("problem %s: %v", rec.Body, err)
				}
				found := tt.field == ""
				for _, e := range p.Errors {
					found = found || e.Field == tt.field
				}
				if !found {
					t.Fatalf("field %q not named: %+v", tt.field, p.Errors)
				}
			}
		})
	}
	if len(*accepted) != 1 {
		t.Fatalf("handler saw %d bodies, want only the valid one", len(*accepted))
	}
}

func repeat(s string, n int) string {
	var b bytes.Buffer
	for range n {
		b.WriteString(s)
	}
	return b.String()
}

// FuzzDecodeUserCreate feeds arbitrary bodies to the decoding pipeline:
// it must never answer 5xx or panic, every error must be a problem
// document, and whatever reaches the handler must satisfy the schema.
func FuzzDecodeUserCreate(f *testing.F) {
	for _, seed := range []string{
		`{"userid":"a@corral","password":"12345678"}`,
		`{"userid":"a@corral","password":"12345678","groups":["x","y"],"enabled":false,"expire":"2030-01-01T00:00:00Z"}`,
		`{"userid":"a@corral","password":"12345678","email":"a@b.c"}`,
		`{}`, `[]`, `null`, `"x"`, `{"userid":"\u0000"}`, `{"userid":"a@corral","password":"12345678","expire":"yesterday"}`,
	} {
		f.Add([]byte(seed))
	}
	mux, accepted := decodeServer()
	f.Fuzz(func(t *testing.T, body []byte) {
		n := len(*accepted)
		rec := post(mux, body)
		if rec.Code >= 500 {
			t.Fatalf("5xx for %q: %d %s", body, rec.Code, rec.Body)
		}
		if rec.Code >= 400 {
			if ct := rec.Header().Get("Content-Type"); ct != "application/problem+json" {
				t.Fatalf("error without problem+json for %q: %s", body, ct)
			}
			if len(*accepted) != n {
				t.Fatalf("handler ran for a rejected body %q", body)
			}
			return
		}
		got := (*accepted)[len(*accepted)-1]
		if l := utf8.RuneCountInString(got.UserID); l < 3 || l > 128 {
			t.Fatalf("accepted userid of length %d from %q", l, body)
		}
		if l := utf8.RuneCountInString(got.Password); got.Password != "" && l < 8 {
			t.Fatalf("accepted password of length %d from %q", l, body)
		}
		if len(got.Groups) > 256 {
			t.Fatalf("accepted %d groups", len(got.Groups))
		}
	})
}
