package resolve

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

func TestSystemServers(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	write := func(name, text string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	conf := write("resolv.conf", `# generated
search example.test
nameserver 127.0.0.53 # systemd-resolved
nameserver	::1
  nameserver 192.0.2.1
;nameserver 192.0.2.2
nameserver fe80::1%eth0
nameserver 127.0.0.53
nameserver not-an-ip
nameserver
nameservers 192.0.2.3
options edns0 trust-ad
nameserver 2001:DB8::53`)
	got, err := SystemServers(conf)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"127.0.0.53:53", "[::1]:53", "192.0.2.1:53", "[fe80::1%eth0]:53", "[2001:db8::53]:53"}
	if !slices.Equal(got, want) {
		t.Fatalf("got %q, want %q", got, want)
	}
	// The result is a valid Config.
	if err := (Config{Servers: got}).Validate(); err != nil {
		t.Fatal(err)
	}

	if _, err := SystemServers(write("empty.conf", "search example.test\n")); !errors.Is(err, ErrNoServers) {
		t.Fatalf("empty: err %v", err)
	}
	if _, err := SystemServers(filepath.Join(dir, "missing")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("missing: err %v", err)
	}
}
