package devicemqtt

import (
	"sync"
	"time"

	"github.com/outpost-iot/outpost/internal/hub/mqtt"
)

// Presence is the connection state of devices on this node. It implements
// registry.Presence. (Several nodes will share it through the bus.)
type Presence struct {
	mu sync.RWMutex
	m  map[mqtt.DeviceKey]presenceState
}

type presenceState struct {
	connected    bool
	since        time.Time
	lastActivity time.Time
}

// NewPresence returns an empty presence table.
func NewPresence() *Presence { return &Presence{m: map[mqtt.DeviceKey]presenceState{}} }

func (p *Presence) set(k mqtt.DeviceKey, connected bool, now time.Time) {
	p.mu.Lock()
	s := p.m[k]
	s.connected, s.since = connected, now
	if connected {
		s.lastActivity = now
	}
	p.m[k] = s
	p.mu.Unlock()
}

func (p *Presence) active(k mqtt.DeviceKey, now time.Time) {
	p.mu.Lock()
	s := p.m[k]
	s.lastActivity = now
	p.m[k] = s
	p.mu.Unlock()
}

// ConnectionState implements registry.Presence.
func (p *Presence) ConnectionState(hub, deviceID, moduleID string) (bool, time.Time, time.Time) {
	p.mu.RLock()
	s := p.m[mqtt.DeviceKey{Hub: hub, DeviceID: deviceID, ModuleID: moduleID}]
	p.mu.RUnlock()
	return s.connected, s.since, s.lastActivity
}
