package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tlsready/tlsready/scanner/result"
	"github.com/tlsready/tlsready/scanner/scantest/worlds"
	"github.com/tlsready/tlsready/store"
	"github.com/tlsready/tlsready/store/pgtest"
)

// BenchmarkScanScale (make bench-scale, issue 13): the 100k-domain world at
// RTT 50 ms scanned into PostgreSQL by 1, 2 and 3 workers (separate
// processes sharing one run with leases), each at the same --concurrency:
// domains/s of each against the critical-path bound at the workers'
// combined concurrency, and the connections per MX IP (one worker per IP).
// Then the gateway benchmark (cmd/gateway-bench) against PostgreSQL and against
// SQLite: serve answers from memory either way. Sized by
// TLSREADY_BENCH_DOMAINS, _ADDRESSES, _CONCURRENCY, _WORKERS (the largest
// count) and TLSREADY_BENCH_GATEWAY=0 to skip the gateway part.
func BenchmarkScanScale(b *testing.B) {
	rtt := 50 * time.Millisecond
	domains := envInt("TLSREADY_BENCH_DOMAINS", 100000)
	addresses := envInt("TLSREADY_BENCH_ADDRESSES", 300000)
	// 100 per worker: the latency-bound regime, where the bound (about 790
	// domains/s a worker) stays below what two cores can do, so that a
	// second and a third worker can help; at 500 one worker is already
	// bound by the CPU.
	conc := envInt("TLSREADY_BENCH_CONCURRENCY", 100)
	maxWorkers := envInt("TLSREADY_BENCH_WORKERS", 3)
	cluster := pgtest.Start(b)
	plan, err := worlds.Plan(simnetOptions(domains, addresses, ""))
	if err != nil {
		b.Fatal(err)
	}
	net := startSimnet(b, domains, addresses, rtt, "")
	exe, err := os.Executable()
	if err != nil {
		b.Fatal(err)
	}
	fmt.Fprintf(os.Stderr, "\n== scale benchmark: %d addresses, %d domains, RTT %v, --concurrency %d per worker, no connection rate limit, PostgreSQL %s ==\n",
		addresses, domains, rtt, conc, "(private cluster on loopback)")
	fmt.Fprintf(os.Stderr, "command:     %s\n", benchCommand())
	for workers := 1; workers <= maxWorkers; workers++ {
		db := cluster.NewDatabase(b)
		args := []string{"scan", "--input", net.reg, "--db", db, "--resolver", net.info.DNS, "--ca-file", net.info.CAFile,
			"--allow-private", "--trust-ad", "true", "--smtp-port", strconv.Itoa(net.info.SMTPPort), "--https-port", strconv.Itoa(net.info.HTTPSPort),
			"--rate", "1000000", "--probe-timeout", "30s", "--helo", "bench.tlsready.invalid", "--concurrency", strconv.Itoa(conc), "--quiet"}
		j, _ := json.Marshal(args)
		before := net.stats(b)
		busy0, total0 := machineCPU()
		start := time.Now()
		var cmds []*exec.Cmd
		for range workers {
			cmd := exec.Command(exe, "-test.run=^$")
			cmd.Env = append(os.Environ(), "TLSREADY_AS_MAIN="+string(j))
			cmd.Stderr = &strings.Builder{}
			if err := cmd.Start(); err != nil {
				b.Fatal(err)
			}
			cmds = append(cmds, cmd)
		}
		var workerCPU time.Duration
		for _, cmd := range cmds {
			if err := cmd.Wait(); err != nil {
				b.Fatalf("worker: %v: %s", err, cmd.Stderr)
			}
			workerCPU += cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
		}
		wall := time.Since(start)
		busy1, total1 := machineCPU()
		after := net.stats(b)

		// The scan's window: the first domain's start to the last one's end.
		st, err := store.Open(context.Background(), db, store.Options{ReadOnly: true})
		if err != nil {
			b.Fatal(err)
		}
		run, err := st.LatestFinishedRun(context.Background())
		if err != nil {
			b.Fatal(err)
		}
		var first, last time.Time
		n := 0
		err = st.Results(context.Background(), run.ID, func(r result.Result) error {
			n++
			if first.IsZero() || r.ScannedAt.Before(first) {
				first = r.ScannedAt
			}
			if end := r.ScannedAt.Add(r.Duration); end.After(last) {
				last = end
			}
			return nil
		})
		st.Close()
		if err != nil {
			b.Fatal(err)
		}
		window := last.Sub(first)
		dps := float64(n) / window.Seconds()
		bound := plan.Bound(rtt, workers*conc)
		conns, ips := int64(0), 0
		for ip, c := range after.ConnsPerIP {
			if d := c - before.ConnsPerIP[ip]; d > 0 {
				conns += d
				ips++
			}
		}
		fmt.Fprintf(os.Stderr, "\n%d worker(s): %.0f domains/s (%d domains scanned in %v; %v wall clock with ingestion and finish)\n",
			workers, dps, n, window.Round(time.Millisecond), wall.Round(time.Millisecond))
		fmt.Fprintf(os.Stderr, "  bound:     %.0f domains/s at concurrency %d (latency %.0f/s, busiest shared IP's serial chain %.0f/s): %.1f%% of the bound\n",
			bound.Rate, workers*conc, bound.LatencyRate, float64(bound.Domains)/bound.SerialChain.Seconds(), 100*dps/bound.Rate)
		fmt.Fprintf(os.Stderr, "  SMTP:      %d connections to %d MX IPs (%.3f per IP; the run counted %d IPs probed, %d connections)\n",
			conns, ips, float64(conns)/float64(max(ips, 1)), run.Stats.MXIPs, run.Stats.Connections)
		fmt.Fprintf(os.Stderr, "  CPU:       workers %.0f µs/domain, simulated internet %.0f µs/domain; the %d cores were %.0f%% busy (other processes included)\n",
			float64(workerCPU.Microseconds())/float64(n), float64((after.CPU-before.CPU).Microseconds())/float64(n),
			runtime.NumCPU(), pct(busy1-busy0, total1-total0))
		b.ReportMetric(dps, fmt.Sprintf("domains/s-%dw", workers))
		b.ReportMetric(100*dps/bound.Rate, fmt.Sprintf("%%-of-bound-%dw", workers))
	}

	if os.Getenv("TLSREADY_BENCH_GATEWAY") == "0" {
		return
	}
	// The gateway answers from its in-memory cache: the backend only
	// feeds the cache. Same benchmark, both backends.
	root, err := filepath.Abs("../..")
	if err != nil {
		b.Fatal(err)
	}
	gw := func(db string) {
		fmt.Fprintf(os.Stderr, "\n== gateway benchmark on %s ==\n", strings.SplitN(store.RedactURL(db), "?", 2)[0])
		cmd := exec.Command("go", "run", "./cmd/gateway-bench", "-domains", strconv.Itoa(domains), "-duration", "5s", "-runs", "1", "-db", db)
		cmd.Dir = root
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		if err := cmd.Run(); err != nil {
			b.Fatalf("gateway benchmark: %v", err)
		}
	}
	gw(cluster.NewDatabase(b))
	gw(filepath.Join(b.TempDir(), "gateway.db"))
}
