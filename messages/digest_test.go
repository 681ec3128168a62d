package messages

import (
	"strings"
	"testing"
)

func TestSecretDigest(t *testing.T) {
	d, err := SecretDigest("s3cret-value")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(d, "s3cret-value") || !strings.HasPrefix(d, "pbkdf2-sha256$600000$") {
		t.Fatalf("digest %q", d)
	}
	again, _ := SecretDigest("s3cret-value")
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
		{"another scheme", strings.Replace(d, "pbkdf2-sha256", "pbkdf2-sha1", 1), "s3cret-value", false},
		{"too many iterations", strings.Replace(d, "$600000$", "$600000000$", 1), "s3cret-value", false},
		{"fewer iterations", strings.Replace(d, "$600000$", "$1$", 1), "s3cret-value", false},
	} {
		if got := MatchesSecretDigest(tc.digest, tc.secret); got != tc.want {
			t.Errorf("%s: MatchesSecretDigest = %v, want %v", tc.name, got, tc.want)
		}
	}
}
