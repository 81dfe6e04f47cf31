package result_test

import (
	"bufio"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/tlsready/tlsready/scanner/result"
)

// verdictsDoc is the project's written verdict contract, with the flag glossary.
const verdictsDoc = "../../docs/verdicts.md"

// flagConstants parses result.go and returns every Flag* constant: name -> value.
func flagConstants(t *testing.T) map[string]string {
	t.Helper()
	f, err := parser.ParseFile(token.NewFileSet(), "result.go", nil, parser.SkipObjectResolution)
	if err != nil {
		t.Fatal(err)
	}
	consts := map[string]string{}
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
				consts[n.Name] = v
			}
		}
	}
	if len(consts) == 0 {
		t.Fatal("no Flag* constants found in result.go")
	}
	return consts
}

// docSection returns the lines of the "## <title>" section of the document.
func docSection(t *testing.T, doc, title string) []string {
	t.Helper()
	var lines []string
	in, found := false, false
	sc := bufio.NewScanner(strings.NewReader(doc))
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "## ") {
			in = strings.TrimSpace(strings.TrimPrefix(line, "## ")) == title
			found = found || in
			continue
		}
		if in {
			lines = append(lines, line)
		}
	}
	if !found {
		t.Fatalf("%s: no section %q", verdictsDoc, "## "+title)
	}
	return lines
}

// firstCells returns the backticked words in the first column of a
// markdown table ("| `word` | ..."), in order.
var tableRow = regexp.MustCompile("^\\|\\s*`([^`]+)`\\s*\\|")

func firstCells(lines []string) []string {
	var words []string
	for _, l := range lines {
		if m := tableRow.FindStringSubmatch(strings.TrimSpace(l)); m != nil {
			words = append(words, m[1])
		}
	}
	return words
}

func readDoc(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(verdictsDoc)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestFlagGlossary keeps the flag glossary of docs/verdicts.md in step with
// the Flag* constants: each constant documented once, nothing documented that
// is not a constant.
func TestFlagGlossary(t *testing.T) {
	consts := flagConstants(t)
	documented := firstCells(docSection(t, readDoc(t), "Flag glossary"))
	if len(documented) == 0 {
		t.Fatalf("%s: the flag glossary has no rows", verdictsDoc)
	}

	values := map[string]string{} // value -> constant name
	for name, v := range consts {
		if other, dup := values[v]; dup {
			t.Errorf("constants %s and %s have the same value %q", name, other, v)
		}
		values[v] = name
	}
	// AllFlags, which others test against (the reports' meanings), lists
	// every constant once.
	for _, f := range result.AllFlags {
		if _, ok := values[f]; !ok {
			t.Errorf("AllFlags has %q, which is not a Flag* constant", f)
		}
	}
	if n := len(slices.Compact(slices.Sorted(slices.Values(result.AllFlags)))); n != len(result.AllFlags) || n != len(values) {
		t.Errorf("AllFlags: %d flags (%d distinct), %d Flag* constants", len(result.AllFlags), n, len(values))
	}
	seen := map[string]int{}
	for _, f := range documented {
		seen[f]++
	}

	var missing, unknown, dups []string
	for v, name := range values {
		if seen[v] == 0 {
			missing = append(missing, name+" ("+v+")")
		}
	}
	for f, n := range seen {
		if _, ok := values[f]; !ok {
			unknown = append(unknown, f)
		}
		if n > 1 {
			dups = append(dups, f)
		}
	}
	slices.Sort(missing)
	slices.Sort(unknown)
	slices.Sort(dups)
	if len(missing) > 0 {
		t.Errorf("flags not documented in the glossary of %s: %s", verdictsDoc, strings.Join(missing, ", "))
	}
	if len(unknown) > 0 {
		t.Errorf("flags documented in %s but not defined as Flag* constants in result.go: %s", verdictsDoc, strings.Join(unknown, ", "))
	}
	if len(dups) > 0 {
		t.Errorf("flags documented more than once in %s: %s", verdictsDoc, strings.Join(dups, ", "))
	}
}

// TestVerdictWords checks that docs/verdicts.md lists exactly the ten
// verdicts, with their exact words, best to worst.
func TestVerdictWords(t *testing.T) {
	if len(result.Verdicts) != 10 {
		t.Fatalf("%d verdicts, want 10", len(result.Verdicts))
	}
	doc := readDoc(t)
	var want []string
	for _, v := range result.Verdicts {
		want = append(want, string(v))
		if !strings.Contains(doc, "`"+string(v)+"`") {
			t.Errorf("%s does not name the verdict `%s`", verdictsDoc, v)
		}
	}
	got := firstCells(docSection(t, doc, "Verdicts"))
	if !slices.Equal(got, want) {
		t.Errorf("verdict table of %s lists %q, want exactly %q (best to worst)", verdictsDoc, got, want)
	}
}
