package scantest

import (
	"testing"
	"time"
)

// TestIssueCertificates: every certificate a server of the world presents
// exists after IssueCertificates, before any handshake.
func TestIssueCertificates(t *testing.T) {
	t.Parallel()
	b := NewBuilder(nil)
	b.MailDomain("own.test", SMTPHost{}, SMTPHost{Cert: CertSelfSigned})
	b.Host("shared.test", SMTPHost{SNICerts: map[string]CertKind{"mx.a.test": CertValid, "mx.b.test": CertExpired}})
	b.DeadHost("dead.test")
	b.MTASTS("sts.test", HTTPSHost{Body: Policy("enforce", 7*24*time.Hour, "mx.sts.test")}, "1")
	sc, err := b.Scenario()
	if err != nil {
		t.Fatal(err)
	}
	n := StartT(t, sc)
	n.IssueCertificates()
	for ip, st := range n.smtp.hosts {
		if st.cert == nil && !st.h.Down {
			t.Errorf("%s %s: no certificate", ip, st.h.Name)
		}
		if len(st.sniCerts) != len(st.h.SNICerts) {
			t.Errorf("%s: %d of %d SNI certificates", ip, len(st.sniCerts), len(st.h.SNICerts))
		}
	}
	var https int
	for _, hi := range n.https.hosts {
		for name, st := range hi.byName {
			https++
			if st.cert == nil || st.certErr != nil {
				t.Errorf("https %s: no certificate (%v)", name, st.certErr)
			}
		}
	}
	if https != 1 || len(n.smtp.hosts) < 3 {
		t.Errorf("%d https hosts, %d smtp hosts", https, len(n.smtp.hosts))
	}
}
