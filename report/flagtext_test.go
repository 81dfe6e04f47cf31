package report

import (
	"bytes"
	"html"
	"slices"
	"strings"
	"testing"

	"github.com/tlsready/tlsready/scanner/result"
)

// TestFlagTextComplete: every flag the scanner can set has a one-line meaning
// in every report language, and no meaning is kept for a flag that is gone.
func TestFlagTextComplete(t *testing.T) {
	t.Parallel()
	flags := result.AllFlags // complete: scanner/result's TestFlagGlossary
	for _, lang := range Languages {
		texts, ok := flagText[lang]
		if !ok {
			t.Errorf("no flag meanings for %q", lang)
			continue
		}
		for _, f := range flags {
			s := texts[f]
			if strings.TrimSpace(s) == "" {
				t.Errorf("%s: flag %q has no meaning", lang, f)
			}
			if strings.ContainsAny(s, "\r\n") {
				t.Errorf("%s: meaning of %q is not one line", lang, f)
			}
		}
		for f := range texts {
			if !slices.Contains(flags, f) {
				t.Errorf("%s: meaning for %q, which is not in result.AllFlags", lang, f)
			}
		}
		if strings.TrimSpace(otherFlagText[lang]) == "" {
			t.Errorf("%s: no meaning for the \"other\" row", lang)
		}
	}
	if FlagMeaning("ja_JP.UTF-8", result.FlagNoTLSRPT) != flagText["ja"][result.FlagNoTLSRPT] {
		t.Error("FlagMeaning does not normalise the language")
	}
	if FlagMeaning("en", "no-such-flag") != "" {
		t.Error("an unknown flag has a meaning")
	}
}

// TestFlagTableMeanings: the HTML flag table shows each flag's meaning in the
// page's language, and the flag word itself untranslated.
func TestFlagTableMeanings(t *testing.T) {
	t.Parallel()
	m := &Model{Flags: []FlagCount{{Flag: result.FlagNoTLSRPT}, {Flag: result.FlagCertSelfSigned}}}
	for _, lang := range Languages {
		var b bytes.Buffer
		if err := RenderHTML(&b, m, lang); err != nil {
			t.Fatal(err)
		}
		page := b.String()
		i := strings.Index(page, `id="flag-table"`)
		if i < 0 {
			t.Fatalf("%s: no flag table", lang)
		}
		table := page[i:]
		table = table[:strings.Index(table, "</table>")]
		for _, fc := range m.Flags {
			if !strings.Contains(table, `<span class="flag">`+fc.Flag+`</span>`) {
				t.Errorf("%s: flag %s not shown", lang, fc.Flag)
			}
			if !strings.Contains(table, html.EscapeString(flagText[lang][fc.Flag])) {
				t.Errorf("%s: meaning of %s not shown", lang, fc.Flag)
			}
		}
		if !strings.Contains(page, "docs/verdicts.md") {
			t.Errorf("%s: the report does not name docs/verdicts.md", lang)
		}
	}
}
