package store

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/google/uuid"
)

// RotateStats counts what a rotation re-sealed.
type RotateStats struct {
	Connections int // rows whose tokens were re-sealed
	Clients     int // client secrets re-sealed
	Failed      int // rows that could not be opened (sealed with a key not configured)
}

const rotateBatch = 500

// Rotate re-seals, under the active key, every sealed value that names
// another key: the canary, client secrets, connection tokens and static
// credentials. Each row is re-sealed in its own transaction under its row
// lock, so replicas may rotate at the same time and an interrupted rotation
// resumes on the next start.
// Rows that cannot be opened are logged (ids only) and counted, not fatal.
func (s *Store) Rotate(ctx context.Context, log *slog.Logger) (RotateStats, error) {
	var st RotateStats
	active := s.keys.ActiveID()
	if err := s.rotateCanary(ctx); err != nil {
		return st, err
	}
	// Client secrets.
	rows, err := s.pool.Query(ctx, `select provider_id from vault.provider_clients
		where client_secret is not null and substring(client_secret from 2 for 4) <> $1`, active[:])
	if err != nil {
		return st, fmt.Errorf("rotate: %w", err)
	}
	var providers []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return st, err
		}
		providers = append(providers, id)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return st, err
	}
	for _, id := range providers {
		done, err := s.rotateClient(ctx, id)
		switch {
		case err != nil:
			st.Failed++
			log.Error("key rotation: cannot re-seal a client secret", "provider_id", id, "err", err)
		case done:
			st.Clients++
		}
	}
	// Connections, in keyset batches.
	after := uuid.Nil
	for {
		rows, err := s.pool.Query(ctx, `select id from vault.connections where id > $1 and (
			(access_token is not null and substring(access_token from 2 for 4) <> $2) or
			(refresh_token is not null and substring(refresh_token from 2 for 4) <> $2) or
			(static_credentials is not null and substring(static_credentials from 2 for 4) <> $2))
			order by id limit $3`, after, active[:], rotateBatch)
		if err != nil {
			return st, fmt.Errorf("rotate: %w", err)
		}
		var ids []uuid.UUID
		for rows.Next() {
			var id uuid.UUID
			if err := rows.Scan(&id); err != nil {
				rows.Close()
				return st, err
			}
			ids = append(ids, id)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return st, err
		}
		for _, id := range ids {
			done, err := s.rotateConnection(ctx, id)
			switch {
			case err != nil:
				st.Failed++
				log.Error("key rotation: cannot re-seal a connection's secrets", "connection_id", id.String(), "err", err)
			case done:
				st.Connections++
			}
		}
		if len(ids) < rotateBatch {
			return st, nil
		}
		after = ids[len(ids)-1]
	}
}

func (s *Store) rotateCanary(ctx context.Context) error {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return err
	}
	defer rollback(ctx, tx)
	var sealed []byte
	if err := tx.QueryRow(ctx, "select sealed from vault.canary where id = 1 for update").Scan(&sealed); err != nil {
		return fmt.Errorf("rotate canary: %w", err)
	}
	if s.keys.SealedWithActive(sealed) {
		return nil
	}
	pt, err := s.keys.Open(canaryLoc, sealed)
	if err != nil {
		return fmt.Errorf("rotate canary: %w", err)
	}
	if sealed, err = s.keys.Seal(canaryLoc, pt); err != nil {
		return err
	}
	if _, err := tx.Exec(ctx, "update vault.canary set sealed = $1, rotated_at = now() where id = 1", sealed); err != nil {
		return err
	}
	return commit(ctx, tx)
}

// reseal returns sealed re-sealed under the active key, or sealed itself when
// it already is (or is NULL).
func (s *Store) reseal(loc string, sealed []byte) ([]byte, bool, error) {
	if sealed == nil || s.keys.SealedWithActive(sealed) {
		return sealed, false, nil
	}
	pt, err := s.keys.Open(loc, sealed)
	if err != nil {
		return nil, false, err
	}
	out, err := s.keys.Seal(loc, pt)
	return out, err == nil, err
}

func (s *Store) rotateClient(ctx context.Context, providerID string) (bool, error) {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return false, err
	}
	defer rollback(ctx, tx)
	var sealed []byte
	if err := tx.QueryRow(ctx, "select client_secret from vault.provider_clients where provider_id = $1 for update", providerID).Scan(&sealed); err != nil {
		return false, err
	}
	out, changed, err := s.reseal(clientSecretLoc(providerID), sealed)
	if err != nil || !changed {
		return false, err
	}
	if _, err := tx.Exec(ctx, "update vault.provider_clients set client_secret = $2 where provider_id = $1", providerID, out); err != nil {
		return false, err
	}
	return true, commit(ctx, tx)
}

func (s *Store) rotateConnection(ctx context.Context, id uuid.UUID) (bool, error) {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return false, err
	}
	defer rollback(ctx, tx)
	var access, refresh, static []byte
	if err := tx.QueryRow(ctx, "select access_token, refresh_token, static_credentials from vault.connections where id = $1 for update", id).Scan(&access, &refresh, &static); err != nil {
		return false, err
	}
	a, ca, err := s.reseal(accessTokenLoc(id.String()), access)
	if err != nil {
		return false, err
	}
	r, cr, err := s.reseal(refreshTokenLoc(id.String()), refresh)
	if err != nil {
		return false, err
	}
	st, cs, err := s.reseal(staticCredentialsLoc(id.String()), static)
	if err != nil {
		return false, err
	}
	if !ca && !cr && !cs {
		return false, nil
	}
	// token_version is not bumped: the secrets are the same, only their seal changed.
	if _, err := tx.Exec(ctx, "update vault.connections set access_token = $2, refresh_token = $3, static_credentials = $4 where id = $1", id, a, r, st); err != nil {
		return false, err
	}
	return true, commit(ctx, tx)
}
