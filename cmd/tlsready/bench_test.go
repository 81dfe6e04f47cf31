package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/tlsready/tlsready/report"
	"github.com/tlsready/tlsready/scanner/scantest"
	"github.com/tlsready/tlsready/store"
)

// The end-to-end scan benchmarks. The simulated internet runs in a child
// process (this test binary in "simnet" mode), so the scanner's CPU figures
// are the scanner's alone. Sizes and latency come from the environment:
//
//	TLSREADY_BENCH_DOMAINS    (default 100000)
//	TLSREADY_BENCH_ADDRESSES  (default 1000000)
//	TLSREADY_BENCH_RTT        (default 50ms; BenchmarkScanCPU uses 0)
//	TLSREADY_BENCH_CONCURRENCY (default 500)
//
// Run with: make bench-scan  (go test -run '^$' -bench BenchmarkScan -benchtime 1x ./cmd/tlsready)

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// simnetChild is the child side: build the world, write the register, print
// the world's Info as one JSON line, answer "stats" lines with Counters as
// JSON, exit when stdin closes.
func simnetChild() int {
	domains := envInt("TLSREADY_SIMNET_DOMAINS", 1000)
	addresses := envInt("TLSREADY_SIMNET_ADDRESSES", 10000)
	rtt, _ := time.ParseDuration(os.Getenv("TLSREADY_SIMNET_RTT"))
	f, err := os.OpenFile(os.Getenv("TLSREADY_SIMNET_REGISTER"), os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	bw := bufio.NewWriterSize(f, 1<<20)
	sc, err := scantest.Generate(nil, scantest.GenOptions{Domains: domains, Addresses: addresses, Seed: 1, RTT: rtt}, bw)
	if err == nil {
		err = bw.Flush()
	}
	if err == nil {
		err = f.Close()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	sc.RTT = rtt
	world, err := scantest.Start(sc)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer world.Close()
	enc := json.NewEncoder(os.Stdout)
	_ = enc.Encode(world.Info())
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		c := world.Counters()
		_ = enc.Encode(struct {
			scantest.Counters
			DistinctIPs int `json:"distinct_ips"`
		}{c, len(c.ConnsPerIP)})
	}
	return 0
}

type simnet struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	out   *bufio.Scanner
	info  scantest.Info
	reg   string
}

func startSimnet(b *testing.B, domains, addresses int, rtt time.Duration) *simnet {
	b.Helper()
	exe, err := os.Executable()
	if err != nil {
		b.Fatal(err)
	}
	reg := filepath.Join(b.TempDir(), "register.txt")
	cmd := exec.Command(exe, "-test.run=^$")
	cmd.Env = append(os.Environ(), "TLSREADY_SIMNET=1",
		"TLSREADY_SIMNET_DOMAINS="+strconv.Itoa(domains),
		"TLSREADY_SIMNET_ADDRESSES="+strconv.Itoa(addresses),
		"TLSREADY_SIMNET_RTT="+rtt.String(),
		"TLSREADY_SIMNET_REGISTER="+reg)
	cmd.Stderr = os.Stderr
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	s := &simnet{cmd: cmd, stdin: stdin, out: bufio.NewScanner(stdout), reg: reg}
	s.out.Buffer(nil, 64<<20)
	if !s.out.Scan() {
		b.Fatal("simnet child did not start")
	}
	if err := json.Unmarshal(s.out.Bytes(), &s.info); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { stdin.Close(); _ = cmd.Wait() })
	return s
}

type simStats struct {
	scantest.Counters
	DistinctIPs int `json:"distinct_ips"`
}

