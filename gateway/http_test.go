package gateway

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/tlsready/tlsready/scanner/result"
)

// httpDo sends a request and returns the status and body.
func httpDo(t *testing.T, method, url, token, body string, hdr ...string) (int, http.Header, string) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(t.Context(), method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header, string(b)
}

func decode[T any](t *testing.T, body string) T {
	t.Helper()
	var v T
	if err := json.Unmarshal([]byte(body), &v); err != nil {
		t.Fatalf("decode %q: %v", body, err)
	}
	return v
}

func startHTTP(t *testing.T, cfg Config) (base string, s *Server, logs *syncBuffer) {
	t.Helper()
	st := openTestStore(t)
	fillVerdicts(t, st, testNow)
	s, logs = newTestServer(t, st, cfg)
	return "http://" + serve(t, s.ServeAPI), s, logs
}

func TestHTTPDomains(t *testing.T) {
	t.Parallel()
	base, _, _ := startHTTP(t, Config{})
	for _, vd := range verdictDomains {
		code, hdr, body := httpDo(t, "GET", base+"/v1/domains/"+vd.domain, "", "")
		if code != 200 || hdr.Get("Content-Type") != "application/json" {
			t.Fatalf("%s: %d %s", vd.domain, code, body)
		}
		a := decode[Answer](t, body)
		if a.Domain != vd.domain || a.Policy != vd.policy || !a.Verdict.Valid() {
			t.Errorf("%s: %+v, want policy %q", vd.domain, a, vd.policy)
		}
		if a.ValidUntil.Sub(a.ScannedAt) != DefaultStaleAfter || a.Stale != (vd.domain == "stale.example.test") {
			t.Errorf("%s: scanned %v valid until %v stale %v", vd.domain, a.ScannedAt, a.ValidUntil, a.Stale)
		}
	}

	code, _, body := httpDo(t, "GET", base+"/v1/domains/STS.Example.Test.", "", "")
	a := decode[Answer](t, body)
	want := Answer{
		Domain: "sts.example.test", Verdict: result.MTASTS, Flags: []string{},
		ScannedAt: testNow.Add(-time.Hour), ValidUntil: testNow.Add(-time.Hour + DefaultStaleAfter),
		Policy: "secure match=.mx.example.net:mx1.sts.example.test servername=hostname",
		MX:     []string{"a.mx.example.net", "mx1.sts.example.test"},
	}
	if code != 200 || mustJSON(t, a) != mustJSON(t, want) {
		t.Errorf("got %d %s\nwant %s", code, body, mustJSON(t, want))
	}
	// The raw JSON carries exactly the documented fields.
	raw := decode[map[string]any](t, body)
	for _, k := range []string{"domain", "verdict", "flags", "scanned_at", "valid_until", "stale", "policy", "mx"} {
		if _, ok := raw[k]; !ok {
			t.Errorf("answer lacks %q: %s", k, body)
		}
	}

	// IDN in U-label form, percent-encoded in the path.
	_, _, body = httpDo(t, "GET", base+"/v1/domains/B%C3%BCcher.example", "", "")
	if a := decode[Answer](t, body); a.Domain != "xn--bcher-kva.example" || a.DomainUnicode != "bücher.example" || a.Verdict != result.Encrypted {
		t.Errorf("IDN: %s", body)
	}

	// Not in the cache: unknown, not an error.
	code, _, body = httpDo(t, "GET", base+"/v1/domains/not-scanned.example.test", "", "")
	if a := decode[Answer](t, body); code != 200 || a.Verdict != result.Unknown || a.Policy != "" || a.Stale || !a.ScannedAt.IsZero() {
		t.Errorf("unknown: %d %s", code, body)
	}

	for _, bad := range []string{"bad_name.example", "a..b", "%5B192.0.2.1%5D", strings.Repeat("a", 70) + ".example"} {
		if code, _, body := httpDo(t, "GET", base+"/v1/domains/"+bad, "", ""); code != 400 || !strings.Contains(body, `"error"`) {
			t.Errorf("%s: %d %s", bad, code, body)
		}
	}
	if code, _, _ := httpDo(t, "GET", base+"/v1/domains/verified.example.test?live=maybe", "", ""); code != 400 {
		t.Errorf("live=maybe: %d", code)
	}
	if code, _, _ := httpDo(t, "GET", base+"/v1/domains/not-scanned.example.test?live=1", "", ""); code != 403 {
		t.Errorf("live disabled: %d", code)
	}
	for _, path := range []string{"/", "/v1/domains/", "/v2/domains/x.example", "/v1/domains/a/b"} {
		if code, _, _ := httpDo(t, "GET", base+path, "", ""); code != 404 {
			t.Errorf("GET %s: %d", path, code)
		}
	}
	// A known path with another method: 405 with Allow (RFC 9110 §15.5.6).
	for _, tc := range []struct{ method, path, allow string }{
		{"DELETE", "/v1/domains/verified.example.test", "GET, HEAD"},
		{"POST", "/v1/domains/verified.example.test", "GET, HEAD"},
		{"PUT", "/v1/recipients/a@verified.example.test", "GET, HEAD"},
		{"GET", "/v1/lookup", "POST"},
		{"POST", "/healthz", "GET, HEAD"},
		{"DELETE", "/metrics", "GET, HEAD"},
	} {
		code, hdr, body := httpDo(t, tc.method, base+tc.path, "", "")
		if code != 405 || hdr.Get("Allow") != tc.allow || !strings.Contains(body, "method not allowed") {
			t.Errorf("%s %s: %d, Allow %q, %s; want 405, Allow %q", tc.method, tc.path, code, hdr.Get("Allow"), body, tc.allow)
		}
	}
	if code, _, _ := httpDo(t, "DELETE", base+"/v2/nothing", "", ""); code != 404 {
		t.Errorf("DELETE of an unknown path: %d, want 404", code)
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestHTTPRecipientsNeverLogAddresses(t *testing.T) {
	t.Parallel()
	base, _, logs := startHTTP(t, Config{})
	code, _, body := httpDo(t, "GET", base+"/v1/recipients/Secret.Person%40Verified.Example.Test", "", "")
	if a := decode[Answer](t, body); code != 200 || a.Domain != "verified.example.test" || a.Verdict != result.Verified {
		t.Errorf("%d %s", code, body)
	}
	if strings.Contains(body, "Secret.Person") {
		t.Errorf("answer echoes the address: %s", body)
	}
	// A '/' in the local part, percent-encoded, stays inside the path segment.
	if code, _, body := httpDo(t, "GET", base+"/v1/recipients/secret%2Fperson%40dane.example.test", "", ""); code != 200 || !strings.Contains(body, `"dane"`) {
		t.Errorf("slash in local part: %d %s", code, body)
	}
	for _, bad := range []string{"secret.person", "secret.person%40", "secret.person%40bad_domain.example"} {
		code, _, body := httpDo(t, "GET", base+"/v1/recipients/"+bad, "", "")
		if code != 400 || strings.Contains(body, "secret.person") {
			t.Errorf("%s: %d %s", bad, code, body)
		}
	}
	_, _, body = httpDo(t, "POST", base+"/v1/lookup", "", `{"recipients":["secret.person@dane.example.test","secret.person@","secret.person"]}`)
	if strings.Contains(body, "secret.person") {
		t.Errorf("batch answer echoes an address: %s", body)
	}
	out := logs.String()
	if !strings.Contains(out, "domain=verified.example.test") {
		t.Errorf("the lookup was not logged at debug level (so this test proves nothing): %q", out)
	}
	if strings.Contains(strings.ToLower(out), "secret.person") {
		t.Errorf("log contains the address's local part:\n%s", out)
	}
}

func TestHTTPBatch(t *testing.T) {
	t.Parallel()
	base, _, _ := startHTTP(t, Config{MaxBatch: 4})
	code, _, body := httpDo(t, "POST", base+"/v1/lookup", "",
		`{"domains":["dane.example.test","nope.example.test","bad_name"],"recipients":["a@Verified.Example.Test"]}`)
	if code != 200 {
		t.Fatalf("%d %s", code, body)
	}
	resp := decode[LookupResponse](t, body)
	got := []string{}
	for _, a := range append(resp.Domains, resp.Recipients...) {
		got = append(got, a.Domain+"="+string(a.Verdict)+a.Error)
	}
	if want := "dane.example.test=dane nope.example.test=unknown =invalid domain name verified.example.test=verified"; strings.Join(got, " ") != want {
		t.Errorf("got %q\nwant %q", strings.Join(got, " "), want)
	}

	tooLong := `{"domains":["a.example","b.example","c.example","d.example","e.example"]}`
	cases := []struct {
		name, body string
		code       int
	}{
		{"too many items", tooLong, 413},
		{"too large", `{"domains":["` + strings.Repeat("a", 16<<10) + `"]}`, 413},
		{"empty body", ``, 400},
		{"empty object", `{}`, 400},
		{"not JSON", `domains=a.example`, 400},
		{"truncated", `{"domains":["a.example"`, 400},
		{"unknown field", `{"domains":["a.example"],"addresses":["x@y.example"]}`, 400},
		{"wrong type", `{"domains":"a.example"}`, 400},
		{"trailing data", `{"domains":["a.example"]} {}`, 400},
		{"array", `["a.example"]`, 400},
	}
	for _, c := range cases {
		code, _, body := httpDo(t, "POST", base+"/v1/lookup", "", c.body)
		if code != c.code || !strings.Contains(body, `"error"`) {
			t.Errorf("%s: %d %s, want %d", c.name, code, body, c.code)
		}
	}
	if code, _, _ := httpDo(t, "POST", base+"/v1/lookup?live=1", "", `{"domains":["a.example"]}`); code != 400 {
		t.Errorf("batch live: %d", code)
	}
	if code, hdr, _ := httpDo(t, "GET", base+"/v1/lookup", "", ""); code != 405 || hdr.Get("Allow") != "POST" {
		t.Errorf("GET /v1/lookup: %d, Allow %q; want 405, POST", code, hdr.Get("Allow"))
	}
}

func TestHTTPToken(t *testing.T) {
	t.Parallel()
	const token = "s3cret-token-for-the-gateway"
	base, _, _ := startHTTP(t, Config{Token: []byte(token)})
	for _, path := range []string{"/v1/domains/dane.example.test", "/healthz", "/metrics", "/nope"} {
		for _, tok := range []string{"", "wrong", token + "x", token[:len(token)-1]} {
			code, hdr, _ := httpDo(t, "GET", base+path, tok, "")
			if code != 401 || !strings.HasPrefix(hdr.Get("WWW-Authenticate"), "Bearer") {
				t.Errorf("%s with token %q: %d", path, tok, code)
			}
		}
	}
	for _, h := range []string{"Basic " + token, "bearer" + token, token} {
		if code, _, _ := httpDo(t, "GET", base+"/healthz", "", "", "Authorization", h); code != 401 {
			t.Errorf("Authorization %q: %d", h, code)
		}
	}
	if code, _, body := httpDo(t, "GET", base+"/v1/domains/dane.example.test", token, ""); code != 200 || !strings.Contains(body, `"dane-only"`) {
		t.Errorf("with token: %d %s", code, body)
	}
	if code, _, _ := httpDo(t, "POST", base+"/v1/lookup", token, `{"domains":["dane.example.test"]}`); code != 200 {
		t.Errorf("batch with token: %d", code)
	}
	if code, _, _ := httpDo(t, "POST", base+"/v1/lookup", "", `{"domains":["dane.example.test"]}`); code != 401 {
		t.Errorf("batch without token: %d", code)
	}
}

func TestHTTPHealthMetrics(t *testing.T) {
	t.Parallel()
	base, _, _ := startHTTP(t, Config{})
	code, _, body := httpDo(t, "GET", base+"/healthz", "", "")
	h := decode[Health](t, body)
	if code != 200 || h.Status != "ok" || h.Domains != len(verdictDomains) || h.DataVersion == 0 || h.Live {
		t.Errorf("healthz: %d %s", code, body)
	}
	httpDo(t, "GET", base+"/v1/domains/dane.example.test", "", "")
	httpDo(t, "GET", base+"/v1/domains/stale.example.test", "", "")
	httpDo(t, "GET", base+"/v1/domains/nope.example.test", "", "")
	httpDo(t, "GET", base+"/v1/domains/bad_name", "", "")
	code, hdr, body := httpDo(t, "GET", base+"/metrics", "", "")
	if code != 200 || !strings.HasPrefix(hdr.Get("Content-Type"), "text/plain") {
		t.Fatalf("metrics: %d %s", code, hdr.Get("Content-Type"))
	}
	for _, want := range []string{
		`tlsready_gateway_http_requests_total{code="200",endpoint="domains"} 3`,
		`tlsready_gateway_http_requests_total{code="400",endpoint="domains"} 1`,
		`tlsready_gateway_lookups_total{outcome="hit",source="cache"} 1`,
		`tlsready_gateway_lookups_total{outcome="stale",source="cache"} 1`,
		`tlsready_gateway_lookups_total{outcome="miss",source="cache"} 1`,
		`tlsready_gateway_http_request_duration_seconds_bucket{endpoint="domains",le="0.001"}`,
		`tlsready_gateway_cache_domains 14`,
		`tlsready_gateway_data_age_seconds 3600`,
		`tlsready_gateway_cache_ready 1`,
		`go_goroutines `,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
}

// Before the first cache load completes, lookups are answered from the store.
func TestHTTPBeforeLoad(t *testing.T) {
	t.Parallel()
	st := openTestStore(t)
	fillVerdicts(t, st, testNow)
	s := newUnloadedServer(t, st)
	base := "http://" + serve(t, s.ServeAPI)
	if code, _, body := httpDo(t, "GET", base+"/healthz", "", ""); code != 503 || !strings.Contains(body, `"loading"`) {
		t.Errorf("healthz before load: %d %s", code, body)
	}
	for d, want := range map[string]string{"dane.example.test": "dane-only", "stale.example.test": "", "nope.example.test": ""} {
		code, _, body := httpDo(t, "GET", base+"/v1/domains/"+d, "", "")
		if a := decode[Answer](t, body); code != 200 || a.Policy != want {
			t.Errorf("%s before load: %d %s", d, code, body)
		}
	}
	if code, _, body := httpDo(t, "POST", base+"/v1/lookup", "", `{"domains":["verified.example.test"]}`); code != 200 || !strings.Contains(body, `"verify"`) {
		t.Errorf("batch before load: %d %s", code, body)
	}
	if a, err := s.Lookup(t.Context(), "Encrypted.Example.Test"); err != nil || a.Policy != "encrypt" {
		t.Errorf("Lookup before load: %+v, %v", a, err)
	}
	_, _, body := httpDo(t, "GET", base+"/metrics", "", "")
	if !strings.Contains(body, `tlsready_gateway_lookups_total{outcome="hit",source="store"} 3`) {
		t.Errorf("store lookups not counted:\n%s", body)
	}
	// A store that cannot answer: 503, never a wrong "unknown".
	st.Close()
	if code, hdr, body := httpDo(t, "GET", base+"/v1/domains/dane.example.test", "", ""); code != 503 || hdr.Get("Retry-After") == "" {
		t.Errorf("store closed: %d %s", code, body)
	}
	if code, _, body := httpDo(t, "POST", base+"/v1/lookup", "", `{"domains":["verified.example.test"]}`); code != 503 {
		t.Errorf("batch, store closed: %d %s", code, body)
	}
}

// rawHTTP writes bytes to the server and returns the status line of the reply.
func rawHTTP(t *testing.T, addr, req string) string {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	// The server may answer and close before reading everything we send.
	go io.WriteString(c, req)
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		t.Fatalf("reading reply: %v", err)
	}
	return strings.TrimSpace(line)
}

func TestHTTPMalformedAndOversized(t *testing.T) {
	t.Parallel()
	base, _, _ := startHTTP(t, Config{})
	addr := strings.TrimPrefix(base, "http://")
	cases := []struct{ req, want string }{
		{"GET /v1/domains/dane.example.test HTTP/1.1\r\nHost: x\r\n\r\n", "HTTP/1.1 200 OK"},
		{"GET /v1/domains/dane.example.test HTTP/1.1\r\nHost: x\r\nX-Big: " + strings.Repeat("a", 16<<10) + "\r\n\r\n", "HTTP/1.1 431 Request Header Fields Too Large"},
		{"NONSENSE\r\n\r\n", "HTTP/1.1 400 Bad Request"},
		{"GET /v1/domains/dane.example.test HTTP/9.9\r\n\r\n", "HTTP/1.1 505 HTTP Version Not Supported"},
		{"GET /v1/domains/dane.example.test HTTP/1.1\r\n\r\n", "HTTP/1.1 400 Bad Request"}, // no Host
	}
	for _, c := range cases {
		if got := rawHTTP(t, addr, c.req); !strings.HasPrefix(got, c.want) {
			t.Errorf("%.60q: %q, want %q", c.req, got, c.want)
		}
	}
	// Bodies: bounded by MaxBatch (here the default, 1000): about 1 MiB.
	big := "POST /v1/lookup HTTP/1.1\r\nHost: x\r\nContent-Length: 2000000\r\n\r\n{\"domains\":[\"" + strings.Repeat("a", 1100000)
	if got := rawHTTP(t, addr, big); got != "HTTP/1.1 413 Request Entity Too Large" {
		t.Errorf("oversized body: %q", got)
	}
}

// FuzzLookupRequest: the batch parser never panics, enforces the item bound,
// returns only its own error kinds, and never quotes the input in errors.
func FuzzLookupRequest(f *testing.F) {
	for _, s := range []string{
		`{"domains":["a.example"]}`,
		`{"domains":["a.example","b.example"],"recipients":["x@y.example"]}`,
		`{"recipients":["secret@y.example"]} {}`,
		`{"domains":"secret"}`,
		`{"domains":[1,2]}`,
		`{"other":1}`,
		`{}`,
		`[`,
		`{"domains":["a","b","c","d","e"]}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		req, err := ParseLookupRequest(bytes.NewReader(data), 4)
		if err != nil {
			if !errors.Is(err, ErrBadRequest) && !errors.Is(err, ErrBatchTooLong) {
				t.Fatalf("error of unknown kind: %v", err)
			}
			if strings.Contains(err.Error(), "secret") {
				t.Fatalf("error quotes the input: %v", err)
			}
			return
		}
		if n := len(req.Domains) + len(req.Recipients); n == 0 || n > 4 {
			t.Fatalf("%d items accepted", n)
		}
	})
}

// TestOpsHandler: the ops listener serves health and metrics without the
// token the API requires, and nothing else.
func TestOpsHandler(t *testing.T) {
	t.Parallel()
	const token = "s3cret-token-for-the-gateway"
	base, s, _ := startHTTP(t, Config{Token: []byte(token)})
	ops := "http://" + serve(t, s.ServeOps)
	if code, _, _ := httpDo(t, "GET", base+"/healthz", "", ""); code != 401 {
		t.Errorf("API /healthz without the token: %d, want 401", code)
	}
	if code, _, body := httpDo(t, "GET", ops+"/healthz", "", ""); code != 200 || decode[Health](t, body).Status != "ok" {
		t.Errorf("ops /healthz: %d %s", code, body)
	}
	if code, _, body := httpDo(t, "GET", ops+"/metrics", "", ""); code != 200 || !strings.Contains(body, "tlsready_gateway_cache_ready 1") {
		t.Errorf("ops /metrics: %d", code)
	}
	for _, path := range []string{"/v1/domains/dane.example.test", "/v1/recipients/a@dane.example.test", "/"} {
		if code, _, _ := httpDo(t, "GET", ops+path, "", ""); code != 404 {
			t.Errorf("ops %s: %d, want 404", path, code)
		}
		if code, _, _ := httpDo(t, "GET", ops+path, token, ""); code != 404 {
			t.Errorf("ops %s with the token: %d, want 404", path, code)
		}
	}
	if code, hdr, _ := httpDo(t, "POST", ops+"/metrics", "", ""); code != 405 || hdr.Get("Allow") != "GET, HEAD" {
		t.Errorf("ops POST /metrics: %d %q", code, hdr.Get("Allow"))
	}
}

// TestAnswerMetrics: the socketmap's hits are its OK answers (a fresh
// result without a policy is no-policy, not a hit), and answers are counted
// per policy level for HTTP and the socketmap.
func TestAnswerMetrics(t *testing.T) {
	t.Parallel()
	base, s, _ := startHTTP(t, Config{})
	c := dialSocketmap(t, serve(t, s.ServeSocketmap))
	for key, want := range map[string]string{
		"dane.example.test":      "OK dane-only",
		"verified.example.test":  "OK verify",
		"plaintext.example.test": "NOTFOUND ",
		"partial.example.test":   "NOTFOUND ",
		"stale.example.test":     "NOTFOUND ",
		"nope.example.test":      "NOTFOUND ",
		"[192.0.2.1]:25":         "NOTFOUND ",
	} {
		if got := c.query(key); got != want {
			t.Errorf("socketmap %s: %q, want %q", key, got, want)
		}
	}
	httpDo(t, "GET", base+"/v1/domains/dane.example.test", "", "")
	httpDo(t, "GET", base+"/v1/domains/plaintext.example.test", "", "")
	httpDo(t, "POST", base+"/v1/lookup", "", `{"domains":["sts.example.test","encrypted.example.test","bad_name"]}`)
	_, _, body := httpDo(t, "GET", base+"/metrics", "", "")
	for _, want := range []string{
		`tlsready_gateway_lookups_total{outcome="hit",source="socketmap"} 2`,
		`tlsready_gateway_lookups_total{outcome="no-policy",source="socketmap"} 2`,
		`tlsready_gateway_lookups_total{outcome="stale",source="socketmap"} 1`,
		`tlsready_gateway_lookups_total{outcome="miss",source="socketmap"} 1`,
		`tlsready_gateway_socketmap_requests_total{status="OK"} 2`,
		`tlsready_gateway_socketmap_requests_total{status="NOTFOUND"} 5`,
		`tlsready_gateway_answers_total{policy="dane-only",source="socketmap"} 1`,
		`tlsready_gateway_answers_total{policy="verify",source="socketmap"} 1`,
		`tlsready_gateway_answers_total{policy="none",source="socketmap"} 5`,
		`tlsready_gateway_answers_total{policy="dane-only",source="http"} 1`,
		`tlsready_gateway_answers_total{policy="none",source="http"} 1`,
		`tlsready_gateway_answers_total{policy="secure",source="http"} 1`,
		`tlsready_gateway_answers_total{policy="encrypt",source="http"} 1`,
		`tlsready_gateway_answers_total{policy="may",source="http"} 0`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
}
