package throttle

import (
	"context"
	"encoding/json"
	"hash/fnv"
	"log/slog"
	"sort"
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

// Owns says whether this node owns slot of group: the live nodes are
// ranked for group by rendezvous hashing, and slot i goes to the node at
// rank i mod n — so a group's slots (a hub's partitions) are spread evenly
// over the nodes, and every node computes the same owner from the same
// membership. Views differ for a heartbeat or two after a node joins or
// leaves; the work guarded by ownership must stay correct while two nodes
// briefly both own a slot (see internal/routing/engine).
func (m *Membership) Owns(group string, slot int) bool {
	m.mu.Lock()
	nodes := make([]string, 0, 1+len(m.peers))
	nodes = append(nodes, m.node)
	for id := range m.peers {
		nodes = append(nodes, id)
	}
	m.mu.Unlock()
	return OwnerOf(nodes, group, slot) == m.node
}

// OwnerOf is the node of nodes that owns slot of group (see Owns).
func OwnerOf(nodes []string, group string, slot int) string {
	if len(nodes) == 0 {
		return ""
	}
	ranked := make([]rankedNode, len(nodes))
	for i, n := range nodes {
		ranked[i] = rankedNode{n, rendezvous(n, group)}
	}
	sort.Slice(ranked, func(i, j int) bool {
		if ranked[i].score != ranked[j].score {
			return ranked[i].score > ranked[j].score
		}
		return ranked[i].node < ranked[j].node
	})
	return ranked[slot%len(ranked)].node
}

type rankedNode struct {
	node  string
	score uint64
}

// rendezvous scores a node for a group: FNV-1a of both, finished with
// SplitMix64's mixer so near-identical names spread well.
func rendezvous(node, group string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(node))
	h.Write([]byte{0})
	h.Write([]byte(group))
	x := h.Sum64()
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}
