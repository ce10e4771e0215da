package throttle

import (
	"context"
	"encoding/json"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
)

// Heartbeat timing: a node announces itself every HeartbeatInterval and
// is counted as live until PeerTTL has passed without a heartbeat. A dead
// node therefore stops taking a share within PeerTTL + HeartbeatInterval.
const (
	HeartbeatInterval = time.Second
	PeerTTL           = 3*HeartbeatInterval + HeartbeatInterval/2
)

// heartbeat is what a node announces.
type heartbeat struct {
	Node    string `json:"node"`
	Leaving bool   `json:"leaving,omitempty"`
	// Hello asks the others to answer at once (a node that just started).
	Hello bool `json:"hello,omitempty"`
}

// Membership counts the live nodes of an installation over core NATS and
// keeps a Limiter's share in step with it.
type Membership struct {
	nc      *nats.Conn
	subject string
	node    string
	limiter *Limiter
	log     *slog.Logger
	now     func() time.Time

	mu    sync.Mutex
	peers map[string]time.Time // other nodes: when last heard
	self  time.Time            // when this node's own heartbeat last came back
}

// NewMembership returns the membership of node on subject; Run runs it.
func NewMembership(nc *nats.Conn, subject, node string, limiter *Limiter, log *slog.Logger) *Membership {
	return &Membership{nc: nc, subject: subject, node: node, limiter: limiter, log: log, now: time.Now, peers: map[string]time.Time{}}
}

// Run announces this node and follows the others until ctx ends, then
// says this node is leaving so the others re-balance at once.
func (m *Membership) Run(ctx context.Context) error {
	in := make(chan *nats.Msg, 256)
	sub, err := m.nc.ChanSubscribe(m.subject, in)
	if err != nil {
		m.log.Error("node heartbeats not followed: per-hub throttles are enforced per node until restart", "err", err)
		<-ctx.Done()
		return nil
	}
	defer sub.Unsubscribe() //nolint:errcheck
	m.self = m.now()
	m.announce(heartbeat{Node: m.node, Hello: true})
	t := time.NewTicker(HeartbeatInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			m.announce(heartbeat{Node: m.node, Leaving: true})
			_ = m.nc.Flush()
			return nil
		case msg := <-in:
			m.receive(msg.Data)
		case <-t.C:
			m.announce(heartbeat{Node: m.node})
			m.recount()
		}
	}
}

func (m *Membership) announce(hb heartbeat) {
	b, _ := json.Marshal(hb)
	if err := m.nc.Publish(m.subject, b); err != nil {
		m.log.Debug("node heartbeat not sent", "err", err)
	}
}

func (m *Membership) receive(data []byte) {
	var hb heartbeat
	if err := json.Unmarshal(data, &hb); err != nil || hb.Node == "" {
		return
	}
	now := m.now()
	m.mu.Lock()
	if hb.Node == m.node {
		m.self = now
		m.mu.Unlock()
		return
	}
	_, known := m.peers[hb.Node]
	if hb.Leaving {
		delete(m.peers, hb.Node)
	} else {
		m.peers[hb.Node] = now
	}
	m.mu.Unlock()
	if hb.Hello || (!known && !hb.Leaving) {
		// A node that just started learns of this one in a round trip
		// instead of a heartbeat interval.
		m.announce(heartbeat{Node: m.node})
	}
	m.recount()
}

// recount drops peers not heard from for PeerTTL and hands the count to
// the limiter. While this node's own heartbeats do not come back (NATS
// unreachable) it hears no one; it then keeps the last count rather than
// taking the whole rate for itself.
func (m *Membership) recount() {
	now := m.now()
	m.mu.Lock()
	if now.Sub(m.self) > PeerTTL {
		m.mu.Unlock()
		return
	}
	for id, seen := range m.peers {
		if now.Sub(seen) > PeerTTL {
			delete(m.peers, id)
		}
	}
	n := 1 + len(m.peers)
	m.mu.Unlock()
	if old := m.limiter.Nodes(); old != n {
		m.log.Info("live nodes changed; per-hub throttles re-balanced", "nodes", n, "was", old)
		m.limiter.SetNodes(n)
	}
}

// Nodes is the live node count as this node sees it.
func (m *Membership) Nodes() int { return m.limiter.Nodes() }
