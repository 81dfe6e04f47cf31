package smtpprobe

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/tlsready/tlsready/scanner/result"
)

// cpuTime is the process's user+system CPU time so far.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkProbe is one STARTTLS probe end to end over loopback (TLS 1.3,
// ECDSA P-256 leaf + intermediate, chain verified against a one-root pool).
// cpu-ns/op is the CPU of the whole process per probe: the probe AND the
// scripted Go server (about half of it is the server's handshake).
func BenchmarkProbe(b *testing.B) {
	benchProbe(b, serverTLS(pki(b).mx), nil)
}

// BenchmarkProbeChainCache is BenchmarkProbe with a ChainCache (the chain is
// judged once; every probe after the first is a hit).
func BenchmarkProbeChainCache(b *testing.B) {
	benchProbe(b, serverTLS(pki(b).mx), NewChainCache(0))
}

// BenchmarkProbeTLS12 is BenchmarkProbe with a TLS 1.2-only server.
func BenchmarkProbeTLS12(b *testing.B) {
	benchProbe(b, &tls.Config{Certificates: []tls.Certificate{pki(b).mx}, MaxVersion: tls.VersionTLS12}, nil)
}

func benchProbe(b *testing.B, server *tls.Config, cache *ChainCache) {
	k := pki(b)
	srv := startServer(b, mta(server))
	cfg := Config{
		Port:       srv.port,
		HELO:       "tlsready.test",
		RootCAs:    k.root.pool(),
		Now:        func() time.Time { return testNow },
		ChainCache: cache,
	}
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := cpuTime(b)
	for b.Loop() {
		p := Probe(ctx, cfg, "mx.example.test", loopback)
		if p.Status != result.ProbeOK {
			b.Fatalf("status %q: %s", p.Status, p.Error)
		}
		if err := <-srv.done; err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(cpuTime(b)-cpu0)/float64(b.N), "cpu-ns/op")
}

// BenchmarkProbeClientCPU runs the scripted server in a child process (this
// test binary, TestBenchServerProcess), so cpu-ns/op is the probe's own CPU:
// dialogue, TLS 1.3 handshake, chain judgement (without and with a
// ChainCache).
func BenchmarkProbeClientCPU(b *testing.B) {
	k := pki(b)
	dir := b.TempDir()
	keyDER, err := x509.MarshalPKCS8PrivateKey(k.mx.PrivateKey)
	if err != nil {
		b.Fatal(err)
	}
	var chain []byte
	for _, der := range k.mx.Certificate {
		chain = append(chain, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})...)
	}
	if err := os.WriteFile(filepath.Join(dir, "chain.pem"), chain, 0o600); err != nil {
		b.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "key.pem"), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		b.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestBenchServerProcess$", "-test.count=1")
	cmd.Env = append(os.Environ(), "SMTPPROBE_SERVER_DIR="+dir)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() {
		stdin.Close() // the child exits when its stdin closes
		_ = cmd.Wait()
	}()
	var port int
	if _, err := fmt.Fscanf(stdout, "PORT %d\n", &port); err != nil {
		b.Fatal("child server:", err)
	}
	for _, cached := range []bool{false, true} {
		name := "nocache"
		if cached {
			name = "chaincache"
		}
		b.Run(name, func(b *testing.B) {
			cfg := Config{
				Port:    port,
				HELO:    "tlsready.test",
				RootCAs: k.root.pool(),
				Now:     func() time.Time { return testNow },
			}
			if cached {
				cfg.ChainCache = NewChainCache(0)
			}
			ctx := context.Background()
			b.ReportAllocs()
			b.ResetTimer()
			cpu0 := cpuTime(b)
			for b.Loop() {
				if p := Probe(ctx, cfg, "mx.example.test", loopback); p.Status != result.ProbeOK {
					b.Fatalf("status %q: %s", p.Status, p.Error)
				}
			}
			b.ReportMetric(float64(cpuTime(b)-cpu0)/float64(b.N), "cpu-ns/op")
		})
	}
}

// TestBenchServerProcess is the child server of BenchmarkProbeClientCPU; it
// does nothing in a normal test run.
func TestBenchServerProcess(t *testing.T) {
	dir := os.Getenv("SMTPPROBE_SERVER_DIR")
	if dir == "" {
		t.Skip("only a child process of BenchmarkProbeClientCPU")
	}
	cert, err := tls.LoadX509KeyPair(filepath.Join(dir, "chain.pem"), filepath.Join(dir, "key.pem"))
	if err != nil {
		t.Fatal(err)
	}
	srv := startServer(t, mta(serverTLS(cert)))
	go func() {
		for range srv.done {
		}
	}()
	fmt.Printf("PORT %d\n", srv.port)
	_, _ = io.Copy(io.Discard, os.Stdin)
}
