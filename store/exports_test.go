package store

import (
	"context"
	"errors"
	"testing"
	"time"
)

// TestExportAuditTrail: an export is logged before it writes (recipients
// unknown), finished with its count; the trail reads back newest first,
// limited and counted since a time; a read-only store cannot log.
func TestExportAuditTrail(t *testing.T) {
	eachStore(t, func(t *testing.T, ctx context.Context, _ backend, s *Store) {
		if es, n, err := s.Exports(ctx, time.Time{}, 0); err != nil || len(es) != 0 || n != 0 {
			t.Fatalf("empty trail: %v %d %v", es, n, err)
		}
		var ids []int64
		for i := range 3 {
			id, err := s.LogExport(ctx, Export{At: t0.Add(time.Duration(i) * time.Hour), Kind: "recipients", RunID: 1,
				Verdicts: []string{"plaintext", "partial"}, OSUser: "alice", Host: "scan1", Output: "out.csv"})
			if err != nil {
				t.Fatal(err)
			}
			ids = append(ids, id)
		}
		if err := s.FinishExport(ctx, ids[0], 12); err != nil {
			t.Fatal(err)
		}
		if err := s.FinishExport(ctx, ids[2], 0); err != nil {
			t.Fatal(err)
		}
		if err := s.FinishExport(ctx, 999, 1); !errors.Is(err, ErrNotFound) {
			t.Errorf("finish an unknown export: %v", err)
		}
		es, n, err := s.Exports(ctx, t0.Add(time.Hour), 1)
		if err != nil {
			t.Fatal(err)
		}
		if n != 2 || len(es) != 1 || es[0].ID != ids[2] || es[0].Recipients == nil || *es[0].Recipients != 0 || !es[0].At.Equal(t0.Add(2*time.Hour)) {
			t.Errorf("since +1h, limit 1: %d %+v", n, es)
		}
		es, n, err = s.Exports(ctx, time.Time{}, 0)
		if err != nil {
			t.Fatal(err)
		}
		if n != 3 || len(es) != 3 || es[1].Recipients != nil || *es[2].Recipients != 12 || es[2].OSUser != "alice" ||
			es[2].Host != "scan1" || es[2].Output != "out.csv" || es[2].Kind != "recipients" || es[2].RunID != 1 ||
			len(es[2].Verdicts) != 2 || es[2].Verdicts[1] != "partial" {
			t.Errorf("trail: %d %+v", n, es)
		}
		s.Close()
		ro := mustOpen(t, s.Path(), Options{ReadOnly: true})
		if _, err := ro.LogExport(ctx, Export{At: t0}); !errors.Is(err, ErrReadOnly) {
			t.Errorf("read-only log: %v", err)
		}
	})
}

// TestReadOnlyOpensSchemaV3: a database no scan has migrated since the
// upgrade that added the audit trail (schema version 3) is still read by
// readers (serve, report, status), with an empty trail; a read-write open
// migrates it; a version below readableSince is still refused read-only.
func TestReadOnlyOpensSchemaV3(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	v3 := dir + "/v3.db"
	rawExec(t, v3, migrations[0], migrations[1], migrations[2], `PRAGMA user_version = 3`, `PRAGMA application_id = 1414288210`)
	ro, err := Open(ctx, v3, Options{ReadOnly: true})
	if err != nil {
		t.Fatalf("read-only open of a v3 database: %v", err)
	}
	if es, n, err := ro.Exports(ctx, time.Time{}, 0); err != nil || len(es) != 0 || n != 0 {
		t.Errorf("v3 trail: %v %d %v", es, n, err)
	}
	ro.Close()
	rw, err := Open(ctx, v3, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if v := storedSchemaVersion(t, rw); v != schemaVersion() {
		t.Errorf("schema version %d after a read-write open, want %d", v, schemaVersion())
	}
	if _, err := rw.LogExport(ctx, Export{At: t0, Kind: "recipients", RunID: 1, OSUser: "u", Host: "h", Output: "-"}); err != nil {
		t.Error(err)
	}
	rw.Close()
	v2 := dir + "/v2.db"
	rawExec(t, v2, migrations[0], migrations[1], `PRAGMA user_version = 2`, `PRAGMA application_id = 1414288210`)
	if _, err := Open(ctx, v2, Options{ReadOnly: true}); err == nil {
		t.Error("read-only open of a v2 database")
	}
}
