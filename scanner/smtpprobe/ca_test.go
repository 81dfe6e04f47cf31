package smtpprobe

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"sync"
	"testing"
	"time"
)

// testNow is the fixed "now" of the tests: certificates are issued around
// it and Config.Now returns it.
var testNow = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// testCA is a test-only certificate authority.
type testCA struct {
	cert *x509.Certificate
	key  crypto.Signer
}

var serial struct {
	sync.Mutex
	n int64
}

func nextSerial() *big.Int {
	serial.Lock()
	defer serial.Unlock()
	serial.n++
	return big.NewInt(serial.n)
}

func newKey(t testing.TB) crypto.Signer {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func createCert(t testing.TB, tmpl, parent *x509.Certificate, pub crypto.PublicKey, signer crypto.Signer) *x509.Certificate {
	t.Helper()
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, signer)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// newRootCA makes a self-signed root valid from a year before testNow for ten years.
func newRootCA(t testing.TB, cn string) *testCA { return newCA(t, cn, 10, nil) }

// intermediate issues a CA certificate under ca, valid for five years.
func (ca *testCA) intermediate(t testing.TB, cn string) *testCA { return newCA(t, cn, 5, ca) }

// newCA makes a CA certificate valid from a year before testNow for years,
// issued by parent or, when parent is nil, self-signed.
func newCA(t testing.TB, cn string, years int, parent *testCA) *testCA {
	t.Helper()
	key := newKey(t)
	tmpl := &x509.Certificate{
		SerialNumber:          nextSerial(),
		Subject:               pkix.Name{CommonName: cn, Organization: []string{"tlsready test"}},
		NotBefore:             testNow.AddDate(-1, 0, 0),
		NotAfter:              testNow.AddDate(years, 0, 0),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	issuer, signer := tmpl, key
	if parent != nil {
		issuer, signer = parent.cert, parent.key
	}
	return &testCA{cert: createCert(t, tmpl, issuer, key.Public(), signer), key: key}
}

// leafOpts describe a server certificate; zero validity is testNow-30d..testNow+60d.
type leafOpts struct {
	names               []string
	notBefore, notAfter time.Time
	key                 crypto.Signer           // nil: a new P-256 key
	sigAlg              x509.SignatureAlgorithm // 0: the issuer key's default
}

func leafTemplate(o leafOpts) *x509.Certificate {
	if o.notBefore.IsZero() {
		o.notBefore = testNow.AddDate(0, 0, -30)
	}
	if o.notAfter.IsZero() {
		o.notAfter = testNow.AddDate(0, 0, 60)
	}
	cn := ""
	if len(o.names) > 0 {
		cn = o.names[0]
	}
	return &x509.Certificate{
		SerialNumber: nextSerial(),
		Subject:      pkix.Name{CommonName: cn},
		DNSNames:     o.names,
		NotBefore:    o.notBefore,
		NotAfter:     o.notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},

		SignatureAlgorithm: o.sigAlg,
	}
}

// issue returns a TLS certificate for o signed by ca, presenting the leaf
// followed by extra (the intermediates the server sends).
func (ca *testCA) issue(t testing.TB, o leafOpts, extra ...*testCA) tls.Certificate {
	t.Helper()
	key := o.key
	if key == nil {
		key = newKey(t)
	}
	leaf := createCert(t, leafTemplate(o), ca.cert, key.Public(), ca.key)
	tc := tls.Certificate{Certificate: [][]byte{leaf.Raw}, PrivateKey: key, Leaf: leaf}
	for _, e := range extra {
		tc.Certificate = append(tc.Certificate, e.cert.Raw)
	}
	return tc
}

// selfSigned returns a self-signed server certificate.
func selfSigned(t testing.TB, o leafOpts) tls.Certificate {
	t.Helper()
	key := o.key
	if key == nil {
		key = newKey(t)
	}
	tmpl := leafTemplate(o)
	leaf := createCert(t, tmpl, tmpl, key.Public(), key)
	return tls.Certificate{Certificate: [][]byte{leaf.Raw}, PrivateKey: key, Leaf: leaf}
}

func (ca *testCA) pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.cert)
	return p
}

// testPKI is the shared test PKI: a trusted root, an intermediate under it,
// an unrelated root, and the default server certificate for mx.example.test.
type testPKI struct {
	root, inter, other *testCA
	mx                 tls.Certificate // leaf + intermediate
	rsaKey             *rsa.PrivateKey
}

var (
	pkiOnce sync.Once
	pkiVal  *testPKI
)

func pki(t testing.TB) *testPKI {
	t.Helper()
	pkiOnce.Do(func() {
		root := newRootCA(t, "Test Root")
		inter := root.intermediate(t, "Test Intermediate")
		rk, err := rsa.GenerateKey(rand.Reader, 1024) // small: fast, still accepted by crypto/tls
		if err != nil {
			t.Fatal(err)
		}
		pkiVal = &testPKI{
			root:   root,
			inter:  inter,
			other:  newRootCA(t, "Other Root"),
			mx:     inter.issue(t, leafOpts{names: []string{"mx.example.test"}}, inter),
			rsaKey: rk,
		}
	})
	if pkiVal == nil {
		t.Fatal("test PKI setup failed")
	}
	return pkiVal
}
