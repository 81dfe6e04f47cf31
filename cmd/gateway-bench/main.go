// Command gateway-bench measures the gateway with a database of many domains
// (default 1,000,000) while a scan writes results into the same database:
// lookups per second and p50/p99 latency over HTTP keep-alive and over the
// Postfix socketmap, over several runs. The load generator and the writer
// each run in a process of their own (this binary re-executed with -loadgen
// or -writer), as Postfix and the batch scan do; the gateway keeps its cache
// fresh with Watch, as `tlsready serve` does.
//
//	go run ./cmd/gateway-bench [-domains 1000000] [-duration 10s] [-conns 8] [-runs 3] [-write-rate 2000]
//
// The database is built once through store.SaveResults and cached under
// os.TempDir(), keyed by a format version and the domain count.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"runtime/trace"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/tlsready/tlsready/gateway"
	"github.com/tlsready/tlsready/scanner/result"
	"github.com/tlsready/tlsready/store"
)

// dbFormat changes whenever the generated database would differ.
const dbFormat = 2

// Targets (issue 10): both protocols at p99 < 2 ms and >= 20k lookups/s
// while the scan writes.
const (
	targetRate = 20000
	targetP99  = 2 * time.Millisecond
)

func main() {
	var (
		domains   = flag.Int("domains", 1_000_000, "domains in the database")
		duration  = flag.Duration("duration", 10*time.Second, "measuring time per protocol and run")
		conns     = flag.Int("conns", 8, "concurrent keep-alive connections of the load generator")
		runs      = flag.Int("runs", 3, "measuring runs (each: HTTP, then socketmap; at capacity, then paced)")
		pace      = flag.Float64("rate", targetRate, "lookups per second of the paced measurement (0: capacity only); the load generator's own setting with -loadgen")
		writeRate = flag.Float64("write-rate", 2000, "results per second the scan writer saves during the measurement (0: none); the national scan ran at 2,062 domains/s")
		dbPath    = flag.String("db", "", "database to use (default: cached under the temp dir)")
		missRate  = flag.Float64("miss", 0.1, "share of lookups for domains not in the database")
		cpuProf   = flag.String("cpuprofile", "", "write the server's CPU profile (during the measurement) to this file")
		traceOut  = flag.String("trace", "", "write the server's execution trace (during the measurement) to this file")
		loadgen   = flag.Bool("loadgen", false, "internal: run as the load generator")
		writer    = flag.Bool("writer", false, "internal: run as the scan writer")
		proto     = flag.String("proto", "", "internal: http or socketmap")
		addr      = flag.String("addr", "", "internal: server address")
	)
	flag.Parse()
	var err error
	switch {
	case *loadgen:
		err = runLoad(*proto, *addr, *domains, *conns, *duration, *missRate, *pace)
	case *writer:
		err = runWriter(*dbPath, *domains, *writeRate)
	default:
		err = run(config{n: *domains, duration: *duration, conns: *conns, runs: max(1, *runs), writeRate: *writeRate, rate: *pace,
			dbPath: *dbPath, miss: *missRate, cpuProf: *cpuProf, trace: *traceOut})
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

type config struct {
	n, conns, runs int
	duration       time.Duration
	writeRate      float64
	rate           float64 // paced lookups/s, 0: none
	dbPath         string
	miss           float64
	cpuProf, trace string
}

func domainName(i int) string {
	return "d" + strconv.Itoa(i) + ".bench-" + strconv.Itoa(i%97) + ".test"
}

func run(c config) error {
	ctx := context.Background()
	fmt.Printf("gateway benchmark (make bench-gateway: go run ./cmd/gateway-bench %s)\n", strings.Join(os.Args[1:], " "))
	if c.dbPath == "" {
		c.dbPath = filepath.Join(os.TempDir(), fmt.Sprintf("tlsready-gwbench-v%d-%d.db", dbFormat, c.n))
	}
	if err := ensureDB(ctx, c.dbPath, c.n); err != nil {
		return err
	}
	st, err := store.Open(ctx, c.dbPath, store.Options{ReadOnly: true})
	if err != nil {
		return err
	}
	defer st.Close()
	s, err := gateway.New(gateway.Config{Store: st})
	if err != nil {
		return err
	}
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	start := time.Now()
	if _, err := s.Refresh(ctx); err != nil {
		return err
	}
	loadTook := time.Since(start)
	runtime.GC()
	runtime.ReadMemStats(&after)
	fmt.Printf("cache: %d domains loaded in %v, heap %+.0f MiB (%.0f bytes/domain)\n",
		c.n, loadTook.Round(time.Millisecond), float64(int64(after.HeapAlloc)-int64(before.HeapAlloc))/(1<<20),
		float64(int64(after.HeapAlloc)-int64(before.HeapAlloc))/float64(c.n))
	debug.FreeOSMemory()
	if err := measureUpdates(ctx, s, c.dbPath, c.n); err != nil {
		return err
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	wg.Go(func() {
		if err := s.Watch(ctx); err != nil {
			fmt.Fprintln(os.Stderr, "watch:", err)
		}
	})
	listen := func(serve func(context.Context, net.Listener) error) (string, error) {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return "", err
		}
		wg.Go(func() {
			if err := serve(ctx, l); err != nil {
				fmt.Fprintln(os.Stderr, "serve:", err)
			}
		})
		return l.Addr().String(), nil
	}
	httpAddr, err := listen(s.ServeAPI)
	if err != nil {
		return err
	}
	smAddr, err := listen(s.ServeSocketmap)
	if err != nil {
		return err
	}
	exe, err := os.Executable()
	if err != nil {
		return err
	}

	var w *writerProc
	if c.writeRate > 0 {
		if w, err = startWriter(exe, c.dbPath, c.n, c.writeRate); err != nil {
			return err
		}
		defer w.stop()
		fmt.Printf("writer: a second process saves %.0f results/s of existing domains (scan-shaped, about 4 KB of JSON each)\n"+
			"        through store.Writer (%d results or %v per transaction) during the whole measurement; the gateway\n"+
			"        refreshes with Watch (every %v)\n",
			c.writeRate, store.DefaultWriterBatch, store.DefaultWriterInterval, gateway.DefaultRefreshInterval)
		time.Sleep(2 * time.Second) // let the writer and the refreshes reach their pace
	} else {
		fmt.Println("writer: none (-write-rate 0)")
	}
	fmt.Printf("load: %d connections, %v per protocol and run, %d runs, %.0f%% unknown domains, GOMAXPROCS %d, %d CPUs (server, load generator and writer share them)\n",
		c.conns, c.duration, c.runs, 100*c.miss, runtime.GOMAXPROCS(0), runtime.NumCPU())
	if c.cpuProf != "" {
		f, err := os.Create(c.cpuProf)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	if c.trace != "" {
		f, err := os.Create(c.trace)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := trace.Start(f); err != nil {
			return err
		}
		defer trace.Stop()
	}

	// Each run measures each protocol at capacity (closed loop: every
	// connection sends its next lookup when the answer arrives) and, with
	// -rate, paced at that many lookups/s (a lookup waits for its time,
	// then the same).
	type load struct {
		proto, addr string
		rate        float64
	}
	var loads []load
	for _, p := range []struct{ name, addr string }{{"http", httpAddr}, {"socketmap", smAddr}} {
		loads = append(loads, load{p.name, p.addr, 0})
		if c.rate > 0 {
			loads = append(loads, load{p.name, p.addr, c.rate})
		}
	}
	label := func(l load) string {
		if l.rate == 0 {
			return "max"
		}
		return fmt.Sprintf("%.0f/s", l.rate)
	}
	results := map[load][]loadResult{}
	fmt.Printf("%-4s %-10s %-8s %10s %9s %9s %9s %9s %10s %7s %10s %7s %8s\n", "run", "protocol", "load", "lookups/s", "p50", "p99",
		"p99.9", "max", "written/s", "writer", "refreshes", "others", "target")
	for r := 1; r <= c.runs; r++ {
		for _, l := range loads {
			w0, rl0 := w.written(), reloads(httpAddr)
			busy0, self0, wcpu0 := machineBusy(), processCPU(), w.cpu()
			t0 := time.Now()
			res, lgCPU, err := loadOnce(exe, l.proto, l.addr, l.rate, c)
			if err != nil {
				return err
			}
			el := time.Since(t0)
			busy1, self1, wcpu1 := machineBusy(), processCPU(), w.cpu()
			w1, rl1 := w.written(), reloads(httpAddr)
			// CPU the rest of the machine used meanwhile, as a share of all
			// its CPUs: this machine is shared, and the tail shows it.
			others := "-"
			if busy0 >= 0 && busy1 >= 0 {
				o := (busy1 - busy0) - (self1 - self0) - lgCPU - (wcpu1 - wcpu0)
				others = fmt.Sprintf("%.0f%%", max(0, 100*o.Seconds()/(el.Seconds()*float64(runtime.NumCPU()))))
			}
			results[l] = append(results[l], res)
			fmt.Printf("%-4d %-10s %-8s %10.0f %9v %9v %9v %9v %10.0f %6.0f%% %10d %7s %8s  (%d lookups, %d errors)\n", r, l.proto, label(l),
				res.PerSecond, res.P50.Round(time.Microsecond), res.P99.Round(time.Microsecond), res.P999.Round(time.Microsecond),
				res.Max.Round(time.Microsecond), float64(w1-w0)/el.Seconds(), 100*(wcpu1-wcpu0).Seconds()/el.Seconds(), rl1-rl0,
				others, verdict(res, l.rate), res.Lookups, res.Errors)
		}
	}
	if w != nil {
		if err := w.err(); err != nil {
			return fmt.Errorf("writer: %w", err)
		}
	}
	fmt.Printf("\nover %d runs, min / median / max (target: p99 < %v at >= %dk lookups/s, while the scan writes;\n"+
		"load max: as fast as the answers come; writer: its CPU, %% of one; others: CPU the rest of the machine used, %% of all CPUs):\n",
		c.runs, targetP99, targetRate/1000)
	for _, l := range loads {
		rs := results[l]
		met := 0
		for _, r := range rs {
			if verdict(r, l.rate) == "MET" {
				met++
			}
		}
		fmt.Printf("%-10s %-8s lookups/s %s   p50 %s   p99 %s   target met in %d of %d runs\n", l.proto, label(l),
			spread(rs, func(r loadResult) float64 { return r.PerSecond }, func(v float64) string { return fmt.Sprintf("%.0f", v) }),
			spread(rs, func(r loadResult) float64 { return float64(r.P50) }, durString),
			spread(rs, func(r loadResult) float64 { return float64(r.P99) }, durString),
			met, len(rs))
	}
	cancel()
	wg.Wait()
	return nil
}

// verdict says whether a measurement meets the target: p99 under
// targetP99 without errors, at targetRate or more (a run paced at
// targetRate or more may fall short by 0.5%: the edges of the window).
func verdict(r loadResult, paced float64) string {
	minRate := float64(targetRate)
	if paced >= targetRate {
		minRate *= 0.995
	}
	if r.PerSecond >= minRate && r.P99 < targetP99 && r.Errors == 0 {
		return "MET"
	}
	return "MISSED"
}

func durString(v float64) string { return time.Duration(v).Round(time.Microsecond).String() }

// spread formats the minimum, median and maximum of a figure over runs.
func spread(rs []loadResult, f func(loadResult) float64, format func(float64) string) string {
	v := make([]float64, len(rs))
	for i, r := range rs {
		v[i] = f(r)
	}
	slices.Sort(v)
	med := v[len(v)/2]
	if len(v)%2 == 0 {
		med = (v[len(v)/2-1] + v[len(v)/2]) / 2
	}
	return format(v[0]) + " / " + format(med) + " / " + format(v[len(v)-1])
}

// loadOnce runs the load generator for one protocol and returns its
// figures and the CPU time it used.
func loadOnce(exe, proto, addr string, rate float64, c config) (loadResult, time.Duration, error) {
	cmd := exec.Command(exe, "-loadgen", "-proto", proto, "-addr", addr, "-domains", strconv.Itoa(c.n),
		"-conns", strconv.Itoa(c.conns), "-duration", c.duration.String(), "-miss", strconv.FormatFloat(c.miss, 'f', -1, 64),
		"-rate", strconv.FormatFloat(rate, 'f', -1, 64))
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		return loadResult{}, 0, fmt.Errorf("load generator (%s): %w", proto, err)
	}
	var r loadResult
	if err := json.Unmarshal(out, &r); err != nil {
		return loadResult{}, 0, fmt.Errorf("load generator output: %w", err)
	}
	return r, cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime(), nil
}

// machineBusy is the CPU time all CPUs of the machine have spent outside
// idle and I/O wait since boot (Linux /proc/stat), -1 where unavailable.
func machineBusy() time.Duration {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return -1
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 9 || f[0] != "cpu" {
		return -1
	}
	var busy int64
	for i, v := range f[1:9] { // user nice system idle iowait irq softirq steal
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return -1
		}
		if i != 3 && i != 4 {
			busy += n
		}
	}
	return time.Duration(busy) * (time.Second / clockTicks)
}

// clockTicks is Linux's USER_HZ, the unit of /proc/stat and /proc/PID/stat.
const clockTicks = 100

// processCPU is this process's user+system CPU time.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// procCPU is the user+system CPU time of another process (Linux
// /proc/PID/stat), 0 where unavailable.
func procCPU(pid int) time.Duration {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	// The fields after the command name (which may hold spaces) start at
	// the state, field 3; utime and stime are fields 14 and 15.
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * (time.Second / clockTicks)
}

// reloads reads the gateway's cache refresh count (full and incremental)
// from its metrics.
func reloads(httpAddr string) int64 {
	resp, err := http.Get("http://" + httpAddr + "/metrics")
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	var n int64
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "tlsready_gateway_cache_reloads_total{") && !strings.Contains(line, `"error"`) {
			if i := strings.LastIndexByte(line, ' '); i > 0 {
				v, _ := strconv.ParseFloat(line[i+1:], 64)
				n += int64(v)
			}
		}
	}
	return n
}

