package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tlsready/tlsready/gateway"
	"github.com/tlsready/tlsready/store"
)

// mtaTools are the sendmail and Exim programs of Debian's sendmail-bin,
// sendmail-cf and exim4-daemon-light: installed, or unpacked by make deps
// under .deps/mta (they conflict with postfix as Debian packages).
type mtaTools struct {
	makemap, sendmail, cfM4, exim, m4 string
}

func findMTATools(t *testing.T) mtaTools {
	t.Helper()
	root, _ := filepath.Abs("../../.deps/mta")
	pick := func(paths ...string) string {
		for _, p := range paths {
			if fi, err := os.Stat(p); err == nil && !fi.IsDir() {
				return p
			}
		}
		return ""
	}
	m4, _ := exec.LookPath("m4")
	tools := mtaTools{
		makemap:  pick(root+"/usr/libexec/sendmail/makemap", "/usr/libexec/sendmail/makemap"),
		sendmail: pick(root+"/usr/libexec/sendmail/sendmail", "/usr/libexec/sendmail/sendmail"),
		cfM4:     pick(root+"/usr/share/sendmail/cf/m4/cf.m4", "/usr/share/sendmail/cf/m4/cf.m4"),
		exim:     pick(root+"/usr/sbin/exim4", "/usr/sbin/exim4"),
		m4:       m4,
	}
	var missing []string
	for name, p := range map[string]string{"makemap": tools.makemap, "sendmail": tools.sendmail, "sendmail-cf": tools.cfM4, "exim4": tools.exim, "m4": tools.m4} {
		if p == "" {
			missing = append(missing, name)
		}
	}
	if len(missing) > 0 {
		msg := fmt.Sprintf("%v not found: run make deps as root (it unpacks sendmail-bin, sendmail-cf and exim4-daemon-light under .deps/mta)", missing)
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return tools
}

// runTool runs a program with stdin, bounded by 60 s, and returns its
// standard output and error.
func runTool(t *testing.T, stdin string, name string, args ...string) (string, string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Stdin = strings.NewReader(stdin)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	return stdout.String(), stderr.String(), err
}

// eximSnippet is README's exim.conf snippet ("Other MTAs"), with the map
// at MAPFILE. The test checks README holds it verbatim.
const eximSnippet = `TLSREADY_POLICY = ${lookup{$domain}lsearch{MAPFILE}}

begin transports

remote_smtp:
  driver = smtp
  hosts_require_tls = ${if match{TLSREADY_POLICY}{\N^(dane|secure|verify|encrypt)$\N}{*}{}}
  hosts_require_dane = ${if eq{TLSREADY_POLICY}{dane}{*}{}}
  tls_verify_hosts = ${if match{TLSREADY_POLICY}{\N^(secure|verify)$\N}{*}{}}
  tls_verify_cert_hostnames = *
`

// sendmailFor and eximFor derive, independently of the gateway code, the
// sendmail access RHS and the Exim value of a Postfix policy (README's
// mapping tables).
func sendmailFor(policy string) string {
	switch strings.Fields(policy + " x")[0] {
	case "dane-only", "encrypt":
		return "TEMP+ENCR:128"
	case "secure", "verify":
		return "TEMP+VERIFY:128"
	}
	return ""
}

func eximFor(policy string) string {
	switch l := strings.Fields(policy + " x")[0]; l {
	case "dane-only":
		return "dane"
	case "secure", "verify", "encrypt":
		return l
	}
	return ""
}

// TestExportPolicyMTAsAgree: after a real scan of the demo world, the
// postfix, sendmail and exim maps and a running socketmap agree for every
// domain (and for one not scanned): the socketmap's answer (itself checked
// against expectedPolicy) mapped by README's tables is what Postfix's file
// holds, what sendmail's makemap built (dumped with makemap -u) and what
// Exim's lsearch finds (exim -be). sendmail's own tls_rcpt ruleset (a .cf
// built by m4 from sendmail-cf with FEATURE(access_db) over the map) then
// accepts and refuses TLS sessions as each entry requires, and Exim parses
// README's smtp transport snippet (exim -bV) and its conditions say, per
// domain, what Exim will require.
func TestExportPolicyMTAsAgree(t *testing.T) {
	t.Parallel()
	tools := findMTATools(t)
	dir := t.TempDir()
	db := filepath.Join(dir, "t.db")
	_, expected := scanDemo(t, db)
	files := map[string]string{}
	for _, f := range []string{"postfix", "sendmail", "exim"} {
		files[f] = filepath.Join(dir, "map-"+f)
		code, _, stderr := runCLI(t, "export", "policy", "--db", db, "--format", f, "--out", files[f])
		if code != exitOK {
			t.Fatalf("export policy --format %s: exit %d: %s", f, code, stderr)
		}
	}
	head, err := os.ReadFile(files["sendmail"])
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(head, []byte("# sendmail access map (TLS_Rcpt, build with makemap) written by tlsready")) ||
		!bytes.Contains(head, []byte("# Mapping: dane-only -> TEMP+ENCR:128")) ||
		!bytes.Contains(head, []byte("\n# Results: each domain's latest; the last finished run is 1 (finished ")) {
		t.Errorf("sendmail header:\n%.400s", head)
	}

	// The socketmap of a server on the same database.
	st, err := store.Open(t.Context(), db, store.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	srv, err := gateway.New(gateway.Config{Store: st})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := srv.Refresh(t.Context()); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- srv.ServeSocketmap(ctx, ln) }()
	defer func() { cancel(); <-done }()

	domains := []string{"example.test"} // not scanned
	for d := range expected {
		domains = append(domains, d)
	}
	socketmap := map[string]string{}
	for _, d := range domains {
		reply, err := socketmapGet(ln.Addr().String(), d)
		if err != nil {
			t.Fatal(err)
		}
		want := ""
		if _, ok := expected[d]; ok {
			r, err := st.Lookup(t.Context(), d)
			if err != nil {
				t.Fatal(err)
			}
			want = expectedPolicy(r)
		}
		switch {
		case want != "" && reply == "OK "+want, want == "" && reply == "NOTFOUND ":
		default:
			t.Errorf("socketmap %s: %q, want policy %q", d, reply, want)
		}
		socketmap[d] = want
	}

	// Postfix's source: domain<TAB>policy.
	pf := readMapLines(t, files["postfix"], "\t")
	// sendmail: makemap builds the hash map; makemap -u dumps it (keys
	// folded to lower case, as sendmail looks them up).
	empty := filepath.Join(dir, "empty.cf")
	os.WriteFile(empty, nil, 0o644)
	src, _ := os.ReadFile(files["sendmail"])
	if out, stderr, err := runTool(t, string(src), tools.makemap, "-C", empty, "hash", files["sendmail"]); err != nil {
		t.Fatalf("makemap hash: %v\n%s%s", err, out, stderr)
	}
	dump, stderr, err := runTool(t, "", tools.makemap, "-C", empty, "-u", "hash", files["sendmail"])
	if err != nil {
		t.Fatalf("makemap -u: %v\n%s", err, stderr)
	}
	sm := map[string]string{}
	for _, l := range strings.Split(strings.TrimSpace(dump), "\n") {
		k, v, ok := strings.Cut(l, "\t")
		d, tagged := strings.CutPrefix(k, "tls_rcpt:")
		if !ok || !tagged {
			t.Fatalf("makemap -u line %q", l)
		}
		sm[d] = v
	}
	// Exim: lsearch, one expansion per stdin line of exim -be.
	eximConf := filepath.Join(dir, "exim.conf")
	conf := "log_file_path = " + dir + "/exim-%slog\nspool_directory = " + dir + "/spool\n" +
		strings.ReplaceAll(eximSnippet, "MAPFILE", files["exim"])
	if err := os.WriteFile(eximConf, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, stderr, err := runTool(t, "", tools.exim, "-C", eximConf, "-bV"); err != nil {
		t.Fatalf("exim -bV with README's snippet: %v\n%s%s", err, out, stderr)
	}
	var exprs strings.Builder
	for _, d := range domains {
		// The lookup, then README's three conditions with $domain = d.
		lookup := "${lookup{" + d + "}lsearch{" + files["exim"] + "}}"
		fmt.Fprintf(&exprs, "%s\n", lookup)
		for _, opt := range []string{"hosts_require_tls", "hosts_require_dane", "tls_verify_hosts"} {
			e := eximOption(t, opt)
			e = strings.ReplaceAll(e, "TLSREADY_POLICY", lookup)
			fmt.Fprintf(&exprs, "%s\n", e)
		}
	}
	out, stderr, err := runTool(t, exprs.String(), tools.exim, "-C", eximConf, "-be")
	if err != nil {
		t.Fatalf("exim -be: %v\n%s", err, stderr)
	}
	// exim -be prompts "> " before each line it reads and after the last.
	eximOut := strings.Split(out, "\n")
	for len(eximOut) > 4*len(domains) && strings.TrimSpace(eximOut[len(eximOut)-1]) == ">" ||
		len(eximOut) > 0 && eximOut[len(eximOut)-1] == "" {
		eximOut = eximOut[:len(eximOut)-1]
	}
	for i, l := range eximOut {
		eximOut[i] = strings.TrimPrefix(l, "> ")
	}
	if len(eximOut) != 4*len(domains) {
		t.Fatalf("exim -be: %d lines for %d expressions:\n%s\n%s", len(eximOut), 4*len(domains), out, stderr)
	}

	seen := map[string]bool{}
	for i, d := range domains {
		p := socketmap[d]
		if got := pf[d]; got != p {
			t.Errorf("postfix map %s: %q, socketmap %q", d, got, p)
		}
		if got, want := sm[d], sendmailFor(p); got != want {
			t.Errorf("sendmail map %s: %q, want %q (socketmap %q)", d, got, want, p)
		}
		res := eximOut[4*i : 4*i+4]
		want := eximFor(p)
		tls, dane, verify := "", "", ""
		if want != "" {
			tls = "*"
		}
		if want == "dane" {
			dane = "*"
		}
		if want == "secure" || want == "verify" {
			verify = "*"
		}
		if res[0] != want || res[1] != tls || res[2] != dane || res[3] != verify {
			t.Errorf("exim %s: lookup %q, hosts_require_tls %q, hosts_require_dane %q, tls_verify_hosts %q; want %q (socketmap %q)",
				d, res[0], res[1], res[2], res[3], want, p)
		}
		seen[want] = true
	}
	for _, v := range []string{"dane", "secure", "verify", "encrypt", ""} {
		if !seen[v] {
			t.Errorf("no demo domain got Exim value %q", v)
		}
	}

	// sendmail's tls_rcpt ruleset over the built map, in address test
	// mode: per domain, a verified session (OK, 256 bits), an unverified
	// one (FAIL, 256 bits) and none (NONE: no STARTTLS).
	mc := fmt.Sprintf("divert(-1)\ninclude(`%s')\ndivert(0)dnl\nOSTYPE(`linux')dnl\n"+
		"define(`confDONT_BLAME_SENDMAIL', `MapInUnsafeDirPath')dnl\ndefine(`confDOMAIN_NAME', `mta.tlsready.test')dnl\n"+
		"FEATURE(`nocanonify')dnl\n"+
		"FEATURE(`access_db', `hash -T<TMPF> %s')dnl\nMAILER(`local')dnl\nMAILER(`smtp')dnl\n", tools.cfM4, files["sendmail"])
	cf, stderr, err := runTool(t, mc, tools.m4)
	if err != nil {
		t.Fatalf("m4: %v\n%s", err, stderr)
	}
	cfFile := filepath.Join(dir, "sendmail.cf")
	os.WriteFile(cfFile, []byte(cf), 0o644)
	sessions := []struct{ verify, bits string }{{"OK", "256"}, {"FAIL", "256"}, {"NONE", ""}}
	var bt strings.Builder
	for _, d := range domains {
		for _, s := range sessions {
			fmt.Fprintf(&bt, ".D{verify}%s\n.D{cipher_bits}%s\ntls_rcpt user@%s\n", s.verify, s.bits, d)
		}
	}
	// sendmail sleeps 60 s at start when it cannot qualify the host's name
	// (a bare "vm" here): run it in its own UTS namespace under a fully
	// qualified one. Unprivileged: in a user namespace that maps the user
	// to itself (as its root, sendmail would try to drop privileges and
	// setgroups is denied there), keeping the capability to set the name.
	ns := []string{"--uts"}
	if os.Geteuid() != 0 {
		ns = append(ns, "--user", "--map-current-user", "--keep-caps")
	}
	script := `hostname mta.tlsready.test && exec "$0" -bt -C "$1"`
	out, stderr, _ = runTool(t, bt.String(), "unshare", append(ns, "sh", "-c", script, tools.sendmail, cfFile)...) // exits 70: no local mailer program
	var verdicts []string
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(strings.TrimLeft(sc.Text(), "> "), "tls_rcpt         returns: "); ok {
			verdicts = append(verdicts, rest)
		}
	}
	if len(verdicts) != len(domains)*len(sessions) {
		t.Fatalf("sendmail -bt: %d tls_rcpt results, want %d\n%.3000s\n%s", len(verdicts), len(domains)*len(sessions), out, stderr)
	}
	for i, d := range domains {
		rhs := sendmailFor(socketmap[d])
		for j, s := range sessions {
			got := verdicts[i*len(sessions)+j]
			accept := rhs == "" || (rhs == "TEMP+ENCR:128" && s.bits != "") || (rhs == "TEMP+VERIFY:128" && s.verify == "OK")
			if accept && got != "OK" || !accept && !strings.HasPrefix(got, "$# error $@ 4 . 7 . 0") {
				t.Errorf("sendmail tls_rcpt user@%s with ${verify}=%s, %q bits (entry %q): %s", d, s.verify, s.bits, rhs, got)
			}
		}
	}

	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(readme, []byte(strings.ReplaceAll(eximSnippet, "MAPFILE", "/etc/exim4/tlsready_policy"))) {
		t.Error("README does not hold the tested exim.conf snippet")
	}
}

// eximOption returns the value of an smtp transport option in eximSnippet.
func eximOption(t *testing.T, name string) string {
	t.Helper()
	for _, l := range strings.Split(eximSnippet, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(l), name+" = "); ok {
			return v
		}
	}
	t.Fatalf("no %s in the snippet", name)
	return ""
}

// readMapLines reads a map source's "key<sep>value" lines (no comments).
func readMapLines(t *testing.T, file, sep string) map[string]string {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]string{}
	for _, l := range strings.Split(string(b), "\n") {
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		k, v, ok := strings.Cut(l, sep)
		if !ok {
			t.Fatalf("%s: line %q", file, l)
		}
		m[k] = v
	}
	return m
}
