package main

import (
	"bytes"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tlsready/tlsready/scanner/scantest"
)

// TestMeterSlidingWindow: the rate is the window's, not the run's; none is
// said before the minimum span; the ETA follows the window's rate and is
// unknown once nothing finished within the window.
func TestMeterSlidingWindow(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	m := newMeter(30*time.Second, 5*time.Second)
	m.observe(t0, 0)
	// A burst of cached-looking work in the first milliseconds gives no
	// absurd rate: none at all before 5 s.
	m.observe(t0.Add(5*time.Millisecond), 600)
	if r, ok := m.rate(); ok {
		t.Errorf("a rate after 5 ms: %v", r)
	}
	if _, ok := m.eta(100); ok {
		t.Error("an ETA before any rate")
	}
	// 10 domains a second for a minute.
	for s := 1; s <= 60; s++ {
		m.observe(t0.Add(time.Duration(s)*time.Second), 600+int64(10*s))
	}
	if r, ok := m.rate(); !ok || r != 10 {
		t.Errorf("rate %v %v, want 10/s", r, ok)
	}
	if e, ok := m.eta(300); !ok || e != 30*time.Second {
		t.Errorf("eta %v %v, want 30s", e, ok)
	}
	// Then 1 a second for 30 s: the window forgets the fast minute.
	for s := 61; s <= 90; s++ {
		m.observe(t0.Add(time.Duration(s)*time.Second), 1200+int64(s-60))
	}
	if r, ok := m.rate(); !ok || r != 1 {
		t.Errorf("rate %v %v after the slowdown, want 1/s", r, ok)
	}
	if e, ok := m.eta(3); !ok || e != 3*time.Second {
		t.Errorf("eta %v %v, want 3s", e, ok)
	}
	// Nothing for 30 s: no ETA (not "1s" for ever).
	for s := 91; s <= 120; s++ {
		m.observe(t0.Add(time.Duration(s)*time.Second), 1230)
	}
	if r, ok := m.rate(); !ok || r != 0 {
		t.Errorf("rate %v %v when stalled, want 0", r, ok)
	}
	if e, ok := m.eta(3); ok {
		t.Errorf("eta %v when nothing finished in the window", e)
	}
	if len(m.samples) > 32 {
		t.Errorf("%d samples kept for a 30 s window sampled every second", len(m.samples))
	}
}

// TestProgressLine: with a fake clock, a resumed run's line says what is
// left of what, the cached results, "measuring" before a rate is known,
// and near the end the domains and hosts in flight with their waits.
func TestProgressLine(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	now := t0
	ip := netip.MustParseAddr("192.0.2.7")
	p := &progress{now: func() time.Time { return now }, pending: 3, total: 59, cached: 56,
		inflight: map[string]time.Time{}, early: map[string]bool{}, m: newMeter(30*time.Second, 5*time.Second),
		probes: func() []probing { return []probing{{ip: ip, name: "mx.slow.test", since: t0.Add(2 * time.Second)}} }}
	p.m.observe(now, 0)
	line := func() string {
		var b bytes.Buffer
		slog.New(slog.NewTextHandler(&b, &slog.HandlerOptions{ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey {
				return slog.Attr{}
			}
			return a
		}})).Info("progress", p.attrs(now)...)
		return strings.TrimSpace(b.String())
	}
	if got, want := line(), `level=INFO msg=progress done=0 left=3 total=59 cached=56 per_second=measuring eta=unknown`; got != want {
		t.Errorf("first line:\n%s\nwant\n%s", got, want)
	}
	p.Started("a.test")
	now = now.Add(time.Second)
	p.Started("slow.test")
	p.Finished("a.test")
	p.Finished("b.test") // its result came before started was told
	p.Started("b.test")
	for i := 0; i < 10; i++ {
		now = now.Add(time.Second)
		p.m.observe(now, p.done_)
	}
	got := line()
	for _, want := range []string{"done=2 left=1 total=59 cached=56 per_second=0.2 eta=6s",
		"in_flight=1 oldest=slow.test waiting=10s probing=1", `oldest_probe="192.0.2.7 (mx.slow.test)" probe_waiting=9s`} {
		if !strings.Contains(got, want) {
			t.Errorf("near the end: %s\nlacks %s", got, want)
		}
	}
	for i := 0; i < 30; i++ {
		now = now.Add(time.Second)
		p.m.observe(now, p.done_)
	}
	if got := line(); !strings.Contains(got, `per_second=0.0 eta="unknown (none finished in the last 30s)" in_flight=1 oldest=slow.test waiting=40s`) {
		t.Errorf("stalled: %s", got)
	}
	if d := p.describe(now); d != "domains (56 cached of 59) · 0.0/s · 1 in flight, slow.test waiting 40s (1 probing, 192.0.2.7 (mx.slow.test) 39s)" {
		t.Errorf("bar: %q", d)
	}
}

// TestScanProgressResumed: the real scan, a second run over a register
// whose domains but one are cached: the progress lines count what is left
// of the run's total and the cached results, say no rate before one is
// measured, and name the slow domain and the MX IP it waits for.
func TestScanProgressResumed(t *testing.T) {
	t.Parallel()
	b := scantest.NewBuilder(nil)
	var fast []string
	for i := range 4 {
		d := fmt.Sprintf("fast%d.test", i)
		b.MailDomain(d, scantest.SMTPHost{})
		fast = append(fast, "citizen@"+d)
	}
	b.MailDomain("tarpit.test", scantest.SMTPHost{BannerDelay: 3 * time.Second})
	sc, err := b.Scenario()
	if err != nil {
		t.Fatal(err)
	}
	world := scantest.StartT(t, sc)
	dir := t.TempDir()
	db := filepath.Join(dir, "t.db")
	first := filepath.Join(dir, "first.txt")
	second := filepath.Join(dir, "second.txt")
	if err := os.WriteFile(first, []byte(strings.Join(fast, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(second, []byte(strings.Join(append(fast, "citizen@tarpit.test"), "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, _, stderr := runCLI(t, scanArgs(world, first, db)...); code != exitOK {
		t.Fatalf("first scan: exit %d: %s", code, stderr)
	}
	var args []string
	for _, a := range scanArgs(world, second, db, "--progress-every", "500ms") {
		if a != "--quiet" {
			args = append(args, a)
		}
	}
	var tarpit string
	for ip, h := range sc.SMTP {
		if h.Name == "mx1.tarpit.test" {
			tarpit = fmt.Sprintf("%s (mx1.tarpit.test)", ip)
		}
	}
	code, _, stderr := runCLI(t, args...)
	if code != exitOK {
		t.Fatalf("second scan: exit %d: %s", code, stderr)
	}
	var lines []string
	for _, l := range strings.Split(stderr, "\n") {
		if strings.Contains(l, "msg=progress") {
			lines = append(lines, l)
		}
	}
	if len(lines) < 2 {
		t.Fatalf("%d progress lines:\n%s", len(lines), stderr)
	}
	for _, want := range []string{"done=0 left=1 total=5 cached=4 per_second=measuring eta=unknown",
		"in_flight=1 oldest=tarpit.test waiting=", fmt.Sprintf("probing=1 oldest_probe=%q probe_waiting=", tarpit)} {
		if !strings.Contains(lines[0], want) {
			t.Errorf("first progress line lacks %s:\n%s", want, lines[0])
		}
	}
	if strings.Contains(stderr, "per_second=0 ") || strings.Contains(stderr, "eta=0s") {
		t.Errorf("a rate or ETA of nothing:\n%s", stderr)
	}
}