// measureUpdates re-saves batches of existing domains, as a scan's writer
// does (store.DefaultWriterBatch results per transaction), and times the
// cache's refresh after each (an incremental update).
func measureUpdates(ctx context.Context, s *gateway.Server, path string, n int) error {
	const batches, size = 10, store.DefaultWriterBatch
	st, err := store.Open(ctx, path, store.Options{})
	if err != nil {
		return err
	}
	defer st.Close()
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 13))
	now := time.Now()
	var total, worst time.Duration
	for range batches {
		rs := make([]result.Result, 0, size)
		for range size {
			rs = append(rs, benchResult(rng, rng.IntN(n), now))
		}
		if err := st.SaveResults(ctx, rs); err != nil {
			return err
		}
		start := time.Now()
		reloaded, err := s.Refresh(ctx)
		if err != nil {
			return err
		}
		if !reloaded {
			return errors.New("cache did not notice a change")
		}
		d := time.Since(start)
		total += d
		worst = max(worst, d)
	}
	fmt.Printf("updates: %d batches of %d changed results, cache refresh mean %v, max %v\n", batches, size,
		(total / batches).Round(10*time.Microsecond), worst.Round(10*time.Microsecond))
	return st.Close()
}

// writerProc is the scan writer's process: it reports on stdout how many
// results it has handed to the store's Writer whenever a line arrives on
// its stdin, and stops (closing the Writer) when its stdin closes.
type writerProc struct {
	cmd   *exec.Cmd
	in    io.WriteCloser
	out   *bufio.Scanner
	mu    sync.Mutex
	fail  error
	ended bool
}

