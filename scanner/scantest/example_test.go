package scantest_test

import (
	"fmt"
	"log"

	"github.com/miekg/dns"

	"github.com/tlsready/tlsready/scanner/scantest"
)

// A world with one mail domain: two MX hosts, the second without STARTTLS.
func ExampleBuilder() {
	b := scantest.NewBuilder(nil)
	b.MailDomain("example.test", scantest.SMTPHost{}, scantest.SMTPHost{NoSTARTTLS: true})
	sc, err := b.Scenario()
	if err != nil {
		log.Fatal(err)
	}
	n, err := scantest.Start(sc)
	if err != nil {
		log.Fatal(err)
	}
	defer n.Close()

	// Point the scanner's resolver at n.DNSAddr, its SMTP dialer at port
	// n.SMTPPort and its roots at n.CA.Pool() (or n.CAFile).
	m := new(dns.Msg)
	m.SetQuestion("mx2.example.test.", dns.TypeA)
	r, err := dns.Exchange(m, n.DNSAddr)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(r.Answer[0].(*dns.A).A)
	// Output: 127.16.0.2
}
