package store

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// ErrLockUnknown is returned by ScanLocked when the system does not say
// whether the scan lock is held.
var ErrLockUnknown = errors.New("store: cannot tell whether a scan holds the lock")

// ScanLocked reports whether a scan holds the scan lock (LockScan) now, so
// that a run in status "running" can be told in progress or interrupted. It
// only looks, never takes the lock (a scan starting at that moment must not
// find it taken), and works on a read-only store: on SQLite it reads the
// flock table of /proc/locks (Linux) for "<path>.lock", on PostgreSQL the
// pg_locks view for the advisory lock, and for the live workers of a
// shared run (scan_workers: a worker that renewed its lease within the
// lease duration). ErrLockUnknown when neither can be read.
func (s *Store) ScanLocked(ctx context.Context) (bool, error) {
	if s.pg != nil {
		var held bool
		// A bigint advisory key is classid (high 32 bits), objid (low 32
		// bits), objsubid 1.
		err := s.r.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM pg_locks
			WHERE locktype = 'advisory' AND granted AND objsubid = 1
			AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
			AND classid::bigint = $1 AND objid::bigint = $2)`,
			pgLockKey>>32, pgLockKey&0xffffffff).Scan(&held)
		if err != nil {
			return false, fmt.Errorf("%w: %w", ErrLockUnknown, err)
		}
		if held {
			return true, nil
		}
		live, err := s.liveWorkers(ctx)
		if err != nil {
			return false, fmt.Errorf("%w: %w", ErrLockUnknown, err)
		}
		return live, nil
	}
	fi, err := os.Stat(s.path + ".lock")
	if errors.Is(err, os.ErrNotExist) {
		return false, nil // never locked
	}
	if err != nil {
		return false, fmt.Errorf("%w: %w", ErrLockUnknown, err)
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return false, ErrLockUnknown
	}
	return flockHeld(uint64(st.Dev), st.Ino)
}

// flockHeld reports whether /proc/locks lists a granted FLOCK lock on the
// file (dev, ino). Its lines read "1: FLOCK  ADVISORY  WRITE 6681
// fe:00:9999559 0 EOF": major and minor device numbers in hex, the inode in
// decimal; a waiter's line has "->" after the number.
func flockHeld(dev, ino uint64) (bool, error) {
	f, err := os.Open("/proc/locks")
	if err != nil {
		return false, fmt.Errorf("%w: %w", ErrLockUnknown, err)
	}
	defer f.Close()
	major := (dev>>8)&0xfff | (dev>>32)&^uint64(0xfff)
	minor := dev&0xff | (dev>>12)&^uint64(0xff)
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 6 || fields[1] != "FLOCK" {
			continue // POSIX and OFD locks, and waiters ("->")
		}
		id := strings.Split(fields[5], ":")
		if len(id) != 3 {
			continue
		}
		ma, err1 := strconv.ParseUint(id[0], 16, 64)
		mi, err2 := strconv.ParseUint(id[1], 16, 64)
		in, err3 := strconv.ParseUint(id[2], 10, 64)
		if err1 == nil && err2 == nil && err3 == nil && ma == major && mi == minor && in == ino {
			return true, nil
		}
	}
	if err := sc.Err(); err != nil {
		return false, fmt.Errorf("%w: %w", ErrLockUnknown, err)
	}
	return false, nil
}
