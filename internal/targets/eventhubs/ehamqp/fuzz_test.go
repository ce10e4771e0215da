package ehamqp

import (
	"errors"
	"strings"
	"testing"

	"github.com/outpost-iot/outpost/internal/amqp/wire"
)

// FuzzAttachSource feeds a receiver's attach — its address and selector
// filter — to the parsers: each either refuses with an AMQP error or
// names an event hub and a partition and start position that exist.
func FuzzAttachSource(f *testing.F) {
	for _, s := range [][2]string{
		{"hub/ConsumerGroups/$Default/Partitions/0", "amqp.annotation.x-opt-offset > '-1'"},
		{"amqps://ns.servicebus.example/hub/ConsumerGroups/cg/Partitions/3", "amqp.annotation.x-opt-sequence-number >= '42'"},
		{"hub/Partitions/1", "amqp.annotation.x-opt-enqueued-time > '1700000000000'"},
		{"hub", "amqp.annotation.x-opt-offset > '@latest'"},
		{"$management", "AMQP.ANNOTATION.X-OPT-OFFSET = '5'"},
		{"hub/$management", "amqp.annotation.x-opt-sequence-number > '-9223372036854775808'"},
		{"hub/Partitions/-2", "amqp.annotation.x-opt-enqueued-time >= '9223372036854775807'"},
		{"/", "amqp.annotation.x-opt-offset > 1"},
		{"hub/ConsumerGroups//Partitions/x", ""},
		{"http://[::1", "amqp.annotation.x-opt-offset > ''"},
	} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, address, filter string) {
		a, err := parseAddress(address)
		if err != nil {
			var we *wire.Error
			if !errors.As(err, &we) || we.Condition == "" {
				t.Fatalf("parseAddress(%q): %T %v, want a *wire.Error", address, err, err)
			}
		} else if !a.management && (a.eventHub == "" || strings.Contains(a.eventHub, "/") || a.partition < -1 || a.path == "") {
			t.Fatalf("parseAddress(%q) = %+v", address, a)
		}
		for _, v := range []any{filter, wire.Described{Descriptor: selectorDescriptor, Value: filter}} {
			for _, key := range []any{wire.Symbol(selectorFilter), wire.Symbol("other")} {
				pos, err := parseFilter(&wire.Source{Filter: wire.Map{{Key: key, Value: v}}})
				if err != nil {
					var we *wire.Error
					if !errors.As(err, &we) || we.Condition == "" {
						t.Fatalf("parseFilter(%q): %T %v, want a *wire.Error", filter, err, err)
					}
					continue
				}
				switch pos.Kind {
				case FromEarliest, FromLatest, FromTime:
				case FromSequence:
					if pos.Sequence < 0 {
						t.Fatalf("parseFilter(%q) = %+v", filter, pos)
					}
				default:
					t.Fatalf("parseFilter(%q) = kind %d", filter, pos.Kind)
				}
			}
		}
	})
}