func (s *simnet) stats(b *testing.B) simStats {
	fmt.Fprintln(s.stdin, "stats")
	if !s.out.Scan() {
		b.Fatal("simnet child gone")
	}
	var st simStats
	if err := json.Unmarshal(s.out.Bytes(), &st); err != nil {
		b.Fatal(err)
	}
	return st
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func peakRSS() int64 {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return ru.Maxrss * 1024
}

func benchScan(b *testing.B, rtt time.Duration) {
	domains := envInt("TLSREADY_BENCH_DOMAINS", 100000)
	addresses := envInt("TLSREADY_BENCH_ADDRESSES", 1000000)
	conc := envInt("TLSREADY_BENCH_CONCURRENCY", 500)
	if v := os.Getenv("TLSREADY_BENCH_RTT"); v != "" && rtt != 0 {
		rtt, _ = time.ParseDuration(v)
	}
	for range b.N {
		net := startSimnet(b, domains, addresses, rtt)
		db := filepath.Join(b.TempDir(), "bench.db")
		o := scanOptions{input: net.reg, db: db}
		o.scanFlags = scanFlags{
			resolver: net.info.DNS, caFile: net.info.CAFile, concurrency: conc, rate: 1000000,
			timeout: 30 * time.Second, helo: "bench.tlsready.invalid", smtpPort: net.info.SMTPPort,
			httpsPort: net.info.HTTPSPort, allowPrivate: true, trustAD: "true", maxMX: 10, maxIPs: 4,
			logFormat: "text", quiet: true, verbose: os.Getenv("TLSREADY_BENCH_VERBOSE") != "",
		}
		before := net.stats(b)
		cpu0 := cpuTime()
		b.ResetTimer()
		sum, err := runScanJob(b.Context(), &o, io.Discard)
		b.StopTimer()
		if err != nil {
			b.Fatal(err)
		}
		cpu := cpuTime() - cpu0
		after := net.stats(b)
		rt := after.RoundTrips - before.RoundTrips
		q := after.DNSQueries - before.DNSQueries
		conns := after.SMTPConnections - before.SMTPConnections
		n := float64(sum.Pending)
		dps := n / sum.Scan.Seconds()
		b.ReportMetric(float64(addresses)/sum.Ingest.Seconds(), "addresses/s-ingest")
		b.ReportMetric(dps, "domains/s")
		b.ReportMetric(float64(conns), "smtp-conns")
		b.ReportMetric(float64(after.DistinctIPs), "distinct-mx-ips")
		b.ReportMetric(float64(q)/n, "dns-queries/domain")
		b.ReportMetric(float64(peakRSS())/(1<<20), "peak-RSS-MiB")
		fmt.Fprintf(os.Stderr, "\n== scan benchmark: %d addresses, %d domains, RTT %v, concurrency %d ==\n", addresses, domains, rtt, conc)
		fmt.Fprintf(os.Stderr, "ingestion:   %.0f addresses/s (%v)\n", float64(addresses)/sum.Ingest.Seconds(), sum.Ingest.Round(time.Millisecond))
		fmt.Fprintf(os.Stderr, "scan:        %.0f domains/s (%d domains in %v)\n", dps, sum.Pending, sum.Scan.Round(time.Millisecond))
		fmt.Fprintf(os.Stderr, "SMTP:        %d connections, %d distinct MX IPs seen by the servers, %d probed by the scanner\n", conns, after.DistinctIPs, sum.Run.Stats.MXIPs)
		fmt.Fprintf(os.Stderr, "politeness:  %.3f connections per distinct MX IP; %d IPs pick certificates by SNI and were probed per name\n",
			float64(conns)/float64(after.DistinctIPs), sum.Run.Stats.SNIPerNameIPs)
		b.ReportMetric(float64(conns)/float64(after.DistinctIPs), "conns/mx-ip")
		b.ReportMetric(float64(sum.Run.Stats.SNIPerNameIPs), "sni-per-name-ips")
		fmt.Fprintf(os.Stderr, "DNS:         %.2f queries/domain (%d)\n", float64(q)/n, q)
		fmt.Fprintf(os.Stderr, "peak RSS:    %.0f MiB (scanner process)\n", float64(peakRSS())/(1<<20))
		if os.Getenv("TLSREADY_BENCH_REPORT") != "" {
			benchReport(b, db, sum)
		}
		if rtt > 0 {
			rtPer := float64(rt) / n
			bound := float64(conc) / (rtPer * rtt.Seconds())
			fmt.Fprintf(os.Stderr, "round trips: %.2f per domain (counted by the simulated servers)\n", rtPer)
			fmt.Fprintf(os.Stderr, "bound:       %.0f domains/s = concurrency %d / (%.2f round trips x %v)\n", bound, conc, rtPer, rtt)
			fmt.Fprintf(os.Stderr, "efficiency:  %.0f%% of the latency bound\n", 100*dps/bound)
			b.ReportMetric(100*dps/bound, "%-of-latency-bound")
		} else {
			ips := float64(sum.Run.Stats.MXIPs)
			fmt.Fprintf(os.Stderr, "scanner CPU: %v user+sys for the scan phase and ingestion\n", cpu.Round(time.Millisecond))
			fmt.Fprintf(os.Stderr, "             %.3f ms per distinct MX IP probed, %.3f ms per DNS query (each figure charging all CPU to it)\n",
				float64(cpu.Microseconds())/1000/ips, float64(cpu.Microseconds())/1000/float64(q))
			b.ReportMetric(float64(cpu.Microseconds())/1000/ips, "cpu-ms/mx-ip")
		}
	}
}

// BenchmarkScanLatency: at 50 ms RTT and concurrency 500 the round trips, not
// the CPU, are the limit; the figure is the fraction of that bound achieved.
func BenchmarkScanLatency(b *testing.B) { benchScan(b, 50*time.Millisecond) }

// BenchmarkScanCPU: no injected latency; scanner CPU per MX IP and DNS query.
func BenchmarkScanCPU(b *testing.B) { benchScan(b, 0) }

// benchReport times the report phase of an end-to-end run: the model, the
// HTML page and the CSV of every domain.
func benchReport(b *testing.B, db string, sum scanSummary) {
	st, err := store.Open(b.Context(), db, store.Options{ReadOnly: true})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	t0 := time.Now()
	m, err := report.Load(b.Context(), st, sum.Run.ID, report.LoadOptions{})
	if err != nil {
		b.Fatal(err)
	}
	if err := report.RenderHTML(io.Discard, m, "en"); err != nil {
		b.Fatal(err)
	}
	tHTML := time.Since(t0)
	if err := report.WriteCSV(b.Context(), st, sum.Run.ID, io.Discard); err != nil {
		b.Fatal(err)
	}
	tAll := time.Since(t0)
	fmt.Fprintf(os.Stderr, "report:      HTML %v, + CSV of every domain %v\n", tHTML.Round(time.Millisecond), tAll.Round(time.Millisecond))
	fmt.Fprintf(os.Stderr, "wall time:   ingestion+scan %v, with report %v\n", sum.Elapsed.Round(time.Millisecond), (sum.Elapsed + tAll).Round(time.Millisecond))
}
