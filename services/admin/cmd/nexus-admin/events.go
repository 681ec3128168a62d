package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/nexus-broker/nexus/messages"
	"github.com/nexus-broker/nexus/shared/natsauth"
)

// tailInactive is how long the ephemeral consumer outlives a tail that
// stopped without deleting it (killed): until then another tail as the
// same NATS user is refused.
const tailInactive = 10 * time.Second

// events tail follows NEXUS_EVENTS through a JetStream consumer: the
// ephemeral natsauth.OperatorTail (from now, or from the oldest with
// -all), deleted when the tail ends, or the durable consumer -durable
// names (from where it left off; a new one from the oldest), whose events
// are acknowledged once printed. NATS permissions restrict consumers by
// name only, so the operator user has these two names and no other.
func (c *cli) events(ctx context.Context, fs *flag.FlagSet, args []string) error {
	durable := fs.String("durable", "", `read through this durable consumer (NATS lets the operator user have "operator")`)
	count := fs.Int("count", 0, "stop after this many events (0: follow until interrupted)")
	all := fs.Bool("all", false, "the ephemeral consumer starts at the oldest event instead of now")
	output := fs.String("o", "table", "table or json (one event per line)")
	rest, err := parseAll(fs, args, 1)
	if err != nil {
		return err
	}
	if rest[0] != "tail" {
		return errors.New("events takes one subcommand: tail")
	}
	asJSON, err := jsonOutput(*output)
	if err != nil {
		return err
	}
	if *durable != "" && *all {
		return errors.New("-all is for the ephemeral consumer: a durable one resumes where it left off")
	}
	nc, err := connectNATS(c.getenv)
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	cons, stop, err := openConsumer(ctx, js, c.getenv("NEXUS_SUBJECT_PREFIX"), *durable, *all)
	if err != nil {
		return err
	}
	defer stop()
	if !asJSON {
		fmt.Fprintf(c.stdout, "%-24s  %-28s  %-38s  %-16s  %-16s  %s\n", "OCCURRED", "TYPE", "CONNECTION OR PROVIDER", "PROVIDER", "WORKSPACE", "REASON")
	}
	for seen := 0; *count == 0 || seen < *count; {
		fetchCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
		want := 100
		if *count > 0 {
			want = *count - seen
		}
		batch, err := cons.Fetch(want, jetstream.FetchContext(fetchCtx))
		if err != nil {
			cancel()
			if ctx.Err() != nil {
				return nil // interrupted: the tail ends
			}
			return fmt.Errorf("reading NEXUS_EVENTS: %w", err)
		}
		for msg := range batch.Messages() {
			if err := c.printEvent(msg.Data(), asJSON); err != nil {
				cancel()
				return err
			}
			if *durable != "" {
				// Confirmed by the server before the next: a tail that
				// exits at --count must not leave its acks unsent.
				if err := msg.DoubleAck(ctx); err != nil {
					cancel()
					return fmt.Errorf("acknowledging an event: %w", err)
				}
			}
			seen++
		}
		cancel()
		if ctx.Err() != nil {
			return nil
		}
		if err := batch.Error(); err != nil && !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled) {
			return fmt.Errorf("reading NEXUS_EVENTS: %w", err)
		}
	}
	return nil
}

// openConsumer creates the consumer and returns what ends it: nothing for
// a durable one, deletion for the ephemeral one.
func openConsumer(ctx context.Context, js jetstream.JetStream, prefix, durable string, all bool) (jetstream.Consumer, func(), error) {
	cfg := jetstream.ConsumerConfig{
		FilterSubject: messages.Subject(prefix, "events.>"),
		AckPolicy:     jetstream.AckExplicitPolicy,
		DeliverPolicy: jetstream.DeliverAllPolicy,
	}
	if durable != "" {
		cfg.Durable = durable
		cons, err := js.CreateOrUpdateConsumer(ctx, messages.StreamEvents, cfg)
		if err != nil {
			return nil, nil, fmt.Errorf("the durable consumer %s of %s: %w", durable, messages.StreamEvents, err)
		}
		return cons, func() {}, nil
	}
	cfg.Name, cfg.AckPolicy, cfg.InactiveThreshold = natsauth.OperatorTail, jetstream.AckNonePolicy, tailInactive
	if !all {
		cfg.DeliverPolicy = jetstream.DeliverNewPolicy
	}
	cons, err := js.CreateConsumer(ctx, messages.StreamEvents, cfg)
	if errors.Is(err, jetstream.ErrConsumerExists) {
		return nil, nil, fmt.Errorf("another events tail is running as this NATS user: its consumer %s exists (it goes %s after that tail stops); wait, or use -durable", natsauth.OperatorTail, tailInactive)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("a consumer of %s: %w", messages.StreamEvents, err)
	}
	return cons, func() {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = js.DeleteConsumer(ctx, messages.StreamEvents, natsauth.OperatorTail)
	}, nil
}

// event holds what connection and provider events carry.
type event struct {
	Type         string           `json:"type"`
	ConnectionID string           `json:"connection_id"`
	ProviderID   string           `json:"provider_id"`
	Provider     string           `json:"provider"`
	WorkspaceID  string           `json:"workspace_id"`
	OccurredAt   time.Time        `json:"occurred_at"`
	Reason       *messages.Reason `json:"reason"`
}

func (c *cli) printEvent(data []byte, asJSON bool) error {
	if asJSON {
		_, err := fmt.Fprintln(c.stdout, string(data))
		return err
	}
	var e event
	if err := json.Unmarshal(data, &e); err != nil {
		return fmt.Errorf("an event that is not JSON: %w", err)
	}
	about, reason := e.ConnectionID, "-"
	if about == "" {
		about = e.ProviderID
	}
	if e.Reason != nil {
		reason = e.Reason.Code
	}
	_, err := fmt.Fprintf(c.stdout, "%-24s  %-28s  %-38s  %-16s  %-16s  %s\n", e.OccurredAt.UTC().Format(tableTime), e.Type,
		dash(about), dash(e.Provider), dash(e.WorkspaceID), reason)
	return err
}
