package apikey

import (
	"context"
	"testing"
)

func BenchmarkIdentify(b *testing.B) {
	s := NewSet().Add(Gateway, []string{"nexus-bench-key-0123456789abcdef01234567", "another-key-of-the-gateway-rotating-now"}).Add(Operator, []string{"operator-key-0123456789abcdef0123456789"})
	b.ReportAllocs()
	for b.Loop() {
		if _, ok := s.Identify("nexus-bench-key-0123456789abcdef01234567"); !ok {
			b.Fatal("not identified")
		}
	}
}

func BenchmarkCallerContext(b *testing.B) {
	c := Caller{Principal: Gateway, KeyID: "0123456789abcdef"}
	b.ReportAllocs()
	for b.Loop() {
		if CallerOf(WithCaller(context.Background(), c)).KeyID != c.KeyID {
			b.Fatal("lost the caller")
		}
	}
}
