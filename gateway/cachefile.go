package gateway

import (
	"bufio"
	"bytes"
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/tlsready/tlsready/scanner/result"
	"github.com/tlsready/tlsready/store"
)

// The cache file: a local copy of the cache that lets a node restarted
// while its store is unreachable answer from the data it had (LoadCacheFile).
// It holds domains and what the gateway answers for them (verdict, flags,
// scan time, MX names, MTA-STS match list, the previous observation's
// class) and the pins, no recipients. Text, versioned:
//
//	tlsready-gateway-cache 2
//	synced_at <RFC 3339> data_version <n> records <n> pins <n>
//	<domain> TAB <verdict> TAB <scanned, Unix ns> TAB <flags,> TAB <mx,> TAB <sts match> TAB <prev>
//	...
//	pin TAB <domain> TAB <policy> TAB <until, Unix ns; 0: none> TAB <set at, Unix ns> TAB <"user"> TAB <"host"> TAB <"reason">
//	...
//	end <records> <SHA-256 of every byte before this line, hex>
//
// The quoted fields are Go string literals (strconv.Quote). A version 1
// file (no prev field, no pins) is still read.
const (
	cacheMagic   = "tlsready-gateway-cache 2"
	cacheMagicV1 = "tlsready-gateway-cache 1"
)

// Bounds of the reader: far beyond a national register (a million domains
// take about 100 MB), small enough that a damaged file cannot exhaust
// memory.
const (
	maxCacheFileBytes = 4 << 30
	maxCacheLine      = 1 << 17 // the MX list is at most 64 KiB, the STS list 8 KiB
	maxCacheRecords   = 50_000_000
	maxCachePins      = 1_000_000
)

// ErrCacheFile is returned (wrapped) for a cache file that cannot be used.
var ErrCacheFile = errors.New("gateway: cache file")

// CacheFileInfo describes a cache file read by LoadCacheFile.
type CacheFileInfo struct {
	SyncedAt    time.Time // when the cache it was written from last held everything the store had
	DataVersion int64
	Records     int
	Pins        int
}

// WriteCacheFile writes the cache to path atomically (a temporary file in
// the same directory, synced, then renamed), mode 0600. It returns
// ErrNotReady before the first load.
func (s *Server) WriteCacheFile(path string) error {
	sn := s.snap.Load()
	if sn == nil || sn.base == nil {
		return ErrNotReady
	}
	synced := time.Unix(0, s.syncedAt.Load()).UTC()
	dir, base := filepath.Split(path)
	dir = cmp.Or(dir, ".")
	f, err := os.CreateTemp(dir, "."+base+".tmp*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name()) // after the rename: nothing
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return err
	}
	h := sha256.New()
	bw := bufio.NewWriterSize(io.MultiWriter(f, h), 1<<16)
	n := 0
	pins := slices.Sorted(maps.Keys(sn.pins))
	fmt.Fprintf(bw, "%s\nsynced_at %s data_version %d records %d pins %d\n", cacheMagic, synced.Format(time.RFC3339Nano),
		sn.version, sn.len(), len(pins))
	var line []byte
	write := func(t *table, e *entry) {
		rec := t.record(e)
		line = appendCacheRecord(line[:0], rec)
		if line != nil {
			bw.Write(line)
			n++
		}
	}
	sn.delta.each(func(e *entry) {
		if e.verdict != tombstone {
			write(sn.delta, e)
		}
	})
	sn.base.each(func(e *entry) {
		if e.verdict != tombstone && sn.delta.find(sn.base.name(e)) == nil {
			write(sn.base, e)
		}
	})
	for _, d := range pins {
		bw.Write(appendCachePin(line[:0], sn.pins[d]))
	}
	if err := bw.Flush(); err != nil {
		f.Close()
		return err
	}
	fmt.Fprintf(f, "end %d %s\n", n, hex.EncodeToString(h.Sum(nil)))
	if n != sn.len() {
		f.Close()
		return fmt.Errorf("%w: %d of %d records written", ErrCacheFile, n, sn.len())
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}

// appendCacheRecord appends one record's line.
func appendCacheRecord(b []byte, rec record) []byte {
	b = append(b, rec.Domain...)
	b = append(b, '\t')
	b = append(b, rec.Verdict...)
	b = append(b, '\t')
	b = appendUnixNano(b, rec.ScannedAt)
	b = append(b, '\t')
	for i, f := range rec.Flags {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, f...)
	}
	b = append(b, '\t')
	b = append(b, rec.MX...)
	b = append(b, '\t')
	b = append(b, rec.STSMatch...)
	b = append(b, '\t')
	b = strconv.AppendUint(b, uint64(rec.Prev), 10)
	return append(b, '\n')
}

