package main

import (
	"bufio"
	"bytes"
	"cmp"
	"crypto/ecdh"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tlsready/tlsready/cmd/internal/job"
	"github.com/tlsready/tlsready/report"
	"github.com/tlsready/tlsready/scanner"
	"github.com/tlsready/tlsready/scanner/resolve"
	"github.com/tlsready/tlsready/scanner/result"
	"github.com/tlsready/tlsready/scanner/scantest"
	"github.com/tlsready/tlsready/scanner/scantest/worlds"
	"github.com/tlsready/tlsready/scanner/smtpprobe"
	"github.com/tlsready/tlsready/store"
)

// The end-to-end scan benchmarks. The simulated internet runs in a child
// process (this test binary in "simnet" mode), so the scanner's CPU figures
// are the scanner's alone. Sizes and latency come from the environment:
//
//	TLSREADY_BENCH_DOMAINS     (default 100000; BenchmarkScanCPU 20000, 0: only the --rate 20 part)
//	TLSREADY_BENCH_ADDRESSES   (default 1000000; BenchmarkScanCPU: one per domain)
//	TLSREADY_BENCH_RTT         (BenchmarkScanLatency; default 50ms)
//	TLSREADY_BENCH_CONCURRENCY (default 500; BenchmarkScanCPU 1000)
//	TLSREADY_BENCH_RATE_DOMAINS (BenchmarkScanCPU's run at --rate 20; default 2000; 0: none)
//	TLSREADY_BENCH_RATE_RTT    (BenchmarkScanCPU's run at --rate 20 and its unlimited twin; default 0)
//	TLSREADY_BENCH_PROFILES   (a directory: keep the CPU profile of each run there)
//
// Run with: make bench-scan, make bench-cpu, make bench-national.

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v >= 0 {
		return v
	}
	return def
}

// simnetChild is the child side: build the world, write the register, print
// the world's Info as one JSON line, answer "stats" lines with Counters as
// JSON, exit when stdin closes.
func simnetChild() int {
	opts := simnetOptions(envInt("TLSREADY_SIMNET_DOMAINS", 1000), envInt("TLSREADY_SIMNET_ADDRESSES", 10000),
		os.Getenv("TLSREADY_SIMNET_SHAPE"))
	opts.RTT, _ = time.ParseDuration(os.Getenv("TLSREADY_SIMNET_RTT"))
	f, err := os.OpenFile(os.Getenv("TLSREADY_SIMNET_REGISTER"), os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	bw := bufio.NewWriterSize(f, 1<<20)
	sc, err := worlds.Generate(nil, opts, bw)
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
	world, err := scantest.Start(sc)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer world.Close()
	// Certificates now, not during the measured scan: real servers have
	// theirs already.
	world.IssueCertificates()
	if path := os.Getenv("TLSREADY_SIMNET_CPUPROFILE"); path != "" {
		// The simulated internet's own CPU profile (diagnosis only).
		if f, err := os.Create(path); err == nil && pprof.StartCPUProfile(f) == nil {
			defer f.Close()
			defer pprof.StopCPUProfile()
		}
	}
	enc := json.NewEncoder(os.Stdout)
	_ = enc.Encode(world.Info())
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		c := world.Counters()
		_ = enc.Encode(simStats{Counters: c, DistinctIPs: len(c.ConnsPerIP), CPU: cpuTime()})
	}
	return 0
}

// simnetOptions is the world of a benchmark: shape "own-ip" or the mixed world.
func simnetOptions(domains, addresses int, shape string) worlds.GenOptions {
	o := worlds.GenOptions{Domains: domains, Addresses: addresses, Seed: 1}
	if shape == "own-ip" {
		o.Shape = worlds.GenOwnIP
	}
	return o
}

type simnet struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	out   *bufio.Scanner
	info  scantest.Info
	reg   string
}

