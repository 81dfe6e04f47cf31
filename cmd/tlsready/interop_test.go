//go:build linux

package main

import (
	"bufio"
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	mrand "math/rand/v2"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"text/template"
	"time"

	"github.com/miekg/dns"

	"github.com/tlsready/tlsready/scanner/result"
)

// The interoperability lab: real Debian servers (NSD, a validating Unbound,
// Postfix, nginx) on a random 127.77.N.0/24, set up from the templates in
// testdata/interop (see its README.md), scanned by the real CLI.

const interopData = "../../testdata/interop"

// interopHELO is the scanner's EHLO name in the lab; the ehlo-refused
// listener answers it with 421.
const interopHELO = "interop.tlsready.invalid"

// interopCase is what the scanner must say about one lab domain.
type interopCase struct {
	domain  string
	verdict result.Verdict
	with    []string // flags the result must carry
	without []string // flags it must not carry
	// check, when set, returns further problems with the result (facts
	// of its probed addresses, see interop_checks_test.go).
	check func(result.Result) []string
}

var interopCases = []interopCase{
	{"verified.interop.test", result.Verified, nil, []string{result.FlagCertSelfSigned, result.FlagCertUntrusted}, nil},
	{"encrypted.interop.test", result.Encrypted, []string{result.FlagCertSelfSigned}, nil, nil},
	{"plaintext.interop.test", result.Plaintext, []string{result.FlagNoSTARTTLS}, nil, nil},
	{"partial.interop.test", result.Partial, []string{result.FlagNoSTARTTLS}, nil, nil},
	{"dane.interop.test", result.DANE, nil, []string{result.FlagDANEMismatch, result.FlagTLSAInsecure}, nil},
	{"dane-ta.interop.test", result.DANE, []string{result.FlagCertUntrusted}, []string{result.FlagDANEMismatch}, nil},
	{"dane-broken.interop.test", result.Broken, []string{result.FlagDANEMismatch}, nil, nil},
	{"sts.interop.test", result.MTASTS, nil, []string{result.FlagNoTLSRPT, result.FlagSTSFetchFailed}, nil},
	{"sts-broken.interop.test", result.Broken, []string{result.FlagSTSMXMismatch}, nil, nil},
	{"sts-testing.interop.test", result.Verified, []string{result.FlagSTSTesting}, nil, nil},
	{"legacy.interop.test", result.Verified, []string{result.FlagTLS10}, nil, nil},
	// DHE-RSA only: crypto/tls cannot, an OpenSSL sender can (docs/verdicts.md):
	// completed on the second TLS stack.
	{"dhe-only.interop.test", result.Verified, []string{result.FlagTLSFallback},
		[]string{result.FlagHandshakeFailed, result.FlagNoSTARTTLS}, checkCipher("DHE", "")},
	// Shared hosting: one IP, a certificate per MX name chosen by SNI;
	// each name is judged on its own certificate.
	{"sni-alpha.interop.test", result.Verified, nil, []string{result.FlagCertNameMismatch},
		checkLeafNames("mx.sni-alpha.interop.test")},
	// (sni-per-name on the addresses: see checkSharedSNI.)
	{"sni-beta.interop.test", result.Verified, nil, []string{result.FlagCertNameMismatch},
		checkLeafNames("mx.sni-beta.interop.test")},
	{"sni-other.interop.test", result.Encrypted, []string{result.FlagCertNameMismatch}, []string{result.FlagCertUntrusted},
		checkLeafNames("mx.sni-default.interop.test")},
	// RSA key exchange only, TLS <= 1.2: either stack can complete it.
	{"rsa-kx.interop.test", result.Verified, nil, []string{result.FlagHandshakeFailed},
		checkCipher("", "DHE")},
	{"tls13.interop.test", result.Verified, nil, []string{result.FlagHandshakeFailed},
		checkVersion("TLS 1.3")},
	// postscreen: "220-", a pregreet wait, then "220 ": the scanner waits for
	// the whole greeting (the lab's Postfix log is checked too).
	{"postscreen.interop.test", result.Verified, nil, []string{result.FlagTimeout, result.FlagEHLOLost, result.FlagHandshakeFailed}, nil},
	// 421 to EHLO: a sender defers; never plaintext.
	{"ehlo-refused.interop.test", result.Unreachable, []string{result.FlagEHLORefused, result.FlagRetriedLater},
		[]string{result.FlagNoSTARTTLS, result.FlagEHLOLost}, checkEHLOCode(421)},
	{"nullmx.interop.test", result.NoMail, []string{result.FlagNullMX}, nil, nil},
	{"nonexistent.interop.test", result.NoMail, []string{result.FlagNXDomain}, nil, nil},
	{"unreachable.interop.test", result.Unreachable, []string{result.FlagConnectFailed}, nil, nil},
	{"dangling.interop.test", result.Unreachable, []string{result.FlagMXDangling}, nil, nil},
	{"bogus.interop.test", result.DNSError, []string{result.FlagServfail}, nil, nil},
}

