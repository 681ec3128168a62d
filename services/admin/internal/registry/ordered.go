package registry

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
)

// The hosted form shows a credential schema's properties in the order the
// operator wrote them, so a merge patch over credential_schema must not
// reorder its keys the way a Go map does. orderedMerge is RFC 7396 over a
// representation that keeps object keys in document order: kept keys stay
// where they were, new ones follow in the patch's order.

// object is a JSON object that remembers its key order.
type object struct {
	keys []string
	vals map[string]any
}

// orderedMerge applies patch (a JSON merge patch) to target, keeping key order.
func orderedMerge(target, patch json.RawMessage) (json.RawMessage, error) {
	var t any
	if len(bytes.TrimSpace(target)) > 0 {
		var err error
		if t, err = decodeOrdered(target); err != nil {
			return nil, err
		}
	}
	p, err := decodeOrdered(patch)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	encodeOrdered(&buf, mergeOrdered(t, p))
	return buf.Bytes(), nil
}

func mergeOrdered(target, patch any) any {
	po, ok := patch.(*object)
	if !ok {
		return patch
	}
	to, ok := target.(*object)
	if !ok {
		to = &object{vals: map[string]any{}}
	}
	for _, k := range po.keys {
		v := po.vals[k]
		_, had := to.vals[k]
		switch {
		case v == nil && had:
			delete(to.vals, k)
			to.keys = removeKey(to.keys, k)
		case v == nil:
		default:
			if !had {
				to.keys = append(to.keys, k)
			}
			to.vals[k] = mergeOrdered(to.vals[k], v)
		}
	}
	return to
}

func removeKey(keys []string, k string) []string {
	out := keys[:0]
	for _, x := range keys {
		if x != k {
			out = append(out, x)
		}
	}
	return out
}

// decodeOrdered reads one JSON value, objects as *object.
func decodeOrdered(raw []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	v, err := decodeValue(dec)
	if err != nil {
		return nil, err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, errors.New("trailing data after JSON value")
	}
	return v, nil
}

func decodeValue(dec *json.Decoder) (any, error) {
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	switch d := tok.(type) {
	case json.Delim:
		if d == '[' {
			list := []any{}
			for dec.More() {
				v, err := decodeValue(dec)
				if err != nil {
					return nil, err
				}
				list = append(list, v)
			}
			_, err := dec.Token() // ]
			return list, err
		}
		o := &object{vals: map[string]any{}}
		for dec.More() {
			kt, err := dec.Token()
			if err != nil {
				return nil, err
			}
			k, _ := kt.(string)
			v, err := decodeValue(dec)
			if err != nil {
				return nil, err
			}
			if _, dup := o.vals[k]; !dup {
				o.keys = append(o.keys, k)
			}
			o.vals[k] = v
		}
		_, err := dec.Token() // }
		return o, err
	default:
		return tok, nil
	}
}

func encodeOrdered(buf *bytes.Buffer, v any) {
	switch x := v.(type) {
	case *object:
		buf.WriteByte('{')
		for i, k := range x.keys {
			if i > 0 {
				buf.WriteByte(',')
			}
			kb, _ := json.Marshal(k)
			buf.Write(kb)
			buf.WriteByte(':')
			encodeOrdered(buf, x.vals[k])
		}
		buf.WriteByte('}')
	case []any:
		buf.WriteByte('[')
		for i, item := range x {
			if i > 0 {
				buf.WriteByte(',')
			}
			encodeOrdered(buf, item)
		}
		buf.WriteByte(']')
	default:
		b, _ := json.Marshal(x) // string, json.Number, bool, nil
		buf.Write(b)
	}
}
