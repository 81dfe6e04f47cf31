package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"time"

	"golang.org/x/term"

	"github.com/tlsready/tlsready/scanner/smtpprobe"
)

// probeWatch shows on stderr what `check` is waiting for, so a slow host
// (a tarpit greets after a minute of silence) does not look like a hang. It
// wraps the probes' dialer and watches each SMTP connection's traffic:
//
//   - not on a terminal: a line per MX IP as its connection starts, and a
//     "waiting for <ip> (<phase>)…" line once an IP has been silent for
//     waitNotice, repeated every waitRepeat;
//   - on a terminal: one spinner line naming the IP silent the longest,
//     cleared when no connection is open (before the result is printed).
//
// The phase is what the server owes us, told from what we last sent:
// the connection, the banner, the EHLO reply, the STARTTLS reply, the TLS
// handshake.
type probeWatch struct {
	inner smtpprobe.Dialer
	out   io.Writer
	tty   bool

	mu    sync.Mutex
	conns map[*watchedConn]struct{}
	drawn bool // a spinner line is on the screen
	spin  int
	stop  chan struct{}
	done  chan struct{}
}

const (
	waitNotice = 5 * time.Second  // the first "waiting for" line after this much silence
	waitRepeat = 15 * time.Second // then one every waitRepeat
)

// newProbeWatch starts watching; stop it with close. inner nil: net.Dialer.
func newProbeWatch(inner smtpprobe.Dialer, out io.Writer) *probeWatch {
	if inner == nil {
		inner = &net.Dialer{}
	}
	w := &probeWatch{inner: inner, out: out, conns: map[*watchedConn]struct{}{},
		stop: make(chan struct{}), done: make(chan struct{})}
	if f, ok := out.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		w.tty = true
	}
	tick := time.Second
	if w.tty {
		tick = 150 * time.Millisecond
	}
	go w.loop(tick)
	return w
}

func (w *probeWatch) close() {
	close(w.stop)
	<-w.done
	w.mu.Lock()
	w.clearLocked()
	w.mu.Unlock()
}

func (w *probeWatch) loop(tick time.Duration) {
	defer close(w.done)
	t := time.NewTicker(tick)
	defer t.Stop()
	for {
		select {
		case <-w.stop:
			return
		case now := <-t.C:
			w.mu.Lock()
			if w.tty {
				w.drawLocked(now)
			} else {
				w.noticeLocked(now)
			}
			w.mu.Unlock()
		}
	}
}

// noticeLocked writes a line for each connection silent for waitNotice, and
// again every waitRepeat.
func (w *probeWatch) noticeLocked(now time.Time) {
	for c := range w.conns {
		silent := now.Sub(c.last)
		if silent < waitNotice || now.Sub(c.noticed) < waitRepeat {
			continue
		}
		c.noticed = now
		fmt.Fprintf(w.out, "waiting for %s (%s)… %s\n", c.ip, c.phase, silent.Truncate(time.Second))
	}
}

var spinner = []rune("⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏")

// drawLocked redraws the spinner line: the connection silent the longest.
func (w *probeWatch) drawLocked(now time.Time) {
	var longest *watchedConn
	for c := range w.conns {
		if longest == nil || c.last.Before(longest.last) {
			longest = c
		}
	}
	if longest == nil {
		w.clearLocked()
		return
	}
	w.spin = (w.spin + 1) % len(spinner)
	more := ""
	if n := len(w.conns); n > 1 {
		more = fmt.Sprintf(" (+%d more)", n-1)
	}
	fmt.Fprintf(w.out, "\r\x1b[K%c waiting for %s (%s) %s%s", spinner[w.spin], longest.ip, longest.phase,
		now.Sub(longest.last).Truncate(time.Second), more)
	w.drawn = true
}

func (w *probeWatch) clearLocked() {
	if w.drawn {
		fmt.Fprint(w.out, "\r\x1b[K")
		w.drawn = false
	}
}

// DialContext implements smtpprobe.Dialer.
func (w *probeWatch) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	ip := addr
	if h, _, err := net.SplitHostPort(addr); err == nil {
		ip = h
	}
	c := &watchedConn{w: w, ip: ip, phase: "connect", last: time.Now()}
	w.mu.Lock()
	if !w.tty {
		fmt.Fprintf(w.out, "probing %s…\n", addr)
	}
	w.conns[c] = struct{}{}
	w.mu.Unlock()
	conn, err := w.inner.DialContext(ctx, network, addr)
	if err != nil {
		c.forget()
		return nil, err
	}
	c.Conn = conn
	c.set("banner")
	return c, nil
}

// watchedConn is one SMTP connection under watch.
type watchedConn struct {
	net.Conn
	w       *probeWatch
	ip      string
	phase   string    // what the server owes us; under w.mu
	last    time.Time // last traffic either way; under w.mu
	noticed time.Time // last "waiting for" line; under w.mu
	once    sync.Once
}

// set records traffic, and a new phase when phase is not "".
func (c *watchedConn) set(phase string) {
	c.w.mu.Lock()
	if phase != "" {
		c.phase = phase
	}
	c.last = time.Now()
	c.noticed = time.Time{}
	c.w.mu.Unlock()
}

func (c *watchedConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 {
		c.set("")
	}
	return n, err
}

func (c *watchedConn) Write(p []byte) (int, error) {
	c.set(phaseAfter(p))
	return c.Conn.Write(p)
}

func (c *watchedConn) Close() error {
	c.forget()
	return c.Conn.Close()
}

func (c *watchedConn) forget() {
	c.once.Do(func() {
		c.w.mu.Lock()
		delete(c.w.conns, c)
		if len(c.w.conns) == 0 {
			c.w.clearLocked()
		}
		c.w.mu.Unlock()
	})
}

// phaseAfter names what the server owes after the client wrote p: an SMTP
// command in clear, or a TLS record.
func phaseAfter(p []byte) string {
	if len(p) == 0 {
		return ""
	}
	if p[0] == 0x16 { // TLS handshake record (RFC 8446 §5.1)
		return "TLS handshake"
	}
	if p[0] >= 0x14 && p[0] <= 0x17 { // other TLS records: inside the session
		return "TLS"
	}
	verb, _, _ := bytes.Cut(p, []byte(" "))
	verb = bytes.TrimRight(bytes.ToUpper(verb), "\r\n")
	switch string(verb) {
	case "EHLO", "HELO":
		return string(verb) + " reply"
	case "STARTTLS":
		return "STARTTLS reply"
	case "QUIT":
		return "QUIT reply"
	}
	if len(verb) > 10 {
		verb = verb[:10]
	}
	return "reply to " + string(verb)
}