// TestInteropRealServers scans domains served by real, independent servers
// and checks that the verdicts are those of docs/verdicts.md. It needs root (ports
// 25, 53, 443) and the Debian packages of `make deps`; without them it skips,
// except under CI=true where they must be there.
func TestInteropRealServers(t *testing.T) {
	if testing.Short() {
		t.Skip("starts real Postfix, Unbound, NSD and nginx; not in -short")
	}
	ci := os.Getenv("CI") == "true"
	if os.Geteuid() != 0 {
		t.Skip("needs root: binds ports 25, 53 and 443 on 127.77.x addresses")
	}
	bins := interopBinaries()
	if len(bins.missing) > 0 {
		msg := "missing for the interop lab: " + strings.Join(bins.missing, ", ") + " (make deps installs them)"
		if ci {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	start := time.Now()

	// A random /24 inside 127.77.0.0/16 so that concurrent runs do not clash.
	lab := &interopLab{t: t, bins: bins, Net: fmt.Sprintf("127.77.%d", 1+mrand.IntN(254)), HELO: interopHELO}
	dir, err := os.MkdirTemp("", "tlsready-interop-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) }) // runs last: after the servers stopped
	// Daemons drop privileges (nginx workers, Postfix): let them traverse.
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	lab.Dir = dir
	lab.TLSA = map[string]string{}
	lab.DS = map[string]string{}
	for _, d := range []string{"certs", "zones", "nsd", "unbound", "postfix/etc", "postfix/queue", "nginx", "www"} {
		lab.mkdir(d)
	}

	lab.makeCerts()
	lab.makeZones()
	tFiles := time.Now()

	lab.startNSD()
	lab.startUnbound()
	lab.startPostfix()
	lab.startNginx()
	lab.checkDNS()
	tServers := time.Now()

	// The register: a few citizens per domain.
	var reg strings.Builder
	domains := make([]string, 0, len(interopCases))
	for i, c := range interopCases {
		domains = append(domains, c.domain)
		fmt.Fprintf(&reg, "citizen%d@%s\ncitizen%d.b@%s\n", i, c.domain, i, strings.ToUpper(c.domain))
	}
	work := t.TempDir()
	input := filepath.Join(work, "register.txt")
	if err := os.WriteFile(input, []byte(reg.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	db := filepath.Join(work, "interop.db")
	code, out, stderr := runCLI(t, "scan", "--input", input, "--db", db,
		"--resolver", lab.Net+".53:53", "--ca-file", filepath.Join(dir, "certs", "ca.pem"),
		"--allow-private", "--trust-ad", "true", "--smtp-port", "25", "--https-port", "443",
		"--helo", interopHELO, "--probe-timeout", "20s", "--quiet",
		// ehlo-refused answers 421: one quick retry later in the run.
		"--temp-retry", "2s")
	tScan := time.Now()
	if code != 0 {
		t.Fatalf("scan: exit %d\nstdout:\n%s\nstderr:\n%s", code, out, stderr)
	}

	code, out, stderr = runCLI(t, append([]string{"lookup", "--db", db, "--json"}, domains...)...)
	if code != 0 {
		t.Fatalf("lookup: exit %d: %s", code, stderr)
	}
	got := map[string]result.Result{}
	raw := map[string]string{}
	sc := bufio.NewScanner(strings.NewReader(out))
	sc.Buffer(nil, 1<<22)
	for sc.Scan() {
		var r result.Result
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("lookup output: %v: %s", err, sc.Text())
		}
		got[r.Domain] = r
		var pretty bytes.Buffer
		if json.Indent(&pretty, sc.Bytes(), "", "  ") == nil {
			raw[r.Domain] = pretty.String()
		}
	}
	for _, c := range interopCases {
		r, ok := got[c.domain]
		if !ok {
			t.Errorf("%s: no result from lookup", c.domain)
			continue
		}
		var problems []string
		if r.Verdict != c.verdict {
			problems = append(problems, "wrong verdict")
		}
		for _, f := range c.with {
			if !slices.Contains(r.Flags, f) {
				problems = append(problems, "missing flag "+f)
			}
		}
		for _, f := range c.without {
			if slices.Contains(r.Flags, f) {
				problems = append(problems, "unexpected flag "+f)
			}
		}
		if c.check != nil {
			problems = append(problems, c.check(r)...)
		}
		if len(problems) > 0 {
			t.Errorf("%s: got verdict %s, want %s: %s (reason %q, flags %v; addrs: %s)\n%s", c.domain, r.Verdict, c.verdict,
				strings.Join(problems, "; "), r.Reason, r.Flags, addrSummary(r), raw[c.domain])
		} else {
			t.Logf("%-26s %-11s flags %v", c.domain, r.Verdict, r.Flags)
			if os.Getenv("TLSREADY_INTEROP_LOGS") != "" {
				t.Logf("%-26s addrs: %s", "", addrSummary(r))
			}
		}
	}
	for _, p := range checkSharedSNI(got, "sni-alpha.interop.test", "sni-beta.interop.test", "sni-other.interop.test") {
		t.Error(p)
	}
	lab.checkPostscreen()
	lab.checkListeners()
	t.Logf("timings: certs+keys+zones %v, servers up %v, scan %v, lookup %v, total %v (before teardown)",
		tFiles.Sub(start).Round(time.Millisecond), tServers.Sub(tFiles).Round(time.Millisecond),
		tScan.Sub(tServers).Round(time.Millisecond), time.Since(tScan).Round(time.Millisecond),
		time.Since(start).Round(time.Millisecond))
}

// interopBins are the paths of the lab's programs.
type interopBins struct {
	nsd, unbound, keygen, signzone, master, nginx string
	missing                                       []string
}

func interopBinaries() interopBins {
	var b interopBins
	find := func(name, pkg string, dirs ...string) string {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
		for _, d := range dirs {
			if p := filepath.Join(d, name); isExecutable(p) {
				return p
			}
		}
		b.missing = append(b.missing, name+" ("+pkg+")")
		return ""
	}
	b.nsd = find("nsd", "nsd", "/usr/sbin")
	b.unbound = find("unbound", "unbound", "/usr/sbin")
	b.keygen = find("ldns-keygen", "ldnsutils")
	b.signzone = find("ldns-signzone", "ldnsutils")
	b.nginx = find("nginx", "nginx-light", "/usr/sbin")
	// Postfix's master daemon is not on PATH.
	b.master = find("master", "postfix", "/usr/lib/postfix/sbin", "/usr/libexec/postfix")
	if b.master != "" {
		if _, err := user.Lookup("postfix"); err != nil {
			b.missing = append(b.missing, "user postfix (postfix)")
		}
	}
	return b
}

func isExecutable(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0
}

// interopLab is the lab's state; its exported fields are the template data.
type interopLab struct {
	t          *testing.T
	bins       interopBins
	Net        string            // "127.77.N"
	Dir        string            // the lab's temporary directory
	TLSA       map[string]string // TLSA RDATA by name
	DS         map[string]string // DS records of child zones, by zone label
	STSDomains []string          // domains whose MTA-STS policy nginx serves
	HELO       string            // the scanner's EHLO name
	postfix    *daemon
}

func (l *interopLab) path(rel string) string { return filepath.Join(l.Dir, rel) }

func (l *interopLab) mkdir(rel string) {
	l.t.Helper()
	if err := os.MkdirAll(l.path(rel), 0o755); err != nil {
		l.t.Fatal(err)
	}
}

func (l *interopLab) write(rel string, data []byte, mode os.FileMode) {
	l.t.Helper()
	if err := os.WriteFile(l.path(rel), data, mode); err != nil {
		l.t.Fatal(err)
	}
}

// render executes the template testdata/interop/<tmpl> into <rel>.
func (l *interopLab) render(tmpl, rel string) {
	l.t.Helper()
	src, err := os.ReadFile(filepath.Join(interopData, tmpl))
	if err != nil {
		l.t.Fatal(err)
	}
	tp, err := template.New(tmpl).Option("missingkey=error").Parse(string(src))
	if err != nil {
		l.t.Fatal(err)
	}
	var b bytes.Buffer
	if err := tp.Execute(&b, l); err != nil {
		l.t.Fatalf("%s: %v", tmpl, err)
	}
	l.write(rel, b.Bytes(), 0o644)
}

// run runs a setup program in dir and returns its standard output.
func (l *interopLab) run(dir string, argv ...string) string {
	l.t.Helper()
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir = dir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		l.t.Fatalf("%s: %v\n%s", strings.Join(argv, " "), err, stderr.String())
	}
	return string(out)
}

// --- certificates ---

type labKey struct {
	cert *x509.Certificate
	key  crypto.Signer
	der  []byte
}

// newCert makes an ECDSA P-256 certificate, self-signed when issuer is nil.
func (l *interopLab) newCert(cn string, names []string, issuer *labKey, isCA bool) *labKey {
	l.t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		l.t.Fatal(err)
	}
	return l.newCertKey(key, cn, names, issuer, isCA)
}

func (l *interopLab) newCertKey(key crypto.Signer, cn string, names []string, issuer *labKey, isCA bool) *labKey {
	l.t.Helper()
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		l.t.Fatal(err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: cn, Organization: []string{"tlsready interop lab"}},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(48 * time.Hour),
		DNSNames:     names,
	}
	if isCA {
		tmpl.IsCA = true
		tmpl.BasicConstraintsValid = true
		tmpl.KeyUsage = x509.KeyUsageCertSign | x509.KeyUsageCRLSign
	} else {
		tmpl.KeyUsage = x509.KeyUsageDigitalSignature
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
	}
	parent, signer := tmpl, key
	if issuer != nil {
		parent, signer = issuer.cert, issuer.key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, key.Public(), signer)
	if err != nil {
		l.t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		l.t.Fatal(err)
	}
	return &labKey{cert: cert, key: key, der: der}
}

func certPEM(k *labKey) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: k.der})
}

