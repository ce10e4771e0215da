package mqtt

import (
	"context"
	"fmt"
	"time"
)

// enqueue hands a received PUBLISH to the worker, starting it when it is not running. It waits
// while ReadAhead jobs are queued; false means the connection was aborted meanwhile.
func (c *conn) enqueue(j job) bool {
	c.mu.Lock()
	for len(c.jobq) >= c.s.cfg.ReadAhead {
		if c.jobSpace == nil {
			c.jobSpace = make(chan struct{})
		}
		space := c.jobSpace
		c.mu.Unlock()
		select {
		case <-space:
		case <-c.ctx.Done():
			return false
		}
		c.mu.Lock()
	}
	c.jobq = append(c.jobq, j)
	if !c.working {
		c.working = true
		go c.work(nil)
	}
	c.mu.Unlock()
	return true
}

// popJob takes the next job; with telemetryOnly it takes one only when it is telemetry. When
// there is none and the caller is the worker's loop (stop), the worker is marked stopped under
// the same lock, so that the next enqueue starts another.
func (c *conn) popJob(telemetryOnly, stop bool) (job, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.jobq) == 0 || (telemetryOnly && c.jobq[0].kind != pubTelemetry) {
		if stop {
			c.working = false
			c.jobq = nil // an idle connection keeps no queue
			if c.workerIdle != nil {
				close(c.workerIdle)
				c.workerIdle = nil
			}
		}
		return job{}, false
	}
	j := c.jobq[0]
	c.jobq[0] = job{}
	c.jobq = c.jobq[1:]
	if c.jobSpace != nil {
		close(c.jobSpace)
		c.jobSpace = nil
	}
	return j, true
}

// waitWorkerIdle returns once no worker runs. The reader calls it in teardown, after which
// nothing is enqueued, so none starts again.
func (c *conn) waitWorkerIdle() {
	c.mu.Lock()
	if !c.working {
		c.mu.Unlock()
		return
	}
	if c.workerIdle == nil {
		c.workerIdle = make(chan struct{})
	}
	idle := c.workerIdle
	c.mu.Unlock()
	<-idle
}

// work is the worker goroutine, running while jobs are queued (see the comment at the top of
// conn.go). The first one, started when the connection goes live, also waits for the
// connection it took over to finish and then calls Connected, before any job.
func (c *conn) work(first *takeover) {
	if first != nil {
		if old := first.old; old != nil {
			t := time.NewTimer(c.s.cfg.ConnectTimeout)
			select {
			case <-old.finished:
			case <-t.C:
				c.s.log.Warn("mqtt: previous connection did not finish in time", "device", c.id.DeviceID)
			}
			t.Stop()
		}
		c.s.h.Connected(c.ctx, c.id)
	}
	for {
		j, ok := c.popJob(false, true)
		if !ok {
			break
		}
		c.pending.Add(-c.handle(j))
		if c.isDraining() && c.pending.Load() == 0 {
			c.flushAndClose()
		}
	}
	if c.isDraining() && c.pending.Load() == 0 {
		c.flushAndClose()
	}
}

// takeover is what the first worker of a connection does before any job.
type takeover struct{ old *conn }

// maxTelemetryBatch bounds the telemetry a connection has being stored at once.
const maxTelemetryBatch = 64

// handle runs j and, when j is telemetry and the Handler can start telemetry, every further
// telemetry job already queued (up to a batch). It returns how many jobs it consumed.
func (c *conn) handle(j job) int64 {
	if c.refused.Load() {
		c.s.metrics.publishRefused("skipped", 1)
		return 1
	}
	st, ok := c.s.h.(TelemetryStarter)
	if !ok || j.kind != pubTelemetry {
		c.run(j)
		return 1
	}
	batch := []job{j}
	for len(batch) < maxTelemetryBatch {
		more, ok := c.popJob(true, false)
		if !ok {
			break
		}
		batch = append(batch, more)
	}
	c.runTelemetry(st, batch)
	return int64(len(batch))
}

// runTelemetry starts storing every message of batch, then waits for each in order and queues
// its PUBACK; the first failure closes the connection, leaving it and the rest unacknowledged.
func (c *conn) runTelemetry(st TelemetryStarter, batch []job) {
	if c.ctx.Err() != nil {
		return
	}
	waits := make([]func(context.Context) error, 0, len(batch))
	var startErr error
	for _, j := range batch {
		wait, err := st.StartTelemetry(c.id, Message{Topic: j.topic, Properties: j.props, Payload: j.payload, QoS: j.qos})
		if err != nil {
			startErr = err
			break
		}
		waits = append(waits, wait)
	}
	done := 0
	for i, wait := range waits {
		if err := wait(c.ctx); err != nil {
			startErr = err
			break
		}
		done++
		if batch[i].qos == 1 {
			c.send(c.ctx, encodePuback(batch[i].id))
			c.s.metrics.publishAcked(pubTelemetry)
		}
	}
	if startErr != nil {
		c.s.metrics.handlerRefused(startErr)
		c.s.metrics.publishRefused("skipped", len(batch)-done-1)
		c.s.log.Warn("mqtt: telemetry not accepted; closing the connection", "device", c.id.DeviceID, "err", startErr)
		c.refuse(fmt.Errorf("telemetry handler: %w", startErr))
	}
}

func (c *conn) run(j job) {
	if c.ctx.Err() != nil {
		return
	}
	s := c.s
	var reply []byte // twin response frame, sent after the PUBACK
	switch j.kind {
	case pubTelemetry:
		msg := Message{Topic: j.topic, Properties: j.props, Payload: j.payload, QoS: j.qos}
		if err := s.h.Telemetry(c.ctx, c.id, msg); err != nil {
			s.metrics.handlerRefused(err)
			s.log.Warn("mqtt: telemetry not accepted; closing the connection", "device", c.id.DeviceID, "err", err)
			c.refuse(fmt.Errorf("telemetry handler: %w", err))
			return
		}
	case pubTwinGet:
		r := s.h.TwinGet(c.ctx, c.id, j.rid)
		reply = c.twinReply(j.rid, r)
	case pubTwinReported:
		r := s.h.TwinReported(c.ctx, c.id, j.rid, j.payload)
		reply = c.twinReply(j.rid, r)
	case pubMethodResponse:
		s.h.MethodResponse(c.ctx, c.id, j.rid, j.status, j.payload)
	}
	if j.qos == 1 {
		c.send(c.ctx, encodePuback(j.id))
		s.metrics.publishAcked(j.kind)
	}
	if reply != nil {
		c.send(c.ctx, reply)
	}
}

// twinReply encodes a twin response when the device subscribed to $iothub/twin/res/#;
// IoT Hub has nowhere else to put it.
func (c *conn) twinReply(rid string, r TwinResponse) []byte {
	if _, ok := c.sess.granted(subTwinResponses); !ok {
		return nil
	}
	f, err := encodePublish(twinResponseTopic(rid, r), 0, 0, r.Body)
	if err != nil {
		c.s.log.Warn("mqtt: twin response not sent", "device", c.id.DeviceID, "err", err)
	}
	return f
}
