package mqtt

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"strconv"
	"testing"
	"time"

	pahomqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/mochi-mqtt/server/v2/packets"
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
// It reads the wire by hand: paho may drop a PUBACK that arrives just before
// the connection closes, which would make the test flaky, not the server wrong.
func TestPipelinedStoreFailureAcksOnlyWhatWasStored(t *testing.T) {
	const n = 4
	f, sh := newStarterServer(t, n, map[int]bool{1: true})
	for i := range n {
		close(sh.release[i])
	}
	r := f.dialRaw()
	r.connect("dev1", 30, nil)
	var burst []byte
	for i := range n {
		pub, err := encodePublish("devices/dev1/messages/events/", 1, uint16(i+1), []byte(strconv.Itoa(i)))
		if err != nil {
			t.Fatal(err)
		}
		burst = append(burst, pub...)
	}
	r.write(burst)

	var acked []uint16
	for {
		typ, body, err := r.read(5 * time.Second)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("after PUBACKs %v: %v (the connection should have closed)", acked, err)
		}
		if typ != packets.Puback || len(body) != 2 {
			t.Fatalf("packet type %d %v, want only PUBACKs", typ, body)
		}
		acked = append(acked, binary.BigEndian.Uint16(body))
	}
	if len(acked) != 1 || acked[0] != 1 {
		t.Fatalf("PUBACKs for packet ids %v, want only 1 (message 0, the one stored before the failure)", acked)
	}
	if got := len(f.h.all("telemetry")); got < 1 {
		t.Fatalf("%d messages stored, want message 0 at least", got)
	}
}
