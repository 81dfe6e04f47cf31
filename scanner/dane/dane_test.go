package dane

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

var testNow = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)

var serial atomic.Int64

type testCert struct {
	der  []byte
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

type certOpts struct {
	cn        string
	names     []string
	ca        bool
	notBefore time.Time
	notAfter  time.Time
}

// mkCert creates a certificate signed by parent (self-signed when parent is nil).
func mkCert(t testing.TB, parent *testCert, o certOpts) *testCert {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	if o.notBefore.IsZero() {
		o.notBefore = testNow.Add(-24 * time.Hour)
	}
	if o.notAfter.IsZero() {
		o.notAfter = testNow.Add(24 * time.Hour)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(serial.Add(1)),
		Subject:               pkix.Name{CommonName: o.cn},
		DNSNames:              o.names,
		NotBefore:             o.notBefore,
		NotAfter:              o.notAfter,
		BasicConstraintsValid: true,
		IsCA:                  o.ca,
	}
	if o.ca {
		tmpl.KeyUsage = x509.KeyUsageCertSign
	} else {
		tmpl.KeyUsage = x509.KeyUsageDigitalSignature
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
	}
	signer, signerKey := tmpl, key
	if parent != nil {
		signer, signerKey = parent.cert, parent.key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, signer, &key.PublicKey, signerKey)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &testCert{der: der, cert: c, key: key}
}

// rec builds a TLSA record for c.
func rec(usage, selector, mt uint8, c *testCert) Record {
	data := c.der
	if selector == SelectorSPKI {
		data = c.cert.RawSubjectPublicKeyInfo
	}
	switch mt {
	case MatchSHA256:
		h := sha256.Sum256(data)
		data = h[:]
	case MatchSHA512:
		h := sha512.Sum512(data)
		data = h[:]
	}
	return Record{Usage: usage, Selector: selector, MatchingType: mt, Data: append([]byte(nil), data...)}
}

type pki struct {
	root, inter, other *testCert // other: an unrelated intermediate under root
}

func newPKI(t testing.TB) *pki {
	root := mkCert(t, nil, certOpts{cn: "Test Root", ca: true, notAfter: testNow.Add(365 * 24 * time.Hour)})
	return &pki{
		root:  root,
		inter: mkCert(t, root, certOpts{cn: "Test Intermediate", ca: true, notAfter: testNow.Add(365 * 24 * time.Hour)}),
		other: mkCert(t, root, certOpts{cn: "Other Intermediate", ca: true, notAfter: testNow.Add(365 * 24 * time.Hour)}),
	}
}

func chainOf(certs ...*testCert) [][]byte {
	var l [][]byte
	for _, c := range certs {
		l = append(l, c.der)
	}
	return l
}

var mxNames = []string{"mx.example.test"}

func TestDANEEE(t *testing.T) {
	t.Parallel()
	p := newPKI(t)
	leaf := mkCert(t, p.inter, certOpts{cn: "mx.example.test", names: []string{"mx.example.test"}})
	stranger := mkCert(t, p.inter, certOpts{cn: "mx.example.test", names: []string{"mx.example.test"}})
	chain := chainOf(leaf, p.inter)
	for _, sm := range [][2]uint8{{1, 1}, {0, 1}, {1, 2}, {0, 2}, {0, 0}, {1, 0}} {
		r := rec(UsageDANEEE, sm[0], sm[1], leaf)
		res := Verify(chain, []Record{r}, mxNames, testNow)
		if !res.Match || res.Usage != UsageDANEEE || res.Reason != "" || res.Record.String() != r.String() {
			t.Errorf("3 %d %d: %+v, want match", sm[0], sm[1], res)
		}
		res = Verify(chain, []Record{rec(UsageDANEEE, sm[0], sm[1], stranger)}, mxNames, testNow)
		if res.Match || res.Reason != ReasonNoMatch {
			t.Errorf("3 %d %d of another certificate: %+v, want no-match", sm[0], sm[1], res)
		}
		// The intermediate's hash in a DANE-EE record does not match: EE is the leaf only.
		res = Verify(chain, []Record{rec(UsageDANEEE, sm[0], sm[1], p.inter)}, mxNames, testNow)
		if res.Match {
			t.Errorf("3 %d %d of the intermediate matched", sm[0], sm[1])
		}
	}

	// RFC 7672 §3.1.1: names and validity are ignored for DANE-EE.
	expired := mkCert(t, p.inter, certOpts{cn: "mx.example.test", names: []string{"mx.example.test"},
		notBefore: testNow.Add(-48 * time.Hour), notAfter: testNow.Add(-24 * time.Hour)})
	wrongName := mkCert(t, nil, certOpts{cn: "localhost", names: []string{"localhost"}}) // self-signed, too
	for name, c := range map[string]*testCert{"expired": expired, "wrong name, self-signed": wrongName} {
		res := Verify(chainOf(c), []Record{rec(UsageDANEEE, SelectorSPKI, MatchSHA256, c)}, mxNames, testNow)
		if !res.Match {
			t.Errorf("%s: %+v, want match", name, res)
		}
	}

	// Several records: one stale, one current (key rollover).
	res := Verify(chain, []Record{rec(UsageDANEEE, 1, 1, stranger), rec(UsageDANEEE, 1, 1, leaf)}, mxNames, testNow)
	if !res.Match {
		t.Errorf("rollover: %+v", res)
	}
}

func TestDANETA(t *testing.T) {
	t.Parallel()
	p := newPKI(t)
	leaf := mkCert(t, p.inter, certOpts{cn: "mx.example.test", names: []string{"mx.example.test"}})
	ta := rec(UsageDANETA, SelectorCert, MatchSHA256, p.inter)

	check := func(name string, res Result, match bool, reason string) {
		t.Helper()
		if res.Match != match || res.Reason != reason {
			t.Errorf("%s: %+v, want match %v reason %q", name, res, match, reason)
		}
		if match && res.Usage != UsageDANETA {
			t.Errorf("%s: usage %d", name, res.Usage)
		}
	}

	check("2 0 1 intermediate", Verify(chainOf(leaf, p.inter), []Record{ta}, mxNames, testNow), true, "")
	check("2 1 1 intermediate", Verify(chainOf(leaf, p.inter), []Record{rec(2, 1, 1, p.inter)}, mxNames, testNow), true, "")
	check("2 1 2 root in chain", Verify(chainOf(leaf, p.inter, p.root), []Record{rec(2, 1, 2, p.root)}, mxNames, testNow), true, "")
	check("trailing dot, case", Verify(chainOf(leaf, p.inter), []Record{ta}, []string{"MX.Example.Test."}, testNow), true, "")
	check("root TA not sent", Verify(chainOf(leaf, p.inter), []Record{rec(2, 0, 1, p.root)}, mxNames, testNow), false, ReasonNoMatch)
	// RFC 7671 §5.2.2: a "2 0 0" record carries the TA certificate itself.
	check("2 0 0 not in chain", Verify(chainOf(leaf), []Record{rec(2, 0, 0, p.inter)}, mxNames, testNow), true, "")
	check("2 0 0 root not in chain", Verify(chainOf(leaf, p.inter), []Record{rec(2, 0, 0, p.root)}, mxNames, testNow), true, "")
	// Documented limit: a bare SPKI ("2 1 0") not in the chain.
	check("2 1 0 not in chain", Verify(chainOf(leaf), []Record{rec(2, 1, 0, p.inter)}, mxNames, testNow), false, ReasonNoMatch)

	// The leaf itself is not a trust anchor.
	self := mkCert(t, nil, certOpts{cn: "mx.example.test", names: []string{"mx.example.test"}, ca: true})
	check("leaf as TA", Verify(chainOf(self), []Record{rec(2, 0, 1, self)}, mxNames, testNow), false, ReasonNoMatch)

	// Names: the MX host, and the TLSA base domain of a CNAME'd MX host.
	check("name mismatch", Verify(chainOf(leaf, p.inter), []Record{ta}, []string{"mx2.example.test"}, testNow), false, ReasonNameMismatch)
	check("no names", Verify(chainOf(leaf, p.inter), []Record{ta}, nil, testNow), false, ReasonNameMismatch)
	provider := mkCert(t, p.inter, certOpts{cn: "mx.provider.test", names: []string{"mx.provider.test"}})
	check("cname target name", Verify(chainOf(provider, p.inter), []Record{ta}, []string{"mx.example.test", "mx.provider.test"}, testNow), true, "")
	check("cname target only in cert", Verify(chainOf(provider, p.inter), []Record{ta}, mxNames, testNow), false, ReasonNameMismatch)

	// Wildcards cover exactly one label (RFC 7672 §3.2.3).
	wild := mkCert(t, p.inter, certOpts{cn: "wild", names: []string{"*.example.test"}})
	check("wildcard", Verify(chainOf(wild, p.inter), []Record{ta}, mxNames, testNow), true, "")
	check("wildcard two labels", Verify(chainOf(wild, p.inter), []Record{ta}, []string{"a.mx.example.test"}, testNow), false, ReasonNameMismatch)
	check("wildcard parent", Verify(chainOf(wild, p.inter), []Record{ta}, []string{"example.test"}, testNow), false, ReasonNameMismatch)

	// CN is used only when there is no DNS-ID.
	cnOnly := mkCert(t, p.inter, certOpts{cn: "mx.example.test"})
	check("cn only", Verify(chainOf(cnOnly, p.inter), []Record{ta}, mxNames, testNow), true, "")
	cnAndSAN := mkCert(t, p.inter, certOpts{cn: "mx.example.test", names: []string{"other.example.test"}})
	check("cn ignored with SAN", Verify(chainOf(cnAndSAN, p.inter), []Record{ta}, mxNames, testNow), false, ReasonNameMismatch)

	// Expiry is checked for DANE-TA, on the leaf and on the TA.
	expired := mkCert(t, p.inter, certOpts{cn: "mx.example.test", names: []string{"mx.example.test"},
		notBefore: testNow.Add(-48 * time.Hour), notAfter: testNow.Add(-time.Hour)})
	res := Verify(chainOf(expired, p.inter), []Record{ta}, mxNames, testNow)
	check("expired leaf", res, false, ReasonCertExpired)
	if res.Err == nil {
		t.Error("expired leaf: no Err")
	}
	check("later now", Verify(chainOf(leaf, p.inter), []Record{ta}, mxNames, testNow.Add(48*time.Hour)), false, ReasonCertExpired)
	oldInter := mkCert(t, p.root, certOpts{cn: "Old Intermediate", ca: true, notBefore: testNow.Add(-48 * time.Hour), notAfter: testNow.Add(-time.Hour)})
	oldLeaf := mkCert(t, oldInter, certOpts{cn: "mx.example.test", names: []string{"mx.example.test"}})
	check("expired TA", Verify(chainOf(oldLeaf, oldInter), []Record{rec(2, 0, 1, oldInter)}, mxNames, testNow), false, ReasonCertExpired)

	// The TA is in the chain but did not sign the leaf.
	foreign := mkCert(t, p.other, certOpts{cn: "mx.example.test", names: []string{"mx.example.test"}})
	check("not signed by TA", Verify(chainOf(foreign, p.inter), []Record{ta}, mxNames, testNow), false, ReasonTAChainInvalid)
	// ... but signed by another presented intermediate under a TA root.
	check("via other intermediate", Verify(chainOf(foreign, p.inter, p.other, p.root), []Record{rec(2, 1, 1, p.root)}, mxNames, testNow), true, "")

	// The reported reason is the one that got furthest.
	res = Verify(chainOf(leaf, p.inter), []Record{rec(2, 0, 1, p.other), ta}, []string{"elsewhere.test"}, testNow)
	check("best reason", res, false, ReasonNameMismatch)
}

func TestUsable(t *testing.T) {
	t.Parallel()
	d32, d64 := make([]byte, 32), make([]byte, 64)
	tests := []struct {
		r    Record
		want bool
	}{
		{Record{3, 1, 1, d32}, true},
		{Record{2, 0, 2, d64}, true},
		{Record{3, 0, 0, []byte{1}}, true},
		{Record{0, 0, 1, d32}, false}, // PKIX-TA: RFC 7672 §3.1.3
		{Record{1, 1, 1, d32}, false}, // PKIX-EE
		{Record{4, 1, 1, d32}, false},
		{Record{255, 1, 1, d32}, false},
		{Record{3, 2, 1, d32}, false},
		{Record{3, 1, 3, d32}, false},
		{Record{3, 1, 255, d32}, false},
		{Record{3, 1, 1, d64}, false}, // wrong digest length
		{Record{3, 1, 2, d32}, false},
		{Record{3, 1, 1, nil}, false},
		{Record{3, 0, 0, nil}, false},
	}
	for _, tc := range tests {
		if got := Usable(tc.r); got != tc.want {
			t.Errorf("Usable(%d %d %d, %d bytes) = %v", tc.r.Usage, tc.r.Selector, tc.r.MatchingType, len(tc.r.Data), got)
		}
	}
}

func TestUnusableAndGarbage(t *testing.T) {
	t.Parallel()
	p := newPKI(t)
	leaf := mkCert(t, p.inter, certOpts{cn: "mx.example.test", names: []string{"mx.example.test"}})
	chain := chainOf(leaf, p.inter, p.root)

	// PKIX-TA / PKIX-EE records that would match are ignored.
	res := Verify(chain, []Record{rec(0, 0, 1, p.root), rec(1, 1, 1, leaf)}, mxNames, testNow)
	if res.Match || res.Reason != ReasonNoUsableRecords {
		t.Errorf("usages 0/1: %+v", res)
	}
	res = Verify(chain, []Record{rec(1, 1, 1, leaf), rec(3, 1, 1, p.other)}, mxNames, testNow)
	if res.Match || res.Reason != ReasonNoMatch {
		t.Errorf("usage 1 beside a mismatching 3: %+v", res)
	}
	res = Verify(chain, nil, mxNames, testNow)
	if res.Match || res.Reason != ReasonNoUsableRecords {
		t.Errorf("no records: %+v", res)
	}
	res = Verify(nil, []Record{rec(3, 1, 1, leaf)}, mxNames, testNow)
	if res.Match || res.Reason != ReasonNoCertificate {
		t.Errorf("no chain: %+v", res)
	}

	garbage := []byte("this is not a certificate")
	// Selector 1 needs a parsable certificate.
	if res := Verify([][]byte{garbage}, []Record{rec(3, 1, 1, leaf)}, mxNames, testNow); res.Match || res.Reason != ReasonNoMatch {
		t.Errorf("garbage leaf: %+v", res)
	}
	// Selector 0 compares the bytes as presented.
	h := sha256.Sum256(garbage)
	if res := Verify([][]byte{garbage}, []Record{{3, 0, 1, h[:]}}, mxNames, testNow); !res.Match {
		t.Errorf("garbage leaf, 3 0 1 of its bytes: %+v", res)
	}
	// A TA matches a good intermediate but the leaf does not parse.
	res = Verify([][]byte{garbage, p.inter.der}, []Record{rec(2, 0, 1, p.inter)}, mxNames, testNow)
	if res.Match || res.Reason != ReasonBadCertificate || res.Err == nil {
		t.Errorf("garbage leaf with TA: %+v", res)
	}
	// Garbage intermediates are skipped.
	res = Verify([][]byte{leaf.der, garbage, p.inter.der, {}}, []Record{rec(2, 1, 1, p.inter)}, mxNames, testNow)
	if !res.Match {
		t.Errorf("garbage intermediate: %+v", res)
	}
	// A truncated certificate.
	res = Verify([][]byte{leaf.der[:len(leaf.der)/2]}, []Record{rec(3, 1, 1, leaf), rec(2, 0, 0, p.inter)}, mxNames, testNow)
	if res.Match {
		t.Errorf("truncated leaf: %+v", res)
	}
	// "2 0 0" whose data is not a certificate.
	res = Verify(chainOf(leaf), []Record{{2, 0, 0, garbage}}, mxNames, testNow)
	if res.Match || res.Reason != ReasonNoMatch {
		t.Errorf("2 0 0 garbage: %+v", res)
	}
}

func TestTLSAName(t *testing.T) {
	t.Parallel()
	tests := []struct {
		host string
		port int
		want string
	}{
		{"mx.example.com", 25, "_25._tcp.mx.example.com."},
		{"MX.Example.COM.", 25, "_25._tcp.mx.example.com."},
		{"mx.example.com", 0, "_25._tcp.mx.example.com."},
		{"mx.example.com", 465, "_465._tcp.mx.example.com."},
	}
	for _, tc := range tests {
		if got := TLSAName(tc.host, tc.port); got != tc.want {
			t.Errorf("TLSAName(%q, %d) = %q, want %q", tc.host, tc.port, got, tc.want)
		}
	}
}

func TestRecordString(t *testing.T) {
	t.Parallel()
	if got := (Record{3, 1, 1, []byte{0xab, 0x01}}).String(); got != "3 1 1 ab01" {
		t.Errorf("String() = %q", got)
	}
}

func FuzzVerify(f *testing.F) {
	p := newPKI(f)
	leaf := mkCert(f, p.inter, certOpts{cn: "mx.example.test", names: []string{"mx.example.test"}})
	for _, r := range []Record{rec(3, 1, 1, leaf), rec(3, 0, 0, leaf), rec(2, 0, 1, p.inter), rec(2, 0, 0, p.inter), rec(0, 0, 1, p.inter)} {
		f.Add(r.Usage, r.Selector, r.MatchingType, r.Data, leaf.der, p.inter.der, "mx.example.test")
	}
	f.Add(uint8(3), uint8(0), uint8(1), make([]byte, 32), []byte("garbage"), []byte{}, "")
	f.Fuzz(func(t *testing.T, usage, selector, mt uint8, data, leafDER, interDER []byte, name string) {
		chain := [][]byte{leafDER}
		if len(interDER) > 0 {
			chain = append(chain, interDER)
		}
		r := Record{Usage: usage, Selector: selector, MatchingType: mt, Data: data}
		res := Verify(chain, []Record{r}, strings.Split(name, ","), testNow)
		if res.Match {
			if !Usable(res.Record) || res.Reason != "" || (res.Usage != UsageDANEEE && res.Usage != UsageDANETA) {
				t.Fatalf("inconsistent match %+v", res)
			}
		} else if res.Reason == "" {
			t.Fatalf("no match without reason: %+v", res)
		}
		if !Usable(r) && res.Reason != ReasonNoUsableRecords {
			t.Fatalf("unusable record %v gave %+v", r, res)
		}
	})
}