func (l *interopLab) keyPEM(k *labKey) []byte {
	der, err := x509.MarshalPKCS8PrivateKey(k.key)
	if err != nil {
		l.t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
}

// chain writes certs/<name>.chain.pem (key, then the certificate chain:
// Postfix's smtpd_tls_chain_files format), and .crt.pem/.key.pem.
func (l *interopLab) chain(name string, leaf *labKey, extra ...*labKey) {
	certs := certPEM(leaf)
	for _, e := range extra {
		certs = append(certs, certPEM(e)...)
	}
	key := l.keyPEM(leaf)
	l.write("certs/"+name+".chain.pem", append(slices.Clone(key), certs...), 0o600)
	l.write("certs/"+name+".crt.pem", certs, 0o644)
	l.write("certs/"+name+".key.pem", key, 0o600)
}

func spkiSHA256(c *x509.Certificate) string {
	sum := sha256.Sum256(c.RawSubjectPublicKeyInfo)
	return hex.EncodeToString(sum[:])
}

func (l *interopLab) makeCerts() {
	ca := l.newCert("tlsready interop CA", nil, nil, true)
	l.write("certs/ca.pem", certPEM(ca), 0o644)
	// Not in --ca-file: trusted only through a TLSA 2 1 1 record.
	daneCA := l.newCert("tlsready interop DANE-only CA", nil, nil, true)

	l.chain("mx-verified", l.newCert("mx-verified.interop.test", []string{"mx-verified.interop.test"}, ca, false))
	l.chain("mx-selfsigned", l.newCert("mx.encrypted.interop.test", []string{"mx.encrypted.interop.test"}, nil, false))
	// DANE-EE ignores names and the chain: self-signed for an unrelated name.
	ee := l.newCert("dane-ee.invalid", []string{"dane-ee.invalid"}, nil, false)
	l.chain("mx-dane-ee", ee)
	l.TLSA["ee"] = "3 1 1 " + spkiSHA256(ee.cert)
	// PKIX-valid, but the secure TLSA record names another key.
	l.chain("mx-dane-broken", l.newCert("mx.dane-broken.interop.test", []string{"mx.dane-broken.interop.test"}, ca, false))
	other := l.newCert("not-presented.invalid", nil, nil, false)
	l.TLSA["wrong"] = "3 1 1 " + spkiSHA256(other.cert)
	// DANE-TA: the server presents leaf + TA.
	l.chain("mx-dane-ta", l.newCert("mx.dane-ta.interop.test", []string{"mx.dane-ta.interop.test"}, daneCA, false), daneCA)
	l.TLSA["ta"] = "2 1 1 " + spkiSHA256(daneCA.cert)
	l.chain("mx-legacy", l.newCert("mx.legacy.interop.test", []string{"mx.legacy.interop.test"}, ca, false))
	// DHE-RSA needs an RSA certificate.
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		l.t.Fatal(err)
	}
	l.chain("mx-dhe-only", l.newCertKey(rsaKey, "mx.dhe-only.interop.test", []string{"mx.dhe-only.interop.test"}, ca, false))
	// So does RSA key exchange (one RSA key for both keeps set-up quick).
	l.chain("mx-rsa-kx", l.newCertKey(rsaKey, "mx.rsa-kx.interop.test", []string{"mx.rsa-kx.interop.test"}, ca, false))
	// The shared-hosting IP: a certificate per customer name, chosen by SNI.
	for _, n := range []string{"sni-alpha", "sni-beta", "sni-default"} {
		l.chain("mx-"+n, l.newCert("mx."+n+".interop.test", []string{"mx." + n + ".interop.test"}, ca, false))
	}
	l.chain("mx-tls13", l.newCert("mx.tls13.interop.test", []string{"mx.tls13.interop.test"}, ca, false))
	l.chain("mx-postscreen", l.newCert("mx.postscreen.interop.test", []string{"mx.postscreen.interop.test"}, ca, false))
	l.chain("mx-sts", l.newCert("mx.sts.interop.test",
		[]string{"mx.sts.interop.test", "mx.sts-broken.interop.test", "mx.sts-testing.interop.test"}, ca, false))

	entries, err := os.ReadDir(filepath.Join(interopData, "policies"))
	if err != nil {
		l.t.Fatal(err)
	}
	var stsNames []string
	for _, e := range entries {
		d := strings.TrimSuffix(e.Name(), ".txt")
		l.STSDomains = append(l.STSDomains, d)
		stsNames = append(stsNames, "mta-sts."+d)
		body, err := os.ReadFile(filepath.Join(interopData, "policies", e.Name()))
		if err != nil {
			l.t.Fatal(err)
		}
		l.mkdir("www/" + d + "/.well-known")
		l.write("www/"+d+"/.well-known/mta-sts.txt", body, 0o644)
	}
	l.chain("mta-sts", l.newCert(stsNames[0], stsNames, ca, false))
}

