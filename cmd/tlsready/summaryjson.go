package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/tlsready/tlsready/cmd/internal/job"
	"github.com/tlsready/tlsready/store"
)

// runSummaryJSON is what `scan --summary-json FILE` writes: the run summary
// for scripts, after every scan that got as far as starting a run.
type runSummaryJSON struct {
	Run            int64                   `json:"run,omitempty"`
	Status         string                  `json:"status"` // finished, interrupted, failed
	ExitCode       int                     `json:"exit_code"`
	Error          string                  `json:"error,omitempty"`
	StartedAt      time.Time               `json:"started_at,omitzero"`
	FinishedAt     time.Time               `json:"finished_at,omitzero"`
	ElapsedSeconds float64                 `json:"elapsed_seconds"`
	IngestSeconds  float64                 `json:"ingest_seconds,omitempty"`
	ScanSeconds    float64                 `json:"scan_seconds,omitempty"`
	Domains        int64                   `json:"domains"`
	Citizens       int64                   `json:"citizens"`
	Verdicts       map[string]verdictCount `json:"verdicts,omitempty"`
	Stats          *store.RunStats         `json:"stats,omitempty"`
}

// checkSummaryPath fails early, before a long scan, when --summary-json
// cannot be written: its directory must exist and take new files.
func checkSummaryPath(path string) error {
	f, err := os.CreateTemp(filepath.Dir(path), ".tlsready-summary-*")
	if err != nil {
		return usageErr("--summary-json %s: %v", path, err)
	}
	f.Close()
	return os.Remove(f.Name())
}

// writeSummaryJSON writes the summary of a scan (err: how it ended) to path,
// mode 0600, replacing it atomically: a monitor never reads half a file, nor
// an older run's summary after a scan that failed.
func writeSummaryJSON(path string, sum job.Summary, started time.Time, scanErr error) error {
	js := runSummaryJSON{Run: sum.Run.ID, Status: "finished", StartedAt: sum.Run.StartedAt, FinishedAt: sum.Run.FinishedAt,
		ElapsedSeconds: time.Since(started).Seconds(), IngestSeconds: sum.Ingest.Seconds(), ScanSeconds: sum.Scan.Seconds()}
	if scanErr != nil {
		js.Status, js.ExitCode, js.Error = "failed", exitFailed, scanErr.Error()
		var ee *exitError
		if errors.As(scanErr, &ee) {
			js.ExitCode = ee.code
			if ee.code == exitInterrupted {
				js.Status = "interrupted"
			}
		}
	} else {
		js.Verdicts = map[string]verdictCount{}
		for v, c := range sum.Verdicts {
			js.Verdicts[string(v)] = verdictCount{Domains: c[0], Citizens: c[1]}
			js.Domains += c[0]
			js.Citizens += c[1]
		}
		stats := sum.Run.Stats
		js.Stats = &stats
	}
	b, err := json.MarshalIndent(js, "", "  ")
	if err != nil {
		return err
	}
	f, err := os.CreateTemp(filepath.Dir(path), ".tlsready-summary-*") // mode 0600
	if err != nil {
		return fmt.Errorf("--summary-json: %w", err)
	}
	defer os.Remove(f.Name()) // after a successful rename: nothing
	if _, err := f.Write(append(b, '\n')); err != nil {
		f.Close()
		return fmt.Errorf("--summary-json: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("--summary-json: %w", err)
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return fmt.Errorf("--summary-json: %w", err)
	}
	return nil
}

// printJSON writes v as the --json output of status, diff and pin list
// does: indented by two spaces, then a newline.
func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
