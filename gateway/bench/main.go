// Command bench measures the gateway with a database of many domains
// (default 1,000,000): lookups per second and p50/p99 latency over HTTP
// keep-alive and over the Postfix socketmap, with the load generator in a
// second process (this binary re-executed with -loadgen).
//
//	go run ./gateway/bench [-domains 1000000] [-duration 10s] [-conns 8]
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
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tlsready/tlsready/gateway"
	"github.com/tlsready/tlsready/scanner/result"
	"github.com/tlsready/tlsready/store"
)

// dbFormat changes whenever the generated database would differ.
const dbFormat = 1

func main() {
	var (
		domains  = flag.Int("domains", 1_000_000, "domains in the database")
		duration = flag.Duration("duration", 10*time.Second, "measuring time per protocol")
		conns    = flag.Int("conns", 8, "concurrent keep-alive connections of the load generator")
		dbPath   = flag.String("db", "", "database to use (default: cached under the temp dir)")
		loadgen  = flag.Bool("loadgen", false, "internal: run as the load generator")
		proto    = flag.String("proto", "", "internal: http or socketmap")
		addr     = flag.String("addr", "", "internal: server address")
		missRate = flag.Float64("miss", 0.1, "share of lookups for domains not in the database")
		cpuProf  = flag.String("cpuprofile", "", "write the server's CPU profile (during the load) to this file")
	)
	flag.Parse()
	if *loadgen {
		if err := runLoad(*proto, *addr, *domains, *conns, *duration, *missRate); err != nil {
			fmt.Fprintln(os.Stderr, "loadgen:", err)
			os.Exit(1)
		}
		return
	}
	if err := run(*domains, *duration, *conns, *dbPath, *missRate, *cpuProf); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func domainName(i int) string {
	return "d" + strconv.Itoa(i) + ".bench-" + strconv.Itoa(i%97) + ".test"
}

func run(n int, duration time.Duration, conns int, dbPath string, miss float64, cpuProf string) error {
	ctx := context.Background()
	if dbPath == "" {
		dbPath = filepath.Join(os.TempDir(), fmt.Sprintf("tlsready-gwbench-v%d-%d.db", dbFormat, n))
	}
	if err := ensureDB(ctx, dbPath, n); err != nil {
		return err
	}
	st, err := store.Open(ctx, dbPath, store.Options{ReadOnly: true})
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
		n, loadTook.Round(time.Millisecond), float64(int64(after.HeapAlloc)-int64(before.HeapAlloc))/(1<<20),
		float64(int64(after.HeapAlloc)-int64(before.HeapAlloc))/float64(n))
	debug.FreeOSMemory()
	if err := measureUpdates(ctx, s, dbPath, n); err != nil {
		return err
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	listen := func(serve func(context.Context, net.Listener) error) (string, error) {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return "", err
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := serve(ctx, l); err != nil {
				fmt.Fprintln(os.Stderr, "serve:", err)
			}
		}()
		return l.Addr().String(), nil
	}
	httpAddr, err := listen(s.ServeHTTP)
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
	fmt.Printf("load: %d connections, %v per protocol, %.0f%% unknown domains, GOMAXPROCS %d, %d CPUs (server and load generator share them)\n",
		conns, duration, 100*miss, runtime.GOMAXPROCS(0), runtime.NumCPU())
	if cpuProf != "" {
		f, err := os.Create(cpuProf)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	fmt.Printf("%-10s %12s %10s %10s %10s %10s %8s\n", "protocol", "lookups/s", "p50", "p99", "p99.9", "max", "target")
	for _, p := range []struct{ name, addr string }{{"http", httpAddr}, {"socketmap", smAddr}} {
		cmd := exec.Command(exe, "-loadgen", "-proto", p.name, "-addr", p.addr, "-domains", strconv.Itoa(n),
			"-conns", strconv.Itoa(conns), "-duration", duration.String(), "-miss", strconv.FormatFloat(miss, 'f', -1, 64))
		cmd.Stderr = os.Stderr
		out, err := cmd.Output()
		if err != nil {
			return fmt.Errorf("load generator (%s): %w", p.name, err)
		}
		var r loadResult
		if err := json.Unmarshal(out, &r); err != nil {
			return fmt.Errorf("load generator output: %w", err)
		}
		ok := r.PerSecond >= 20000 && r.P99 < 2*time.Millisecond
		verdict := "MET"
		if !ok {
			verdict = "MISSED"
		}
		fmt.Printf("%-10s %12.0f %10v %10v %10v %10v %8s  (%.2fx of 20k/s; %d lookups, %d errors)\n", p.name, r.PerSecond,
			r.P50.Round(time.Microsecond), r.P99.Round(time.Microsecond), r.P999.Round(time.Microsecond), r.Max.Round(time.Microsecond),
			verdict, r.PerSecond/20000, r.Lookups, r.Errors)
	}
	cancel()
	wg.Wait()
	return nil
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

// ensureDB builds the benchmark database unless a complete one exists.
func ensureDB(ctx context.Context, path string, n int) error {
	marker := path + ".complete"
	if _, err := os.Stat(marker); err == nil {
		fmt.Printf("database: %s (cached)\n", path)
		// One read-write open migrates a database built by an older version.
		st, err := store.Open(ctx, path, store.Options{})
		if err != nil {
			return err
		}
		return st.Close()
	}
	for _, suffix := range []string{"", "-wal", "-shm", ".lock"} {
		os.Remove(path + suffix)
	}
	fmt.Printf("database: building %s with %d domains ...\n", path, n)
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
		rs = append(rs, benchResult(rng, i, now))
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
	return os.WriteFile(marker, nil, 0o600)
}

// benchResult is a plausible result: most domains on a few hundred shared
// providers, a realistic spread of verdicts and flags.
func benchResult(rng *rand.Rand, i int, now time.Time) result.Result {
	d := domainName(i)
	r := result.Result{Domain: d, ScannedAt: now.Add(-time.Duration(rng.IntN(20*3600)) * time.Second)}
	var mx []string
	if rng.IntN(10) < 7 {
		p := rng.IntN(300)
		mx = []string{fmt.Sprintf("mx1.provider%d.example", p), fmt.Sprintf("mx2.provider%d.example", p)}
	} else {
		mx = []string{"mx." + d}
	}
	for j, h := range mx {
		r.MX = append(r.MX, result.Host{Name: h, Preference: uint16(10 * (j + 1))})
	}
	switch x := rng.IntN(100); {
	case x < 5:
		r.Verdict = result.DANE
	case x < 8:
		r.Verdict = result.MTASTS
		r.MTASTS = &result.STSPolicy{Mode: "enforce", MX: []string{"*.provider.example", mx[0]}, MaxAge: 604800}
	case x < 50:
		r.Verdict = result.Verified
		r.Flags = []string{result.FlagNoTLSRPT}
	case x < 65:
		r.Verdict = result.Encrypted
		r.Flags = []string{result.FlagCertSelfSigned, result.FlagNoTLSRPT}
	case x < 70:
		r.Verdict = result.Partial
	case x < 78:
		r.Verdict = result.Plaintext
		r.Flags = []string{result.FlagNoSTARTTLS}
	case x < 80:
		r.Verdict = result.Broken
		r.Flags = []string{result.FlagDANEMismatch}
	case x < 92:
		r.Verdict = result.NoMail
		r.Flags = []string{result.FlagNullMX}
		r.MX = nil
	case x < 97:
		r.Verdict = result.Unreachable
		r.Flags = []string{result.FlagConnectFailed}
	default:
		r.Verdict = result.DNSError
		r.Flags = []string{result.FlagServfail}
		r.MX = nil
	}
	return r
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
// persistent connection, for a 1 s warm-up and then duration.
func runLoad(proto, addr string, n, conns int, duration time.Duration, miss float64) error {
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
			for !stop.Load() {
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
