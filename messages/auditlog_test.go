package messages

import (
	"errors"
	"testing"
	"time"
)

func TestAuditCursor(t *testing.T) {
	at := time.Date(2030, 1, 2, 3, 4, 5, 123456000, time.UTC)
	id := "0190b8f0-5d9e-7c41-a3c2-52b1f0e8d3a7"
	gotAt, gotID, ok := DecodeAuditCursor(EncodeAuditCursor(at, id))
	if !ok || !gotAt.Equal(at) || gotID != id {
		t.Fatalf("round trip: %v %q %v", gotAt, gotID, ok)
	}
	if at, id, ok := DecodeAuditCursor(""); !ok || !at.IsZero() || id != "" {
		t.Fatal("the empty cursor is not the first page")
	}
	for _, c := range []string{"x", "!!", EncodeAuditCursor(at, "not-a-uuid"), EncodeAuditCursor(at, "0190B8F0-5D9E-7C41-A3C2-52B1F0E8D3A7"),
		"YTE6eDox", // a1:x:1
	} {
		if _, _, ok := DecodeAuditCursor(c); ok {
			t.Errorf("DecodeAuditCursor(%q) accepted it", c)
		}
	}
}

func TestAuditListRequestValidate(t *testing.T) {
	now := time.Now()
	for _, tc := range []struct {
		name string
		r    AuditListRequest
		ok   bool
	}{
		{"empty", AuditListRequest{}, true},
		{"window", AuditListRequest{Since: now.Add(-time.Hour), Until: now}, true},
		{"backwards", AuditListRequest{Since: now, Until: now.Add(-time.Hour)}, false},
		{"empty window", AuditListRequest{Since: now, Until: now}, false},
		{"negative limit", AuditListRequest{Limit: -1}, false},
		{"bad cursor", AuditListRequest{Cursor: "nope"}, false},
	} {
		err := tc.r.Validate()
		if tc.ok != (err == nil) || (err != nil && !errors.Is(err, ErrInvalidRequest)) {
			t.Errorf("%s: %v", tc.name, err)
		}
	}
	if (AuditListRequest{}).PageLimit() != DefaultListLimit || (AuditListRequest{Limit: 10000}).PageLimit() != MaxListLimit {
		t.Error("PageLimit")
	}
}

func FuzzDecodeAuditCursor(f *testing.F) {
	f.Add(EncodeAuditCursor(time.Now(), "0190b8f0-5d9e-7c41-a3c2-52b1f0e8d3a7"))
	f.Add("")
	f.Add("YTE6eDox")
	f.Fuzz(func(t *testing.T, c string) {
		at, id, ok := DecodeAuditCursor(c)
		if ok && c != "" {
			if again := EncodeAuditCursor(at, id); again != c {
				if at2, id2, _ := DecodeAuditCursor(again); !at2.Equal(at) || id2 != id {
					t.Fatalf("%q decodes to %v %q, which encodes to %q", c, at, id, again)
				}
			}
		}
	})
}
