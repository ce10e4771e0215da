package bus

import (
	"context"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"
)

// ReadOrdered hands every message of an ordered consumer to fn, in order,
// until ctx ends (nil) or fn or the consumer fails. It pulls with one
// long-lived iterator: nats.go's ordered consumer recreates its server-side
// consumer on every Fetch, which cost a millisecond of server CPU per 100
// messages read.
func ReadOrdered(ctx context.Context, c jetstream.Consumer, fn func(jetstream.Msg) error) error {
	it, err := c.Messages(jetstream.PullMaxMessages(1000))
	if err != nil {
		return fmt.Errorf("bus: read: %w", err)
	}
	defer it.Stop()
	for {
		msg, err := it.Next(jetstream.NextContext(ctx))
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, jetstream.ErrMsgIteratorClosed) {
				return nil
			}
			return fmt.Errorf("bus: read: %w", err)
		}
		if err := fn(msg); err != nil {
			return err
		}
	}
}