func startSimnet(b *testing.B, domains, addresses int, rtt time.Duration, shape string) *simnet {
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
		"TLSREADY_SIMNET_SHAPE="+shape,
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
	DistinctIPs int           `json:"distinct_ips"`
	CPU         time.Duration `json:"cpu"` // the child's user+sys CPU so far
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

// sysTime is the process's system CPU time so far (part of cpuTime): on
// loopback it includes delivering what the scanner sends into the
// simulated internet's sockets, and waking it.
func sysTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Stime.Nano())
}

func peakRSS() int64 {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return ru.Maxrss * 1024
}

// benchSetup is one end-to-end scan of a generated world.
type benchSetup struct {
	domains, addresses int
	shape              string // "" (mixed) or "own-ip"
	rtt                time.Duration
	concurrency        int
	rate               int  // --rate; 0: unlimited (1,000,000/s)
	profile            bool // CPU profile of the scan, for the split by phase
}

// benchRun is what one scan measured.
type benchRun struct {
	setup         benchSetup
	sum           job.Summary
	db            string
	cpu           time.Duration // the scanner process, ingestion and scan
	sys           time.Duration // the system CPU part of cpu
	simCPU        time.Duration // the simulated internet, meanwhile
	before, after simStats
	phases        map[string]time.Duration // nil without a profile
	load          [2]string                // 1-minute load average before and after
	machineBusy   time.Duration            // CPU time of every process on the machine during the run
	machineTotal  time.Duration            // CPUs x the run's wall clock time
}

// machineCPU is the CPU time all processes of the machine have used so
// far (/proc/stat: everything but idle and iowait), and the wall clock
// time times the number of CPUs it is out of.
func machineCPU() (busy, total time.Duration) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 5 || f[0] != "cpu" {
		return 0, 0
	}
	const tick = 10 * time.Millisecond // USER_HZ 100
	for i, v := range f[1:] {
		n, _ := strconv.ParseInt(v, 10, 64)
		total += time.Duration(n) * tick
		if i != 3 && i != 4 { // idle, iowait
			busy += time.Duration(n) * tick
		}
	}
	return busy, total
}

// loadAvg is the 1-minute load average: other processes on the machine
// take CPU from the benchmark.
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return "?"
	}
	return f[0]
}

func (r benchRun) perDomain(d time.Duration) float64 {
	return float64(d.Microseconds()) / float64(r.sum.Pending)
}

func runBench(b *testing.B, s benchSetup) benchRun {
	b.Helper()
	net := startSimnet(b, s.domains, s.addresses, s.rtt, s.shape)
	run := benchRun{setup: s, db: filepath.Join(b.TempDir(), "bench.db")}
	rate := s.rate
	if rate == 0 {
		rate = 1000000
	}
	level := slog.LevelInfo
	if os.Getenv("TLSREADY_BENCH_VERBOSE") != "" {
		level = slog.LevelDebug
	}
	roots, err := x509.SystemCertPool()
	if err != nil {
		b.Fatal(err)
	}
	ca, err := os.ReadFile(net.info.CAFile)
	if err != nil || !roots.AppendCertsFromPEM(ca) {
		b.Fatalf("the simulated internet's CA %s: %v", net.info.CAFile, err)
	}
	trustAD := true
	cfg := job.Config{
		Input:        net.reg,
		DB:           run.db,
		Resolver:     resolve.Config{Servers: []string{net.info.DNS}, TrustAD: &trustAD},
		ResolverName: net.info.DNS,
		Scanner: scanner.Config{
			Probe:        smtpprobe.Config{Port: net.info.SMTPPort, HELO: "bench.tlsready.invalid", Timeout: 30 * time.Second},
			RootCAs:      roots,
			HTTPSPort:    net.info.HTTPSPort,
			Concurrency:  s.concurrency,
			Rate:         rate,
			AllowPrivate: true,
		},
		Version: version,
		Log:     slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level})),
		Memory:  scanMemory(os.Getenv), // measured as tlsready scan runs
	}
	var prof bytes.Buffer
	profiling := s.profile && pprof.StartCPUProfile(&prof) == nil
	run.before = net.stats(b)
	run.load[0] = loadAvg()
	busy0, total0 := machineCPU()
	cpu0, sys0 := cpuTime(), sysTime()
	b.ResetTimer()
	sum, err := job.Run(b.Context(), cfg)
	b.StopTimer()
	run.cpu, run.sys = cpuTime()-cpu0, sysTime()-sys0
	run.load[1] = loadAvg()
	busy1, total1 := machineCPU()
	run.machineBusy, run.machineTotal = busy1-busy0, total1-total0
	if profiling {
		pprof.StopCPUProfile()
	}
	if err != nil {
		b.Fatal(err)
	}
	run.sum = sum
	run.after = net.stats(b)
	run.simCPU = run.after.CPU - run.before.CPU
	if profiling {
		if run.phases, err = phaseSplit(prof.Bytes()); err != nil {
			b.Logf("CPU profile: %v", err)
		}
		if dir := os.Getenv("TLSREADY_BENCH_PROFILES"); dir != "" {
			name := fmt.Sprintf("scan-%s-%d-rate%d.pprof", cmp.Or(s.shape, "mixed"), s.domains, s.rate)
			if err := os.WriteFile(filepath.Join(dir, name), prof.Bytes(), 0o644); err != nil {
				b.Logf("CPU profile: %v", err)
			}
		}
	}
	return run
}

