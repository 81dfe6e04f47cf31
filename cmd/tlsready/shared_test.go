package main

import (
	"bufio"
	"context"
	"database/sql"
	"fmt"
	"maps"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" database/sql driver, to look at the lease tables

	"github.com/tlsready/tlsready/scanner/result"
	"github.com/tlsready/tlsready/scanner/scantest"
	"github.com/tlsready/tlsready/scanner/scantest/worlds"
	"github.com/tlsready/tlsready/store"
	"github.com/tlsready/tlsready/store/pgtest"
)

// sharedWorld is a generated world (providers, shared hosting with per-name
// certificates, self-hosted domains) of n domains at rtt, and its register.
func sharedWorld(t *testing.T, n int, rtt time.Duration) (*scantest.Internet, string, map[string]result.Verdict) {
	t.Helper()
	expected := map[string]result.Verdict{}
	input := filepath.Join(t.TempDir(), "register.txt")
	f, err := os.OpenFile(input, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	bw := bufio.NewWriter(f)
	sc, err := worlds.Generate(nil, worlds.GenOptions{Domains: n, Addresses: 3 * n, Seed: 13, RTT: rtt,
		Expected: func(d string, v result.Verdict) { expected[d] = v }}, bw)
	if err == nil {
		err = bw.Flush()
	}
	if err == nil {
		err = f.Close()
	}
	if err != nil {
		t.Fatal(err)
	}
	world := scantest.StartT(t, sc)
	world.IssueCertificates()
	return world, input, expected
}

// connsSince is the SMTP connections per MX IP the world saw since before.
func connsSince(world *scantest.Internet, before scantest.Counters) map[netip.Addr]int64 {
	out := map[netip.Addr]int64{}
	for ip, n := range world.Counters().ConnsPerIP {
		if d := n - before.ConnsPerIP[ip]; d > 0 {
			out[ip] = d
		}
	}
	return out
}

// startWorkers starts n scan workers (separate processes) on db.
func startWorkers(t *testing.T, n int, args []string) []*exec.Cmd {
	t.Helper()
	var cmds []*exec.Cmd
	for range n {
		cmds = append(cmds, child(t, args...))
	}
	t.Cleanup(func() {
		for _, c := range cmds {
			if c.ProcessState == nil {
				_ = c.Process.Kill()
				_ = c.Wait()
			}
		}
	})
	return cmds
}

// oneFinishedRun checks that db holds exactly one run, finished once, with
// a snapshot of every domain, and returns it.
func oneFinishedRun(t *testing.T, db string, domains int) store.Run {
	t.Helper()
	ctx := context.Background()
	st, err := store.Open(ctx, db, store.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	runs, err := st.Runs(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(runs) != 1 || runs[0].Status != store.RunFinished {
		t.Fatalf("runs: %+v, want one finished run", runs)
	}
	n := 0
	if err := st.RunDomains(ctx, runs[0].ID, func(store.RunDomain) error { n++; return nil }); err != nil {
		t.Fatal(err)
	}
	if n != domains {
		t.Errorf("run snapshot has %d domains, want %d", n, domains)
	}
	if locked, err := st.ScanLocked(ctx); err != nil || locked {
		t.Errorf("ScanLocked after the run = %v, %v; want false", locked, err)
	}
	return runs[0]
}

// TestSharedRunThreeWorkers: three scan workers (processes) on one
// PostgreSQL run judge every domain once, with the verdicts of a single
// worker, and every MX IP sees exactly the connections it saw from the
// single worker's run (counted by the simulated servers): no IP is probed
// by two workers. Each worker claimed domains, and the run was finished
// once, with the workers' counters summed.
func TestSharedRunThreeWorkers(t *testing.T) {
	if testing.Short() {
		t.Skip("starts worker processes; not in -short")
	}
	cluster := pgtest.Start(t)
	world, input, expected := sharedWorld(t, 240, 20*time.Millisecond)
	domains := slices.Sorted(maps.Keys(expected))
	args := func(db string) []string {
		return scanArgs(world, input, db, "--concurrency", "20", "--rescan-after", "0", "--lease", "5s")
	}

	// One worker: the reference.
	dbOne := cluster.NewDatabase(t)
	before := world.Counters()
	if code, _, stderr := runCLI(t, args(dbOne)...); code != 0 {
		t.Fatalf("one worker: exit %d: %s", code, stderr)
	}
	wantConns := connsSince(world, before)
	want := verdicts(t, dbOne, domains)
	for d, v := range expected {
		if want[d] != v {
			t.Errorf("one worker: %s is %s, the world says %s", d, want[d], v)
		}
	}
	oneRun := oneFinishedRun(t, dbOne, len(domains))

	// Three workers on a fresh database.
	db := cluster.NewDatabase(t)
	before = world.Counters()
	cmds := startWorkers(t, 3, args(db))
	for i, c := range cmds {
		if err := c.Wait(); err != nil {
			t.Fatalf("worker %d: %v: %s", i, err, c.Stderr)
		}
	}
	got := verdicts(t, db, domains)
	for _, d := range domains {
		if got[d] != want[d] {
			t.Errorf("%s: %s with three workers, %s with one", d, got[d], want[d])
		}
	}
	gotConns := connsSince(world, before)
	if len(gotConns) != len(wantConns) {
		t.Errorf("three workers connected to %d MX IPs, one worker to %d", len(gotConns), len(wantConns))
	}
	for ip, n := range wantConns {
		if gotConns[ip] != n {
			t.Errorf("MX IP %s: %d connections with three workers, %d with one", ip, gotConns[ip], n)
		}
	}
	run := oneFinishedRun(t, db, len(domains))
	if run.Stats.Scanned != int64(len(domains)) || run.Stats.MXIPs != oneRun.Stats.MXIPs || run.Stats.Connections != oneRun.Stats.Connections {
		t.Errorf("merged stats: scanned %d, MX IPs %d, connections %d; one worker: %d, %d, %d",
			run.Stats.Scanned, run.Stats.MXIPs, run.Stats.Connections, oneRun.Stats.Scanned, oneRun.Stats.MXIPs, oneRun.Stats.Connections)
	}
	// Every worker did part of the run.
	pg, err := sql.Open("pgx", db)
	if err != nil {
		t.Fatal(err)
	}
	defer pg.Close()
	rows, err := pg.Query(`SELECT worker, stats FROM scan_workers WHERE run_id = $1`, run.ID)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	workers := 0
	for rows.Next() {
		var w, stats string
		if err := rows.Scan(&w, &stats); err != nil {
			t.Fatal(err)
		}
		workers++
		t.Logf("worker %s: %s", w, stats)
	}
	if workers != 3 {
		t.Errorf("%d workers reported, want 3", workers)
	}
}

// TestSharedRunWorkerKilled: of three workers on one run, one is killed
// (kill -9) once it holds leases on domains and MX IPs; the other two take
// its leases over after they expire and finish the run, once, with the
// verdicts of a single worker.
func TestSharedRunWorkerKilled(t *testing.T) {
	if testing.Short() {
		t.Skip("kills worker processes; not in -short")
	}
	cluster := pgtest.Start(t)
	world, input, expected := sharedWorld(t, 240, 40*time.Millisecond)
	domains := slices.Sorted(maps.Keys(expected))
	db := cluster.NewDatabase(t)
	cmds := startWorkers(t, 3, scanArgs(world, input, db, "--concurrency", "10", "--rescan-after", "0", "--lease", "3s"))
	victim := cmds[0]

	pg, err := sql.Open("pgx", db)
	if err != nil {
		t.Fatal(err)
	}
	defer pg.Close()
	// The victim's worker id holds its pid: "host/pid/random".
	like := fmt.Sprintf("%%/%d/%%", victim.Process.Pid)
	deadline := time.Now().Add(60 * time.Second)
	for {
		var domainLeases, ipLeases int
		err := pg.QueryRow(`SELECT (SELECT count(*) FROM scan_leases WHERE worker LIKE $1 AND NOT done),
			(SELECT count(*) FROM scan_ip_leases WHERE worker LIKE $1)`, like).Scan(&domainLeases, &ipLeases)
		if err == nil && domainLeases > 0 && ipLeases > 0 {
			t.Logf("killing the worker holding %d domains and %d MX IPs", domainLeases, ipLeases)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the worker never held leases (last error %v): %s", err, victim.Stderr)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := victim.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = victim.Wait()
	for i, c := range cmds[1:] {
		if err := c.Wait(); err != nil {
			t.Fatalf("worker %d: %v: %s", i+1, err, c.Stderr)
		}
	}
	got := verdicts(t, db, domains)
	for _, d := range domains {
		if got[d] != expected[d] {
			t.Errorf("%s: %s after the kill, the world says %s", d, got[d], expected[d])
		}
	}
	oneFinishedRun(t, db, len(domains))
}
