package store

import (
	"context"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/tlsready/tlsready/scanner/mtasts"
)

func TestSTSIndex(t *testing.T) {
	eachStore(t, func(t *testing.T, ctx context.Context, _ backend, s *Store) {
		cached := mtasts.CachedPolicy{Domain: "cached.example", RecordID: "1", Policy: "version: STSv1\nmode: enforce\nmx: mx.cached.example\nmax_age: 86400\n",
			FetchedAt: t0, MaxAge: 86400 * time.Second}
		if err := s.PutSTSPolicy(ctx, cached); err != nil {
			t.Fatal(err)
		}
		x, err := s.STSIndex(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if x.Len() != 1 {
			t.Fatalf("Len %d, want 1", x.Len())
		}
		// A policy cached before the index: found, in any spelling.
		if got, err := x.GetSTSPolicy(ctx, "Cached.Example."); err != nil || !reflect.DeepEqual(got, cached) {
			t.Fatalf("cached before the index: %+v %v", got, err)
		}
		if _, err := x.GetSTSPolicy(ctx, "other.example"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("unknown domain: %v", err)
		}
		// Stored through the index: found, and in the database.
		put := mtasts.CachedPolicy{Domain: "New.Example", RecordID: "2", Policy: "version: STSv1\nmode: testing\nmx: mx.new.example\nmax_age: 600\n",
			FetchedAt: t0, MaxAge: 600 * time.Second}
		if err := x.PutSTSPolicy(ctx, put); err != nil {
			t.Fatal(err)
		}
		put.Domain = "new.example"
		if got, err := x.GetSTSPolicy(ctx, "new.example"); err != nil || !reflect.DeepEqual(got, put) {
			t.Fatalf("stored through the index: %+v %v", got, err)
		}
		if got, err := s.GetSTSPolicy(ctx, "new.example"); err != nil || !reflect.DeepEqual(got, put) {
			t.Fatalf("stored through the index, read from the store: %+v %v", got, err)
		}
		// Replaced through the store: the index reads the current row.
		cached.RecordID = "3"
		if err := s.PutSTSPolicy(ctx, cached); err != nil {
			t.Fatal(err)
		}
		if got, err := x.GetSTSPolicy(ctx, "cached.example"); err != nil || got.RecordID != "3" {
			t.Fatalf("replaced: %+v %v", got, err)
		}
		// A domain stored by another writer after the index was made is
		// not seen until the next index (documented).
		late := mtasts.CachedPolicy{Domain: "late.example", RecordID: "4", Policy: put.Policy, FetchedAt: t0, MaxAge: time.Hour}
		if err := s.PutSTSPolicy(ctx, late); err != nil {
			t.Fatal(err)
		}
		if _, err := x.GetSTSPolicy(ctx, "late.example"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("stored after the index: %v", err)
		}
		y, err := s.STSIndex(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if got, err := y.GetSTSPolicy(ctx, "late.example"); err != nil || got.RecordID != "4" || y.Len() != 3 {
			t.Fatalf("next index: %+v %v, %d domains", got, err, y.Len())
		}
		// A failed store leaves the index as it was.
		if err := x.PutSTSPolicy(ctx, mtasts.CachedPolicy{}); err == nil || x.Len() != 2 {
			t.Fatalf("stored a policy without a domain (%v), %d domains", err, x.Len())
		}
	})
}