// printCommon prints what every scan benchmark reports.
func (r benchRun) printCommon(b *testing.B, title string) {
	s, sum := r.setup, r.sum
	conns := r.after.SMTPConnections - r.before.SMTPConnections
	q := r.after.DNSQueries - r.before.DNSQueries
	n := float64(sum.Pending)
	dps := n / sum.Scan.Seconds()
	rate := "no connection rate limit"
	if s.rate > 0 {
		rate = fmt.Sprintf("--rate %d", s.rate)
	}
	fmt.Fprintf(os.Stderr, "\n== %s: %d addresses, %d domains, RTT %v, concurrency %d, %s ==\n", title, s.addresses, s.domains, s.rtt, s.concurrency, rate)
	fmt.Fprintf(os.Stderr, "command:     %s\n", benchCommand())
	fmt.Fprintf(os.Stderr, "ingestion:   %.0f addresses/s (%v)\n", float64(s.addresses)/sum.Ingest.Seconds(), sum.Ingest.Round(time.Millisecond))
	fmt.Fprintf(os.Stderr, "scan:        %.0f domains/s (%d domains in %v)\n", dps, sum.Pending, sum.Scan.Round(time.Millisecond))
	fmt.Fprintf(os.Stderr, "SMTP:        %d connections, %d distinct MX IPs seen by the servers, %d probed by the scanner\n", conns, r.after.DistinctIPs, sum.Run.Stats.MXIPs)
	fmt.Fprintf(os.Stderr, "politeness:  %.3f connections per distinct MX IP; %d IPs pick certificates by SNI and were probed per name\n",
		float64(conns)/float64(r.after.DistinctIPs), sum.Run.Stats.SNIPerNameIPs)
	fmt.Fprintf(os.Stderr, "DNS:         %.2f queries/domain (%d)\n", float64(q)/n, q)
	fmt.Fprintf(os.Stderr, "CPU:         scanner %.0f µs/domain (%v user+sys, ingestion and scan); simulated internet %.0f µs/domain (%v)\n",
		r.perDomain(r.cpu), r.cpu.Round(time.Millisecond), r.perDomain(r.simCPU), r.simCPU.Round(time.Millisecond))
	fmt.Fprintf(os.Stderr, "peak RSS:    %.0f MiB (scanner process)\n", float64(peakRSS())/(1<<20))
	fmt.Fprintf(os.Stderr, "machine:     %d cores; load average %s before the run, %s after; the cores were %.0f%% busy: scanner %.0f%%, simulated internet %.0f%%, other processes %.0f%%\n",
		runtime.NumCPU(), r.load[0], r.load[1], pct(r.machineBusy, r.machineTotal), pct(r.cpu, r.machineTotal), pct(r.simCPU, r.machineTotal),
		pct(r.machineBusy-r.cpu-r.simCPU, r.machineTotal))
	b.ReportMetric(float64(s.addresses)/sum.Ingest.Seconds(), "addresses/s-ingest")
	b.ReportMetric(dps, "domains/s")
	b.ReportMetric(float64(conns), "smtp-conns")
	b.ReportMetric(float64(r.after.DistinctIPs), "distinct-mx-ips")
	b.ReportMetric(float64(q)/n, "dns-queries/domain")
	b.ReportMetric(float64(conns)/float64(r.after.DistinctIPs), "conns/mx-ip")
	b.ReportMetric(float64(sum.Run.Stats.SNIPerNameIPs), "sni-per-name-ips")
	b.ReportMetric(float64(peakRSS())/(1<<20), "peak-RSS-MiB")
	b.ReportMetric(r.perDomain(r.cpu), "cpu-µs/domain")
}

