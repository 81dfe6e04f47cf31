package mtasts_test

import (
	"fmt"

	"github.com/tlsready/tlsready/scanner/mtasts"
)

func ExampleParsePolicy() {
	// A policy served with LF line endings, as some large providers do.
	p, err := mtasts.ParsePolicy([]byte("version: STSv1\nmode: enforce\nmx: mail.example.com\nmx: *.example.net\nmax_age: 604800\n"))
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(p.Mode, p.MaxAge)
	for _, host := range []string{"mail.example.com", "mx1.example.net", "a.b.example.net"} {
		fmt.Println(host, p.MatchMX(host))
	}
	// Output:
	// enforce 604800
	// mail.example.com true
	// mx1.example.net true
	// a.b.example.net false
}

func ExampleSelectRecord() {
	r, err := mtasts.SelectRecord([]string{"v=spf1 -all", "v=STSv1; id=20160831085700Z;"})
	fmt.Println(r.ID, err)
	// Output: 20160831085700Z <nil>
}
