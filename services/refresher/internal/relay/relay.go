// Package relay is the publishing half of the vault's transactional outbox:
// it leases unpublished lifecycle events from the vault, publishes each to
// JetStream with Nats-Msg-Id = the event id, and only after JetStream has
// acknowledged them tells the vault they are published.
//
// Delivery is at least once: a relay that dies after the claim leaves the
// events leased until the lease runs out, and one that dies after publishing
// but before the ack makes the next relay publish them again, which the
// stream's duplicate window drops (same Nats-Msg-Id).
package relay

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/nexus-broker/nexus/messages"
	"github.com/nexus-broker/nexus/services/refresher/internal/vaultapi"
)

// Outbox is what the relay asks of the vault.
type Outbox interface {
	ClaimOutbox(ctx context.Context, r messages.OutboxClaim) (messages.OutboxClaimReply, error)
	AckOutbox(ctx context.Context, ids []string) (int, error)
}

// Publisher publishes to JetStream (jetstream.JetStream).
type Publisher interface {
	PublishMsgAsync(m *nats.Msg, opts ...jetstream.PublishOpt) (jetstream.PubAckFuture, error)
}

var (
	_ Outbox    = (*vaultapi.Client)(nil)
	_ Publisher = (jetstream.JetStream)(nil)
)

// Hooks let tests stop the relay at the two points where a crash matters.
// An error from a hook abandons the batch exactly as a crash there would:
// nothing more is published or acknowledged.
type Hooks struct {
	// BeforePublish runs after a claim, before any of its events is published.
	BeforePublish func(ctx context.Context, events []messages.Event) error
	// BeforeAck runs after JetStream acknowledged the events, before the
	// vault is told.
	BeforeAck func(ctx context.Context, ids []string) error
}

// Config tunes the relay.
type Config struct {
	Owner          string
	Prefix         string        // subject prefix, "nexus" by default
	Limit          int           // events per claim (100)
	Lease          time.Duration // how long a claim keeps events from other relays (10s)
	PollInterval   time.Duration // look for events even without a notification (1s)
	PublishTimeout time.Duration // wait for JetStream's acknowledgements (10s)
	Log            *slog.Logger
	Metrics        *Metrics // nil: unregistered collectors
	Hooks          Hooks
}

// Relay moves events from the vault's outbox to JetStream.
type Relay struct {
	cfg    Config
	outbox Outbox
	js     Publisher
}

// New returns a Relay. Zero values in cfg get defaults.
func New(o Outbox, js Publisher, cfg Config) *Relay {
	if cfg.Prefix == "" {
		cfg.Prefix = messages.DefaultPrefix
	}
	if cfg.Limit <= 0 {
		cfg.Limit = 100
	}
	if cfg.Lease <= 0 {
		cfg.Lease = 10 * time.Second
	}
	if cfg.PollInterval <= 0 {
		cfg.PollInterval = time.Second
	}
	if cfg.PublishTimeout <= 0 {
		cfg.PublishTimeout = 10 * time.Second
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Metrics == nil {
		cfg.Metrics, _ = NewMetrics(nil)
	}
	return &Relay{cfg: cfg, outbox: o, js: js}
}

// Run drains the outbox at start, on every notification and every poll
// interval, until ctx ends.
func (r *Relay) Run(ctx context.Context, notify <-chan struct{}) {
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-notify:
		}
		_, _ = r.RunOnce(ctx)
		t.Reset(r.cfg.PollInterval)
	}
}

// RunOnce claims and publishes batches until a claim comes back with fewer
// events than the limit, and returns how many events were acknowledged to
// the vault. It stops at the first failure; what it had not acknowledged is
// published again by whichever relay claims it after the lease.
func (r *Relay) RunOnce(ctx context.Context) (int, error) {
	total := 0
	for {
		claimed, acked, err := r.batch(ctx)
		total += acked
		if err != nil {
			return total, err
		}
		if claimed < r.cfg.Limit {
			return total, nil
		}
	}
}

func (r *Relay) batch(ctx context.Context) (claimed, acked int, err error) {
	claim, err := r.outbox.ClaimOutbox(ctx, messages.OutboxClaim{
		Owner:        r.cfg.Owner,
		Limit:        r.cfg.Limit,
		LeaseSeconds: int((r.cfg.Lease + time.Second - 1) / time.Second),
	})
	if err != nil {
		r.fail(ctx, "claim", "outbox claim failed", err)
		return 0, 0, err
	}
	events := claim.Events
	claimed = len(events) + len(claim.ProviderEvents)
	if claimed == 0 {
		return 0, 0, nil
	}
	if h := r.cfg.Hooks.BeforePublish; h != nil {
		if err := h(ctx, events); err != nil {
			return claimed, 0, err
		}
	}
	ids, perr := r.publish(ctx, r.outgoing(ctx, events, claim.ProviderEvents))
	if len(ids) == 0 {
		return claimed, 0, perr
	}
	if h := r.cfg.Hooks.BeforeAck; h != nil {
		if err := h(ctx, ids); err != nil {
			return claimed, 0, err
		}
	}
	n, err := r.outbox.AckOutbox(ctx, ids)
	if err != nil {
		// Published but not marked: the next claim after the lease publishes
		// them again and JetStream drops the duplicates.
		r.fail(ctx, "ack", "outbox ack failed; the events will be published again and de-duplicated", err, "events", len(ids))
		return claimed, 0, err
	}
	r.cfg.Log.Debug("events relayed", "events", len(ids), "acked", n)
	return claimed, len(ids), perr
}

