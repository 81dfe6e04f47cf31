package gateway

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/netutil"
)

// MapName is the socketmap name the gateway answers
// (smtp_tls_policy_maps = socketmap:inet:127.0.0.1:8462:tlspolicy).
const MapName = "tlspolicy"

// MaxNetstring bounds a socketmap request (a lookup key is a domain name, far
// shorter). Postfix bounds replies to 100000 bytes; ours are much shorter.
const MaxNetstring = 10000

// Netstring errors.
var (
	ErrNetstring        = errors.New("gateway: malformed netstring")
	ErrNetstringTooLong = errors.New("gateway: netstring too long")
)

// readNetstring reads one netstring (http://cr.yp.to/proto/netstrings.txt):
// "<len>:<payload>," with len in decimal without leading zeros, at most max.
// buf is reused for the payload when large enough. It returns io.EOF when
// the stream ends cleanly before a netstring, io.ErrUnexpectedEOF inside one.
func readNetstring(r *bufio.Reader, max int, buf []byte) ([]byte, error) {
	n, digits := 0, 0
	for {
		c, err := r.ReadByte()
		if err != nil {
			if errors.Is(err, io.EOF) && digits > 0 {
				return nil, io.ErrUnexpectedEOF
			}
			return nil, err
		}
		if c == ':' {
			if digits == 0 {
				return nil, fmt.Errorf("%w: empty length", ErrNetstring)
			}
			break
		}
		if c < '0' || c > '9' {
			return nil, fmt.Errorf("%w: length is not a decimal number", ErrNetstring)
		}
		if digits == 1 && n == 0 {
			return nil, fmt.Errorf("%w: leading zero in length", ErrNetstring)
		}
		n = n*10 + int(c-'0')
		digits++
		if n > max {
			return nil, fmt.Errorf("%w: more than %d bytes", ErrNetstringTooLong, max)
		}
	}
	if cap(buf) < n {
		buf = make([]byte, n)
	}
	buf = buf[:n]
	if _, err := io.ReadFull(r, buf); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	c, err := r.ReadByte()
	if err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	if c != ',' {
		return nil, fmt.Errorf("%w: missing trailing comma", ErrNetstring)
	}
	return buf, nil
}

// appendNetstring appends s as a netstring.
func appendNetstring(b []byte, s ...string) []byte {
	n := 0
	for _, p := range s {
		n += len(p)
	}
	b = strconv.AppendInt(b, int64(n), 10)
	b = append(b, ':')
	for _, p := range s {
		b = append(b, p...)
	}
	return append(b, ',')
}

// Socketmap reply status words (socketmap_table(5)).
const (
	smOK       = "OK"
	smNotFound = "NOTFOUND"
	smTemp     = "TEMP"
	smPerm     = "PERM"
)

// socketmapReply answers one request payload "<name> <key>" with a status
// and data. It reads memory only (before the first cache load completes: one
// bounded store read, and NOTFOUND when that fails); it never scans.
func (s *Server) socketmapReply(req []byte) (status, data string) {
	sp := -1
	for i, c := range req {
		if c == ' ' {
			sp = i
			break
		}
	}
	if sp <= 0 {
		s.m.smPerm.Inc()
		return smPerm, "malformed request"
	}
	if string(req[:sp]) != MapName {
		s.m.smPerm.Inc()
		return smPerm, "unknown map name"
	}
	key := req[sp+1:]
	// Keys Postfix may send that name no single domain ("[host]:port",
	// ".parent.example", IP literals) fail normalisation: not found.
	d, err := NormalizeDomain(string(key))
	if err != nil {
		return s.smNotFound()
	}
	if p, ok := s.pin(d, s.cfg.Now()); ok { // a pin wins over any scan result
		s.m.lookupHit[srcSocketmap].Inc()
		s.m.smOK.Inc()
		s.countAnswer(srcSocketmapAnswer, p.Policy)
		return smOK, p.Policy
	}
	// From the store (before the first load), lookupFrom counted it as such.
	rec, ok, fromMemory, err := s.lookupFrom(context.Background(), d, srcSocketmap)
	if err != nil {
		// No data (the store did not answer before any cache load, or is
		// not open): not found, so Postfix applies its default level. A
		// TEMP would defer every citizen's mail for as long as the
		// database is out; the default level is what mail had before
		// tlsready.
		return s.smNotFound()
	}
	if !ok {
		if fromMemory {
			s.m.lookupMiss[srcSocketmap].Inc()
		}
		return s.smNotFound()
	}
	stale := s.stale(rec.ScannedAt, s.cfg.Now())
	p := s.policy(rec, stale)
	if fromMemory {
		switch {
		case stale:
			s.m.lookupStale[srcSocketmap].Inc()
		case p == "":
			s.m.lookupNoPolicy.Inc()
		default:
			s.m.lookupHit[srcSocketmap].Inc()
		}
	}
	if p == "" {
		return s.smNotFound()
	}
	s.m.smOK.Inc()
	s.countAnswer(srcSocketmapAnswer, p)
	return smOK, p
}