func startWriter(exe, db string, n int, rate float64) (*writerProc, error) {
	cmd := exec.Command(exe, "-writer", "-db", db, "-domains", strconv.Itoa(n),
		"-write-rate", strconv.FormatFloat(rate, 'f', -1, 64))
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	return &writerProc{cmd: cmd, in: in, out: bufio.NewScanner(out)}, nil
}

// written returns the results the writer has handed to store.Writer so far.
func (w *writerProc) written() int64 {
	if w == nil {
		return 0
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.fail != nil {
		return 0
	}
	if _, err := io.WriteString(w.in, "count\n"); err != nil {
		w.fail = err
		return 0
	}
	if !w.out.Scan() {
		w.fail = cmp(w.out.Err(), errors.New("writer process ended"))
		return 0
	}
	n, err := strconv.ParseInt(w.out.Text(), 10, 64)
	if err != nil {
		w.fail = err
	}
	return n
}

// cpu is the writer process's CPU time so far.
func (w *writerProc) cpu() time.Duration {
	if w == nil {
		return 0
	}
	return procCPU(w.cmd.Process.Pid)
}

func (w *writerProc) err() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.fail
}

func (w *writerProc) stop() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.ended {
		return
	}
	w.ended = true
	w.in.Close()
	if err := w.cmd.Wait(); err != nil && w.fail == nil {
		w.fail = err
	}
}

