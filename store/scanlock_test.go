package store

import (
	"context"
	"testing"
)

// TestScanLocked: a read-only store sees the scan lock another store holds,
// and its release, without taking it.
func TestScanLocked(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, be backend) {
		ctx := context.Background()
		db := be.newDB(t)
		w := mustOpen(t, db, Options{})
		ro := mustOpen(t, db, Options{ReadOnly: true})
		if held, err := ro.ScanLocked(ctx); err != nil || held {
			t.Fatalf("before LockScan: %v, %v", held, err)
		}
		unlock, err := w.LockScan()
		if err != nil {
			t.Fatal(err)
		}
		for range 2 { // looking does not take it
			if held, err := ro.ScanLocked(ctx); err != nil || !held {
				t.Fatalf("while locked: %v, %v", held, err)
			}
		}
		if err := unlock(); err != nil {
			t.Fatal(err)
		}
		if held, err := ro.ScanLocked(ctx); err != nil || held {
			t.Errorf("after unlock: %v, %v", held, err)
		}
		// Locking again works: ScanLocked left nothing behind.
		unlock, err = w.LockScan()
		if err != nil {
			t.Fatalf("LockScan after ScanLocked: %v", err)
		}
		unlock()
	})
}
