package report

import (
	"bytes"
	"go/ast"
	"go/parser"
	"go/token"
	"html"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/tlsready/tlsready/scanner/result"
)

// resultFlagValues parses scanner/result/result.go and returns the values of
// its Flag* constants.
func resultFlagValues(t *testing.T) []string {
	t.Helper()
	f, err := parser.ParseFile(token.NewFileSet(), "../scanner/result/result.go", nil, parser.SkipObjectResolution)
	if err != nil {
		t.Fatal(err)
	}
	var vals []string
	for _, d := range f.Decls {
		g, ok := d.(*ast.GenDecl)
		if !ok || g.Tok != token.CONST {
			continue
		}
		for _, s := range g.Specs {
			vs := s.(*ast.ValueSpec)
			for i, n := range vs.Names {
				if !strings.HasPrefix(n.Name, "Flag") {
					continue
				}
				if i >= len(vs.Values) {
					t.Fatalf("%s: no value", n.Name)
				}
				lit, ok := vs.Values[i].(*ast.BasicLit)
				if !ok || lit.Kind != token.STRING {
					t.Fatalf("%s: value is not a string literal", n.Name)
				}
				v, err := strconv.Unquote(lit.Value)
				if err != nil {
					t.Fatalf("%s: %v", n.Name, err)
				}
				vals = append(vals, v)
			}
		}
	}
	if len(vals) == 0 {
		t.Fatal("no Flag* constants found in ../scanner/result/result.go")
	}
	slices.Sort(vals)
	return vals
}

// TestFlagTextComplete: every flag the scanner can set has a one-line meaning
// in every report language, and no meaning is kept for a flag that is gone.
func TestFlagTextComplete(t *testing.T) {
	t.Parallel()
	flags := resultFlagValues(t)
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
				t.Errorf("%s: meaning for %q, which is not a result.Flag* constant", lang, f)
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