func cmp(a, b error) error {
	if a != nil {
		return a
	}
	return b
}

// runWriter is the scan writer: it saves rate results per second (of random
// existing domains, rescanned now) through the store's Writer, as the scan
// does, from a few goroutines as the scan's workers would, until its stdin
// closes; each line on stdin asks for the count handed over so far.
func runWriter(db string, n int, rate float64) error {
	ctx := context.Background()
	st, err := store.Open(ctx, db, store.Options{})
	if err != nil {
		return err
	}
	defer st.Close()
	unlock, err := st.LockScan()
	if err != nil {
		return err
	}
	defer unlock()
	w := st.NewWriter(store.DefaultWriterBatch, store.DefaultWriterInterval)
	var (
		added atomic.Int64
		done  = make(chan struct{})
		wg    sync.WaitGroup
	)
	const workers = 4
	start := time.Now()
	for k := range workers {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), uint64(k)))
			tick := time.NewTicker(10 * time.Millisecond)
			defer tick.Stop()
			mine := 0
			for {
				select {
				case <-done:
					return
				case <-tick.C:
				}
				// This worker's share of the results due by now.
				due := int(rate*time.Since(start).Seconds()) / workers
				for ; mine < due; mine++ {
					w.Add(benchResult(rng, rng.IntN(n), time.Now()))
					added.Add(1)
				}
			}
		})
	}
	in := bufio.NewScanner(os.Stdin)
	out := bufio.NewWriter(os.Stdout)
	for in.Scan() {
		fmt.Fprintln(out, added.Load())
		out.Flush()
	}
	close(done)
	wg.Wait()
	return w.Close()
}

