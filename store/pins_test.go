package store

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/tlsready/tlsready/scanner/result"
)

// TestPins: set, replace, list and remove pins; every change is in the
// audit trail (who, when, why, old and new policy) and bumps the data
// version; an expired pin is still listed, inactive; a read-only store
// cannot change pins; Copy copies pins and trail.
func TestPins(t *testing.T) {
	eachStore(t, func(t *testing.T, ctx context.Context, b backend, s *Store) {
		v0, err := s.DataVersion(ctx)
		if err != nil {
			t.Fatal(err)
		}
		until := t0.Add(48 * time.Hour)
		if _, ok, err := s.SetPin(ctx, Pin{Domain: "Example.COM.", Policy: "may", Reason: "broken cert, ticket 7",
			Until: until, At: t0, OSUser: "alice", Host: "adm1"}); err != nil || ok {
			t.Fatalf("set: %v %v", ok, err)
		}
		old, ok, err := s.SetPin(ctx, Pin{Domain: "example.com", Policy: "encrypt", Reason: "fixed in part",
			At: t0.Add(time.Hour), OSUser: "bob", Host: "adm2"})
		if err != nil || !ok || old.Policy != "may" || !old.Until.Equal(until) || old.OSUser != "alice" {
			t.Fatalf("replace: %+v %v %v", old, ok, err)
		}
		if _, _, err := s.SetPin(ctx, Pin{Domain: "b.example", Policy: "dane-only", Until: t0.Add(time.Minute), At: t0, OSUser: "alice", Host: "adm1"}); err != nil {
			t.Fatal(err)
		}
		if _, _, err := s.SetPin(ctx, Pin{Domain: "c.example", At: t0}); err == nil {
			t.Error("a pin without a policy was set")
		}
		if v, _ := s.DataVersion(ctx); v != v0+3 {
			t.Errorf("data version %d after three pins, want %d", v, v0+3)
		}
		ps, err := s.Pins(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(ps) != 2 || ps[0].Domain != "b.example" || ps[1].Domain != "example.com" || ps[1].Policy != "encrypt" ||
			!ps[1].Until.IsZero() || ps[1].Reason != "fixed in part" || ps[1].OSUser != "bob" || !ps[1].At.Equal(t0.Add(time.Hour)) {
			t.Fatalf("pins: %+v", ps)
		}
		if ps[0].Active(t0.Add(time.Minute)) || !ps[0].Active(t0) || !ps[1].Active(t0.Add(1000*time.Hour)) {
			t.Error("Active: expiry not at Until")
		}
		if p, err := s.LookupPin(ctx, "B.Example."); err != nil || p.Policy != "dane-only" {
			t.Errorf("LookupPin: %+v %v", p, err)
		}
		if _, err := s.LookupPin(ctx, "nothing.example"); !errors.Is(err, ErrNotFound) {
			t.Errorf("LookupPin of no pin: %v", err)
		}
		if _, err := s.RemovePin(ctx, PinEvent{Domain: "nothing.example", At: t0}); !errors.Is(err, ErrNotFound) {
			t.Errorf("remove an unknown pin: %v", err)
		}
		if p, err := s.RemovePin(ctx, PinEvent{Domain: "EXAMPLE.com", At: t0.Add(2 * time.Hour), Reason: "fixed", OSUser: "carol", Host: "adm3"}); err != nil || p.Policy != "encrypt" {
			t.Fatalf("remove: %+v %v", p, err)
		}
		if v, _ := s.DataVersion(ctx); v != v0+4 {
			t.Errorf("data version %d after a removal, want %d", v, v0+4)
		}
		es, err := s.PinAudit(ctx, "example.com", 0)
		if err != nil {
			t.Fatal(err)
		}
		want := []PinEvent{
			{Action: "rm", OldPolicy: "encrypt", Reason: "fixed", OSUser: "carol", Host: "adm3", At: t0.Add(2 * time.Hour)},
			{Action: "set", OldPolicy: "may", NewPolicy: "encrypt", Reason: "fixed in part", OSUser: "bob", Host: "adm2", At: t0.Add(time.Hour)},
			{Action: "set", NewPolicy: "may", Reason: "broken cert, ticket 7", OSUser: "alice", Host: "adm1", At: t0, Until: until},
		}
		if len(es) != len(want) {
			t.Fatalf("audit: %+v", es)
		}
		for i, w := range want {
			e := es[i]
			if e.Action != w.Action || e.OldPolicy != w.OldPolicy || e.NewPolicy != w.NewPolicy || e.Reason != w.Reason ||
				e.OSUser != w.OSUser || e.Host != w.Host || !e.At.Equal(w.At) || !e.Until.Equal(w.Until) || e.Domain != "example.com" {
				t.Errorf("audit[%d] = %+v, want %+v", i, e, w)
			}
		}
		if es, _ := s.PinAudit(ctx, "", 1); len(es) != 1 || es[0].Action != "rm" {
			t.Errorf("audit, limit 1: %+v", es)
		}

		dst := b.open(t)
		if _, err := Copy(ctx, dst, s, nil); err != nil {
			t.Fatal(err)
		}
		if ps, err := dst.Pins(ctx); err != nil || len(ps) != 1 || ps[0].Domain != "b.example" || ps[0].Policy != "dane-only" {
			t.Errorf("copied pins: %+v %v", ps, err)
		}
		if es, err := dst.PinAudit(ctx, "", 0); err != nil || len(es) != 4 {
			t.Errorf("copied audit: %d %v", len(es), err)
		}
		if _, _, err := dst.SetPin(ctx, Pin{Domain: "d.example", Policy: "may", At: t0}); err != nil {
			t.Errorf("set a pin after a copy: %v", err) // the identity follows the copied ids
		}

		s.Close()
		ro := mustOpen(t, s.Path(), Options{ReadOnly: true})
		if _, _, err := ro.SetPin(ctx, Pin{Domain: "x.example", Policy: "may", At: t0}); !errors.Is(err, ErrReadOnly) {
			t.Errorf("read-only set: %v", err)
		}
		if _, err := ro.RemovePin(ctx, PinEvent{Domain: "b.example", At: t0}); !errors.Is(err, ErrReadOnly) {
			t.Errorf("read-only remove: %v", err)
		}
	})
}

// TestAnswersPrevious: each saved result keeps the verdict and MTA-STS
// policy of the one it replaced as the previous observation; a first
// result has none; a temporary failure that keeps the stored result keeps
// its previous observation too.
func TestAnswersPrevious(t *testing.T) {
	eachStore(t, func(t *testing.T, ctx context.Context, _ backend, s *Store) {
		r1 := res("a.example", result.Verified, t0, 0)
		mustSave(t, s, r1)
		a, err := s.LookupAnswer(ctx, "a.example")
		if err != nil || a.PrevVerdict != "" || a.Verdict != result.Verified {
			t.Fatalf("first: %+v %v", a, err)
		}
		r2 := res("a.example", result.MTASTS, t0.Add(time.Hour), 0)
		r2.MTASTS = &result.STSPolicy{Mode: "enforce", MX: []string{"mx.a.example"}}
		mustSave(t, s, r2)
		r3 := res("a.example", result.DANE, t0.Add(2*time.Hour), 0)
		mustSave(t, s, r3)
		a, err = s.LookupAnswer(ctx, "a.example")
		if err != nil || a.Verdict != result.DANE || a.PrevVerdict != result.MTASTS || a.PrevSTSMode != "enforce" || a.PrevSTSMX != "mx.a.example" {
			t.Fatalf("third: %+v %v", a, err)
		}
		mustSave(t, s, res("a.example", result.Unreachable, t0.Add(3*time.Hour), 0)) // kept: the stored one is fresh
		got, _, _ := answers(t, s, 0)
		if a := got["a.example"]; a.Verdict != result.DANE || a.PrevVerdict != result.MTASTS {
			t.Errorf("after a kept temporary failure: %+v", a)
		}
	})
}

// TestReadOnlyBeforePins: a database at the schema version before the
// pins (an older program's, not migrated since) is read by readers: no
// pins, answers without a previous observation; a read-write open
// migrates it, and the next result saved has one.
func TestReadOnlyBeforePins(t *testing.T) {
	eachStore(t, func(t *testing.T, ctx context.Context, _ backend, s *Store) {
		mustSave(t, s, res("a.example", result.Verified, t0, 0))
		for _, q := range []string{`DROP TABLE pins`, `DROP TABLE pin_audit`, `ALTER TABLE domain_answers DROP COLUMN prev_verdict`,
			`ALTER TABLE domain_answers DROP COLUMN prev_sts_mode`, `ALTER TABLE domain_answers DROP COLUMN prev_sts_mx`} {
			if _, err := s.w.ExecContext(ctx, q); err != nil {
				t.Fatal(err)
			}
		}
		setSchemaVersion(t, s, pinsVersion-1)
		path := s.Path()
		s.Close()

		ro := mustOpen(t, path, Options{ReadOnly: true})
		if ps, err := ro.Pins(ctx); err != nil || len(ps) != 0 {
			t.Errorf("pins before step 6: %v %v", ps, err)
		}
		if _, err := ro.LookupPin(ctx, "a.example"); !errors.Is(err, ErrNotFound) {
			t.Errorf("LookupPin before step 6: %v", err)
		}
		got, _, _ := answers(t, ro, 0)
		if a := got["a.example"]; a.Verdict != result.Verified || a.PrevVerdict != "" {
			t.Errorf("answer before step 6: %+v", a)
		}
		if a, err := ro.LookupAnswer(ctx, "a.example"); err != nil || a.Verdict != result.Verified || a.PrevVerdict != "" {
			t.Errorf("LookupAnswer before step 6: %+v %v", a, err)
		}

		rw := mustOpen(t, path, Options{})
		mustSave(t, rw, res("a.example", result.DANE, t0.Add(time.Hour), 0))
		if a, err := rw.LookupAnswer(ctx, "a.example"); err != nil || a.Verdict != result.DANE || a.PrevVerdict != result.Verified {
			t.Errorf("after migrating: %+v %v", a, err)
		}
	})
}
