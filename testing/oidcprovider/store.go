package oidcprovider

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"sync"

	"github.com/ory/fosite"
	"github.com/ory/fosite/storage"
)

// store wraps fosite's in-memory storage (storage.MemoryStore) and adds three
// things fosite's example store lacks, without changing its token semantics:
//
//  1. Clients live in a map guarded by our own mutex, so AddClient may be
//     called while requests are being served (MemoryStore.Clients is an
//     exported map whose mutex is unexported).
//  2. All access to MemoryStore.RefreshTokens is serialised through rtMu.
//     MemoryStore.RevokeRefreshToken (called on rotation, reuse detection and
//     revocation) writes that map while holding only the request-ID mutex, which
//     races with GetRefreshTokenSession under `go test -race`.
//  3. It remembers the signature of every access and refresh token it stored
//     so that RevokeAllGrants can delete them, and it implements the
//     "omit refresh token on refresh" test mode (see keepOldRefreshToken).
type store struct {
	*storage.MemoryStore

	rtMu sync.RWMutex

	clientsMu sync.RWMutex
	clients   map[string]fosite.Client

	issuedMu      sync.Mutex
	refreshTokens map[string]struct{} // signatures
	accessTokens  map[string]struct{} // signatures
}

func newStore() *store {
	return &store{
		MemoryStore:   storage.NewMemoryStore(),
		clients:       map[string]fosite.Client{},
		refreshTokens: map[string]struct{}{},
		accessTokens:  map[string]struct{}{},
	}
}

type ctxKey int

// keepOldRefreshTokenKey marks a refresh_token grant whose response will have
// its refresh_token removed (Server.OmitRefreshTokenOnRefresh). For such a
// grant the store neither revokes the presented refresh token nor stores the
// newly minted one, so the presented token stays the live token of its family.
const keepOldRefreshTokenKey ctxKey = 1

func keepOldRefreshToken(ctx context.Context) bool {
	v, _ := ctx.Value(keepOldRefreshTokenKey).(bool)
	return v
}

func (s *store) setClient(c fosite.Client) {
	s.clientsMu.Lock()
	defer s.clientsMu.Unlock()
	s.clients[c.GetID()] = c
}

// GetClient overrides MemoryStore.GetClient (see point 1 above).
func (s *store) GetClient(_ context.Context, id string) (fosite.Client, error) {
	s.clientsMu.RLock()
	defer s.clientsMu.RUnlock()
	c, ok := s.clients[id]
	if !ok {
		return nil, fosite.ErrNotFound
	}
	return c, nil
}

func (s *store) CreateAccessTokenSession(ctx context.Context, signature string, req fosite.Requester) error {
	if err := s.MemoryStore.CreateAccessTokenSession(ctx, signature, req); err != nil {
		return err
	}
	s.issuedMu.Lock()
	s.accessTokens[signature] = struct{}{}
	s.issuedMu.Unlock()
	return nil
}

func (s *store) CreateRefreshTokenSession(ctx context.Context, signature, accessTokenSignature string, req fosite.Requester) error {
	if keepOldRefreshToken(ctx) {
		// The new refresh token is never handed out, so do not store it: the
		// presented one remains the family's current refresh token.
		return nil
	}
	s.rtMu.Lock()
	err := s.MemoryStore.CreateRefreshTokenSession(ctx, signature, accessTokenSignature, req)
	s.rtMu.Unlock()
	if err != nil {
		return err
	}
	s.issuedMu.Lock()
	s.refreshTokens[signature] = struct{}{}
	s.issuedMu.Unlock()
	return nil
}

func (s *store) GetRefreshTokenSession(ctx context.Context, signature string, session fosite.Session) (fosite.Requester, error) {
	s.rtMu.RLock()
	defer s.rtMu.RUnlock()
	return s.MemoryStore.GetRefreshTokenSession(ctx, signature, session)
}

func (s *store) DeleteRefreshTokenSession(ctx context.Context, signature string) error {
	s.rtMu.Lock()
	defer s.rtMu.Unlock()
	return s.MemoryStore.DeleteRefreshTokenSession(ctx, signature)
}

func (s *store) RevokeRefreshToken(ctx context.Context, requestID string) error {
	s.rtMu.Lock()
	defer s.rtMu.Unlock()
	return s.MemoryStore.RevokeRefreshToken(ctx, requestID)
}

// RotateRefreshToken mirrors MemoryStore.RotateRefreshToken (revoke the
// family's current refresh token and access token) but goes through the
// locked methods above, and is a no-op in "keep old refresh token" mode.
func (s *store) RotateRefreshToken(ctx context.Context, requestID string, _ string) error {
	if keepOldRefreshToken(ctx) {
		return nil
	}
	if err := s.RevokeRefreshToken(ctx, requestID); err != nil {
		return err
	}
	return s.RevokeAccessToken(ctx, requestID)
}

// revokeAll deletes every access and refresh token stored so far.
func (s *store) revokeAll(ctx context.Context) {
	s.issuedMu.Lock()
	refresh := s.refreshTokens
	access := s.accessTokens
	s.refreshTokens = map[string]struct{}{}
	s.accessTokens = map[string]struct{}{}
	s.issuedMu.Unlock()

	for sig := range refresh {
		_ = s.DeleteRefreshTokenSession(ctx, sig)
	}
	for sig := range access {
		_ = s.DeleteAccessTokenSession(ctx, sig)
	}
}

// sha256Hasher is the fosite.Hasher used for client secrets. fosite's default
// (bcrypt, cost 12) costs tens of milliseconds of CPU per token request, which
// would dominate tests and the benchmark; a test provider needs no
// password-grade hashing.
type sha256Hasher struct{}

var errSecretMismatch = errors.New("client secret mismatch")

func (sha256Hasher) Hash(_ context.Context, data []byte) ([]byte, error) {
	sum := sha256.Sum256(data)
	return []byte(hex.EncodeToString(sum[:])), nil
}

func (h sha256Hasher) Compare(ctx context.Context, hash, data []byte) error {
	want, _ := h.Hash(ctx, data)
	if subtle.ConstantTimeCompare(hash, want) != 1 {
		return errSecretMismatch
	}
	return nil
}
