package register_test

import (
	"fmt"
	"io"
	"strings"

	"github.com/tlsready/tlsready/scanner/register"
)

func ExampleReader() {
	in := "id,email,name\n" +
		"17,Anna@Example.ORG,Anna\n" +
		"18,bob@BÜCHER.example,Bob\n" +
		"19,not-an-address,Carl\n"
	rd := register.NewReader(strings.NewReader(in), register.Options{})
	for {
		e, err := rd.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			fmt.Println("error:", err)
			return
		}
		fmt.Printf("line %d id %s domain %s unicode %q\n", e.Line, e.ID, e.Domain, e.Unicode)
	}
	st := rd.Stats()
	fmt.Println("ok", st.OK, "bad", st.Bad, st.BadLines)
	// Output:
	// line 2 id 17 domain example.org unicode ""
	// line 3 id 18 domain xn--bcher-kva.example unicode "bücher.example"
	// ok 2 bad 1 map[no-at:[4]]
}
