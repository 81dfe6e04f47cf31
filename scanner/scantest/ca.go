package scantest

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net/netip"
	"sync"
	"time"
)

// ErrCert is wrapped by every certificate creation error.
var ErrCert = errors.New("scantest: certificate")

// CA is a test certificate authority. Its key is ECDSA P-256 (fast); leaves
// are ECDSA P-256 unless CertOptions.RSA is set. A CA is safe for concurrent
// use.
type CA struct {
	Cert *x509.Certificate
	Key  crypto.Signer
	PEM  []byte // the CA certificate, PEM encoded

	interOnce sync.Once
	inter     *x509.Certificate // intermediate for CertOptions.Chain, made on first use
	interKey  crypto.Signer
	interErr  error
}

// NewCA creates a self-signed root CA valid from now-1h to now+10y.
func NewCA(commonName string) (*CA, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrCert, err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: commonName, Organization: []string{"tlsready scantest"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.AddDate(10, 0, 0),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrCert, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrCert, err)
	}
	return &CA{Cert: cert, Key: key, PEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}, nil
}

// Pool returns a new certificate pool holding only the CA: the RootCAs of a
// client that trusts this simulated internet.
func (ca *CA) Pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.Cert)
	return p
}

// Intermediate returns the CA's intermediate certificate (created on first
// use), which signs the leaves issued with CertOptions.Chain.
func (ca *CA) Intermediate() (*x509.Certificate, error) {
	ca.interOnce.Do(func() {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			ca.interErr = fmt.Errorf("%w: %w", ErrCert, err)
			return
		}
		tmpl := &x509.Certificate{
			SerialNumber:          serial(),
			Subject:               pkix.Name{CommonName: ca.Cert.Subject.CommonName + " Intermediate", Organization: []string{"tlsready scantest"}},
			NotBefore:             ca.Cert.NotBefore,
			NotAfter:              ca.Cert.NotAfter,
			KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
			BasicConstraintsValid: true,
			IsCA:                  true,
			MaxPathLenZero:        true,
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, key.Public(), ca.Key)
		if err != nil {
			ca.interErr = fmt.Errorf("%w: %w", ErrCert, err)
			return
		}
		ca.inter, ca.interErr = x509.ParseCertificate(der)
		ca.interKey = key
	})
	return ca.inter, ca.interErr
}

// CertOptions describes a leaf certificate.
type CertOptions struct {
	// Names are the DNS names (or IP literals) of the certificate; the first
	// is also the subject common name.
	Names []string
	// NotBefore and NotAfter bound the validity. Zero NotAfter: now+90d; zero
	// NotBefore: now-1h, or NotAfter-90d when that is earlier (so an expired
	// certificate needs only NotAfter).
	NotBefore, NotAfter time.Time
	// RSA selects a 2048-bit RSA key instead of ECDSA P-256 (slower).
	RSA bool
	// Chain issues the leaf from the CA's intermediate; the returned
	// certificate then carries [leaf, intermediate].
	Chain bool
	// SignatureAlgorithm is the issuer's signature on the leaf; zero: the
	// issuer key's default (ECDSA with SHA-256).
	SignatureAlgorithm x509.SignatureAlgorithm
}

// Issue issues a leaf certificate for a TLS server. The returned certificate
// has Leaf set and, with o.Chain, the intermediate after the leaf.
func (ca *CA) Issue(o CertOptions) (tls.Certificate, error) {
	parent, parentKey := ca.Cert, ca.Key
	var chain [][]byte
	if o.Chain {
		inter, err := ca.Intermediate()
		if err != nil {
			return tls.Certificate{}, err
		}
		parent, parentKey = inter, ca.interKey
		chain = append(chain, inter.Raw)
	}
	return issue(o, parent, parentKey, chain)
}

// SelfSigned creates a self-signed leaf certificate (its own issuer, not a CA).
func SelfSigned(o CertOptions) (tls.Certificate, error) {
	return issue(o, nil, nil, nil)
}

// issue creates a leaf signed by parent (self-signed when parent is nil).
func issue(o CertOptions, parent *x509.Certificate, parentKey crypto.Signer, chain [][]byte) (tls.Certificate, error) {
	var key crypto.Signer
	var err error
	if o.RSA {
		key, err = rsa.GenerateKey(rand.Reader, 2048)
	} else {
		key, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	}
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("%w: %w", ErrCert, err)
	}
	now := time.Now()
	notAfter := o.NotAfter
	if notAfter.IsZero() {
		notAfter = now.AddDate(0, 0, 90)
	}
	notBefore := o.NotBefore
	if notBefore.IsZero() {
		notBefore = now.Add(-time.Hour)
		if early := notAfter.AddDate(0, 0, -90); early.Before(notBefore) {
			notBefore = early
		}
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		NotBefore:             notBefore,
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		SignatureAlgorithm:    o.SignatureAlgorithm,
	}
	if o.RSA {
		tmpl.KeyUsage |= x509.KeyUsageKeyEncipherment
	}
	if len(o.Names) > 0 {
		tmpl.Subject.CommonName = o.Names[0]
	}
	for _, n := range o.Names {
		if ip, err := netip.ParseAddr(n); err == nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip.AsSlice())
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, n)
		}
	}
	if parent == nil {
		parent, parentKey = tmpl, key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, key.Public(), parentKey)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("%w: %w", ErrCert, err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("%w: %w", ErrCert, err)
	}
	return tls.Certificate{Certificate: append([][]byte{der}, chain...), PrivateKey: key, Leaf: leaf}, nil
}

