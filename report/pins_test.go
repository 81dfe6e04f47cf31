package report

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tlsready/tlsready/report/reporttest"
	"github.com/tlsready/tlsready/store"
)

// TestPinsSection: the report lists the gateway pins active when it is
// made (not expired ones), with the citizens of the run at each domain,
// escaped; without pins it says so.
func TestPinsSection(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "pins.db")
	if err := reporttest.Build(t.Context(), path, false); err != nil {
		t.Fatal(err)
	}
	st := openStore(t, path, store.Options{})
	opts := LoadOptions{Now: func() time.Time { return fixedNow }}
	m, err := Load(t.Context(), st, 0, opts)
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Pins) != 0 || m.PinCount != 0 || !strings.Contains(renderHTML(t, m, "en"), `id="pins-none"`) {
		t.Errorf("no pins: %+v", m.Pins)
	}
	for _, p := range []store.Pin{
		{Domain: "plain.example", Policy: "encrypt", Reason: reporttest.HostileScript, Until: fixedNow.Add(24 * time.Hour), OSUser: "alice", Host: "adm1"},
		{Domain: "xn--r8jz45g.example", Policy: "may", Reason: "partner", OSUser: "bob", Host: "adm2"},
		{Domain: "dane.example", Policy: "none", Until: fixedNow.Add(-time.Hour), OSUser: "bob", Host: "adm2"},
		{Domain: "elsewhere.example", Policy: "verify", OSUser: "bob", Host: "adm2"},
	} {
		p.At = fixedNow.Add(-48 * time.Hour)
		if _, _, err := st.SetPin(t.Context(), p); err != nil {
			t.Fatal(err)
		}
	}
	if m, err = Load(t.Context(), st, 0, opts); err != nil {
		t.Fatal(err)
	}
	if m.PinCount != 3 || len(m.Pins) != 3 {
		t.Fatalf("pins: %d %+v", m.PinCount, m.Pins)
	}
	byDomain := map[string]PinRow{}
	for _, p := range m.Pins {
		byDomain[p.Domain] = p
	}
	if p := byDomain["plain.example"]; p.Citizens != 25 || p.Policy != "encrypt" || p.SetBy != "alice" || !p.Until.Equal(fixedNow.Add(24*time.Hour)) {
		t.Errorf("plain.example: %+v", p)
	}
	if p := byDomain["xn--r8jz45g.example"]; p.Unicode != "例え.example" || p.Citizens != 1 {
		t.Errorf("IDN: %+v", p)
	}
	if p := byDomain["elsewhere.example"]; p.Citizens != 0 {
		t.Errorf("a domain not in the run: %+v", p)
	}
	for _, lang := range Languages {
		page := renderHTML(t, m, lang)
		if strings.Contains(page, reporttest.HostileScript) || !strings.Contains(page, "&lt;script&gt;alert(1)&lt;/script&gt;") {
			t.Errorf("%s: the reason is not shown escaped", lang)
		}
		sec := page[strings.Index(page, `<section id="pins">`):]
		sec = sec[:strings.Index(sec, "</section>")]
		if !strings.Contains(sec, `id="pins-table"`) || strings.Contains(sec, "dane.example") || !strings.Contains(sec, "例え.example") ||
			!strings.Contains(sec, ">encrypt<") || !strings.Contains(sec, "elsewhere.example") {
			t.Errorf("%s: pins section:\n%s", lang, sec)
		}
	}
}
