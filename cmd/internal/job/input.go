package job

import (
	"cmp"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"strings"

	"github.com/tlsready/tlsready/scanner/register"
	"github.com/tlsready/tlsready/store"
)

// InputIdentity names the input so an interrupted run is resumed only with
// the same register: path, size and modification time. It also checks that
// the file can be opened, before anything else is done.
func InputIdentity(path string) (string, error) {
	if path == "-" {
		return "-", nil
	}
	f, err := register.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return "", mark(ErrNoRegister, fmt.Errorf("register %s: no such file", path))
	}
	if err != nil {
		return "", fmt.Errorf("--input: %w", err)
	}
	f.Close()
	fi, err := os.Stat(path)
	if err != nil {
		return "", fmt.Errorf("--input: %w", err)
	}
	return fmt.Sprintf("%s|%d|%d", path, fi.Size(), fi.ModTime().UnixNano()), nil
}

// contentIdentity names the register by its size and SHA-256, for a shared
// run: workers on several machines each read their own copy of it.
func contentIdentity(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("--input: %w", err)
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return "", fmt.Errorf("--input: %w", err)
	}
	return fmt.Sprintf("sha256:%x|%d", h.Sum(nil), n), nil
}

// DescribeInput tells a person what an input identity (InputIdentity) was,
// beside the current --input.
func DescribeInput(id, current string) string {
	if id == "-" {
		return "standard input"
	}
	// "path|size|mtime", where the path itself may hold "|".
	j := strings.LastIndexByte(id, '|')
	i := -1
	if j > 0 {
		i = strings.LastIndexByte(id[:j], '|')
	}
	if i < 0 {
		return id
	}
	path, size := id[:i], id[i+1:j]
	if path == current {
		return fmt.Sprintf("%s as it was then (%s bytes; the file has changed since)", path, size)
	}
	return fmt.Sprintf("%s (%s bytes)", path, size)
}

// ingest streams the register into the store in batches. Reading and
// normalising run in their own goroutine, overlapping the inserts.
func ingest(ctx context.Context, st *store.Store, runID int64, path string, keep bool, log *slog.Logger) (register.Stats, error) {
	f, err := register.Open(path)
	if err != nil {
		return register.Stats{}, fmt.Errorf("--input: %w", err)
	}
	defer f.Close()
	rd := register.NewReader(f, register.Options{KeepAddresses: keep, Duplicates: true})
	const batchSize = 20000
	batches := make(chan []store.Recipient, 2)
	free := make(chan []store.Recipient, 3)
	for range 3 {
		free <- make([]store.Recipient, 0, batchSize)
	}
	readErr := make(chan error, 1)
	stop := make(chan struct{})
	go func() {
		defer close(batches)
		batch := <-free
		for {
			e, err := rd.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				readErr <- fmt.Errorf("reading the register: %w", err)
				return
			}
			batch = append(batch, store.Recipient{ID: e.ID, Domain: e.Domain, Address: e.Address})
			if len(batch) == batchSize {
				select {
				case batches <- batch:
				case <-stop:
					return
				}
				select {
				case batch = <-free:
				case <-stop:
					return
				}
			}
		}
		if len(batch) > 0 {
			select {
			case batches <- batch:
			case <-stop:
			}
		}
		readErr <- nil
	}()
	var insertErr error
	for batch := range batches {
		if insertErr == nil && ctx.Err() == nil {
			insertErr = st.AddRecipients(ctx, runID, batch)
		}
		if insertErr != nil || ctx.Err() != nil {
			close(stop)
			for range batches { // let the reader finish
			}
			break
		}
		free <- batch[:0]
	}
	if insertErr != nil {
		return rd.Stats(), insertErr
	}
	if ctx.Err() != nil {
		return rd.Stats(), nil
	}
	if err := <-readErr; err != nil {
		return rd.Stats(), err
	}
	s := rd.Stats()
	log.Info("register read", "lines", s.Lines, "entries", s.OK, "bad_lines", s.Bad,
		"duplicate_ids", s.DuplicateIDs, "duplicate_addresses", s.DuplicateAddresses, "recipients", s.OK-s.DuplicateIDs)
	return s, nil
}

// SortedReasons returns the reasons of bad lines, most frequent first, then
// by name: the same order on every run.
func SortedReasons(byReason map[string]int64) []string {
	reasons := make([]string, 0, len(byReason))
	for r := range byReason {
		reasons = append(reasons, r)
	}
	slices.SortFunc(reasons, func(a, b string) int {
		return cmp.Or(cmp.Compare(byReason[b], byReason[a]), strings.Compare(a, b))
	})
	return reasons
}

// FormatDuplicates renders duplicate lines as "line 9 (first 5), 12 (first
// 3), ...": at most max (0: all kept).
func FormatDuplicates(ds []store.DuplicateLine, max int) string {
	if len(ds) == 0 {
		return ""
	}
	var b strings.Builder
	b.WriteString("line")
	if len(ds) > 1 {
		b.WriteString("s")
	}
	for i, d := range ds {
		if max > 0 && i == max {
			b.WriteString(", ...")
			break
		}
		if i > 0 {
			b.WriteString(",")
		}
		if d.First > 0 {
			fmt.Fprintf(&b, " %d (first %d)", d.Line, d.First)
		} else {
			fmt.Fprintf(&b, " %d", d.Line)
		}
	}
	return b.String()
}

// duplicateLines converts the register's duplicate lines for the run stats.
func duplicateLines(ds []register.Duplicate) []store.DuplicateLine {
	if len(ds) == 0 {
		return nil
	}
	out := make([]store.DuplicateLine, len(ds))
	for i, d := range ds {
		out[i] = store.DuplicateLine{Line: d.Line, First: d.First}
	}
	return out
}
