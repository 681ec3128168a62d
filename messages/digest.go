package messages

import (
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"strconv"
	"strings"
)

// The client secret digest (Provider.ClientSecretDigest):
// "pbkdf2-sha256$<iterations>$<salt>$<key>", salt and key in unpadded
// base64url. PBKDF2 with a random salt per secret and OWASP's iteration
// count, so that the digest, which operators read, costs a guesser as much
// as a password hash would: client secrets are usually random, but not
// every provider's are.
const (
	secretDigestScheme     = "pbkdf2-sha256"
	secretDigestIterations = 600_000
	secretDigestSaltBytes  = 16
	secretDigestKeyBytes   = 32
)

// SecretDigest returns a new digest of secret, with a fresh salt.
func SecretDigest(secret string) (string, error) {
	salt := make([]byte, secretDigestSaltBytes)
	if _, err := rand.Read(salt); err != nil {
		return "", err
	}
	return secretDigest(secret, salt, secretDigestIterations)
}

func secretDigest(secret string, salt []byte, iterations int) (string, error) {
	key, err := pbkdf2.Key(sha256.New, secret, salt, iterations, secretDigestKeyBytes)
	if err != nil {
		return "", err
	}
	enc := base64.RawURLEncoding
	return fmt.Sprintf("%s$%d$%s$%s", secretDigestScheme, iterations, enc.EncodeToString(salt), enc.EncodeToString(key)), nil
}

// MatchesSecretDigest reports whether digest (made by SecretDigest) is
// secret's. A digest it cannot read matches nothing.
func MatchesSecretDigest(digest, secret string) bool {
	parts := strings.Split(digest, "$")
	if len(parts) != 4 || parts[0] != secretDigestScheme {
		return false
	}
	iterations, err := strconv.Atoi(parts[1])
	// The count is bounded so that a digest from elsewhere cannot make the
	// check run for minutes.
	if err != nil || iterations < 1 || iterations > 10*secretDigestIterations {
		return false
	}
	salt, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil || len(salt) == 0 {
		return false
	}
	again, err := secretDigest(secret, salt, iterations)
	return err == nil && hmac.Equal([]byte(again), []byte(digest))
}
