package secretdigest

import (
	"strings"
	"testing"
)

func TestDigest(t *testing.T) {
	d, err := New("s3cret-value")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(d, "s3cret-value") || !strings.HasPrefix(d, "argon2id$v=19$m=19456,t=2,p=1$") {
		t.Fatalf("digest %q", d)
	}
	again, _ := New("s3cret-value")
	if again == d {
		t.Error("two digests of one secret are equal: the salt is not fresh")
	}
	for _, tc := range []struct {
		name, digest, secret string
		want                 bool
	}{
		{"its secret", d, "s3cret-value", true},
		{"its secret, another salt", again, "s3cret-value", true},
		{"another secret", d, "s3cret-valuf", false},
		{"empty digest", "", "s3cret-value", false},
		{"another scheme", strings.Replace(d, "argon2id", "argon2i", 1), "s3cret-value", false},
		{"too much memory", strings.Replace(d, "m=19456", "m=9999999", 1), "s3cret-value", false},
		{"other parameters", strings.Replace(d, "t=2", "t=1", 1), "s3cret-value", false},
	} {
		if got := Matches(tc.digest, tc.secret); got != tc.want {
			t.Errorf("%s: Matches = %v, want %v", tc.name, got, tc.want)
		}
	}
}