// ensureDB builds the benchmark database unless a complete one exists.
func ensureDB(ctx context.Context, path string, n int) error {
	pg := store.IsPostgresURL(path) // a PostgreSQL database is built every time (bench-scale)
	marker := path + ".complete"
	if _, err := os.Stat(marker); err == nil && !pg {
		fmt.Printf("database: %s (cached)\n", path)
		// One read-write open migrates a database built by an older version.
		st, err := store.Open(ctx, path, store.Options{})
		if err != nil {
			return err
		}
		return st.Close()
	}
	for _, suffix := range []string{"", "-wal", "-shm", ".lock"} {
		if !pg {
			os.Remove(path + suffix)
		}
	}
	fmt.Printf("database: building %s with %d domains ...\n", store.RedactURL(path), n)
	start := time.Now()
	st, err := store.Open(ctx, path, store.Options{})
	if err != nil {
		return err
	}
	rng := rand.New(rand.NewPCG(7, 11))
	now := time.Now()
	const batch = 10000
	rs := make([]result.Result, 0, batch)
	for i := range n {
		rs = append(rs, benchResult(rng, i, now.Add(-time.Duration(rng.IntN(20*3600))*time.Second)))
		if len(rs) == batch || i == n-1 {
			if err := st.SaveResults(ctx, rs); err != nil {
				st.Close()
				return err
			}
			rs = rs[:0]
		}
	}
	if err := st.Close(); err != nil {
		return err
	}
	fmt.Printf("database: built in %v\n", time.Since(start).Round(time.Second))
	if pg {
		return nil
	}
	return os.WriteFile(marker, nil, 0o600)
}