// --- DNS ---

// keys makes a KSK and a ZSK for zone with ldns-keygen and returns their
// base names (in the zones directory).
func (l *interopLab) keys(zone string) (ksk, zsk string) {
	zdir := l.path("zones")
	ksk = strings.TrimSpace(l.run(zdir, l.bins.keygen, "-a", "ECDSAP256SHA256", "-k", zone))
	zsk = strings.TrimSpace(l.run(zdir, l.bins.keygen, "-a", "ECDSAP256SHA256", zone))
	return ksk, zsk
}

func (l *interopLab) readZoneFile(name string) string {
	b, err := os.ReadFile(l.path("zones/" + name))
	if err != nil {
		l.t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

func (l *interopLab) makeZones() {
	zdir := l.path("zones")
	for _, child := range []string{"dane", "bogus"} {
		zone := child + ".interop.test."
		file := child + ".interop.test.zone"
		l.render("zones/"+file+".tmpl", "zones/"+file)
		ksk, zsk := l.keys(zone)
		args := []string{l.bins.signzone, "-o", zone}
		if child == "bogus" {
			args = append(args, "-i", "20200101000000", "-e", "20200201000000") // long expired
		}
		l.run(zdir, append(args, file, ksk, zsk)...)
		l.DS[child] = l.readZoneFile(ksk + ".ds")
	}
	l.render("zones/sts.interop.test.zone.tmpl", "zones/sts.interop.test.zone")
	l.render("zones/interop.test.zone.tmpl", "zones/interop.test.zone")
	ksk, zsk := l.keys("interop.test.")
	l.run(zdir, l.bins.signzone, "-o", "interop.test.", "interop.test.zone", ksk, zsk)
	// Unbound's trust anchor: the DS of the parent zone's KSK.
	l.write("zones/interop.test.ds", []byte(l.readZoneFile(ksk+".ds")+"\n"), 0o644)
}

// checkDNS asks Unbound a few questions, so that a broken lab is reported
// as such and not as a scanner bug.
func (l *interopLab) checkDNS() {
	l.t.Helper()
	c := &dns.Client{Timeout: 5 * time.Second}
	ask := func(name string, qtype uint16) *dns.Msg {
		m := new(dns.Msg)
		m.SetQuestion(dns.Fqdn(name), qtype)
		m.SetEdns0(1232, true)
		r, _, err := c.Exchange(m, l.Net+".53:53")
		if err != nil {
			l.t.Fatalf("lab self-check: %s %s: %v", name, dns.TypeToString[qtype], err)
		}
		return r
	}
	for _, q := range []struct {
		name  string
		qtype uint16
		rcode int
		ad    bool
	}{
		{"verified.interop.test", dns.TypeMX, dns.RcodeSuccess, true},
		{"_25._tcp.mx.dane.interop.test", dns.TypeTLSA, dns.RcodeSuccess, true},
		{"sts.interop.test", dns.TypeMX, dns.RcodeSuccess, false},
		{"bogus.interop.test", dns.TypeMX, dns.RcodeServerFailure, false},
		{"nonexistent.interop.test", dns.TypeMX, dns.RcodeNameError, true},
	} {
		r := ask(q.name, q.qtype)
		if r.Rcode != q.rcode || r.AuthenticatedData != q.ad {
			l.t.Fatalf("lab self-check: %s %s: rcode %s AD %v, want %s AD %v\n%v", q.name, dns.TypeToString[q.qtype],
				dns.RcodeToString[r.Rcode], r.AuthenticatedData, dns.RcodeToString[q.rcode], q.ad, r)
		}
	}
}

// --- daemons ---

// daemon is one lab server, a child process in its own process group whose
// output is collected for failure reports.
type daemon struct {
	name   string
	cmd    *exec.Cmd
	mu     sync.Mutex
	lines  []string
	exited chan struct{} // closed when the process has been waited for
	eof    chan struct{} // closed when every holder of its output pipe is gone
}

func (d *daemon) logTail(n int) string {
	d.mu.Lock()
	defer d.mu.Unlock()
	lines := d.lines
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// start runs argv and waits until a line of its output contains ready. The
// process (and any of its group left behind) is stopped in t.Cleanup.
// setsid is true for daemons that make their own session (Postfix's master).
func (l *interopLab) start(name, ready string, setsid bool, argv ...string) *daemon {
	t := l.t
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	d := &daemon{name: name, exited: make(chan struct{}), eof: make(chan struct{})}
	d.cmd = exec.Command(argv[0], argv[1:]...)
	d.cmd.Dir = l.Dir
	d.cmd.Stdout, d.cmd.Stderr = w, w
	// Pdeathsig: the servers die with the test binary even if it is killed.
	d.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: !setsid, Pdeathsig: syscall.SIGKILL}
	if err := d.cmd.Start(); err != nil {
		w.Close()
		r.Close()
		t.Fatalf("%s: %v", name, err)
	}
	w.Close()
	readyc := make(chan struct{})
	go func() {
		defer close(d.eof)
		defer r.Close()
		sc := bufio.NewScanner(r)
		seen := false
		for sc.Scan() {
			line := sc.Text()
			d.mu.Lock()
			d.lines = append(d.lines, line)
			d.mu.Unlock()
			if !seen && strings.Contains(line, ready) {
				seen = true
				close(readyc)
			}
		}
	}()
	go func() {
		d.cmd.Wait()
		close(d.exited)
	}()
	t.Cleanup(func() { l.stop(d) })
	began := time.Now()
	select {
	case <-readyc:
		t.Logf("%s ready in %v", name, time.Since(began).Round(time.Millisecond))
	case <-d.exited:
		<-d.eof
		t.Fatalf("%s exited before it was ready: %v\n%s", name, d.cmd.ProcessState, d.logTail(40))
	case <-time.After(30 * time.Second):
		t.Fatalf("%s not ready after 30s\n%s", name, d.logTail(40))
	}
	return d
}

// stop terminates a daemon, then anything left in its process group, and
// waits until nothing holds its output pipe any more.
func (l *interopLab) stop(d *daemon) {
	t := l.t
	pid := d.cmd.Process.Pid
	d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.exited:
	case <-time.After(10 * time.Second):
		t.Errorf("%s: still running 10s after SIGTERM; killing it", d.name)
		d.cmd.Process.Kill()
		<-d.exited
	}
	// Children (smtpd, nginx workers, NSD servers) share the group.
	syscall.Kill(-pid, syscall.SIGKILL)
	select {
	case <-d.eof:
	case <-time.After(10 * time.Second):
		t.Errorf("%s: some process still holds its output 10s after SIGKILL", d.name)
	}
	// TLSREADY_INTEROP_LOGS=1 shows the server logs of a passing run too.
	if t.Failed() || os.Getenv("TLSREADY_INTEROP_LOGS") != "" {
		t.Logf("--- %s log (last lines) ---\n%s", d.name, d.logTail(60))
	}
}

func (l *interopLab) startNSD() {
	l.render("nsd.conf.tmpl", "nsd/nsd.conf")
	l.start("nsd", "nsd started", false, l.bins.nsd, "-d", "-c", l.path("nsd/nsd.conf"))
}

func (l *interopLab) startUnbound() {
	l.render("unbound.conf.tmpl", "unbound/unbound.conf")
	l.start("unbound", "start of service", false, l.bins.unbound, "-d", "-c", l.path("unbound/unbound.conf"))
}

func (l *interopLab) startPostfix() {
	l.render("postfix/main.cf.tmpl", "postfix/etc/main.cf")
	l.render("postfix/master.cf.tmpl", "postfix/etc/master.cf")
	// texthash maps: read when opened, no postmap needed.
	l.render("postfix/sni.tmpl", "postfix/etc/sni")
	l.render("postfix/helo-refused.tmpl", "postfix/etc/helo-refused")
	// Postfix re-reads, 300 ms apart, a main.cf modified in the last
	// seconds (it might be half written): date ours back.
	old := time.Now().Add(-time.Hour)
	for _, f := range []string{"postfix/etc/main.cf", "postfix/etc/master.cf"} {
		if err := os.Chtimes(l.path(f), old, old); err != nil {
			l.t.Fatal(err)
		}
	}
	// The queue directories the master and smtpd need (as post-install
	// would make them), without the rest of a mail system.
	u, err := user.Lookup("postfix")
	if err != nil {
		l.t.Fatal(err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid := 0
	if g, err := user.LookupGroup("postdrop"); err == nil {
		gid, _ = strconv.Atoi(g.Gid)
	}
	for _, d := range []struct {
		rel      string
		uid, gid int
		mode     os.FileMode
	}{
		{"postfix/queue/pid", 0, 0, 0o755},
		{"postfix/queue/private", uid, 0, 0o700},
		{"postfix/queue/public", uid, gid, 0o710},
		{"postfix/data", uid, 0, 0o700},
	} {
		p := l.path(d.rel)
		if err := os.Mkdir(p, d.mode); err != nil {
			l.t.Fatal(err)
		}
		if err := os.Chown(p, d.uid, d.gid); err != nil {
			l.t.Fatal(err)
		}
		if err := os.Chmod(p, d.mode); err != nil {
			l.t.Fatal(err)
		}
	}
	// -s: log to stdout (maillog_file = /dev/stdout); the master logs
	// "daemon started" after it has opened every listener.
	l.postfix = l.start("postfix", "daemon started", true, l.bins.master, "-c", l.path("postfix/etc"), "-s")
}

func (l *interopLab) startNginx() {
	l.render("nginx.conf.tmpl", "nginx/nginx.conf")
	// nginx logs "start worker processes" after binding its listeners.
	l.start("nginx", "start worker processes", false, l.bins.nginx, "-e", "stderr", "-p", l.path("nginx"), "-c", l.path("nginx/nginx.conf"))
}
