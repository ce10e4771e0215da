package mqtt

import (
	"bufio"
	"context"
	"fmt"
	"time"
)

// Reading and writing hold memory only while there is something to read or write: an idle
// connection keeps neither a read buffer nor a writer goroutine, which is most of what a
// device that sits connected costs (docs/benchmarks.md, idle connections).

// packetReader reads a connection's packets through a buffer borrowed from the server's pool
// while bytes are buffered; between packets it waits for the next one's first byte without one.
// Used by the reader goroutine only.
type packetReader struct {
	c   *conn
	br  *bufio.Reader // nil while nothing is buffered
	one [1]byte
}

// ReadByte returns the next byte, waiting for it without a buffer when none is held.
func (r *packetReader) ReadByte() (byte, error) {
	if r.br != nil {
		return r.br.ReadByte()
	}
	for {
		n, err := r.c.nc.Read(r.one[:])
		if n == 1 {
			r.borrow()
			return r.one[0], nil
		}
		if err != nil {
			return 0, err
		}
	}
}

// Read reads into p through the borrowed buffer.
func (r *packetReader) Read(p []byte) (int, error) {
	if r.br == nil {
		r.borrow()
	}
	return r.br.Read(p)
}

func (r *packetReader) borrow() {
	r.br = r.c.s.readers.Get().(*bufio.Reader)
	r.br.Reset(r.c.nc)
}

// release gives the buffer back when a packet ended on its last buffered byte; when the next
// packet is already (partly) buffered the reader keeps it.
func (r *packetReader) release() {
	if r.br == nil || r.br.Buffered() > 0 {
		return
	}
	r.br.Reset(nil)
	r.c.s.readers.Put(r.br)
	r.br = nil
}

// drop gives the buffer back whatever it holds (the connection ended).
func (r *packetReader) drop() {
	if r.br == nil {
		return
	}
	r.br.Reset(nil)
	r.c.s.readers.Put(r.br)
	r.br = nil
}

// send queues a frame for the writer, starting it when it is not running. It waits while
// WriteQueue frames are queued (a device that does not read slows its senders down).
func (c *conn) send(ctx context.Context, f []byte) error {
	c.wmu.Lock()
	for !c.wclosed && len(c.outq) >= c.s.cfg.WriteQueue {
		if c.wspace == nil {
			c.wspace = make(chan struct{})
		}
		space := c.wspace
		c.wmu.Unlock()
		select {
		case <-space:
		case <-c.wdone:
		case <-ctx.Done():
			return ctx.Err()
		}
		c.wmu.Lock()
	}
	if c.wclosed {
		c.wmu.Unlock()
		return ErrConnectionClosed
	}
	c.outq = append(c.outq, f)
	if !c.writing {
		c.writing = true
		go c.write()
	}
	c.wmu.Unlock()
	return nil
}

// flushAndClose makes the writer write what is queued and then close the socket; no frame is
// accepted after it.
func (c *conn) flushAndClose() {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.wclosing = true
	if !c.writing { // the queue is empty whenever the writer is not running
		c.closeWriterLocked()
	}
}

// closeWriterLocked ends writing: the socket closes and senders see ErrConnectionClosed.
// Needs wmu.
func (c *conn) closeWriterLocked() {
	if c.wclosed {
		return
	}
	c.wclosed = true
	close(c.wdone)
	c.nc.Close()
}

// write is the writer goroutine, running while frames are queued: it writes everything queued
// in as few flushes as it can, and returns when the queue is empty.
func (c *conn) write() {
	var spare [][]byte
	for {
		c.wmu.Lock()
		batch := c.outq
		if len(batch) == 0 || c.wclosed {
			if c.wclosing {
				c.closeWriterLocked()
			}
			c.outq, c.writing = nil, false // an idle connection keeps no queue
			c.wmu.Unlock()
			return
		}
		c.outq = spare
		if c.wspace != nil {
			close(c.wspace)
			c.wspace = nil
		}
		c.wmu.Unlock()
		if err := c.writeFrames(batch); err != nil {
			c.abort(fmt.Errorf("write: %w", err))
			c.wmu.Lock()
			c.closeWriterLocked()
			c.outq, c.writing = nil, false
			c.wmu.Unlock()
			return
		}
		clear(batch)
		spare = batch[:0]
	}
}

// writeFrames writes frames through a buffer borrowed for the batch, flushing when it fills.
func (c *conn) writeFrames(frames [][]byte) error {
	bw := c.s.writers.Get().(*bufio.Writer)
	bw.Reset(c.nc)
	defer func() {
		bw.Reset(nil)
		c.s.writers.Put(bw)
	}()
	c.nc.SetWriteDeadline(time.Now().Add(c.s.cfg.WriteTimeout))
	for _, f := range frames {
		if _, err := bw.Write(f); err != nil {
			return err
		}
	}
	return bw.Flush()
}