// BenchmarkScanLatency (make bench-scan): at 50 ms RTT and concurrency 500
// the round trips, not the CPU, should be the limit; the figure is the
// achieved rate as a fraction of the critical-path bound
// (worlds.WorldPlan.Bound).
func BenchmarkScanLatency(b *testing.B) {
	rtt := 50 * time.Millisecond
	if v := os.Getenv("TLSREADY_BENCH_RTT"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			b.Fatalf("TLSREADY_BENCH_RTT=%q: need a positive duration", v)
		}
		rtt = d
	}
	s := benchSetup{
		domains: envInt("TLSREADY_BENCH_DOMAINS", 100000), addresses: envInt("TLSREADY_BENCH_ADDRESSES", 1000000),
		rtt: rtt, concurrency: envInt("TLSREADY_BENCH_CONCURRENCY", 500),
	}
	plan, err := worlds.Plan(simnetOptions(s.domains, s.addresses, s.shape))
	if err != nil {
		b.Fatal(err)
	}
	bound := plan.Bound(rtt, s.concurrency)
	for range b.N {
		r := runBench(b, s)
		r.printCommon(b, "scan benchmark")
		if os.Getenv("TLSREADY_BENCH_REPORT") != "" {
			benchReport(b, r.db, r.sum)
		}
		r.printBound(b, plan, bound)
	}
}

