package web

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/nexus-broker/nexus/messages"
	"github.com/nexus-broker/nexus/services/handshake/internal/flow"
	"github.com/nexus-broker/nexus/services/handshake/internal/returnurl"
	"github.com/nexus-broker/nexus/shared/natsx"
)

// How a consent ends, for both doors back to the app: the callback (back)
// and the hosted form (formBack).

// failTimeout bounds marking a connection failed. Like the vault calls
// before it, it does not end with the browser's request.
const failTimeout = 5 * time.Second

// backFunc sends the browser to the flow's return_url and counts the
// outcome on its door's counter.
type backFunc func(w http.ResponseWriter, r *http.Request, f flow.Flow, errCode string)

// vaultFailed ends a consent whose flow is spent but whose vault call (named
// by logMsg) failed. The contract code is the one a *messages.Error carries,
// or "unavailable" for any other error (the vault did not answer); the
// connection is marked failed with reason and the code, and the browser
// goes back with the code. The vault marks most
// failures itself; this covers the rest, and its fail only ever moves a
// pending connection.
func (h *Handler) vaultFailed(w http.ResponseWriter, r *http.Request, f flow.Flow, back backFunc, err error, reason, logMsg string) {
	code := string(messages.CodeUnavailable)
	var me *messages.Error
	if errors.As(err, &me) {
		code = string(me.Code)
	}
	h.fail(f, code, reason+" ("+code+")")
	h.d.Log.Warn(logMsg, "connection_id", f.ConnectionID, "code", code, "err", err)
	back(w, r, f, code)
}

// redirectBack sends the browser to the flow's return_url with
// connection_id and status (and error when errCode is set). It reports false
// when it showed an error page instead.
func (h *Handler) redirectBack(w http.ResponseWriter, r *http.Request, f flow.Flow, errCode string) bool {
	u, err := url.Parse(f.ReturnURL)
	if err != nil { // checked at begin; cannot happen
		h.d.Log.Error("stored return_url does not parse", "connection_id", f.ConnectionID)
		pageUnavailable.render(w)
		return false
	}
	params := url.Values{"connection_id": {f.ConnectionID}}
	switch {
	case errCode == "" && f.Confirmation != "":
		// The connection waits for the app to confirm it with this value.
		params.Set("status", string(messages.StatusPending))
		params.Set("confirmation", f.Confirmation)
	case errCode == "":
		params.Set("status", string(messages.StatusActive))
	default:
		params.Set("status", string(messages.StatusFailed))
		params.Set("error", errCode)
	}
	http.Redirect(w, r, returnurl.WithParams(u, params), http.StatusSeeOther)
	return true
}

// minConfirmWait is the least time an app gets to confirm a consent,
// however close to its link's expiry the person finished it.
const minConfirmWait = time.Minute

// confirmation makes, for a flow that requires confirmation, the one-time
// value the browser takes back to the app (kept in f.Confirmation) and what
// the vault keeps of it: its SHA-256 and until when it may be confirmed (the
// link's lifetime, and at least minConfirmWait). For any other flow it
// returns nil.
func (h *Handler) confirmation(f *flow.Flow) *messages.Confirmation {
	if !f.RequireConfirmation {
		return nil
	}
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	f.Confirmation = base64.RawURLEncoding.EncodeToString(b)
	sum := sha256.Sum256([]byte(f.Confirmation))
	by := f.ExpiresAt
	if min := h.d.Now().Add(minConfirmWait); by.Before(min) {
		by = min
	}
	return &messages.Confirmation{Hash: sum[:], By: by}
}

// fail marks the flow's connection failed at the vault. When the vault
// does not answer (a replica killed, NATS failing over) or answers
// unavailable (its database failing over), the browser has been told the
// consent failed while the connection is still pending: the mark is
// retried in the background until the link expires (after which the vault
// expires the connection itself), so what the app was told and what
// connections.get says agree as soon as a vault can mark it.
func (h *Handler) fail(f flow.Flow, code, message string) {
	reason := messages.Reason{Code: code, Message: message}
	ctx, cancel := context.WithTimeout(context.Background(), failTimeout)
	defer cancel()
	err := h.d.Vault.FailConnection(ctx, f.ConnectionID, reason)
	if err == nil {
		return
	}
	h.d.Log.Warn("marking the connection failed did not work", "connection_id", f.ConnectionID, "reason", code, "err", err)
	if retryable(err) {
		h.retries.start(func(ctx context.Context) { h.retryFail(ctx, f, reason) })
	}
}

// retryable reports whether a vault that failed to mark a connection may
// do it later: it did not answer, or answered unavailable.
func retryable(err error) bool {
	return errors.Is(err, natsx.ErrNoAnswer) || errors.Is(err, messages.ErrUnavailable)
}

// Backoff of the background retries of fail.
const (
	failRetryBase = time.Second
	failRetryMax  = 30 * time.Second
)

// retryFail marks f's connection failed, retrying while the vault does not
// answer or answers unavailable, until the link expires or ctx ends.
func (h *Handler) retryFail(ctx context.Context, f flow.Flow, reason messages.Reason) {
	for d := failRetryBase; h.d.Now().Before(f.ExpiresAt); d = min(2*d, failRetryMax) {
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		cctx, cancel := context.WithTimeout(ctx, failTimeout)
		err := h.d.Vault.FailConnection(cctx, f.ConnectionID, reason)
		cancel()
		switch {
		case err == nil:
			h.d.Log.Info("connection marked failed after the vault came back", "connection_id", f.ConnectionID, "reason", reason.Code)
			return
		case !retryable(err):
			h.d.Log.Warn("marking the connection failed did not work", "connection_id", f.ConnectionID, "reason", reason.Code, "err", err)
			return
		}
	}
}

// background runs the Handler's goroutines that outlive a request, and
// stops them on close.
type background struct {
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

func newBackground() *background {
	ctx, cancel := context.WithCancel(context.Background())
	return &background{ctx: ctx, cancel: cancel}
}

func (b *background) start(fn func(ctx context.Context)) {
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		fn(b.ctx)
	}()
}

// Close stops the background retries and waits for them to end.
func (h *Handler) Close() {
	h.retries.cancel()
	h.retries.wg.Wait()
}
