package resolve

import (
	"bufio"
	"bytes"
	"cmp"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"strings"
)

// maxResolvConf bounds how much of a resolv.conf is read.
const maxResolvConf = 64 << 10

// SystemServers returns the nameservers of a resolv.conf file as "ip:53"
// (IPv6 bracketed, zone kept), in file order, without duplicates.
// resolvConf "" means /etc/resolv.conf. It fails with ErrNoServers when the
// file names none.
func SystemServers(resolvConf string) ([]string, error) {
	resolvConf = cmp.Or(resolvConf, "/etc/resolv.conf")
	f, err := os.Open(resolvConf)
	if err != nil {
		return nil, fmt.Errorf("resolve: reading resolv.conf: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxResolvConf))
	if err != nil {
		return nil, fmt.Errorf("resolve: reading resolv.conf: %w", err)
	}
	servers := parseResolvConf(data)
	if len(servers) == 0 {
		return nil, fmt.Errorf("%w in %s", ErrNoServers, resolvConf)
	}
	return servers, nil
}

// parseResolvConf extracts the "nameserver" lines (resolv.conf(5)): comments
// start with '#' or ';'; entries that are not IP addresses are skipped.
func parseResolvConf(data []byte) []string {
	var out []string
	seen := map[string]bool{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 4096), maxResolvConf)
	for sc.Scan() {
		line := sc.Text()
		if i := strings.IndexAny(line, "#;"); i >= 0 {
			line = line[:i]
		}
		f := strings.Fields(line)
		if len(f) < 2 || f[0] != "nameserver" {
			continue
		}
		addr, err := netip.ParseAddr(f[1])
		if err != nil {
			continue
		}
		s := net.JoinHostPort(addr.String(), "53")
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}
