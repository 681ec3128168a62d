// Package secretdigest is the digest admin keeps of a provider's client
// secret (messages.Provider.ClientSecretDigest), so that an operator's
// tool holding a secret can tell whether it is the stored one without
// sending it (nexus-admin apply). The format, for any client:
//
//	argon2id$v=19$m=<KiB>,t=<passes>,p=<lanes>$<salt>$<key>
//
// salt (16 bytes) and key (32) in unpadded base64url. Argon2id with OWASP's
// parameters and a salt per secret, because operators read the digest:
// client secrets are usually random, but not every provider's are.
package secretdigest

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"fmt"
	"strings"

	"golang.org/x/crypto/argon2"
)

// The parameters New uses (OWASP: m=19 MiB, t=2, p=1).
const (
	memoryKiB = 19 * 1024
	passes    = 2
	lanes     = 1
	saltBytes = 16
	keyBytes  = 32
)

// New returns a digest of secret with a fresh salt.
func New(secret string) (string, error) {
	salt := make([]byte, saltBytes)
	if _, err := rand.Read(salt); err != nil {
		return "", err
	}
	return format(secret, salt, memoryKiB, passes, lanes), nil
}

func format(secret string, salt []byte, m uint32, t uint32, p uint8) string {
	key := argon2.IDKey([]byte(secret), salt, t, m, p, keyBytes)
	enc := base64.RawURLEncoding
	return fmt.Sprintf("argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, m, t, p, enc.EncodeToString(salt), enc.EncodeToString(key))
}

// Matches reports whether digest (made by New) is secret's. A digest it
// cannot read, or whose cost is beyond bounds (one from elsewhere must not
// make the check take minutes or gigabytes), matches nothing.
func Matches(digest, secret string) bool {
	parts := strings.Split(digest, "$")
	if len(parts) != 5 || parts[0] != "argon2id" || parts[1] != fmt.Sprintf("v=%d", argon2.Version) {
		return false
	}
	var (
		m, t uint32
		p    uint8
	)
	if n, err := fmt.Sscanf(parts[2], "m=%d,t=%d,p=%d", &m, &t, &p); err != nil || n != 3 ||
		m < 8 || m > 4*memoryKiB || t < 1 || t > 4*passes || p < 1 || p > 4 {
		return false
	}
	salt, err := base64.RawURLEncoding.DecodeString(parts[3])
	if err != nil || len(salt) == 0 {
		return false
	}
	return subtle.ConstantTimeCompare([]byte(format(secret, salt, m, t, p)), []byte(digest)) == 1
}
