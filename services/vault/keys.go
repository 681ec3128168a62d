package vault

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/nexus-broker/nexus/services/vault/internal/keyring"
	"github.com/nexus-broker/nexus/services/vault/internal/store"
)

// keysInterval is how often every vault renews its row in vault.replicas
// and runs a re-seal pass. A vault whose row has not been renewed for three
// intervals no longer counts as running.
const keysInterval = time.Minute

// keysStore is what the key upkeep asks of the store.
type keysStore interface {
	Renew(ctx context.Context, replicaID string) error
	Reseal(ctx context.Context, log *slog.Logger) (store.ResealStats, error)
	PreviousKeysRemovable(ctx context.Context) (bool, error)
}

var _ keysStore = (*store.Store)(nil)

// runKeys keeps this vault's keys and the database in step, at once and
// then every interval until ctx ends: it renews the vault's row in
// vault.replicas (Start made it), re-seals what is not under ENCRYPTION_KEY in the current
// format (store.Reseal: resumable, and safe on every replica at once), and
// says "ENCRYPTION_KEYS_PREVIOUS may be removed" when the database, not this
// pass, shows nothing needs them: whichever vault sees it first says it.
func runKeys(ctx context.Context, st keysStore, replica string, keys *keyring.Keyring, every time.Duration, log *slog.Logger) {
	// Renewals on their own ticker: a long pass must not make this vault
	// look gone.
	done := make(chan struct{})
	defer func() { <-done }()
	go func() {
		defer close(done)
		renewals := time.NewTicker(every)
		defer renewals.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-renewals.C:
			}
			if err := st.Renew(ctx, replica); err != nil && ctx.Err() == nil {
				log.Warn("key upkeep: renewing this vault's row in vault.replicas failed", "err", err)
			}
		}
	}()
	t := time.NewTicker(every)
	defer t.Stop()
	var k keyUpkeep
	for {
		k.pass(ctx, st, keys, log)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// keyUpkeep remembers what was said, so that each change is said once.
type keyUpkeep struct {
	superseded bool
	removable  bool
}

func (k *keyUpkeep) pass(ctx context.Context, st keysStore, keys *keyring.Keyring, log *slog.Logger) {
	if !k.superseded {
		stats, err := st.Reseal(ctx, log)
		var se *store.SupersededKeyError
		switch {
		case errors.As(err, &se):
			k.superseded = true
			log.Warn("key rotation: another vault seals with a newer key; this one keeps sealing with ENCRYPTION_KEY until it is "+
				"restarted with the newer key, and re-seals nothing", "active_key_id", se.Active, "newest_key_id", se.Newest)
		case err != nil:
			if ctx.Err() == nil {
				log.Warn("key rotation: the re-seal pass stopped; the next one resumes it", "err", err, "rows", stats.Rows)
			}
		default:
			if stats.Rows > 0 || stats.Failed > 0 {
				log.Info("key rotation: values re-sealed under ENCRYPTION_KEY", "keys", keys, "rows", stats.Rows, "failed", stats.Failed)
			}
			if stats.Canary {
				log.Info("key rotation: nothing is sealed under another key any more; the canary is re-sealed under ENCRYPTION_KEY", "keys", keys)
			}
		}
	}
	if !keys.HasPrevious() {
		return
	}
	ok, err := st.PreviousKeysRemovable(ctx)
	if err != nil {
		if ctx.Err() == nil {
			log.Warn("key rotation: cannot tell whether ENCRYPTION_KEYS_PREVIOUS is still needed", "err", err)
		}
		return
	}
	switch {
	case ok && !k.removable:
		log.Info("key rotation complete: every sealed value and the canary are under ENCRYPTION_KEY and no running vault seals with "+
			"a previous key; ENCRYPTION_KEYS_PREVIOUS may be removed", "keys", keys)
	case !ok && k.removable:
		log.Warn("key rotation: values under a previous key, or a vault sealing with one, appeared again; keep ENCRYPTION_KEYS_PREVIOUS", "keys", keys)
	}
	k.removable = ok
}
