package natsx

import "github.com/nexus-broker/nexus/messages"

// decodeFast reads the bodies of the hot path (tokens.get and
// tokens.refresh: a messages.TokenRequest) without the general decoder,
// when they are in the plain form a Gateway sends: one flat object whose
// members are known names, each once, with string values of printable
// ASCII and no escapes, and min_valid_seconds a small non-negative integer.
// For any other body it reports false and leaves v untouched, and Decode
// reads it in full, so every refusal (and its message) is the general
// decoder's. FuzzDecodeFast holds it to that: what it accepts, the general
// decoder accepts with the same result.
func decodeFast(data []byte, v any) bool {
	r, ok := v.(*messages.TokenRequest)
	if !ok {
		return false
	}
	var out messages.TokenRequest
	var seen [3]bool
	var minValid int
	text := string(data) // the strings read are slices of one copy
	ok = flatObject(data, func(name []byte, from, to, num int, isNum bool) bool {
		var i int
		switch string(name) {
		case "connection_id":
			i, out.ConnectionID = 0, text[from:to]
		case "workspace_id":
			i, out.WorkspaceID = 1, text[from:to]
		case "min_valid_seconds":
			i, minValid = 2, num
		default:
			return false
		}
		if seen[i] || isNum != (i == 2) {
			return false
		}
		seen[i] = true
		return true
	})
	if !ok {
		return false
	}
	if seen[2] {
		n := minValid
		out.MinValidSeconds = &n
	}
	*r = out
	return true
}

// maxFastDigits keeps a fast-read integer far from overflow.
const maxFastDigits = 9

// flatObject scans data as a JSON object of plain members (see
// decodeFast), calling member for each in order with its name and either
// its string value's place in data (from, to) or its integer value; it
// reports false at the first thing outside that form, or when member does.
func flatObject(data []byte, member func(name []byte, from, to, num int, isNum bool) bool) bool {
	i := skipSpace(data, 0)
	if i >= len(data) || data[i] != '{' {
		return false
	}
	i = skipSpace(data, i+1)
	if i < len(data) && data[i] == '}' {
		return skipSpace(data, i+1) == len(data)
	}
	for {
		from, to, ok := plainString(data, i)
		if !ok {
			return false
		}
		name, next := data[from:to], to+1
		i = skipSpace(data, next)
		if i >= len(data) || data[i] != ':' {
			return false
		}
		i = skipSpace(data, i+1)
		if i >= len(data) {
			return false
		}
		if data[i] == '"' {
			from, to, ok := plainString(data, i)
			if !ok || !member(name, from, to, 0, false) {
				return false
			}
			i = to + 1
		} else {
			num, next, ok := smallInt(data, i)
			if !ok || !member(name, 0, 0, num, true) {
				return false
			}
			i = next
		}
		i = skipSpace(data, i)
		if i >= len(data) {
			return false
		}
		switch data[i] {
		case ',':
			i = skipSpace(data, i+1)
		case '}':
			return skipSpace(data, i+1) == len(data)
		default:
			return false
		}
	}
}

// skipSpace returns the index of the first byte at or after i that is not
// JSON whitespace.
func skipSpace(data []byte, i int) int {
	for i < len(data) && (data[i] == ' ' || data[i] == '\t' || data[i] == '\n' || data[i] == '\r') {
		i++
	}
	return i
}

// plainString reads a string at data[i] made only of printable ASCII
// without escapes, returning where its contents start and end (at the
// closing quote).
func plainString(data []byte, i int) (from, to int, ok bool) {
	if i >= len(data) || data[i] != '"' {
		return 0, 0, false
	}
	j := i + 1
	for j < len(data) && plainByte[data[j]] {
		j++
	}
	if j < len(data) && data[j] == '"' {
		return i + 1, j, true
	}
	return 0, 0, false
}

// plainByte is true for the bytes a plain string holds: printable ASCII
// but the quote and the backslash.
var plainByte = func() (t [256]bool) {
	for c := 0x20; c <= 0x7e; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// smallInt reads a JSON integer at data[i] of at most maxFastDigits digits,
// without sign, fraction or exponent.
func smallInt(data []byte, i int) (int, int, bool) {
	j, n := i, 0
	for j < len(data) && data[j] >= '0' && data[j] <= '9' {
		n = n*10 + int(data[j]-'0')
		j++
	}
	digits := j - i
	switch {
	case digits == 0 || digits > maxFastDigits:
		return 0, 0, false
	case digits > 1 && data[i] == '0': // a leading zero is not JSON
		return 0, 0, false
	case j < len(data) && (data[j] == '.' || data[j] == 'e' || data[j] == 'E'):
		return 0, 0, false
	}
	return n, j, true
}