// benchResult is a plausible result, shaped like what the scanner stores
// (about 4 KB of JSON on average, as in the national run): most domains on a
// few hundred shared providers with up to four MX hosts of one or two
// addresses, every address probed with the banner, EHLO keywords and
// certificate a probe records; a realistic spread of verdicts and flags.
func benchResult(rng *rand.Rand, i int, at time.Time) result.Result {
	d := domainName(i)
	r := result.Result{Domain: d, ScannedAt: at, DNSStatus: "ok", Flags: []string{result.FlagNoTLSRPT},
		Duration: time.Duration(200+rng.IntN(600)) * time.Millisecond}
	var mx []string
	if rng.IntN(10) < 7 {
		p := rng.IntN(300)
		for j := range 1 + rng.IntN(4) {
			mx = append(mx, fmt.Sprintf("mx%d.provider%d.example", j+1, p))
		}
	} else {
		mx = []string{"mx." + d}
	}
	probe := result.ProbeOK
	switch x := rng.IntN(100); {
	case x < 5:
		r.Verdict = result.DANE
		r.MXSecure = true
	case x < 8:
		r.Verdict = result.MTASTS
		r.MTASTS = &result.STSPolicy{RecordID: "20250101T000000", Mode: "enforce", MX: []string{"*.provider.example", mx[0]},
			MaxAge: 604800, FetchedAt: at}
	case x < 50:
		r.Verdict = result.Verified
	case x < 65:
		r.Verdict = result.Encrypted
		r.Flags = []string{result.FlagCertSelfSigned, result.FlagNoTLSRPT}
	case x < 70:
		r.Verdict = result.Partial
	case x < 78:
		r.Verdict = result.Plaintext
		r.Flags = []string{result.FlagNoTLSRPT, result.FlagNoSTARTTLS}
		probe = result.ProbeNoSTARTTLS
	case x < 80:
		r.Verdict = result.Broken
		r.Flags = []string{result.FlagDANEMismatch}
	case x < 92:
		r.Verdict = result.NoMail
		r.Flags = []string{result.FlagNullMX}
		r.NullMX = true
		mx = nil
	case x < 97:
		r.Verdict = result.Unreachable
		r.Flags = []string{result.FlagConnectFailed}
		probe = result.ProbeConnectFailed
	default:
		r.Verdict = result.DNSError
		r.Flags = []string{result.FlagServfail}
		r.DNSStatus = "servfail"
		mx = nil
	}
	r.Reason = "bench: " + string(r.Verdict) + " because every reachable MX IP says so"
	r.MX = []result.Host{}
	for j, h := range mx {
		host := result.Host{Name: h, Preference: uint16(10 * (j + 1)), DNSStatus: "ok", Secure: r.MXSecure}
		if r.Verdict == result.DANE || r.Verdict == result.Broken {
			host.TLSA = &result.TLSA{Name: "_25._tcp." + h, Secure: true, Status: "ok", Records: []result.TLSARecord{
				{Usage: 3, Selector: 1, MatchingType: 1, Data: fmt.Sprintf("%016x%016x%016x%016x", rng.Uint64(), rng.Uint64(), rng.Uint64(), rng.Uint64())}}}
		}
		for k := range 1 + rng.IntN(2) {
			ip := netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(j*2 + k)})
			host.Addrs = append(host.Addrs, benchAddr(rng, r.Verdict, probe, h, ip, at))
		}
		r.MX = append(r.MX, host)
	}
	return r
}

