package smtpprobe

import (
	"bufio"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

// A scripted SMTP server on 127.0.0.1:0. Each accepted connection runs the
// next handler (the last one repeats), records the command lines it reads,
// and reports its handler's error on done.

type step func(s *srvSession) error

type smtpServer struct {
	port int
	done chan error

	mu   sync.Mutex
	cmds [][]string // per connection, in accept order
	sni  []string   // ServerName of each completed server handshake
}

type srvSession struct {
	srv  *smtpServer
	idx  int
	conn net.Conn
	br   *bufio.Reader
}

// srvTimeout bounds every server session, so a broken client cannot hang a test.
const srvTimeout = 10 * time.Second

func startServer(t testing.TB, scripts ...[]step) *smtpServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	srv := &smtpServer{port: ln.Addr().(*net.TCPAddr).Port, done: make(chan error, 64)}
	go func() {
		for i := 0; ; i++ {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			script := scripts[min(i, len(scripts)-1)]
			srv.mu.Lock()
			idx := len(srv.cmds)
			srv.cmds = append(srv.cmds, nil)
			srv.mu.Unlock()
			go func() {
				_ = c.SetDeadline(time.Now().Add(srvTimeout))
				s := &srvSession{srv: srv, idx: idx, conn: c, br: bufio.NewReader(c)}
				var err error
				for n, st := range script {
					if err = st(s); err != nil {
						err = fmt.Errorf("conn %d step %d: %w", idx, n, err)
						break
					}
				}
				s.conn.Close()
				srv.done <- err
			}()
		}
	}()
	return srv
}

// wait waits for n sessions to end and reports their errors.
func (srv *smtpServer) wait(t testing.TB, n int) {
	t.Helper()
	for range n {
		select {
		case err := <-srv.done:
			if err != nil {
				t.Errorf("server: %v", err)
			}
		case <-time.After(2 * srvTimeout):
			t.Fatal("server session did not end")
		}
	}
}

func (srv *smtpServer) commands(i int) []string {
	srv.mu.Lock()
	defer srv.mu.Unlock()
	if i >= len(srv.cmds) {
		return nil
	}
	return append([]string(nil), srv.cmds[i]...)
}

func (srv *smtpServer) allCommands() []string {
	srv.mu.Lock()
	defer srv.mu.Unlock()
	var all []string
	for _, c := range srv.cmds {
		all = append(all, c...)
	}
	return all
}

// next reads and records one command line.
func (s *srvSession) next() (string, error) {
	line, err := readLine(s.br, 4096)
	if err != nil {
		return "", err
	}
	s.srv.mu.Lock()
	s.srv.cmds[s.idx] = append(s.srv.cmds[s.idx], line)
	s.srv.mu.Unlock()
	return line, nil
}

// say sends reply lines.
func say(lines ...string) step {
	return func(s *srvSession) error {
		_, err := io.WriteString(s.conn, strings.Join(lines, "\r\n")+"\r\n")
		return err
	}
}

// raw sends bytes as they are; the client may hang up before reading them all.
func raw(b string) step {
	return func(s *srvSession) error {
		_, err := io.WriteString(s.conn, b)
		if isReset(err) {
			return nil
		}
		return err
	}
}

// expect reads a command that must start with prefix (case-insensitive).
func expect(prefix string) step {
	return func(s *srvSession) error {
		line, err := s.next()
		if err != nil {
			return fmt.Errorf("want %q: %w", prefix, err)
		}
		if !strings.HasPrefix(strings.ToUpper(line), strings.ToUpper(prefix)) {
			return fmt.Errorf("got %q, want %q", line, prefix)
		}
		return nil
	}
}

// bye answers the client's QUIT.
func bye() step {
	return func(s *srvSession) error {
		if err := expect("QUIT")(s); err != nil {
			return err
		}
		return say("221 2.0.0 Bye")(s)
	}
}

// drain records commands until the client closes the connection.
func drain() step {
	return func(s *srvSession) error {
		for {
			if _, err := s.next(); err != nil {
				if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || isReset(err) {
					return nil
				}
				return err
			}
		}
	}
}

// swallow reads and discards everything until the client closes.
func swallow() step {
	return func(s *srvSession) error {
		_, err := io.Copy(io.Discard, s.br)
		if isReset(err) {
			return nil
		}
		return err
	}
}

// tlsUp completes a server handshake and continues over TLS.
func tlsUp(cfg *tls.Config) step {
	return func(s *srvSession) error {
		tc := tls.Server(s.conn, cfg)
		if err := tc.Handshake(); err != nil {
			return fmt.Errorf("server handshake: %w", err)
		}
		s.srv.mu.Lock()
		s.srv.sni = append(s.srv.sni, tc.ConnectionState().ServerName)
		s.srv.mu.Unlock()
		s.conn = tc
		s.br = bufio.NewReader(tc)
		return nil
	}
}

// tlsFails expects the server handshake to fail.
func tlsFails(cfg *tls.Config) step {
	return func(s *srvSession) error {
		tc := tls.Server(s.conn, cfg)
		if err := tc.Handshake(); err == nil {
			return errors.New("server handshake succeeded, want failure")
		}
		return nil
	}
}

// writeForever writes line until the client goes away.
func writeForever(line string) step {
	return func(s *srvSession) error {
		b := []byte(strings.Repeat(line+"\r\n", 64))
		for {
			if _, err := s.conn.Write(b); err != nil {
				return nil
			}
		}
	}
}

// drip writes one byte of b per tick, then keeps dripping 'x' until the client goes away.
func drip(b string, every time.Duration) step {
	return func(s *srvSession) error {
		tick := time.NewTicker(every)
		defer tick.Stop()
		for i := 0; ; i++ {
			c := byte('x')
			if i < len(b) {
				c = b[i]
			}
			if _, err := s.conn.Write([]byte{c}); err != nil {
				return nil
			}
			<-tick.C
		}
	}
}

// Standard dialogue pieces.
var (
	greet    = say("220 mx.example.test ESMTP test")
	ehloTLS  = say("250-mx.example.test Hello", "250-PIPELINING", "250-SIZE 10240000", "250-starttls", "250 8BITMIME")
	ehloDone = say("250-mx.example.test Hello", "250 SIZE 10240000")
	go220    = say("220 2.0.0 Ready to start TLS")
)

// mta is a well-behaved STARTTLS server with cfg.
func mta(cfg *tls.Config) []step {
	return []step{greet, expect("EHLO tlsready.test"), ehloTLS, expect("STARTTLS"), go220,
		tlsUp(cfg), expect("EHLO tlsready.test"), ehloDone, bye()}
}

// upToSTARTTLS is the dialogue of mta up to and including the 220 to STARTTLS.
func upToSTARTTLS() []step {
	return []step{greet, expect("EHLO "), ehloTLS, expect("STARTTLS"), go220}
}

func serverTLS(certs ...tls.Certificate) *tls.Config {
	return &tls.Config{Certificates: certs}
}
