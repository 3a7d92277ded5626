package nhisync

import (
	"strings"
	"unicode"

	"golang.org/x/text/unicode/norm"
)

// The root package imports only the standard library, with this one
// exception: Unicode normalisation (golang.org/x/text/unicode/norm) is
// maintained by the Go team, is the copy the standard library vendors
// for itself, and correlation cannot be correct without it ("café" typed
// on a Mac is NFD, the same name from a web form NFC).

// NormalizeKey returns the correlation form of match values: each
// normalised by NormalizeMatchValue, joined by a separator no value can
// hold.
func NormalizeKey(values []string) string {
	// Sized once: a key is built for every proposal of a match field, and
	// normalising seldom changes a value's length.
	n := len(values)
	for _, v := range values {
		n += len(v)
	}
	var b strings.Builder
	b.Grow(n)
	for i, v := range values {
		if i > 0 {
			b.WriteByte(0x1f)
		}
		b.WriteString(NormalizeMatchValue(v))
	}
	return b.String()
}

// NormalizeMatchValue returns the correlation form of one match value:
// default-ignorable code points (zero-width space and joiners, soft
// hyphen, byte order mark, variation selectors…) removed, surrounding
// white space trimmed, lower-cased and in Unicode NFC. Two values people
// read as the same name meet on one golden record.
func NormalizeMatchValue(s string) string {
	if !needsNormalizing(s) {
		return s
	}
	s = strings.Map(func(r rune) rune {
		if IsDefaultIgnorable(r) || r == 0x1f {
			return -1
		}
		return r
	}, s)
	return norm.NFC.String(strings.ToLower(strings.TrimSpace(s)))
}

// needsNormalizing is the fast path: short ASCII lower-case text without
// surrounding space or control bytes is already normal.
func needsNormalizing(s string) bool {
	if s == "" {
		return false
	}
	if s[0] == ' ' || s[len(s)-1] == ' ' {
		return true
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x80 || c < 0x20 || c == 0x7f || ('A' <= c && c <= 'Z') {
			return true
		}
	}
	return false
}

// IsDefaultIgnorable reports whether r is a Default_Ignorable_Code_Point
// (Unicode DerivedCoreProperties): invisible in rendering, so it must not
// tell two names apart. The derivation is Other_Default_Ignorable_Code_Point
// + format characters (Cf) + variation selectors, less the white space and
// the prepended concatenation marks and Egyptian format controls, which
// are visible.
func IsDefaultIgnorable(r rune) bool {
	if r < 0xad {
		return false
	}
	switch {
	case unicode.Is(unicode.Other_Default_Ignorable_Code_Point, r), unicode.Is(unicode.Variation_Selector, r):
		return true
	case !unicode.Is(unicode.Cf, r):
		return false
	}
	switch {
	case r >= 0x600 && r <= 0x605, r == 0x6dd, r == 0x70f, r == 0x890, r == 0x891, r == 0x8e2,
		r == 0x110bd, r == 0x110cd, r >= 0xfff9 && r <= 0xfffb, r >= 0x13430 && r <= 0x1343f:
		return false
	}
	return true
}