// appendUnixNano appends t in Unix nanoseconds; the zero time (no scan
// time, no expiry) is 0.
func appendUnixNano(b []byte, t time.Time) []byte {
	var ns int64
	if !t.IsZero() {
		ns = t.UnixNano()
	}
	return strconv.AppendInt(b, ns, 10)
}

// parseUnixNano reads what appendUnixNano wrote: 0 is the zero time, a
// negative number or none is not ok.
func parseUnixNano(s string) (time.Time, bool) {
	ns, err := strconv.ParseInt(s, 10, 64)
	if err != nil || ns < 0 {
		return time.Time{}, false
	}
	if ns == 0 {
		return time.Time{}, true
	}
	return time.Unix(0, ns).UTC(), true
}

// appendCachePin appends one pin's line.
func appendCachePin(b []byte, p store.Pin) []byte {
	b = append(b, "pin\t"...)
	b = append(b, p.Domain...)
	b = append(b, '\t')
	b = append(b, p.Policy...)
	b = append(b, '\t')
	b = appendUnixNano(b, p.Until)
	b = append(b, '\t')
	b = strconv.AppendInt(b, p.At.UnixNano(), 10)
	for _, s := range []string{p.OSUser, p.Host, p.Reason} {
		b = append(b, '\t')
		b = strconv.AppendQuoteToASCII(b, s)
	}
	return append(b, '\n')
}

// parseCachePin parses one pin line (without its newline).
func parseCachePin(line []byte) (store.Pin, error) {
	f := strings.Split(string(line), "\t")
	if len(f) != 8 || f[0] != "pin" {
		return store.Pin{}, errors.New("not a pin line")
	}
	var p store.Pin
	d, err := NormalizeDomain(f[1])
	if err != nil || d != f[1] {
		return store.Pin{}, fmt.Errorf("domain %q is not a lower-case A-label host name", f[1])
	}
	p.Domain = d
	if !ValidPinPolicy(f[2]) {
		return store.Pin{}, fmt.Errorf("pin policy %q", f[2])
	}
	p.Policy = f[2]
	var ok bool
	if p.Until, ok = parseUnixNano(f[3]); !ok {
		return store.Pin{}, fmt.Errorf("pin expiry %q", f[3])
	}
	at, err := strconv.ParseInt(f[4], 10, 64)
	if err != nil {
		return store.Pin{}, fmt.Errorf("pin time %q", f[4])
	}
	p.At = time.Unix(0, at).UTC()
	for i, dst := range []*string{&p.OSUser, &p.Host, &p.Reason} {
		if *dst, err = strconv.Unquote(f[5+i]); err != nil {
			return store.Pin{}, fmt.Errorf("pin field %d: %v", 6+i, err)
		}
	}
	return p, nil
}

// ReadCacheFile reads a cache file into a table, checking everything: the
// header, each line (a valid A-label domain once, one of the verdicts,
// flags and MX names without separators or control characters, an STS
// match list of valid names, as stsMatchOf makes them), the record count and
// the checksum. Reads are bounded (maxCacheFileBytes, maxCacheLine,
// maxCacheRecords).
func readCacheFile(r io.Reader) (*table, CacheFileInfo, error) {
	t, _, info, err := readCacheFilePins(r)
	return t, info, err
}

