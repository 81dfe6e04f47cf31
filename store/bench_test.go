package store

import (
	"context"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"testing"
	"time"
)

// benchRecipients makes n recipients spread over nDomains domains, IDs in
// random order (a register is not sorted by our key).
func benchRecipients(n, nDomains int, seed uint64) []Recipient {
	rng := rand.New(rand.NewPCG(seed, 1))
	rs := make([]Recipient, n)
	for i := range rs {
		rs[i] = Recipient{
			ID:     fmt.Sprintf("%012d", rng.Uint64N(1e12)),
			Domain: fmt.Sprintf("d%05d.example", rng.IntN(nDomains)),
		}
	}
	return rs
}

// BenchmarkAddRecipients measures ingestion in batches of 10,000 into a
// growing table, reported as recipients/s.
func BenchmarkAddRecipients(b *testing.B) {
	ctx := context.Background()
	s, err := Open(ctx, filepath.Join(b.TempDir(), "bench.db"), Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	run, _, err := s.BeginRun(ctx, "bench", time.Unix(1e9, 0))
	if err != nil {
		b.Fatal(err)
	}
	const batch = 10_000
	batches := make([][]Recipient, 64)
	for i := range batches {
		batches[i] = benchRecipients(batch, 50_000, uint64(i))
	}
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i++ {
		if err := s.AddRecipients(ctx, run.ID, batches[i%len(batches)]); err != nil {
			b.Fatal(err)
		}
		if i%len(batches) == len(batches)-1 {
			b.StopTimer()
			for j := range batches {
				batches[j] = benchRecipients(batch, 50_000, uint64(i+j+1)*7919)
			}
			b.StartTimer()
		}
	}
	b.ReportMetric(float64(b.N*batch)/time.Since(start).Seconds(), "recipients/s")
}
