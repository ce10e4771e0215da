package throttle

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

func TestLimiter(t *testing.T) {
	if err := New(Limits{}, nil).Allow(HubD2C, "h", "d"); err != nil {
		t.Fatalf("off: %v", err)
	}
	l := New(Limits{HubD2C: 5}, nil)
	allowed := 0
	for i := 0; i < 20; i++ {
		if err := l.Allow(HubD2C, "Hub", "d"); err == nil {
			allowed++
		} else if !errors.Is(err, ErrThrottled) {
			t.Fatal(err)
		}
	}
	if allowed < 5 || allowed > 6 {
		t.Errorf("allowed %d of 20 at 5/s with a burst of 5", allowed)
	}
	if err := l.Allow(HubD2C, "other", "d"); err != nil {
		t.Errorf("hubs share a bucket: %v", err)
	}
	if err := l.Allow(Registry, "Hub", ""); err != nil {
		t.Errorf("a kind that is off throttled: %v", err)
	}
}

func TestKindsAndErrors(t *testing.T) {
	var mu sync.Mutex
	refused := map[Kind]int{}
	l := New(Limits{DeviceD2C: 1, Registry: 1, TwinReads: 1, TwinUpdates: 1, Methods: 1}, func(k Kind) {
		mu.Lock()
		refused[k]++
		mu.Unlock()
	})
	for _, k := range []Kind{DeviceD2C, Registry, TwinRead, TwinUpdate, Method} {
		if err := l.Allow(k, "h", "d1"); err != nil {
			t.Errorf("%s: first call refused: %v", k, err)
		}
		err := l.Allow(k, "h", "d1")
		var te *Error
		if !errors.As(err, &te) || te.Kind != k || !errors.Is(err, ErrThrottled) {
			t.Errorf("%s: second call: %v", k, err)
		}
		if err != nil && err.Error() == "" {
			t.Errorf("%s: empty message", k)
		}
	}
	if err := l.Allow(DeviceD2C, "h", "d2"); err != nil {
		t.Errorf("another device shares the first one's bucket: %v", err)
	}
	if refused[Method] != 1 || refused[DeviceD2C] != 1 {
		t.Errorf("refusals counted: %v", refused)
	}
}

// fakeClock is a settable time.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time { return c.t }

func TestShareAmongNodes(t *testing.T) {
	clock := &fakeClock{t: time.Unix(1000, 0)}
	l := New(Limits{HubD2C: 100, DeviceD2C: 10}, nil)
	l.now = clock.now
	count := func(kind Kind) int {
		n := 0
		for i := 0; i < 1000; i++ {
			if l.Allow(kind, "h", "d") == nil {
				n++
			}
		}
		return n
	}
	if n := count(HubD2C); n != 100 {
		t.Fatalf("one node: burst %d, want 100", n)
	}
	l.SetNodes(4)
	clock.t = clock.t.Add(time.Second)
	if n := count(HubD2C); n != 25 {
		t.Errorf("4 nodes: a second's worth is %d, want 25", n)
	}
	clock.t = clock.t.Add(time.Second)
	if n := count(DeviceD2C); n != 10 {
		t.Errorf("per-device rate with 4 nodes: %d, want 10 (not shared)", n)
	}
}

func TestSweepDropsIdleBuckets(t *testing.T) {
	clock := &fakeClock{t: time.Unix(1000, 0)}
	l := New(Limits{DeviceD2C: 10}, nil)
	l.now = clock.now
	for i := 0; i < 100; i++ {
		_ = l.Allow(DeviceD2C, "h", string(rune('a'+i%26))+string(rune('a'+i/26)))
	}
	if l.size() != 100 {
		t.Fatalf("buckets %d, want 100", l.size())
	}
	clock.t = clock.t.Add(sweepEvery)
	_ = l.Allow(DeviceD2C, "h", "new")
	if l.size() != 1 {
		t.Errorf("after a sweep interval of idleness %d buckets remain, want 1", l.size())
	}
}