// printBound compares the run with the critical-path bound, overall and by
// kind of domain, using the durations the scanner measured per domain.
func (r benchRun) printBound(b *testing.B, plan *worlds.WorldPlan, bound worlds.Bound) {
	n := float64(r.sum.Pending)
	dps := n / r.sum.Scan.Seconds()
	rt := r.after.RoundTrips - r.before.RoundTrips
	predicted := 0
	for i := range plan.Domains {
		predicted += plan.ScanChain(i, !plan.First(i)).RoundTrips()
	}
	fmt.Fprintf(os.Stderr, "round trips: %.2f per domain counted by the simulated servers; the chains of the world predict %.2f\n",
		float64(rt)/n, float64(predicted)/float64(len(plan.Domains)))
	fmt.Fprintf(os.Stderr, "bound:       %.0f domains/s = min(concurrency %d / mean critical path %.1f ms (%.2f round trips x %v + waits) = %.0f/s,\n",
		bound.Rate, bound.Concurrency, msec(bound.MeanCritical), bound.MeanRoundTrips, bound.RTT, bound.LatencyRate)
	fmt.Fprintf(os.Stderr, "                 %d domains / %v, the serial chain of the busiest shared IP = %.0f/s)\n",
		bound.Domains, bound.SerialChain.Round(time.Millisecond), float64(bound.Domains)/bound.SerialChain.Seconds())
	fmt.Fprintf(os.Stderr, "achieved:    %.0f domains/s = %.1f%% of the bound (target: at least 90%%)\n", dps, 100*dps/bound.Rate)
	perDomain := (r.cpu + r.simCPU).Seconds() / n
	fmt.Fprintf(os.Stderr, "CPU ceiling: %.0f domains/s = %d cores / %.0f µs of CPU per domain (scanner and simulated internet, as measured in this run;\n"+
		"             a ceiling of this machine, not a bound: it moves with the load and the CPU per domain)\n",
		float64(runtime.NumCPU())/perDomain, runtime.NumCPU(), perDomain*1e6)
	b.ReportMetric(100*dps/bound.Rate, "%-of-bound")
	b.ReportMetric(bound.Rate, "bound-domains/s")

	// Per-domain durations as the scanner measured them (Result.Duration).
	st, err := store.Open(b.Context(), r.db, store.Options{ReadOnly: true})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	type tot struct {
		n   int
		dur time.Duration
	}
	byKind := map[worlds.DomainKind]*tot{}
	var all tot
	var first, lastStart, lastEnd time.Time
	var lastKind worlds.DomainKind
	err = st.Results(b.Context(), r.sum.Run.ID, func(res result.Result) error {
		i, err := strconv.Atoi(strings.TrimSuffix(strings.TrimPrefix(res.Domain, "d"), ".test"))
		if err != nil || i < 1 || i > len(plan.Domains) {
			return fmt.Errorf("%s: not a domain of the generated world", res.Domain)
		}
		k := plan.Domains[i-1].Kind
		if byKind[k] == nil {
			byKind[k] = &tot{}
		}
		byKind[k].n++
		byKind[k].dur += res.Duration
		all.n++
		all.dur += res.Duration
		if first.IsZero() || res.ScannedAt.Before(first) {
			first = res.ScannedAt
		}
		if res.ScannedAt.After(lastStart) {
			lastStart = res.ScannedAt
		}
		if end := res.ScannedAt.Add(res.Duration); end.After(lastEnd) {
			lastEnd, lastKind = end, k
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	if all.n == 0 {
		return
	}
	mean := all.dur / time.Duration(all.n)
	fmt.Fprintf(os.Stderr, "durations:   mean %.1f ms per domain as the scanner measured it = %.2f x the mean critical path\n",
		msec(mean), float64(mean)/float64(bound.MeanCritical))
	fmt.Fprintf(os.Stderr, "             %.0f domains in flight on average (sum of durations / scan time), working or waiting for another's work\n",
		all.dur.Seconds()/r.sum.Scan.Seconds())
	fmt.Fprintf(os.Stderr, "             the last domain started %.1f s into the scan, the last one (%s) ended %.1f s after that\n",
		lastStart.Sub(first).Seconds(), lastKind, lastEnd.Sub(lastStart).Seconds())
	fmt.Fprintf(os.Stderr, "             %-21s %8s %14s %14s %7s\n", "kind", "domains", "critical (ms)", "measured (ms)", "ratio")
	for _, k := range worlds.Kinds() {
		t, kt := byKind[k], bound.ByKind[k]
		if t == nil || kt.Domains == 0 {
			continue
		}
		cp := kt.Critical / time.Duration(kt.Domains)
		m := t.dur / time.Duration(t.n)
		fmt.Fprintf(os.Stderr, "             %-21s %8d %14.1f %14.1f %7.2f\n", k, t.n, msec(cp), msec(m), float64(m)/float64(cp))
	}
	b.ReportMetric(float64(mean)/float64(bound.MeanCritical), "duration/critical-path")
}

func pct(a, b time.Duration) float64 {
	if b <= 0 {
		return 0
	}
	return 100 * float64(a) / float64(b)
}

// benchCommand is the command line that ran this benchmark, with the
// environment that sized it.
func benchCommand() string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "TLSREADY_BENCH_") || strings.HasPrefix(kv, "GOGC=") || strings.HasPrefix(kv, "GOMAXPROCS=") {
			env = append(env, kv)
		}
	}
	args := []string{"go test"}
	argv := os.Args[1:]
	for i := 0; i < len(argv); i++ {
		a := argv[i]
		if !strings.HasPrefix(a, "-test.") {
			continue
		}
		if !strings.Contains(a, "=") && i+1 < len(argv) && !strings.HasPrefix(argv[i+1], "-") {
			i++
			a += "=" + argv[i]
		}
		name, val, _ := strings.Cut(strings.TrimPrefix(a, "-test."), "=")
		switch name {
		case "testlogfile", "paniconexit0", "timeout", "gocoverdir":
			continue
		}
		if val != "" {
			name += " '" + val + "'"
		}
		args = append(args, "-"+name)
	}
	return strings.TrimSpace(strings.Join(env, " ") + " " + strings.Join(args, " ") + " ./cmd/tlsready")
}

