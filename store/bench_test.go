package store

import (
	"context"
	"math/rand/v2"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/tlsready/tlsready/scanner/result"
)

// benchRegister makes batches of recipients like a register: domains
// Zipf-distributed over 200,000 names (a few providers hold most citizens),
// IDs either line numbers in file order (the register reader's default) or
// random 12-digit numbers (an unordered id column).
func benchRegister(batches, size int, randomIDs bool) [][]Recipient {
	rng := rand.New(rand.NewPCG(1, 2))
	zipf := rand.NewZipf(rng, 1.1, 2, 200_000)
	out := make([][]Recipient, batches)
	line := 0
	for i := range out {
		out[i] = make([]Recipient, size)
		for j := range out[i] {
			line++
			id := strconv.Itoa(line)
			if randomIDs {
				id = strconv.FormatUint(1e11+rng.Uint64N(9e11), 10)
			}
			out[i][j] = Recipient{ID: id, Domain: "d" + strconv.FormatUint(zipf.Uint64(), 10) + ".example"}
		}
	}
	return out
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkAddRecipients: one op is one AddRecipients batch of 10,000 into
// a table that grows with b.N (use -benchtime=100x for a 1M-recipient
// register). recipients/s is wall-clock; cpu-recipients/s divides by the
// process's CPU time instead (less noisy on a shared machine).
//
//	go test -run '^$' -bench AddRecipients -benchtime 100x ./store
func BenchmarkAddRecipients(b *testing.B) {
	for _, mode := range []struct {
		name   string
		random bool
	}{{"line-ids", false}, {"random-ids", true}} {
		b.Run(mode.name, func(b *testing.B) {
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
			const size = 10_000
			batches := benchRegister(b.N, size, mode.random)
			b.ResetTimer()
			start, cpu0 := time.Now(), cpuTime()
			for i := 0; i < b.N; i++ {
				if err := s.AddRecipients(ctx, run.ID, batches[i]); err != nil {
					b.Fatal(err)
				}
			}
			wall, cpu := time.Since(start), cpuTime()-cpu0
			b.StopTimer()
			n := float64(b.N * size)
			b.ReportMetric(n/wall.Seconds(), "recipients/s")
			if cpu > 0 {
				b.ReportMetric(n/cpu.Seconds(), "cpu-recipients/s")
			}
		})
	}
}

// BenchmarkSaveCommit: one op is one commit of 40 results (what the scan's
// writer commits every 2 s at --rate 20), with the statements prepared
// once for the writer's lifetime ("prepared-once", as Writer does) or in
// every transaction ("per-transaction", SaveResults), back to back or one
// commit every 50 ms (an idle process, as at --rate 20). cpu-µs/commit is
// the process's CPU per commit.
//
//	go test -run '^$' -bench SaveCommit -benchtime 200x ./store
func BenchmarkSaveCommit(b *testing.B) {
	for _, gap := range []time.Duration{0, 50 * time.Millisecond} {
		for _, once := range []bool{true, false} {
			name := "per-transaction"
			if once {
				name = "prepared-once"
			}
			if gap > 0 {
				name += "/every-" + gap.String()
			}
			b.Run(name, func(b *testing.B) { benchSaveCommit(b, once, gap) })
		}
	}
}

func benchSaveCommit(b *testing.B, once bool, gap time.Duration) {
	ctx := context.Background()
	s, err := Open(ctx, filepath.Join(b.TempDir(), "bench.db"), Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	var pre *saveStmts
	if once {
		if pre, err = s.prepareSave(ctx, s.w); err != nil {
			b.Fatal(err)
		}
		defer pre.close()
	}
	batch := make([]result.Result, 40)
	n := 0
	b.ResetTimer()
	cpu0 := cpuTime()
	for b.Loop() {
		if gap > 0 {
			time.Sleep(gap)
		}
		for i := range batch {
			n++
			batch[i] = res("d"+strconv.Itoa(n)+".example", result.Verified, t0, 0)
		}
		if err := s.saveResultsWith(ctx, batch, pre); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64((cpuTime()-cpu0).Microseconds())/float64(b.N), "cpu-µs/commit")
}