func TestMembership(t *testing.T) {
	srv, err := server.NewServer(&server.Options{DontListen: true, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	go srv.Start()
	t.Cleanup(srv.Shutdown)
	if !srv.ReadyForConnections(5 * time.Second) {
		t.Fatal("nats not ready")
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	start := func(node string) (*Limiter, context.CancelFunc, chan struct{}, *nats.Conn) {
		nc, err := nats.Connect("", nats.InProcessServer(srv))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(nc.Close)
		l := New(Limits{HubD2C: 10}, nil)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { defer close(done); _ = NewMembership(nc, "t.node.heartbeat", node, l, log).Run(ctx) }()
		return l, cancel, done, nc
	}
	waitNodes := func(l *Limiter, want int, within time.Duration) time.Duration {
		t.Helper()
		start := time.Now()
		for time.Since(start) < within {
			if l.Nodes() == want {
				return time.Since(start)
			}
			time.Sleep(10 * time.Millisecond)
		}
		t.Fatalf("nodes %d, want %d after %s", l.Nodes(), want, within)
		return 0
	}
	a, stopA, doneA, _ := start("a")
	defer func() { stopA(); <-doneA }()
	b, stopB, doneB, _ := start("b")
	took := waitNodes(a, 2, time.Second)
	waitNodes(b, 2, time.Second)
	t.Logf("a joining node is counted within %s", took)
	c, stopC, doneC, ncC := start("c")
	waitNodes(c, 3, time.Second)
	waitNodes(a, 3, time.Second)
	stopB() // leaves: says so
	<-doneB
	took = waitNodes(a, 2, time.Second)
	t.Logf("a node that stops is uncounted within %s", took)
	// c dies without a word: it is uncounted after PeerTTL.
	ncC.Close()
	stopC()
	<-doneC
	took = waitNodes(a, 1, PeerTTL+2*HeartbeatInterval)
	t.Logf("a node that dies is uncounted within %s (bound %s)", took, PeerTTL+HeartbeatInterval)
}

// TestMembershipCutOffKeepsCount: a node whose NATS connection is gone
// hears no one, itself included; it keeps its last count rather than
// taking the whole rate for itself.
func TestMembershipCutOffKeepsCount(t *testing.T) {
	srv, err := server.NewServer(&server.Options{DontListen: true, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	go srv.Start()
	t.Cleanup(srv.Shutdown)
	if !srv.ReadyForConnections(5 * time.Second) {
		t.Fatal("nats not ready")
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	var stops []func()
	start := func(node string) (*Limiter, *nats.Conn) {
		nc, err := nats.Connect("", nats.InProcessServer(srv), nats.NoReconnect())
		if err != nil {
			t.Fatal(err)
		}
		l := New(Limits{HubD2C: 10}, nil)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { defer close(done); _ = NewMembership(nc, "t.node.heartbeat", node, l, log).Run(ctx) }()
		stops = append(stops, func() { cancel(); <-done; nc.Close() })
		return l, nc
	}
	defer func() {
		for _, stop := range stops {
			stop()
		}
	}()
	a, ncA := start("a")
	b, _ := start("b")
	deadline := time.Now().Add(time.Second)
	for (a.Nodes() != 2 || b.Nodes() != 2) && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if a.Nodes() != 2 {
		t.Fatalf("a counts %d nodes, want 2", a.Nodes())
	}
	ncA.Close()
	time.Sleep(PeerTTL + 2*HeartbeatInterval)
	if a.Nodes() != 2 {
		t.Errorf("a node cut off from NATS counts %d nodes, want its last count, 2", a.Nodes())
	}
	if b.Nodes() != 1 {
		t.Errorf("b still counts %d nodes after a was cut off, want 1", b.Nodes())
	}
}

// TestOwnerOfSpreadsSlots: every node computes the same owner from the
// same members, a hub's slots spread evenly, and a departing node's slots
// go to the others.
func TestOwnerOfSpreadsSlots(t *testing.T) {
	nodes := []string{"node-a", "node-b", "node-c"}
	reversed := []string{"node-c", "node-b", "node-a"}
	for _, hub := range []string{"hub1", "hub2", "fleet"} {
		per := map[string]int{}
		for slot := 0; slot < 6; slot++ {
			owner := OwnerOf(nodes, hub, slot)
			if other := OwnerOf(reversed, hub, slot); other != owner {
				t.Fatalf("%s/%d: owner %s or %s depending on the order of the members", hub, slot, owner, other)
			}
			per[owner]++
		}
		for _, n := range nodes {
			if per[n] != 2 {
				t.Errorf("%s: slots per node %v, want 2 each", hub, per)
			}
		}
		for slot := 0; slot < 6; slot++ {
			if owner := OwnerOf(nodes[:2], hub, slot); owner == "node-c" {
				t.Errorf("%s/%d owned by a node that left", hub, slot)
			}
		}
	}
	if OwnerOf(nil, "hub", 0) != "" {
		t.Error("owner without members")
	}
}
