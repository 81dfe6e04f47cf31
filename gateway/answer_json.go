package gateway

import (
	"encoding/json"
	"strconv"
	"time"
	"unicode/utf8"
)

// MarshalJSON encodes the Answer exactly as encoding/json would encode its
// fields (TestAnswerJSONMatchesReflection), without reflection: the HTTP hot
// path spends its time in syscalls, not here.
func (a Answer) MarshalJSON() ([]byte, error) { return a.appendJSON(make([]byte, 0, 320)), nil }

func (a *Answer) appendJSON(b []byte) []byte {
	b = append(b, `{"domain":`...)
	b = appendJSONString(b, a.Domain)
	if a.DomainUnicode != "" {
		b = append(b, `,"domain_unicode":`...)
		b = appendJSONString(b, a.DomainUnicode)
	}
	b = append(b, `,"verdict":`...)
	b = appendJSONString(b, string(a.Verdict))
	b = append(b, `,"flags":`...)
	b = appendJSONList(b, a.Flags)
	if !a.ScannedAt.IsZero() {
		b = append(b, `,"scanned_at":`...)
		b = appendJSONTime(b, a.ScannedAt)
	}
	if !a.ValidUntil.IsZero() {
		b = append(b, `,"valid_until":`...)
		b = appendJSONTime(b, a.ValidUntil)
	}
	b = append(b, `,"stale":`...)
	b = strconv.AppendBool(b, a.Stale)
	b = append(b, `,"policy":`...)
	b = appendJSONString(b, a.Policy)
	if a.PendingPolicy != "" {
		b = append(b, `,"pending_policy":`...)
		b = appendJSONString(b, a.PendingPolicy)
	}
	if a.Pin != nil {
		pin, err := json.Marshal(a.Pin) // rare: reflection will do
		if err != nil {
			pin = []byte("null")
		}
		b = append(b, `,"pin":`...)
		b = append(b, pin...)
	}
	b = append(b, `,"mx":`...)
	b = appendJSONList(b, a.MX)
	if a.Live {
		b = append(b, `,"live":true`...)
	}
	if a.Error != "" {
		b = append(b, `,"error":`...)
		b = appendJSONString(b, a.Error)
	}
	return append(b, '}')
}

func appendJSONList(b []byte, list []string) []byte {
	if list == nil {
		return append(b, "null"...)
	}
	b = append(b, '[')
	for i, s := range list {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendJSONString(b, s)
	}
	return append(b, ']')
}

func appendJSONTime(b []byte, t time.Time) []byte {
	b = append(b, '"')
	b = t.AppendFormat(b, time.RFC3339Nano)
	return append(b, '"')
}

// appendJSONString appends s as a JSON string; anything beyond plain
// printable ASCII goes through encoding/json (same escaping rules).
func appendJSONString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c >= utf8.RuneSelf || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			q, err := json.Marshal(s)
			if err != nil { // cannot happen for a string
				return append(b, `""`...)
			}
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}