// readCacheFilePins is readCacheFile, and the file's pins.
func readCacheFilePins(r io.Reader) (*table, map[string]store.Pin, CacheFileInfo, error) {
	var info CacheFileInfo
	h := sha256.New()
	br := bufio.NewReaderSize(io.LimitReader(r, maxCacheFileBytes+1), 1<<16)
	var total int64
	readLine := func() ([]byte, error) {
		line, err := br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			return nil, fmt.Errorf("%w: line longer than %d bytes", ErrCacheFile, br.Size())
		}
		if err != nil {
			if errors.Is(err, io.EOF) {
				return nil, fmt.Errorf("%w: truncated", ErrCacheFile)
			}
			return nil, err
		}
		total += int64(len(line))
		if total > maxCacheFileBytes {
			return nil, fmt.Errorf("%w: larger than %d bytes", ErrCacheFile, int64(maxCacheFileBytes))
		}
		return line, nil
	}
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: %s", ErrCacheFile, fmt.Sprintf(format, a...))
	}
	line, err := readLine()
	if err != nil {
		return nil, nil, info, err
	}
	v1 := string(line) == cacheMagicV1+"\n"
	if !v1 && string(line) != cacheMagic+"\n" {
		return nil, nil, info, bad("not a tlsready gateway cache file (or another version)")
	}
	h.Write(line)
	if line, err = readLine(); err != nil {
		return nil, nil, info, err
	}
	h.Write(line)
	var synced string
	var declared, declaredPins int
	if v1 {
		_, err = fmt.Sscanf(string(line), "synced_at %s data_version %d records %d\n", &synced, &info.DataVersion, &declared)
	} else {
		_, err = fmt.Sscanf(string(line), "synced_at %s data_version %d records %d pins %d\n", &synced, &info.DataVersion, &declared, &declaredPins)
	}
	if err != nil {
		return nil, nil, info, bad("header: %v", err)
	}
	if info.SyncedAt, err = time.Parse(time.RFC3339Nano, synced); err != nil || declared < 0 || declared > maxCacheRecords ||
		declaredPins < 0 || declaredPins > maxCachePins || info.DataVersion < 0 {
		return nil, nil, info, bad("header %q", bytes.TrimSpace(line))
	}
	b := newBuilder(min(declared, 1<<20))
	seen := make(map[string]struct{}, min(declared, 1<<20))
	pins := map[string]store.Pin{}
	for {
		if line, err = readLine(); err != nil {
			return nil, nil, info, err
		}
		if bytes.HasPrefix(line, []byte("end ")) {
			break
		}
		h.Write(line)
		if info.Records >= declared {
			if info.Pins >= declaredPins {
				return nil, nil, info, bad("more records than the header's %d", declared)
			}
			p, err := parseCachePin(line[:len(line)-1])
			if err != nil {
				return nil, nil, info, bad("pin %d: %v", info.Pins+1, err)
			}
			if _, dup := pins[p.Domain]; dup {
				return nil, nil, info, bad("pin %d: %s twice", info.Pins+1, p.Domain)
			}
			pins[p.Domain] = p
			info.Pins++
			continue
		}
		rec, err := parseCacheRecord(line[:len(line)-1], v1)
		if err != nil {
			return nil, nil, info, bad("record %d: %v", info.Records+1, err)
		}
		if _, dup := seen[rec.Domain]; dup {
			return nil, nil, info, bad("record %d: %s twice", info.Records+1, rec.Domain)
		}
		seen[rec.Domain] = struct{}{}
		if !b.addRecord(rec) {
			return nil, nil, info, bad("record %d: %s cannot be cached", info.Records+1, rec.Domain)
		}
		info.Records++
	}
	want := fmt.Sprintf("end %d %s\n", info.Records, hex.EncodeToString(h.Sum(nil)))
	if info.Records != declared || info.Pins != declaredPins || string(line) != want {
		return nil, nil, info, bad("end line %q: the file is damaged or incomplete", bytes.TrimSpace(line))
	}
	if _, err := br.ReadByte(); !errors.Is(err, io.EOF) {
		return nil, nil, info, bad("data after the end line")
	}
	return b.finish(), pins, info, nil
}

// parseCacheRecord parses one line (without its newline).
// A version 1 line has no prev field.
func parseCacheRecord(line []byte, v1 bool) (record, error) {
	f := strings.Split(string(line), "\t")
	want := 7
	if v1 {
		want = 6
	}
	if len(f) != want {
		return record{}, fmt.Errorf("%d fields, want %d", len(f), want)
	}
	var rec record
	if !v1 {
		prev, err := strconv.ParseUint(f[6], 10, 8)
		if err != nil || prev > classDANE+1 {
			return record{}, fmt.Errorf("previous observation %q", f[6])
		}
		rec.Prev = uint8(prev)
	}
	d, err := NormalizeDomain(f[0])
	if err != nil || d != f[0] {
		return record{}, fmt.Errorf("domain %q is not a lower-case A-label host name", f[0])
	}
	rec.Domain = d
	rec.Verdict = result.Verdict(f[1])
	if rec.Verdict.Rank() >= len(result.Verdicts) {
		return record{}, fmt.Errorf("verdict %q", f[1])
	}
	var ok bool
	if rec.ScannedAt, ok = parseUnixNano(f[2]); !ok {
		return record{}, fmt.Errorf("scan time %q", f[2])
	}
	if f[3] != "" {
		rec.Flags = strings.Split(f[3], ",")
		for _, fl := range rec.Flags {
			if !plainToken(fl) {
				return record{}, fmt.Errorf("flag %q", fl)
			}
		}
	}
	if len(f[4]) > 65535 {
		return record{}, errors.New("MX list too long")
	}
	if f[4] != "" {
		for _, mx := range strings.Split(f[4], ",") {
			if !plainToken(mx) {
				return record{}, fmt.Errorf("MX name %q", mx)
			}
		}
		rec.MX = f[4]
	}
	if f[5] != "" {
		// What Postfix reads after "match=": only names stsMatchOf makes.
		var pats []string
		for _, p := range strings.Split(f[5], ":") {
			if rest, ok := strings.CutPrefix(p, "."); ok {
				p = "*." + rest
			}
			pats = append(pats, p)
		}
		if stsMatchOf("enforce", pats) != f[5] {
			return record{}, fmt.Errorf("MTA-STS match list %q", f[5])
		}
		rec.STSMatch = f[5]
	}
	return rec, nil
}