func msec(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// BenchmarkScanCPU (make bench-cpu): the scanner's CPU per domain on a
// world where every domain has its own MX IP (self-signed ECDSA P-256,
// TLS 1.3), no latency, no connection rate limit, split by phase; then the
// same shape, smaller, at --rate 20, the default and what production pays,
// beside an unlimited run of that size.
func BenchmarkScanCPU(b *testing.B) {
	domains := envInt("TLSREADY_BENCH_DOMAINS", 20000)
	conc := envInt("TLSREADY_BENCH_CONCURRENCY", 1000)
	rateDomains := envInt("TLSREADY_BENCH_RATE_DOMAINS", 2000)
	for range b.N {
		if domains > 0 {
			r := runBench(b, benchSetup{domains: domains, addresses: domains, shape: "own-ip", concurrency: conc, profile: true})
			r.printCommon(b, "CPU benchmark")
			fmt.Fprintf(os.Stderr, "scanner CPU: %.0f µs/domain (%v user+sys over %d domains, %d cores; target: at most 700 µs/domain)\n",
				r.perDomain(r.cpu), r.cpu.Round(time.Millisecond), r.sum.Pending, runtime.NumCPU())
			formatPhases(os.Stderr, r.phases, r.cpu, r.sum.Pending)
		}
		if rateDomains == 0 {
			continue
		}
		// Idle cost: the same shape at --rate 20 against an unlimited run
		// of the same size (fixed costs weigh the same in both).
		var rtt time.Duration
		if v := os.Getenv("TLSREADY_BENCH_RATE_RTT"); v != "" {
			d, err := time.ParseDuration(v)
			if err != nil || d < 0 {
				b.Fatalf("TLSREADY_BENCH_RATE_RTT=%q: need a duration", v)
			}
			rtt = d
		}
		u := runBench(b, benchSetup{domains: rateDomains, addresses: rateDomains, shape: "own-ip", concurrency: conc, rtt: rtt, profile: true})
		l := runBench(b, benchSetup{domains: rateDomains, addresses: rateDomains, shape: "own-ip", concurrency: conc, rtt: rtt, rate: 20, profile: true})
		l.printCommon(b, "CPU benchmark at the default rate")
		fmt.Fprintf(os.Stderr, "--rate 20:   scanner %.0f µs/domain over %v; unlimited, same %d domains: %.0f µs/domain; ratio %.2f (target: at most 1.2)\n",
			l.perDomain(l.cpu), l.sum.Scan.Round(time.Second), rateDomains, u.perDomain(u.cpu), l.perDomain(l.cpu)/u.perDomain(u.cpu))
		fmt.Fprintf(os.Stderr, "             of which user %.0f µs/domain (unlimited %.0f, ratio %.2f), system %.0f (unlimited %.0f, ratio %.2f)\n",
			l.perDomain(l.cpu-l.sys), u.perDomain(u.cpu-u.sys), l.perDomain(l.cpu-l.sys)/u.perDomain(u.cpu-u.sys),
			l.perDomain(l.sys), u.perDomain(u.sys), l.perDomain(l.sys)/u.perDomain(u.sys))
		busy, spaced := wakeCost()
		fmt.Fprintf(os.Stderr, "             this machine: an X25519 key agreement costs %.0f µs of CPU back to back, %.0f µs once every 50 ms\n"+
			"             (the cost of waking an idle process, paid at every network wait of a probe when nothing else runs)\n", busy, spaced)
		fmt.Fprintf(os.Stderr, "             simulated internet %.0f µs/domain at --rate 20, %.0f unlimited; ratio %.2f\n",
			l.perDomain(l.simCPU), u.perDomain(u.simCPU), l.perDomain(l.simCPU)/u.perDomain(u.simCPU))
		fmt.Fprintf(os.Stderr, "unlimited %d domains:\n", rateDomains)
		formatPhases(os.Stderr, u.phases, u.cpu, u.sum.Pending)
		fmt.Fprintf(os.Stderr, "--rate 20, %d domains:\n", rateDomains)
		formatPhases(os.Stderr, l.phases, l.cpu, l.sum.Pending)
		b.ReportMetric(l.perDomain(l.cpu)/u.perDomain(u.cpu), "rate20/unlimited-cpu")
	}
}

// wakeCost is the CPU (rusage) per X25519 key agreement done back to back
// and done once every 50 ms: what an idle process pays to wake up.
func wakeCost() (busy, spaced float64) {
	op := func() {
		k, _ := ecdh.X25519().GenerateKey(rand.Reader)
		p, _ := ecdh.X25519().GenerateKey(rand.Reader)
		_, _ = k.ECDH(p.PublicKey())
	}
	measure := func(n int, gap time.Duration) float64 {
		c0 := cpuTime()
		for range n {
			op()
			if gap > 0 {
				time.Sleep(gap)
			}
		}
		return float64((cpuTime() - c0).Microseconds()) / float64(n)
	}
	return measure(2000, 0), measure(60, 50*time.Millisecond)
}

// BenchmarkScanCPUPerIP (make bench-scan): the mixed world without latency;
// all of the scanner's CPU charged to each distinct MX IP probed, and to
// each DNS query.
func BenchmarkScanCPUPerIP(b *testing.B) {
	s := benchSetup{
		domains: envInt("TLSREADY_BENCH_DOMAINS", 100000), addresses: envInt("TLSREADY_BENCH_ADDRESSES", 1000000),
		concurrency: envInt("TLSREADY_BENCH_CONCURRENCY", 500), profile: true,
	}
	for range b.N {
		r := runBench(b, s)
		r.printCommon(b, "scan benchmark, no latency")
		ips := float64(r.sum.Run.Stats.MXIPs)
		q := float64(r.after.DNSQueries - r.before.DNSQueries)
		fmt.Fprintf(os.Stderr, "scanner CPU: %v user+sys for the scan phase and ingestion\n", r.cpu.Round(time.Millisecond))
		fmt.Fprintf(os.Stderr, "             %.3f ms per distinct MX IP probed, %.3f ms per DNS query (each figure charging all CPU to it)\n",
			float64(r.cpu.Microseconds())/1000/ips, float64(r.cpu.Microseconds())/1000/q)
		formatPhases(os.Stderr, r.phases, r.cpu, r.sum.Pending)
		b.ReportMetric(float64(r.cpu.Microseconds())/1000/ips, "cpu-ms/mx-ip")
	}
}

// benchReport times the report phase of an end-to-end run: the model, the
// HTML page and the CSV of every domain.
func benchReport(b *testing.B, db string, sum job.Summary) {
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