func serial() *big.Int {
	// 127 random bits: positive, unique enough for a test CA. crypto/rand
	// never fails on supported platforms (Go 1.24+).
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	b[0] &= 0x7f
	return new(big.Int).SetBytes(b)
}

// TLSA returns the zone-file RDATA of a TLSA record (RFC 6698 §2) for cert:
// TLSA(cert, 3, 1, 1) is "3 1 1 <hex of SHA-256 of the SubjectPublicKeyInfo>".
// Selector 0 is the whole certificate, 1 the SubjectPublicKeyInfo; matching
// type 0 is the full data, 1 SHA-256, 2 SHA-512.
func TLSA(cert *x509.Certificate, usage, selector, matching uint8) string {
	data := cert.Raw
	if selector == 1 {
		data = cert.RawSubjectPublicKeyInfo
	}
	switch matching {
	case 1:
		h := sha256.Sum256(data)
		data = h[:]
	case 2:
		h := sha512.Sum512(data)
		data = h[:]
	}
	return fmt.Sprintf("%d %d %d %s", usage, selector, matching, hex.EncodeToString(data))
}

// CertKind names the certificate a simulated server presents for its host name.
type CertKind string

// The certificate kinds. The zero value "" means CertValid.
const (
	CertValid       CertKind = "valid"         // issued by the test CA for the host name
	CertExpired     CertKind = "expired"       // issued by the test CA, expired 10 days ago
	CertNotYetValid CertKind = "not-yet-valid" // issued by the test CA, valid from in 10 days
	CertSelfSigned  CertKind = "self-signed"   // self-signed, names the host
	CertWrongName   CertKind = "wrong-name"    // issued by the test CA for "wrong-name.invalid"
	CertUntrusted   CertKind = "untrusted"     // issued for the host by another (unknown) CA
	CertChain       CertKind = "chain"         // valid, issued via the test CA's intermediate
	CertSHA1        CertKind = "sha1"          // issued by the test CA for the host name, signed with ECDSA-SHA1
)

// WrongName is the only name in a CertWrongName certificate.
const WrongName = "wrong-name.invalid"

// CertFor issues the certificate of the given kind for host name from ca.
// CertUntrusted creates a fresh unknown CA each time.
func CertFor(ca *CA, kind CertKind, name string) (tls.Certificate, error) {
	names := []string{name}
	now := time.Now()
	switch kind {
	case "", CertValid:
		return ca.Issue(CertOptions{Names: names})
	case CertExpired:
		return ca.Issue(CertOptions{Names: names, NotAfter: now.AddDate(0, 0, -10)})
	case CertNotYetValid:
		return ca.Issue(CertOptions{Names: names, NotBefore: now.AddDate(0, 0, 10), NotAfter: now.AddDate(0, 0, 100)})
	case CertSelfSigned:
		return SelfSigned(CertOptions{Names: names})
	case CertWrongName:
		return ca.Issue(CertOptions{Names: []string{WrongName}})
	case CertUntrusted:
		other, err := NewCA("scantest untrusted CA")
		if err != nil {
			return tls.Certificate{}, err
		}
		return other.Issue(CertOptions{Names: names})
	case CertChain:
		return ca.Issue(CertOptions{Names: names, Chain: true})
	case CertSHA1:
		return ca.Issue(CertOptions{Names: names, SignatureAlgorithm: x509.ECDSAWithSHA1})
	}
	return tls.Certificate{}, fmt.Errorf("%w: unknown kind %q", ErrCert, kind)
}

// validKind reports whether k is a known CertKind (or "").
func validKind(k CertKind) bool {
	switch k {
	case "", CertValid, CertExpired, CertNotYetValid, CertSelfSigned, CertWrongName, CertUntrusted, CertChain, CertSHA1:
		return true
	}
	return false
}

// Verify verifies a server's chain (leaf first, then what it sent) for name
// against ca as the only root.
func (ca *CA) Verify(certs []*x509.Certificate, name string) error {
	inter := x509.NewCertPool()
	for _, c := range certs[1:] {
		inter.AddCert(c)
	}
	_, err := certs[0].Verify(x509.VerifyOptions{Roots: ca.Pool(), Intermediates: inter, DNSName: name})
	return err
}