// plainToken: non-empty printable ASCII without spaces, commas, colons or
// tabs.
func plainToken(s string) bool {
	if s == "" || len(s) > 255 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c > '~' || c == ',' || c == ':' {
			return false
		}
	}
	return true
}

// LoadCacheFile replaces an empty cache with the cache file at path, for a
// start while the store is unreachable: lookups answer from it, Status
// says FromCacheFile and SyncedAt is the file's, and the next successful
// Refresh replaces it with a full load from the store. It does nothing
// (and returns ErrCacheFileNotNeeded) once the cache holds data.
func (s *Server) LoadCacheFile(path string) (CacheFileInfo, error) {
	f, err := os.Open(path)
	if err != nil {
		return CacheFileInfo{}, err
	}
	defer f.Close()
	t, pins, info, err := readCacheFilePins(f)
	if err != nil {
		return info, err
	}
	s.reloadMu.Lock()
	defer s.reloadMu.Unlock()
	if s.snap.Load() != nil {
		return info, ErrCacheFileNotNeeded
	}
	s.snap.Store(&snapshot{base: t, version: info.DataVersion, loadedAt: s.cfg.Now(), newest: t.newest,
		count: t.len(), fromFile: true, pins: pins})
	if s.syncedAt.Load() == 0 {
		s.syncedAt.Store(info.SyncedAt.UnixNano())
	}
	s.m.reloads.WithLabelValues("cache-file").Inc()
	return info, nil
}

// ErrCacheFileNotNeeded: LoadCacheFile found the cache already loaded.
var ErrCacheFileNotNeeded = errors.New("gateway: the cache is already loaded")

// maybeWriteCacheFile writes Config.CacheFile when the cache holds data
// from the store it has not written yet, at most every CacheFileInterval.
// Watch calls it after successful refreshes.
func (s *Server) maybeWriteCacheFile() {
	sn := s.snap.Load()
	if s.cfg.CacheFile == "" || sn == nil || sn.fromFile {
		return
	}
	if !s.cacheWriteAt.IsZero() && (sn.version == s.cacheWritten || time.Since(s.cacheWriteAt) < s.cfg.CacheFileInterval) {
		return
	}
	start := time.Now()
	if err := s.WriteCacheFile(s.cfg.CacheFile); err != nil {
		s.m.cacheFileWrites.WithLabelValues("error").Inc()
		s.log.Warn("gateway: cache file not written", "path", s.cfg.CacheFile, "err", err)
		s.cacheWriteAt = start // retry after the interval, not every second
		return
	}
	s.m.cacheFileWrites.WithLabelValues("ok").Inc()
	s.cacheWritten, s.cacheWriteAt = sn.version, start
	s.log.Debug("gateway: cache file written", "path", s.cfg.CacheFile, "domains", sn.len(), "took", time.Since(start))
}

// fallBackToCacheFile loads Config.CacheFile, once, when a refresh failed
// before any data was loaded: the store stopped answering during the
// first load, or was never reachable (serve loads the file itself before
// it listens; this covers the rest).
func (s *Server) fallBackToCacheFile() {
	if s.cfg.CacheFile == "" || s.snap.Load() != nil || s.cacheTried.Swap(true) {
		return
	}
	info, err := s.LoadCacheFile(s.cfg.CacheFile)
	switch {
	case errors.Is(err, ErrCacheFileNotNeeded):
	case err != nil:
		s.log.Warn("gateway: no data from the store, and the cache file could not be loaded", "path", s.cfg.CacheFile, "err", err)
	default:
		s.log.Info("gateway cache loaded from the cache file", "path", s.cfg.CacheFile, "domains", info.Records,
			"synced_at", info.SyncedAt.Format(time.RFC3339))
	}
}
