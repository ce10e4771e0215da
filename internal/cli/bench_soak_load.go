package cli

// The bench soak load: devices publishing numbered QoS 1 messages at a fixed
// rate, each connection's reader recording which were acknowledged and the
// publish→PUBACK latency of the current sampling interval.

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// soakConn is one device's connection.
type soakConn struct {
	idx int
	id  string
	nc  net.Conn

	wmu    sync.Mutex // guards bw and closed
	bw     *bufio.Writer
	closed bool

	free   chan uint16    // packet ids not in flight
	sentAt []atomic.Int64 // by packet id: ns since base, or notInFlight
	seqOf  []atomic.Int64 // by packet id: the message's sequence number
	base   time.Time

	hmu  sync.Mutex // guards hist: the reader records, the sampler swaps it
	hist *latencyHistogram

	sent, acked, spurious atomic.Int64
	ackedIDs              idSet // the reader's alone until done is closed
	readErr               error
	done                  chan struct{}
}

// connectSoak connects every device (16 at a time).
func connectSoak(ctx context.Context, t benchTarget, devices []benchDevice, o soakOptions, local []*net.TCPAddr) ([]*soakConn, error) {
	conns := make([]*soakConn, len(devices))
	var (
		next     atomic.Int64
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error
	)
	for range min(16, len(devices)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= len(devices) || ctx.Err() != nil {
					return
				}
				var src *net.TCPAddr
				if len(local) > 0 {
					src = local[i%len(local)]
				}
				bc, _, err := dialDevice(ctx, t, devices[i], src, o.keepAlive, true)
				if err != nil {
					mu.Lock()
					firstErr = errors.Join(firstErr, fmt.Errorf("connect %s: %w", devices[i].id, err))
					mu.Unlock()
					continue
				}
				c := &soakConn{idx: i, id: devices[i].id, nc: bc.nc, bw: bc.bw, base: time.Now(),
					hist: newLatencyHistogram(), done: make(chan struct{}),
					free: make(chan uint16, o.inflight), sentAt: make([]atomic.Int64, o.inflight+1), seqOf: make([]atomic.Int64, o.inflight+1)}
				for id := 1; id <= o.inflight; id++ {
					c.free <- uint16(id)
				}
				for i := range c.sentAt {
					c.sentAt[i].Store(notInFlight)
				}
				go c.read()
				conns[i] = c
			}
		}()
	}
	wg.Wait()
	if firstErr != nil {
		for _, c := range conns {
			if c != nil {
				c.close()
			}
		}
		return nil, fmt.Errorf("soak: %w", firstErr)
	}
	return conns, ctx.Err()
}

// read takes PUBACKs (and skips anything else) until the connection ends.
func (c *soakConn) read() {
	defer close(c.done)
	br := bufio.NewReaderSize(c.nc, 4096)
	c.readErr = readPubacks(br, func(id uint16) error {
		if int(id) >= len(c.sentAt) {
			return fmt.Errorf("PUBACK for packet id %d, never sent", id)
		}
		seq := c.seqOf[id].Load()
		sent := c.sentAt[id].Swap(notInFlight)
		if sent == notInFlight {
			c.spurious.Add(1)
			return nil
		}
		d := time.Duration(int64(time.Since(c.base)) - sent)
		c.hmu.Lock()
		c.hist.record(d)
		c.hmu.Unlock()
		c.ackedIDs.add(seq)
		c.acked.Add(1)
		c.free <- id
		return nil
	})
}

// takeHistogram returns the interval's latencies and starts a new interval.
func (c *soakConn) takeHistogram() *latencyHistogram {
	fresh := newLatencyHistogram()
	c.hmu.Lock()
	h := c.hist
	c.hist = fresh
	c.hmu.Unlock()
	return h
}

// publish sends numbered messages every interval (as fast as packet ids
// free up when interval is 0) until ctx ends.
func (c *soakConn) publish(ctx context.Context, size int, interval time.Duration, next time.Time) {
	prefix := encodePublishPrefix("devices/"+c.id+"/messages/events/", 1, size)
	packet := make([]byte, 0, len(prefix)+2+size)
	flush := func() bool {
		c.wmu.Lock()
		defer c.wmu.Unlock()
		return c.closed || c.bw.Flush() == nil
	}
	pace := pacer{interval: interval, next: next}
	defer pace.stop()
	for seq := int64(0); ctx.Err() == nil; seq++ {
		if _, ok := pace.wait(ctx, nil); !ok {
			return
		}
		id, ok := takePacketID(ctx, c.free, c.done, flush)
		if !ok {
			return
		}
		packet = append(packet[:0], prefix...)
		packet = append(packet, byte(id>>8), byte(id))
		body := len(packet)
		packet = appendSoakID(packet, c.idx, seq)
		for len(packet)-body < size {
			packet = append(packet, 'x')
		}
		c.seqOf[id].Store(seq)
		c.wmu.Lock()
		if c.closed {
			c.wmu.Unlock()
			return
		}
		c.sentAt[id].Store(int64(time.Since(c.base)))
		_, err := c.bw.Write(packet)
		if err == nil && (interval > 0 || len(c.free) == 0) {
			err = c.bw.Flush()
		}
		c.wmu.Unlock()
		if err != nil {
			return
		}
		c.sent.Add(1)
	}
	flush()
}

// awaitAcks waits until every PUBACK is in, the connection drops, or the
// drain time runs out.
func (c *soakConn) awaitAcks(drain time.Duration) {
	deadline := time.Now().Add(drain)
	for c.acked.Load() < c.sent.Load() && time.Now().Before(deadline) {
		select {
		case <-c.done:
			return
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// close disconnects (once) and waits for the reader.
func (c *soakConn) close() {
	c.wmu.Lock()
	if !c.closed {
		c.closed = true
		c.nc.SetWriteDeadline(time.Now().Add(time.Second))
		c.bw.Write([]byte{0xE0, 0}) // DISCONNECT
		c.bw.Flush()
		c.nc.Close()
	}
	c.wmu.Unlock()
	<-c.done
}

// dropped reports whether the connection ended by itself.
func (c *soakConn) dropped() bool {
	select {
	case <-c.done:
		c.wmu.Lock()
		defer c.wmu.Unlock()
		return !c.closed
	default:
		return false
	}
}
