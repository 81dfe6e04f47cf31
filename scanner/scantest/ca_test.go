package scantest

import (
	"context"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
)

func TestCA(t *testing.T) {
	t.Parallel()
	ca, err := NewCA("test CA")
	if err != nil {
		t.Fatal(err)
	}
	if !ca.Cert.IsCA || !strings.Contains(string(ca.PEM), "BEGIN CERTIFICATE") {
		t.Fatalf("CA %v", ca.Cert.Subject)
	}
	leaf, err := ca.Issue(CertOptions{Names: []string{"mx.example.test", "127.0.0.5"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := ca.Verify([]*x509.Certificate{leaf.Leaf}, "mx.example.test"); err != nil {
		t.Errorf("leaf: %v", err)
	}
	if err := ca.Verify([]*x509.Certificate{leaf.Leaf}, "127.0.0.5"); err != nil {
		t.Errorf("leaf by IP: %v", err)
	}
	if d := time.Until(leaf.Leaf.NotAfter); d < 89*24*time.Hour || d > 91*24*time.Hour {
		t.Errorf("default validity ends in %v", d)
	}

	rsaLeaf, err := ca.Issue(CertOptions{Names: []string{"rsa.example.test"}, RSA: true, Chain: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := rsaLeaf.PrivateKey.(*rsa.PrivateKey); !ok || len(rsaLeaf.Certificate) != 2 {
		t.Errorf("RSA chain leaf: key %T, %d certificates", rsaLeaf.PrivateKey, len(rsaLeaf.Certificate))
	}
	inter, _ := ca.Intermediate()
	if err := ca.Verify([]*x509.Certificate{rsaLeaf.Leaf, inter}, "rsa.example.test"); err != nil {
		t.Errorf("chained leaf: %v", err)
	}
	if err := ca.Verify([]*x509.Certificate{rsaLeaf.Leaf}, "rsa.example.test"); err == nil {
		t.Error("chained leaf verifies without its intermediate")
	}

	expired, err := ca.Issue(CertOptions{Names: []string{"old.test"}, NotAfter: time.Now().Add(-time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	if !expired.Leaf.NotBefore.Before(expired.Leaf.NotAfter) {
		t.Errorf("expired cert: %v .. %v", expired.Leaf.NotBefore, expired.Leaf.NotAfter)
	}

	self, err := SelfSigned(CertOptions{Names: []string{"self.test"}})
	if err != nil {
		t.Fatal(err)
	}
	if self.Leaf.Issuer.String() != self.Leaf.Subject.String() || self.Leaf.CheckSignature(self.Leaf.SignatureAlgorithm, self.Leaf.RawTBSCertificate, self.Leaf.Signature) != nil {
		t.Errorf("self-signed: issuer %v", self.Leaf.Issuer)
	}
	if _, err := CertFor(ca, "bogus", "x.test"); err == nil {
		t.Error("CertFor accepted an unknown kind")
	}
}

func TestTLSA(t *testing.T) {
	t.Parallel()
	ca, err := NewCA("test CA")
	if err != nil {
		t.Fatal(err)
	}
	c, err := ca.Issue(CertOptions{Names: []string{"mx.example.test"}})
	if err != nil {
		t.Fatal(err)
	}
	spki := sha256.Sum256(c.Leaf.RawSubjectPublicKeyInfo)
	full := sha512.Sum512(c.Leaf.Raw)
	for _, tc := range []struct {
		got, want string
	}{
		{TLSA(c.Leaf, 3, 1, 1), "3 1 1 " + hex.EncodeToString(spki[:])},
		{TLSA(c.Leaf, 3, 0, 2), "3 0 2 " + hex.EncodeToString(full[:])},
		{TLSA(ca.Cert, 2, 0, 0), "2 0 0 " + hex.EncodeToString(ca.Cert.Raw)},
	} {
		if tc.got != tc.want {
			t.Errorf("TLSA = %.40s..., want %.40s...", tc.got, tc.want)
		}
		// It is valid zone-file RDATA.
		if _, err := dns.NewRR("_25._tcp.mx.example.test. 300 IN TLSA " + tc.got); err != nil {
			t.Errorf("TLSA RDATA does not parse: %v", err)
		}
	}
}

func TestServeAndInfo(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	n, err := Serve(ctx, Scenario{Zone: []string{"example.test. 300 IN A 127.0.0.1"}})
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(n.Info())
	if err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf(`{"dns":%q,"smtp_port":%d,"https_port":%d,"ca_file":%q}`, n.DNSAddr, n.SMTPPort, n.HTTPSPort, n.CAFile)
	if string(b) != want {
		t.Errorf("Info JSON = %s, want %s", b, want)
	}
	st, err := os.Stat(n.CAFile)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("CA file: %v %v", st, err)
	}
	cancel()
	<-n.Done()
	if err := n.Close(); err != nil { // waits for the Close Serve started
		t.Errorf("Close: %v", err)
	}
	if _, err := os.Stat(n.CAFile); !os.IsNotExist(err) {
		t.Errorf("CA file after Close: %v", err)
	}
}
