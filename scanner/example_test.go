package scanner_test

import (
	"context"
	"fmt"

	"github.com/tlsready/tlsready/scanner"
	"github.com/tlsready/tlsready/scanner/resolve"
	"github.com/tlsready/tlsready/scanner/scantest"
	"github.com/tlsready/tlsready/scanner/smtpprobe"
)

// Check one domain against a simulated internet: a mail server with a valid
// certificate, and one without STARTTLS.
func ExampleScanner_Check() {
	b := scantest.NewBuilder(nil)
	b.MailDomain("example.test", scantest.SMTPHost{})
	b.MailDomain("plain.test", scantest.SMTPHost{NoSTARTTLS: true})
	sc, err := b.Scenario()
	if err != nil {
		fmt.Println(err)
		return
	}
	world, err := scantest.Start(sc)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer world.Close()

	res, err := resolve.New(resolve.Config{Servers: []string{world.DNSAddr}})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer res.Close()
	s, err := scanner.New(scanner.Config{
		Resolver:     res,
		Probe:        smtpprobe.Config{Port: world.SMTPPort, HELO: "scanner.example"},
		RootCAs:      world.CA.Pool(),
		HTTPSPort:    world.HTTPSPort,
		AllowPrivate: true, // the simulated internet lives on 127.0.0.0/8
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer s.Close()
	for _, d := range []string{"example.test", "plain.test"} {
		r, err := s.Check(context.Background(), d)
		if err != nil {
			fmt.Println(d, err)
			continue
		}
		fmt.Println(r.Domain, r.Verdict, r.Flags)
	}
	// Output:
	// example.test verified [no-tlsrpt]
	// plain.test plaintext [no-tlsrpt starttls-not-offered]
}