// benchAddr is the probe of one MX address with status st.
func benchAddr(rng *rand.Rand, v result.Verdict, st result.ProbeStatus, host string, ip netip.Addr, at time.Time) result.Addr {
	p := &result.Probe{IP: ip, SNI: host, Status: st, Attempts: 1, StartedAt: at,
		Duration: time.Duration(100+rng.IntN(400)) * time.Millisecond}
	a := result.Addr{IP: ip, Probe: p}
	if st == result.ProbeConnectFailed {
		p.Error = "dial tcp " + ip.String() + ":25: connect: connection refused"
		return a
	}
	p.Reachable, p.Banner, p.BannerCode, p.EHLOCode = true, "220 "+host+" ESMTP Postfix (Debian/GNU)", 220, 250
	p.EHLO = []string{"PIPELINING", "SIZE", "8BITMIME"}
	if st == result.ProbeNoSTARTTLS {
		return a
	}
	p.EHLO = []string{"PIPELINING", "SIZE", "ETRN", "STARTTLS", "ENHANCEDSTATUSCODES", "8BITMIME", "DSN", "SMTPUTF8", "CHUNKING"}
	p.STARTTLSOffered, p.STARTTLSReply = true, "220 2.0.0 Ready to start TLS"
	trusted := v != result.Encrypted
	issuer := "CN=R11,O=Let's Encrypt,C=US"
	if !trusted {
		issuer = "CN=" + host
		a.Flags = []string{result.FlagCertSelfSigned}
	}
	p.TLS = &result.TLSInfo{Version: "TLS 1.3", VersionID: 0x0304, CipherSuite: "TLS_AES_128_GCM_SHA256",
		ChainTrusted: trusted, SelfSigned: !trusted, Certs: []result.CertInfo{{
			Subject: "CN=" + host, Issuer: issuer, DNSNames: []string{host},
			NotBefore: at.AddDate(0, -1, 0), NotAfter: at.AddDate(0, 2, 0), KeyType: "ECDSA-P256",
			SHA256: fmt.Sprintf("%016x%016x%016x%016x", rng.Uint64(), rng.Uint64(), rng.Uint64(), rng.Uint64())}}}
	a.NameMatch, a.PKIXValid = true, trusted
	if v == result.DANE || v == result.Broken {
		match := v == result.DANE
		a.DANEMatch = &match
	}
	return a
}

type loadResult struct {
	Lookups   int64         `json:"lookups"`
	Errors    int64         `json:"errors"`
	PerSecond float64       `json:"per_second"`
	P50       time.Duration `json:"p50"`
	P99       time.Duration `json:"p99"`
	P999      time.Duration `json:"p999"`
	Max       time.Duration `json:"max"`
}

