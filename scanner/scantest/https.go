package scantest

import (
	"cmp"
	"crypto/tls"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// PolicyPath is the only path the HTTPS hosts serve (RFC 8461 §3.3).
const PolicyPath = "/.well-known/mta-sts.txt"

// httpsServer serves every HTTPS host on one wildcard port.
type httpsServer struct {
	n     *Internet
	port  int
	hosts map[netip.Addr]*httpsIP
	srv   *http.Server
	t     tracker // handlers and connections
	serve chan error
	// onRequest, when set (by tests), is called as each request starts.
	onRequest atomic.Pointer[func()]
}

// httpsIP holds the hosts at one IP, by lower-case name.
type httpsIP struct {
	byName map[string]*httpsHostState
	first  *httpsHostState // for an unknown SNI
}

type httpsHostState struct {
	name    string
	h       HTTPSHost
	ca      *CA
	once    sync.Once
	cert    *tls.Certificate
	certErr error
}

func (st *httpsHostState) certificate() (*tls.Certificate, error) {
	st.once.Do(func() {
		c, err := CertFor(st.ca, st.h.Cert, st.name)
		st.cert, st.certErr = &c, err
	})
	return st.cert, st.certErr
}

func startHTTPS(n *Internet, hosts map[netip.Addr]map[string]HTTPSHost) (*httpsServer, error) {
	s := &httpsServer{n: n, hosts: make(map[netip.Addr]*httpsIP, len(hosts)), serve: make(chan error, 1)}
	for ip, m := range hosts {
		hi := &httpsIP{byName: make(map[string]*httpsHostState, len(m))}
		names := make([]string, 0, len(m))
		for name, h := range m {
			name = strings.TrimSuffix(strings.ToLower(name), ".")
			hi.byName[name] = &httpsHostState{name: name, h: h, ca: n.CA}
			names = append(names, name)
		}
		if len(names) == 0 {
			continue
		}
		slices.Sort(names)
		hi.first = hi.byName[names[0]]
		s.hosts[ip] = hi
	}
	ln, port, err := listenWildcard()
	if err != nil {
		return nil, err
	}
	s.port = port
	cfg := &tls.Config{
		GetCertificate: func(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
			n.stats.serverName(hello.ServerName)
			st := s.host(addrIP(hello.Conn.LocalAddr()), hello.ServerName)
			if st == nil {
				return nil, errors.New("scantest: no https host")
			}
			return st.certificate()
		},
		SessionTicketsDisabled: true,
		NextProtos:             []string{"http/1.1"},
	}
	s.srv = &http.Server{
		Handler:           http.HandlerFunc(s.handle),
		ReadHeaderTimeout: n.idle,
		IdleTimeout:       n.idle,
		WriteTimeout:      n.idle,
		ErrorLog:          log.New(io.Discard, "", 0),
	}
	fl := &filterListener{Listener: ln, s: s}
	s.t.enter()
	go func() {
		defer s.t.leave()
		s.serve <- s.srv.Serve(tls.NewListener(fl, cfg))
	}()
	return s, nil
}

// host selects the host for a local IP and SNI.
func (s *httpsServer) host(ip netip.Addr, sni string) *httpsHostState {
	hi := s.hosts[ip]
	if hi == nil {
		return nil
	}
	if st := hi.byName[strings.TrimSuffix(strings.ToLower(sni), ".")]; st != nil {
		return st
	}
	return hi.first
}

func (s *httpsServer) close() error {
	err := s.srv.Close()
	s.t.shutdown()
	if serr := <-s.serve; serr != nil && !errors.Is(serr, http.ErrServerClosed) {
		err = errors.Join(err, serr)
	}
	return err
}

func (s *httpsServer) handle(w http.ResponseWriter, r *http.Request) {
	if !s.t.enter() {
		return
	}
	defer s.t.leave()
	s.n.stats.httpsRequests.Add(1)
	if f := s.onRequest.Load(); f != nil {
		(*f)()
	}
	la, _ := r.Context().Value(http.LocalAddrContextKey).(net.Addr)
	sni := ""
	if r.TLS != nil {
		sni = r.TLS.ServerName
	}
	st := s.host(addrIP(la), sni)
	if st == nil || r.URL.Path != PolicyPath {
		http.NotFound(w, r)
		return
	}
	h := st.h
	if h.BodyDelay > 0 && !s.sleep(r, h.BodyDelay) {
		return
	}
	if h.Redirect != "" {
		status := h.Status
		status = cmp.Or(status, http.StatusMovedPermanently)
		w.Header().Set("Location", h.Redirect)
		w.WriteHeader(status)
		return
	}
	ct := h.ContentType
	ct = cmp.Or(ct, "text/plain")
	w.Header().Set("Content-Type", ct)
	status := h.Status
	status = cmp.Or(status, http.StatusOK)
	if h.HugeBody == 0 && h.DripBody == 0 {
		w.Header().Set("Content-Length", strconv.Itoa(len(h.Body)))
	}
	w.WriteHeader(status)
	if r.Method == http.MethodHead {
		return
	}
	flusher, _ := w.(http.Flusher)
	if h.DripBody > 0 {
		for i := range len(h.Body) {
			if i > 0 && !s.sleep(r, h.DripBody) {
				return
			}
			if _, err := io.WriteString(w, h.Body[i:i+1]); err != nil {
				return
			}
			if flusher != nil {
				flusher.Flush()
			}
		}
	} else if _, err := io.WriteString(w, h.Body); err != nil {
		return
	}
	if h.HugeBody > 0 {
		line := "#" + strings.Repeat(" filler", 1023/7) + "\n"
		chunk := strings.Repeat(line, (32<<10)/len(line))
		for left := h.HugeBody; left > 0; left -= len(chunk) {
			if _, err := io.WriteString(w, chunk[:min(left, len(chunk))]); err != nil {
				return
			}
		}
	}
}

// sleep waits d unless the request or the world ends first.
func (s *httpsServer) sleep(r *http.Request, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-r.Context().Done():
		return false
	case <-s.n.done:
		return false
	}
}

// filterListener drops connections from outside 127.0.0.0/8 and to IPs
// without hosts (reset), applies the RTT model and tracks connections.
type filterListener struct {
	net.Listener
	s *httpsServer
}

func (l *filterListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if !addrIP(c.RemoteAddr()).IsLoopback() {
			c.Close()
			continue
		}
		if l.s.hosts[addrIP(c.LocalAddr())] == nil {
			reset(c)
			continue
		}
		if !l.s.t.enter() {
			c.Close()
			return nil, net.ErrClosed
		}
		tc := &trackedConn{rttConn: newRTTConn(c, l.s.n), t: &l.s.t}
		if !l.s.t.addConn(tc) {
			tc.Close() // leaves the tracker
			return nil, net.ErrClosed
		}
		return tc, nil
	}
}

// trackedConn leaves the tracker once, when closed.
type trackedConn struct {
	*rttConn
	t    *tracker
	once sync.Once
}

func (c *trackedConn) Close() error {
	err := c.rttConn.Close()
	c.once.Do(func() {
		c.t.removeConn(c)
		c.t.leave()
	})
	return err
}
