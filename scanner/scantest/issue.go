package scantest

import (
	"runtime"
	"sync"
)

// IssueCertificates issues now every certificate the world's servers will
// present (issued lazily on first use otherwise), on every CPU: a benchmark
// calls it before it starts measuring, so that the simulated servers spend
// the measured time serving, as real ones would, not creating keys.
// Certificate errors are left for the handshake that needs the certificate.
func (n *Internet) IssueCertificates() {
	work := make(chan func())
	var wg sync.WaitGroup
	for range runtime.GOMAXPROCS(0) {
		wg.Go(func() {
			for f := range work {
				f()
			}
		})
	}
	if n.smtp != nil {
		for _, st := range n.smtp.hosts {
			if st.h.Down || st.h.Silent {
				continue
			}
			work <- func() { _, _ = st.certificate() }
			for name := range st.h.SNICerts {
				work <- func() { _, _ = st.certificateFor(name) }
			}
		}
	}
	if n.https != nil {
		for _, hi := range n.https.hosts {
			for _, st := range hi.byName {
				work <- func() { _, _ = st.certificate() }
			}
		}
	}
	close(work)
	wg.Wait()
}