// runLoad is the load generator: conns closed-loop clients, each on one
// persistent connection, for a 1 s warm-up and then duration. With rate > 0
// each client sends its share of rate lookups/s: a lookup whose time has
// not come waits for it (timers wake up to a millisecond late: lookups then
// go out back to back until the client has caught up). Latency is measured
// from the request's write to its answer.
func runLoad(proto, addr string, n, conns int, duration time.Duration, miss, rate float64) error {
	var (
		measuring atomic.Bool
		stop      atomic.Bool
		errs      atomic.Int64
		wg        sync.WaitGroup
		mu        sync.Mutex
		all       []int64
	)
	for w := range conns {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			return err
		}
		defer c.Close()
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 99))
			br := bufio.NewReaderSize(c, 16<<10)
			lat := make([]int64, 0, 1<<18)
			var req []byte
			var period time.Duration
			next := time.Now()
			if rate > 0 {
				period = time.Duration(float64(time.Second) * float64(conns) / rate)
				next = next.Add(period * time.Duration(w) / time.Duration(conns)) // spread the clients
			}
			for !stop.Load() {
				if period > 0 {
					if d := time.Until(next); d > 0 {
						time.Sleep(d)
					}
					next = next.Add(period)
				}
				i := rng.IntN(n)
				if rng.Float64() < miss {
					i += n // not in the database
				}
				d := domainName(i)
				req = req[:0]
				if proto == "http" {
					req = append(req, "GET /v1/domains/"...)
					req = append(req, d...)
					req = append(req, " HTTP/1.1\r\nHost: bench\r\n\r\n"...)
				} else {
					req = strconv.AppendInt(req, int64(len("tlspolicy ")+len(d)), 10)
					req = append(req, ":tlspolicy "...)
					req = append(req, d...)
					req = append(req, ',')
				}
				t0 := time.Now()
				if _, err := c.Write(req); err != nil {
					errs.Add(1)
					return
				}
				var err error
				if proto == "http" {
					err = readHTTP(br)
				} else {
					err = readNetstringReply(br)
				}
				el := time.Since(t0)
				if err != nil {
					errs.Add(1)
					return
				}
				if measuring.Load() {
					lat = append(lat, int64(el))
				}
			}
			mu.Lock()
			all = append(all, lat...)
			mu.Unlock()
		}()
	}
	time.Sleep(time.Second) // warm-up
	measuring.Store(true)
	start := time.Now()
	time.Sleep(duration)
	measuring.Store(false)
	elapsed := time.Since(start)
	stop.Store(true)
	wg.Wait()
	if len(all) == 0 {
		return errors.New("no lookups completed")
	}
	slices.Sort(all)
	q := func(p float64) time.Duration { return time.Duration(all[min(len(all)-1, int(p*float64(len(all))))]) }
	return json.NewEncoder(os.Stdout).Encode(loadResult{
		Lookups: int64(len(all)), Errors: errs.Load(), PerSecond: float64(len(all)) / elapsed.Seconds(),
		P50: q(0.50), P99: q(0.99), P999: q(0.999), Max: time.Duration(all[len(all)-1]),
	})
}

// readHTTP reads one HTTP/1.1 response with a Content-Length body (what the
// gateway sends) without net/http's allocations, so that the load generator
// leaves the shared CPUs to the server.
func readHTTP(br *bufio.Reader) error {
	status, err := br.ReadSlice('\n')
	if err != nil {
		return err
	}
	if len(status) < 12 || string(status[:9]) != "HTTP/1.1 " {
		return errors.New("bad status line")
	}
	code := string(status[9:12])
	length := -1
	for {
		line, err := br.ReadSlice('\n')
		if err != nil {
			return err
		}
		if len(line) <= 2 {
			break
		}
		const cl = "content-length:"
		if len(line) > len(cl) && asciiLowerEq(line[:len(cl)], cl) {
			n, err := strconv.Atoi(string(trimSpace(line[len(cl):])))
			if err != nil {
				return err
			}
			length = n
		}
	}
	if length < 0 {
		return errors.New("no Content-Length")
	}
	if _, err := br.Discard(length); err != nil {
		return err
	}
	if code != "200" {
		return fmt.Errorf("status %s", code)
	}
	return nil
}

func asciiLowerEq(b []byte, s string) bool {
	for i := range b {
		c := b[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != s[i] {
			return false
		}
	}
	return true
}

func trimSpace(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t') {
		b = b[1:]
	}
	for len(b) > 0 && (b[len(b)-1] == '\n' || b[len(b)-1] == '\r' || b[len(b)-1] == ' ') {
		b = b[:len(b)-1]
	}
	return b
}

func readNetstringReply(br *bufio.Reader) error {
	line, err := br.ReadSlice(':')
	if err != nil {
		return err
	}
	n, err := strconv.Atoi(string(line[:len(line)-1]))
	if err != nil || n > 100000 {
		return fmt.Errorf("bad netstring length")
	}
	if _, err := br.Discard(n); err != nil {
		return err
	}
	c, err := br.ReadByte()
	if err == nil && c != ',' {
		err = fmt.Errorf("bad netstring end")
	}
	return err
}
