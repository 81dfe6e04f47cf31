package main

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/spf13/pflag"
)

// fakeHosts is a system resolver over fixed tables.
type fakeHosts struct {
	cname map[string]string
	addrs map[string][]string
	ptr   map[string][]string
}

var errNoHost = errors.New("no such host")

func (f fakeHosts) LookupCNAME(_ context.Context, host string) (string, error) {
	if c, ok := f.cname[host]; ok {
		return c, nil
	}
	return "", errNoHost
}

func (f fakeHosts) LookupHost(_ context.Context, host string) ([]string, error) {
	if a, ok := f.addrs[host]; ok {
		return a, nil
	}
	return nil, errNoHost
}

func (f fakeHosts) LookupAddr(_ context.Context, addr string) ([]string, error) {
	if n, ok := f.ptr[addr]; ok {
		return n, nil
	}
	return nil, errNoHost
}

// TestDefaultHELO: the default EHLO name is the host's fully qualified name,
// found as hostname -f would; a bare name is refused with what to pass.
func TestDefaultHELO(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name     string
		hostname string
		hosts    fakeHosts
		want     string // "" : refused
	}{
		{"dotted host name", "Scanner.Example.ORG.", fakeHosts{}, "scanner.example.org"},
		{"canonical name from /etc/hosts", "vm", fakeHosts{cname: map[string]string{"vm": "vm.portal.example."}}, "vm.portal.example"},
		{"canonical name is the bare name", "vm", fakeHosts{
			cname: map[string]string{"vm": "vm."},
			addrs: map[string][]string{"vm": {"127.0.1.1", "192.0.2.7"}},
			ptr: map[string][]string{
				"127.0.1.1": {"vm.loopback.example."},
				"192.0.2.7": {"mail.other.example.", "vm.portal.example."},
			},
		}, "vm.portal.example"},
		{"reverse name of another form", "vm", fakeHosts{
			addrs: map[string][]string{"vm": {"192.0.2.7"}},
			ptr:   map[string][]string{"192.0.2.7": {"ec2-192-0-2-7.compute.example."}},
		}, "ec2-192-0-2-7.compute.example"},
		{"only loopback", "vm", fakeHosts{
			cname: map[string]string{"vm": "vm"},
			addrs: map[string][]string{"vm": {"127.0.0.1", "::1"}},
			ptr:   map[string][]string{"127.0.0.1": {"localhost"}, "::1": {"ip6-localhost"}},
		}, ""},
		{"localdomain", "vm", fakeHosts{cname: map[string]string{"vm": "vm.localdomain."}}, ""},
		{"nothing", "vm", fakeHosts{}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := defaultHELO(t.Context(), func() (string, error) { return tc.hostname, nil }, tc.hosts)
			switch {
			case tc.want == "" && err == nil:
				t.Errorf("got %q, want a refusal", got)
			case tc.want == "" && (!strings.Contains(err.Error(), "--helo") || !strings.Contains(err.Error(), `"vm"`)):
				t.Errorf("refusal %q does not name the host or say what to pass", err)
			case tc.want != "" && (err != nil || got != tc.want):
				t.Errorf("got %q, %v; want %q", got, err, tc.want)
			}
		})
	}
	if _, err := defaultHELO(t.Context(), func() (string, error) { return "", errors.New("uname failed") }, fakeHosts{}); err == nil {
		t.Error("no host name: no error")
	}
}

// TestHELOFlag: validate settles --helo: an explicit name must be fully
// qualified (exit 2 otherwise), and without --helo the default is found or
// refused as a usage error.
func TestHELOFlag(t *testing.T) {
	t.Parallel()
	flags := func(helo string, hostname string, hosts fakeHosts) *scanFlags {
		f := &scanFlags{}
		fs := pflag.NewFlagSet("t", pflag.ContinueOnError)
		f.register(fs)
		f.helo = helo
		f.hostname = func() (string, error) { return hostname, nil }
		f.hostResolver = hosts
		return f
	}
	ctx := context.Background()
	f := flags("", "vm", fakeHosts{cname: map[string]string{"vm": "vm.portal.example."}})
	if err := f.validate(ctx); err != nil || f.helo != "vm.portal.example" {
		t.Errorf("default: %q, %v", f.helo, err)
	}
	f = flags("Scanner.Portal.Example.", "vm", fakeHosts{})
	if err := f.validate(ctx); err != nil || f.helo != "scanner.portal.example" {
		t.Errorf("explicit: %q, %v", f.helo, err)
	}
	for _, helo := range []string{"", "vm", "localhost", "192.0.2.7", "bad_name.example"} {
		f = flags(helo, "vm", fakeHosts{})
		err := f.validate(ctx)
		var ee *exitError
		if !errors.As(err, &ee) || ee.code != exitUsage || !strings.Contains(err.Error(), "--helo") {
			t.Errorf("--helo %q on a host without a full name: %v, want a usage error naming --helo", helo, err)
		}
	}

	// Through the command line: a bare --helo is refused before any query.
	world, input, _ := demoWorld(t)
	code, _, stderr := runCLI(t, "check", "--resolver", world.DNSAddr, "--allow-private", "--helo", "vm", "bigmail.test")
	if code != exitUsage || !strings.Contains(stderr, "not a fully qualified domain name") {
		t.Errorf("check --helo vm: exit %d, %q", code, stderr)
	}
	args := scanArgs(world, input, t.TempDir()+"/t.db")
	for i, a := range args {
		if a == "--helo" {
			args[i+1] = "vm"
		}
	}
	if code, _, stderr := runCLI(t, args...); code != exitUsage || !strings.Contains(stderr, "--helo") {
		t.Errorf("scan --helo vm: exit %d, %q", code, stderr)
	}
}