// message is an event ready to publish: its id (Nats-Msg-Id), subject,
// body, and the type its metric counts it under.
type message struct {
	id, subject, typ string
	body             []byte
}

// outgoing turns claimed events into messages, connection events first.
// An event the relay cannot route is never acknowledged, so it stays in
// the outbox, loudly: a vault bug to fix, which must not hold up the others.
func (r *Relay) outgoing(ctx context.Context, events []messages.Event, providers []messages.ProviderEvent) []message {
	out := make([]message, 0, len(events)+len(providers))
	add := func(id, subject, typ string, v any) {
		body, err := json.Marshal(v)
		if err != nil {
			r.fail(ctx, "invalid", "outbox event skipped", err)
			return
		}
		out = append(out, message{id: id, subject: subject, typ: typ, body: body})
	}
	for _, ev := range events {
		typ, ok := eventType(ev.Type)
		if !ok || ev.ID == "" {
			r.fail(ctx, "invalid", "outbox event skipped", fmt.Errorf("event %q has type %q: not a lifecycle event the relay can route", ev.ID, ev.Type))
			continue
		}
		add(ev.ID, messages.EventSubject(r.cfg.Prefix, typ), string(typ), ev)
	}
	for _, ev := range providers {
		typ, ok := providerEventType(ev.Type)
		if !ok || ev.ID == "" {
			r.fail(ctx, "invalid", "outbox event skipped", fmt.Errorf("provider event %q has type %q: not one the relay can route", ev.ID, ev.Type))
			continue
		}
		add(ev.ID, messages.ProviderEventSubject(r.cfg.Prefix, typ), "provider."+string(typ), ev)
	}
	return out
}

// publish sends every message and waits for JetStream's acknowledgements.
// It returns the ids JetStream stored (or recognised as duplicates), in
// claim order, and the first error.
func (r *Relay) publish(ctx context.Context, out []message) ([]string, error) {
	type pending struct {
		m      message
		future jetstream.PubAckFuture
	}
	var (
		sent     []pending
		firstErr error
	)
	keep := func(err error) {
		if firstErr == nil {
			firstErr = err
		}
	}
	for _, m := range out {
		msg := nats.NewMsg(m.subject)
		msg.Header.Set(messages.HeaderMsgID, m.id)
		msg.Data = m.body
		f, err := r.js.PublishMsgAsync(msg, jetstream.WithExpectStream(messages.StreamEvents))
		if err != nil {
			r.fail(ctx, "publish", "event publish failed", err, "event_id", m.id)
			keep(err)
			break // later events would overtake this one
		}
		sent = append(sent, pending{m: m, future: f})
	}

	wctx, cancel := context.WithTimeout(ctx, r.cfg.PublishTimeout)
	defer cancel()
	var ids []string
	for _, p := range sent {
		select {
		case ack := <-p.future.Ok():
			ids = append(ids, p.m.id)
			r.cfg.Metrics.Published.WithLabelValues(p.m.typ).Inc()
			if ack.Duplicate {
				r.cfg.Metrics.Duplicates.Inc()
			}
			r.cfg.Log.Debug("event published", "event_id", p.m.id, "type", p.m.typ, "duplicate", ack.Duplicate)
		case err := <-p.future.Err():
			r.fail(ctx, "publish", "event publish failed", err, "event_id", p.m.id)
			keep(err)
		case <-wctx.Done():
			err := fmt.Errorf("no acknowledgement from JetStream: %w", wctx.Err())
			r.fail(ctx, "publish", "event publish failed", err, "event_id", p.m.id)
			keep(err)
			return ids, firstErr
		}
	}
	return ids, firstErr
}

func (r *Relay) fail(ctx context.Context, stage, msg string, err error, args ...any) {
	if ctx.Err() != nil && errors.Is(err, ctx.Err()) {
		return // shutting down
	}
	r.cfg.Metrics.Errors.WithLabelValues(stage).Inc()
	r.cfg.Log.Warn(msg, append([]any{"err", err}, args...)...)
}

// providerEventType reads the type from "nexus.provider.<type>.v1".
func providerEventType(full string) (messages.ProviderEventType, bool) {
	t, ok := versionedType(full, "nexus.provider.")
	return messages.ProviderEventType(t), ok && slices.Contains(messages.ProviderEventTypes, messages.ProviderEventType(t))
}

// versionedType is the <type> of prefix<type>.v1.
func versionedType(full, prefix string) (string, bool) {
	s, ok := strings.CutPrefix(full, prefix)
	if !ok {
		return "", false
	}
	return strings.CutSuffix(s, ".v1")
}

// eventType reads the event type from "nexus.connection.<type>.v1".
func eventType(full string) (messages.EventType, bool) {
	t, ok := versionedType(full, "nexus.connection.")
	return messages.EventType(t), ok && slices.Contains(messages.EventTypes, messages.EventType(t))
}
