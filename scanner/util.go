package scanner

import (
	"encoding/hex"
)

func hexString(b []byte) string { return hex.EncodeToString(b) }

func unhex(s string) []byte {
	b, _ := hex.DecodeString(s)
	return b
}
