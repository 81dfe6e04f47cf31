package scanner

import (
	"encoding/hex"
	"strings"
)

func trimDot(s string) string { return strings.TrimSuffix(s, ".") }

func hexString(b []byte) string { return hex.EncodeToString(b) }

func unhex(s string) []byte {
	b, _ := hex.DecodeString(s)
	return b
}
