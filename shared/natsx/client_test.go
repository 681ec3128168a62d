package natsx_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/nexus-broker/nexus/messages"
	"github.com/nexus-broker/nexus/shared/natsx"
	"github.com/nexus-broker/nexus/shared/testkit"
)

// No reply at all is unavailable and ErrNoAnswer; a service that answered
// unavailable is not ErrNoAnswer.
func TestRequestWithoutAnswer(t *testing.T) {
	nc := testkit.Conn(t, testkit.NATS(t))
	c := &natsx.Client{NC: nc, Prefix: "test"}
	err := c.RequestWithin(context.Background(), time.Second, 0, "nobody", struct{}{}, nil)
	if !errors.Is(err, natsx.ErrNoAnswer) || !errors.Is(err, messages.ErrUnavailable) {
		t.Fatalf("no responders: %v", err)
	}
	var me *messages.Error
	if !errors.As(err, &me) || me.Code != messages.CodeUnavailable {
		t.Fatalf("no responders is not a *messages.Error: %v", err)
	}
	if errors.Is(messages.Errorf(messages.CodeUnavailable, "answered"), natsx.ErrNoAnswer) {
		t.Fatal("an answer counts as no answer")
	}
}
