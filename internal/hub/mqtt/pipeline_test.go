package mqtt

import (
	"context"
	"errors"
	"strconv"
	"testing"
	"time"

	pahomqtt "github.com/eclipse/paho.mqtt.golang"
)

// starterHandler stores telemetry asynchronously: message i is stored when
// release[i] is closed, and fails if fail[i] is set.
type starterHandler struct {
	*fakeHandler
	release []chan struct{}
	fail    map[int]bool
	started chan int
}

func (h *starterHandler) StartTelemetry(id Identity, msg Message) (func(context.Context) error, error) {
	i, err := strconv.Atoi(string(msg.Payload))
	if err != nil {
		return nil, err
	}
	h.started <- i
	return func(ctx context.Context) error {
		select {
		case <-h.release[i]:
		case <-ctx.Done():
			return ctx.Err()
		}
		if h.fail[i] {
			return errors.New("store refused")
		}
		h.record(event{kind: "telemetry", id: id, msg: msg})
		return nil
	}, nil
}

func newStarterServer(t *testing.T, n int, fail map[int]bool) (*fixture, *starterHandler) {
	sh := &starterHandler{fail: fail, started: make(chan int, n)}
	for range n {
		sh.release = append(sh.release, make(chan struct{}))
	}
	f := newTestServer(t, func(f *fixture) {
		sh.fakeHandler = f.h
		f.hh = sh
	})
	return f, sh
}

func publishN(c pahomqtt.Client, n int) []pahomqtt.Token {
	var toks []pahomqtt.Token
	for i := range n {
		toks = append(toks, c.Publish("devices/dev1/messages/events/", 1, false, []byte(strconv.Itoa(i))))
	}
	return toks
}

// TestPipelinedPubacksInOrderAfterStore: several messages are stored at once,
// yet each PUBACK waits for its own store and for every earlier PUBACK.
func TestPipelinedPubacksInOrderAfterStore(t *testing.T) {
	const n = 4
	f, sh := newStarterServer(t, n, nil)
	c, lost := f.connect("dev1")
	toks := publishN(c, n)
	<-sh.started
	close(sh.release[2]) // stored out of order: no PUBACK may overtake 0 and 1
	for i, tok := range toks {
		if tok.WaitTimeout(200 * time.Millisecond) {
			t.Fatalf("PUBACK %d before message 0 was stored", i)
		}
	}
	close(sh.release[0])
	if !toks[0].WaitTimeout(5 * time.Second) {
		t.Fatal("no PUBACK for message 0 after it was stored")
	}
	if toks[1].WaitTimeout(200*time.Millisecond) || toks[2].WaitTimeout(10*time.Millisecond) {
		t.Fatal("PUBACK for 1 or 2 before 1 was stored")
	}
	close(sh.release[1])
	close(sh.release[3])
	for i, tok := range toks {
		if !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
			t.Fatalf("no PUBACK for message %d: %v", i, tok.Error())
		}
	}
	lost.none(t, 50*time.Millisecond)
	if got := len(f.h.all("telemetry")); got != n {
		t.Fatalf("%d messages stored, want %d", got, n)
	}
}

// TestPipelinedStoreFailureAcksOnlyWhatWasStored: a failed store closes the
// connection; earlier messages are acknowledged, it and later ones are not.
func TestPipelinedStoreFailureAcksOnlyWhatWasStored(t *testing.T) {
	const n = 4
	f, sh := newStarterServer(t, n, map[int]bool{1: true})
	c, lost := f.connect("dev1")
	for i := range n {
		close(sh.release[i])
	}
	toks := publishN(c, n)
	if !toks[0].WaitTimeout(5*time.Second) || toks[0].Error() != nil {
		t.Fatalf("message 0 stored but not acknowledged: %v", toks[0].Error())
	}
	lost.wait(t, 5*time.Second)
	for i := 1; i < n; i++ {
		if toks[i].WaitTimeout(100*time.Millisecond) && toks[i].Error() == nil {
			t.Fatalf("message %d acknowledged after message 1 failed", i)
		}
	}
}
