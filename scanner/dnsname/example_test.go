package dnsname_test

import (
	"fmt"

	"github.com/tlsready/tlsready/scanner/dnsname"
)

func ExampleNormalize() {
	ascii, unicode, err := dnsname.Normalize("例え.テスト.")
	fmt.Println(ascii, unicode, err)
	// Output: xn--r8jz45g.xn--zckzah 例え.テスト <nil>
}
