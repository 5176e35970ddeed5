package main

import (
	"strings"
	"unicode/utf8"
)

// pad writes s into a fixed-width CK_UTF8CHAR field, blank-padded and not
// NUL-terminated (PKCS#11 v2.40 §3.2), cut at a character boundary when s
// is too long. The slot and token fields come padded from the service
// (service/server/slots.go) and are copied as they are; pad cuts only the
// module's own CK_INFO strings.
func pad(dst []byte, s string) {
	n := 0
	for n < len(s) {
		_, size := utf8.DecodeRuneInString(s[n:])
		if n+size > len(dst) {
			break
		}
		n += size
	}
	copy(dst, s[:n])
	for i := n; i < len(dst); i++ {
		dst[i] = ' '
	}
}

// unpad is a padded field without its blanks; pad gives the same bytes back.
func unpad(b []byte) string { return strings.TrimRight(string(b), " ") }
