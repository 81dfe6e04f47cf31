package report

import (
	"context"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"runtime/metrics"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/tlsready/tlsready/scanner/result"
	"github.com/tlsready/tlsready/store"
)

// benchDBVersion changes whenever the generated database would change, so a
// cached file from an older generator is not reused.
const benchDBVersion = 1

// benchCitizens gives domain i (0-based, of n) its citizen count: ten giant
// providers, a thousand medium domains, and a long tail of 1-2 citizens,
// adding up to exactly total.
func benchCitizens(n, total int) []int {
	c := make([]int, n)
	sum := 0
	for i := range c {
		switch {
		case i < 10:
			c[i] = total / 20
		case i < 1000:
			c[i] = total / 3300
		default:
			c[i] = 2
		}
		c[i] = max(c[i], 1)
		sum += c[i]
	}
	// Trim or pad the tail to hit the total.
	for i := n - 1; sum > total && i >= 1000; i-- {
		c[i]--
		sum--
	}
	c[0] += total - sum
	return c
}

var benchVerdicts = []struct {
	v   result.Verdict
	pct int
}{
	{result.Verified, 40}, {result.Plaintext, 20}, {result.Partial, 10}, {result.Encrypted, 10}, {result.DANE, 5},
	{result.MTASTS, 5}, {result.Broken, 3}, {result.NoMail, 3}, {result.Unreachable, 2}, {result.DNSError, 2},
}

func benchVerdict(i, run int) result.Verdict {
	h := uint32(i)*2654435761 + uint32(run)*40503*uint32(i%20/19) // ~5% of domains change in run 2
	p := int(h>>8) % 100
	for _, bv := range benchVerdicts {
		if p < bv.pct {
			return bv.v
		}
		p -= bv.pct
	}
	return result.Verified
}

func benchResult(i, run int, at time.Time) result.Result {
	d := fmt.Sprintf("d%07d.example", i)
	v := benchVerdict(i, run)
	ip := netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
	p := &result.Probe{IP: ip, Status: result.ProbeNoSTARTTLS, Reachable: true, Banner: "220 mx." + d + " ESMTP", StartedAt: at}
	if v != result.Plaintext {
		p.Status, p.STARTTLSOffered = result.ProbeOK, true
		p.TLS = &result.TLSInfo{Version: "TLS 1.3", CipherSuite: "TLS_AES_128_GCM_SHA256", ChainTrusted: true,
			Certs: []result.CertInfo{{Subject: "CN=mx." + d, Issuer: "CN=Bench CA", NotAfter: at.AddDate(0, 3, 0)}}}
	}
	return result.Result{Domain: d, Verdict: v, ScannedAt: at, RunID: int64(run), Flags: []string{result.FlagNoTLSRPT},
		MX: []result.Host{{Name: "mx." + d, Preference: 10, Addrs: []result.Addr{{IP: ip, Probe: p, PKIXValid: v != result.Encrypted}}}}}
}

// buildBenchDB writes two finished runs over nDomains domains and nCitizens
// recipients, through the store API in large batches.
func buildBenchDB(ctx context.Context, path string, nDomains, nCitizens int, logf func(string, ...any)) error {
	st, err := store.Open(ctx, path, store.Options{StaleAfter: time.Nanosecond})
	if err != nil {
		return err
	}
	defer st.Close()
	cit := benchCitizens(nDomains, nCitizens)
	for run := 1; run <= 2; run++ {
		start := time.Date(2025, time.Month(run), 1, 0, 0, 0, 0, time.UTC)
		r, _, err := st.BeginRun(ctx, fmt.Sprintf("bench-%d", run), start)
		if err != nil {
			return err
		}
		t0 := time.Now()
		batch := make([]store.Recipient, 0, 100_000)
		id := 0
		for i, c := range cit {
			d := fmt.Sprintf("d%07d.example", i)
			for range c {
				batch = append(batch, store.Recipient{ID: fmt.Sprintf("r%08d", id), Domain: d})
				id++
				if len(batch) == cap(batch) {
					if err := st.AddRecipients(ctx, r.ID, batch); err != nil {
						return err
					}
					batch = batch[:0]
				}
			}
		}
		if err := st.AddRecipients(ctx, r.ID, batch); err != nil {
			return err
		}
		logf("run %d: %d recipients added in %v", run, id, time.Since(t0).Round(time.Millisecond))
		t0 = time.Now()
		results := make([]result.Result, 0, 10_000)
		for i := range nDomains {
			results = append(results, benchResult(i, run, start.Add(time.Minute)))
			if len(results) == cap(results) {
				if err := st.SaveResults(ctx, results); err != nil {
					return err
				}
				results = results[:0]
			}
		}
		if err := st.SaveResults(ctx, results); err != nil {
			return err
		}
		logf("run %d: %d results saved in %v", run, nDomains, time.Since(t0).Round(time.Millisecond))
		t0 = time.Now()
		stats := store.RunStats{Recipients: int64(nCitizens), Domains: int64(nDomains), Scanned: int64(nDomains), Vantage: "bench"}
		if err := st.FinishRun(ctx, r.ID, stats, start.Add(time.Hour)); err != nil {
			return err
		}
		logf("run %d: finished in %v", run, time.Since(t0).Round(time.Millisecond))
	}
	return nil
}

