package report

import (
	"strconv"
	"time"
	"unicode/utf8"
)

// formatInt formats n with thousands separators: 1234567 -> "1,234,567".
func formatInt(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := n < 0
	if neg {
		s = s[1:]
	}
	out := make([]byte, 0, len(s)+len(s)/3+1)
	if neg {
		out = append(out, '-')
	}
	for i := range len(s) {
		if i > 0 && (len(s)-i)%3 == 0 {
			out = append(out, ',')
		}
		out = append(out, s[i])
	}
	return string(out)
}

// formatSigned formats n with an explicit sign: "+1,234", "-5", "±0".
func formatSigned(n int64) string {
	switch {
	case n > 0:
		return "+" + formatInt(n)
	case n == 0:
		return "±0"
	}
	return formatInt(n)
}

// formatPct formats part/total as a percentage with one decimal ("12.3%"),
// "0%" for an empty total.
func formatPct(part, total int64) string {
	if total <= 0 || part == 0 {
		return "0%"
	}
	p := 100 * float64(part) / float64(total)
	if p < 0.1 {
		return "<0.1%"
	}
	return strconv.FormatFloat(p, 'f', 1, 64) + "%"
}

// formatTime formats a time in UTC to the minute; "-" for the zero time.
func formatTime(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format("2006-01-02 15:04 UTC")
}

// formatDay formats a date in UTC; "-" for the zero time.
func formatDay(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format("2006-01-02")
}

// clip shortens s to at most n runes, marking the cut with "…", and replaces
// invalid UTF-8 and control characters (text from servers is untrusted).
func clip(s string, n int) string {
	out := make([]rune, 0, min(len(s), n+1))
	for _, r := range s {
		if len(out) == n {
			out = append(out, '…')
			break
		}
		if r == utf8.RuneError || r < 0x20 || r == 0x7f {
			r = '�'
		}
		out = append(out, r)
	}
	return string(out)
}
