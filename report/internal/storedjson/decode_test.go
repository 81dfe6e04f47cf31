package storedjson

import (
	"encoding/json"
	"strings"
	"testing"
)

// skipSeeds are JSON texts, valid and not, for the tokenizer.
var skipSeeds = []string{
	`{}`, `null`, ` {"a":[1,-0,2.5e-3,1E+2,true,false,null,"s\u00e9\ud83d\ude00\/",{}]} `, `[]`, `"x"`, `1`, ``, `{`,
	`01`, `1.`, `-`, `tru`, `{"a" "b"}`, `{"a":1,}`, `[1,]`, `"\x"`, `"\u12"`, "\"a\x01\"", "\"\xff\"", `1 2`,
	strings.Repeat("[", 10000) + strings.Repeat("]", 10000), strings.Repeat("[", 10001) + strings.Repeat("]", 10001),
}

// checkSkip: skipping one document accepts exactly what json.Valid does.
func checkSkip(t *testing.T, data []byte) {
	d := Decoder{b: data}
	err := d.Skip()
	if err == nil {
		d.ws()
		if d.i != len(d.b) {
			err = ErrSyntax
		}
	}
	if valid := json.Valid(data); (err == nil) != valid {
		t.Fatalf("%q: skip error %v, json.Valid %v", data, err, valid)
	}
}

func TestSkip(t *testing.T) {
	t.Parallel()
	for _, s := range skipSeeds {
		checkSkip(t, []byte(s))
	}
}

// FuzzSkip: the tokenizer agrees with json.Valid.
func FuzzSkip(f *testing.F) {
	for _, s := range skipSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(checkSkip)
}

// TestFieldSetFind matches keys as encoding/json does: exactly first, then
// by simple case folding, the first field in order winning.
func TestFieldSetFind(t *testing.T) {
	t.Parallel()
	type fields struct {
		S      int `json:"s"`
		Long   int `json:"ſ"` // non-ASCII name: "s" and "S" fold to it too, after the exact "s"
		K      int `json:"k"`
		Upper  int `json:"AB"`
		Lower  int `json:"ab"`
		Kelvin int `json:"xK"`
	}
	fs := NewFieldSet("s", "ſ", "k", "AB", "ab", "xK")
	for _, key := range []string{"s", "S", "ſ", "k", "K", "K", "AB", "ab", "Ab", "aB", "xk", "XK", "xK", "x", ""} {
		data := `{"` + key + `":1}`
		var want fields
		if err := json.Unmarshal([]byte(data), &want); err != nil {
			t.Fatal(err)
		}
		wantF := -1
		for i, v := range []int{want.S, want.Long, want.K, want.Upper, want.Lower, want.Kelvin} {
			if v == 1 {
				wantF = i
			}
		}
		if got := fs.find([]byte(key)); got != wantF {
			t.Errorf("find(%q) = %d, encoding/json sets field %d", key, got, wantF)
		}
	}
	// An ASCII key folds onto a non-ASCII name.
	var only struct {
		Long int `json:"ſ"`
	}
	if err := json.Unmarshal([]byte(`{"s":1}`), &only); err != nil || only.Long != 1 {
		t.Fatalf("encoding/json: %v, %+v", err, only)
	}
	if got := NewFieldSet("ſ").find([]byte("s")); got != 0 {
		t.Errorf(`find("s") in {"ſ"} = %d, want 0`, got)
	}
	if got := NewFieldSet().find([]byte("a")); got != -1 {
		t.Errorf("empty set: find = %d", got)
	}
}