// smNotFound counts and returns a NOTFOUND reply.
func (s *Server) smNotFound() (status, data string) {
	s.m.smNotFound.Inc()
	s.countAnswer(srcSocketmapAnswer, "")
	return smNotFound, ""
}

// ServeSocketmap serves the Postfix socketmap protocol on l until ctx is done,
// then closes l, lets each connection finish the request it is answering,
// closes them, and returns nil. Connections are persistent (Postfix reuses
// them), pipelined requests are answered in order, and each connection is
// closed after IdleTimeout without a request or on a malformed request
// (answered PERM, since the stream cannot be resynchronised).
func (s *Server) ServeSocketmap(ctx context.Context, l net.Listener) error {
	l = netutil.LimitListener(l, s.cfg.MaxConns)
	var (
		mu     sync.Mutex
		conns  = map[net.Conn]struct{}{}
		closed atomic.Bool
		wg     sync.WaitGroup
	)
	stop := context.AfterFunc(ctx, func() {
		l.Close()
		mu.Lock()
		closed.Store(true)
		for c := range conns {
			c.SetReadDeadline(time.Unix(1, 0)) // wake idle readers; a reply in progress completes
		}
		mu.Unlock()
	})
	defer stop()
	var delay time.Duration
	for {
		c, err := l.Accept()
		if err != nil {
			if ctx.Err() != nil {
				break
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || errors.Is(err, os.ErrDeadlineExceeded) {
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				s.log.Warn("gateway: socketmap accept", "err", err)
				select {
				case <-time.After(delay):
				case <-ctx.Done():
				}
				continue
			}
			l.Close()
			wg.Wait()
			return fmt.Errorf("gateway: socketmap accept: %w", err)
		}
		delay = 0
		mu.Lock()
		if closed.Load() {
			mu.Unlock()
			c.Close()
			break
		}
		conns[c] = struct{}{}
		wg.Add(1)
		mu.Unlock()
		go func() {
			defer wg.Done()
			s.serveSocketmapConn(c, closed.Load)
			c.Close()
			mu.Lock()
			delete(conns, c)
			mu.Unlock()
		}()
	}
	wg.Wait()
	return nil
}

func (s *Server) serveSocketmapConn(c net.Conn, closing func() bool) {
	br := bufio.NewReaderSize(c, 4096)
	bw := bufio.NewWriterSize(c, 4096)
	var buf, out []byte
	for {
		if br.Buffered() == 0 {
			if bw.Buffered() > 0 {
				c.SetWriteDeadline(time.Now().Add(10 * time.Second))
				if bw.Flush() != nil {
					return
				}
			}
			c.SetReadDeadline(time.Now().Add(s.cfg.IdleTimeout))
			if closing() { // after setting the deadline: Shutdown's past deadline is not overwritten unseen
				return
			}
		}
		req, err := readNetstring(br, MaxNetstring, buf)
		if err != nil {
			if errors.Is(err, ErrNetstring) || errors.Is(err, ErrNetstringTooLong) {
				s.m.smPerm.Inc()
				out = appendNetstring(out[:0], smPerm, " ", "malformed netstring")
				bw.Write(out)
				c.SetWriteDeadline(time.Now().Add(10 * time.Second))
				bw.Flush()
			}
			return // EOF, idle timeout, shutdown, or a stream we cannot resynchronise
		}
		buf = req
		start := time.Now()
		status, data := s.socketmapReply(req)
		out = appendNetstring(out[:0], status, " ", data)
		bw.Write(out)
		s.m.smDuration.Observe(time.Since(start).Seconds())
	}
}
