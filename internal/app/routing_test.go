package app

import (
	"testing"

	"github.com/outpost-iot/outpost/internal/hub/telemetry"
	"github.com/outpost-iot/outpost/internal/routing/engine"
)

// TestConditionsShareOneInputPerMessage: the routes of one message share
// one evaluation input (one parse of the body), and the next message,
// carried the same Scratch, is evaluated on its own body.
func TestConditionsShareOneInputPerMessage(t *testing.T) {
	hot, err := compileCondition("$body.temp > 25")
	if err != nil {
		t.Fatal(err)
	}
	critical, err := compileCondition("level = 'critical' AND $body.temp > 20")
	if err != nil {
		t.Fatal(err)
	}
	msg := func(body, level string, scratch any) *engine.Message {
		return &engine.Message{Message: telemetry.Message{
			Payload: []byte(body), App: map[string]string{"level": level},
			System: map[string]string{telemetry.PropContentType: "application/json", telemetry.PropContentEncoding: "utf-8"},
		}, Source: engine.SourceDeviceMessages, Scratch: scratch}
	}
	m1 := msg(`{"temp":30}`, "critical", nil)
	if !hot.Match(m1) || !critical.Match(m1) {
		t.Fatal("message 1 should match both routes")
	}
	first := m1.Scratch.(*matchInput)
	m2 := msg(`{"temp":21}`, "info", m1.Scratch)
	if hot.Match(m2) || critical.Match(m2) {
		t.Fatal("message 2 was evaluated on message 1's body or properties")
	}
	if m2.Scratch.(*matchInput) != first {
		t.Fatal("the evaluation input was not reused for the next message")
	}
	m3 := msg(`{"temp":22}`, "critical", m2.Scratch)
	if hot.Match(m3) || !critical.Match(m3) {
		t.Fatal("message 3 routed wrongly")
	}
}
