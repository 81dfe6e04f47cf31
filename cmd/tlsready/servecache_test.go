package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tlsready/tlsready/gateway"
	"github.com/tlsready/tlsready/scanner/result"
	"github.com/tlsready/tlsready/scanner/scantest"
	"github.com/tlsready/tlsready/store/pgtest"
)

// TestPostgresServeStartsDuringOutage: a node restarted while PostgreSQL
// is down still answers. serve on a real PostgreSQL writes its cache file
// (0600); PostgreSQL is stopped; a new serve started with that file
// answers Postfix's postmap -q (socketmap) exactly as before for every
// demo domain, /healthz says "degraded" with the file's synced_at and
// /metrics that the answers come from the file; a serve without a cache
// file starts too, says "no data" and answers not found (never TEMP).
// PostgreSQL starts again: both switch to live data (a change made after
// the restart reaches them) and health is "ok".
func TestPostgresServeStartsDuringOutage(t *testing.T) {
	pm := scantest.NewPostmap(t)
	cluster := pgtest.Start(t)
	db := cluster.NewDatabase(t)
	_, expected := scanDemo(t, db)
	cacheFile := filepath.Join(t.TempDir(), "serve.cache")
	first := startServeChild(t, "--db", db, "--http", "127.0.0.1:0", "--socketmap", "127.0.0.1:0", "--cache-file", cacheFile)
	want := map[string]string{"example.test": ""} // not scanned: not found
	for d := range expected {
		want[d], _ = pm.QuerySocketmap(t, first.sm, "tlspolicy", d)
	}
	// The file is written after the first refresh.
	for deadline := time.Now().Add(30 * time.Second); ; {
		if fi, err := os.Stat(cacheFile); err == nil {
			if fi.Mode().Perm() != 0o600 {
				t.Errorf("cache file mode %04o, want 0600", fi.Mode().Perm())
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no cache file 30 s after serve started")
		}
		time.Sleep(50 * time.Millisecond) // a child process: no event to wait on
	}
	first.cmd.Process.Signal(syscall.SIGTERM)
	<-first.exitCode
	if err := cluster.StopServer(); err != nil {
		t.Fatal(err)
	}

	node := startServeChild(t, "--db", db, "--http", "127.0.0.1:0", "--socketmap", "127.0.0.1:0", "--cache-file", cacheFile)
	bare := startServeChildUntil(t, "no cache file", "--db", db, "--http", "127.0.0.1:0", "--socketmap", "127.0.0.1:0", "--cache-file", "none")
	health := func(c *serveChild) (int, gateway.Health) {
		t.Helper()
		code, body := httpGetBody(t, "http://"+c.http+"/healthz")
		var h gateway.Health
		if err := json.Unmarshal([]byte(body), &h); err != nil {
			t.Fatalf("/healthz: %s", body)
		}
		return code, h
	}
	for d, w := range want {
		if got, found := pm.QuerySocketmap(t, node.sm, "tlspolicy", d); got != w || found != (w != "") {
			t.Errorf("from the cache file, postmap -q %s: %q, want %q", d, got, w)
		}
		if got, found := pm.QuerySocketmap(t, bare.sm, "tlspolicy", d); found {
			t.Errorf("without data, postmap -q %s: %q, want not found", d, got)
		}
		if reply, err := socketmapGet(bare.sm, d); err != nil || reply != "NOTFOUND " {
			t.Errorf("without data, socketmap %s: %q %v", d, reply, err)
		}
	}
	if code, h := health(node); code != 200 || h.Status != "degraded" || !h.FromCacheFile || h.SyncedAt.IsZero() || h.Domains != len(expected) {
		t.Errorf("/healthz from the cache file: %d %+v", code, h)
	}
	if _, m := httpGetBody(t, "http://"+node.http+"/metrics"); !strings.Contains(m, "\ntlsready_gateway_cache_from_file 1\n") {
		t.Error("/metrics from the cache file: no tlsready_gateway_cache_from_file 1")
	}
	if code, h := health(bare); code != 503 || h.Status != "no data" || h.Domains != 0 {
		t.Errorf("/healthz without data: %d %+v", code, h)
	}

	if err := cluster.StartServer(); err != nil {
		t.Fatal(err)
	}
	domain := domainNotIn(expected, result.DANE, result.MTASTS)
	// A tightening: two scans see it (the confirmation rule).
	saveAsDANE(t, db, domain, 2)
	for _, c := range []*serveChild{node, bare} {
		deadline := time.Now().Add(60 * time.Second)
		for {
			got, _ := pm.QuerySocketmap(t, c.sm, "tlspolicy", domain)
			code, h := health(c)
			if got == "dane-only" && code == 200 && h.Status == "ok" && !h.FromCacheFile {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s 60 s after PostgreSQL started: %s answers %q, /healthz %d %+v", c.sm, domain, got, code, h)
			}
			time.Sleep(100 * time.Millisecond) // a child process: no event to wait on
		}
	}
}

// TestServeCacheFileDefault: --cache-file's default is a file named by a
// hash of the URL (never its password) in $CACHE_DIRECTORY for PostgreSQL,
// none for SQLite; "none" turns it off and a path is taken as given.
func TestServeCacheFileDefault(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("CACHE_DIRECTORY", dir)
	url := "postgres://tlsready:secret@db.example:5432/tlsready"
	got, err := serveCacheFile("", url)
	if err != nil || filepath.Dir(got) != dir || !strings.HasPrefix(filepath.Base(got), "serve-") || strings.Contains(got, "secret") {
		t.Errorf("postgres default: %q %v", got, err)
	}
	other, _ := serveCacheFile("", "postgres://tlsready:other@db.example:5432/tlsready")
	if other != got {
		t.Errorf("the password changes the name: %q %q", got, other)
	}
	if other, _ := serveCacheFile("", "postgres://tlsready@db2.example:5432/tlsready"); other == got {
		t.Errorf("two databases share %q", got)
	}
	for _, c := range []struct{ flag, db, want string }{
		{"", "/var/lib/tlsready/tlsready.db", ""},
		{"none", url, ""},
		{"/x/y.cache", "/var/lib/tlsready/tlsready.db", "/x/y.cache"},
	} {
		if got, err := serveCacheFile(c.flag, c.db); got != c.want || err != nil {
			t.Errorf("--cache-file %q --db %s: %q %v, want %q", c.flag, c.db, got, err, c.want)
		}
	}
}