// benchDB returns a cached benchmark database under os.TempDir, building it
// when missing (minutes for 1M domains; reused by later runs).
func benchDB(b *testing.B, nDomains, nCitizens int) string {
	b.Helper()
	path := filepath.Join(os.TempDir(), fmt.Sprintf("tlsready-bench-report-v%d-%d-%d.db", benchDBVersion, nDomains, nCitizens))
	if _, err := os.Stat(path); err == nil {
		// Bring a file cached by an older program up to the current schema
		// (the benchmark opens it read-only).
		st, err := store.Open(context.Background(), path, store.Options{})
		if err != nil {
			b.Fatal(err)
		}
		if err := st.Close(); err != nil {
			b.Fatal(err)
		}
		return path
	}
	tmp := path + ".building"
	for _, suffix := range []string{"", "-wal", "-shm", ".lock"} {
		os.Remove(tmp + suffix)
	}
	t0 := time.Now()
	if err := buildBenchDB(context.Background(), tmp, nDomains, nCitizens, b.Logf); err != nil {
		b.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		b.Fatal(err)
	}
	b.Logf("built %s in %v", path, time.Since(t0).Round(time.Second))
	return path
}

// peakHeap samples the live heap until stop is called and returns the peak.
func peakHeap() (stop func() uint64) {
	var peak atomic.Uint64
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
		tick := time.NewTicker(2 * time.Millisecond)
		defer tick.Stop()
		for {
			metrics.Read(s)
			if v := s[0].Value.Uint64(); v > peak.Load() {
				peak.Store(v)
			}
			select {
			case <-done:
				return
			case <-tick.C:
			}
		}
	}()
	return func() uint64 {
		close(done)
		wg.Wait()
		return peak.Load()
	}
}

func benchReport(b *testing.B, nDomains, nCitizens int) {
	path := benchDB(b, nDomains, nCitizens)
	ctx := context.Background()
	st, err := store.Open(ctx, path, store.Options{ReadOnly: true})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	runtime.GC()
	stop := peakHeap()
	var load, render, csvT, jsonT time.Duration
	var loadCPU, csvCPU, jsonCPU time.Duration
	var htmlBytes countWriter
	for b.Loop() {
		t0, c0 := time.Now(), cpuTime()
		m, err := Load(ctx, st, 0, LoadOptions{})
		if err != nil {
			b.Fatal(err)
		}
		t1, c1 := time.Now(), cpuTime()
		htmlBytes = 0
		if err := RenderHTML(&htmlBytes, m, "ja"); err != nil {
			b.Fatal(err)
		}
		t2, c2 := time.Now(), cpuTime()
		if err := WriteCSV(ctx, st, 0, io.Discard); err != nil {
			b.Fatal(err)
		}
		t3, c3 := time.Now(), cpuTime()
		if err := WriteJSON(ctx, st, 0, io.Discard); err != nil {
			b.Fatal(err)
		}
		load, render, csvT, jsonT = load+t1.Sub(t0), render+t2.Sub(t1), csvT+t3.Sub(t2), jsonT+time.Since(t3)
		loadCPU, csvCPU, jsonCPU = loadCPU+c1-c0, csvCPU+c3-c2, jsonCPU+cpuTime()-c3
		if m.Total.Citizens != int64(nCitizens) || m.Total.Domains != int64(nDomains) {
			b.Fatalf("model totals %+v", m.Total)
		}
	}
	peak := stop()
	n := float64(b.N)
	b.ReportMetric(load.Seconds()/n, "load-s")
	b.ReportMetric(render.Seconds()/n, "html-s")
	b.ReportMetric(csvT.Seconds()/n, "csv-s")
	b.ReportMetric(jsonT.Seconds()/n, "json-s")
	// CPU seconds of the process (all cores): steadier than wall-clock
	// on a shared machine.
	b.ReportMetric(loadCPU.Seconds()/n, "load-cpu-s")
	b.ReportMetric(csvCPU.Seconds()/n, "csv-cpu-s")
	b.ReportMetric(jsonCPU.Seconds()/n, "json-cpu-s")
	b.ReportMetric(float64(peak)/(1<<20), "peak-heap-MiB")
	b.ReportMetric(float64(htmlBytes)/(1<<20), "html-MiB")
}

// cpuTime is the process's user+system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

type countWriter int64

func (c *countWriter) Write(p []byte) (int, error) {
	*c += countWriter(len(p))
	return len(p), nil
}

// BenchmarkReport1M is the scale target: Load + HTML + CSV for
// 1,000,000 domains and 10,000,000 citizens (two runs, so changes and trend
// are computed too) within 10 s and bounded memory; the JSON export is
// measured too (json-s). The first run builds
// and caches the database under os.TempDir (several minutes).
func BenchmarkReport1M(b *testing.B) { benchReport(b, 1_000_000, 10_000_000) }

// BenchmarkReport10k is a quick version for development.
func BenchmarkReport10k(b *testing.B) { benchReport(b, 10_000, 100_000) }
