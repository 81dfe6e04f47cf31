package register

import (
	"bytes"
	"fmt"
	"io"
	"testing"
)

const benchLines = 1_000_000

// genRegister writes n addresses: about half at 10 large providers, the rest
// spread over `distinct` other domains, 1 in 100 of them IDNs, with mixed case.
func genRegister(n, distinct int, csvHeader bool) []byte {
	providers := []string{"gmail.com", "gmx.de", "web.de", "outlook.com", "t-online.de",
		"yahoo.com", "icloud.com", "bluewin.ch", "posteo.de", "Example.ORG"}
	var b bytes.Buffer
	b.Grow(n * 40)
	if csvHeader {
		b.WriteString("id,email,name\n")
	}
	x := uint32(2463534242)
	for i := range n {
		x ^= x << 13 // xorshift: fixed, fast pseudo-random sequence
		x ^= x >> 17
		x ^= x << 5
		var dom string
		switch {
		case x%2 == 0:
			dom = providers[x/2%uint32(len(providers))]
		case x%100 == 1:
			dom = fmt.Sprintf("bücher-%d.example", x%uint32(distinct))
		default:
			dom = fmt.Sprintf("Firma-%d.example.ch", x%uint32(distinct))
		}
		if csvHeader {
			fmt.Fprintf(&b, "%d,first.last%d@%s,Person %d\n", i, i, dom, i)
		} else {
			fmt.Fprintf(&b, "first.last%d@%s\n", i, dom)
		}
	}
	return b.Bytes()
}

func benchmarkReader(b *testing.B, data []byte, opts Options) {
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	var lines int64
	for b.Loop() {
		rd := NewReader(bytes.NewReader(data), opts)
		for {
			if _, err := rd.Next(); err != nil {
				if err != io.EOF {
					b.Fatal(err)
				}
				break
			}
		}
		if st := rd.Stats(); st.OK < benchLines || st.Bad != 0 {
			b.Fatalf("stats %+v", st)
		}
		lines += benchLines
	}
	b.ReportMetric(float64(lines)/b.Elapsed().Seconds(), "lines/s")
}

// BenchmarkReader: 1M plain lines over about 20,000 domains.
func BenchmarkReader(b *testing.B) {
	benchmarkReader(b, genRegister(benchLines, 20_000, false), Options{})
}

// BenchmarkReaderDistinct: 1M plain lines, the non-provider half over 500,000
// domains, far more than the cache holds.
func BenchmarkReaderDistinct(b *testing.B) {
	benchmarkReader(b, genRegister(benchLines, 500_000, false), Options{})
}

// BenchmarkReaderCSV: 1M CSV records with id, email and an extra column.
func BenchmarkReaderCSV(b *testing.B) {
	benchmarkReader(b, genRegister(benchLines, 20_000, true), Options{})
}

// BenchmarkReaderKeep: as BenchmarkReader, keeping the addresses.
func BenchmarkReaderKeep(b *testing.B) {
	benchmarkReader(b, genRegister(benchLines, 20_000, false), Options{KeepAddresses: true})
}

// BenchmarkReaderCSVDuplicates: as BenchmarkReaderCSV, finding duplicate
// ids and addresses (Options.Duplicates, as scan reads).
func BenchmarkReaderCSVDuplicates(b *testing.B) {
	benchmarkReader(b, genRegister(benchLines, 20_000, true), Options{Duplicates: true})
}
