package cli

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spf13/cobra"
)

// The load generator speaks just enough MQTT 3.1.1 itself (CONNECT, PUBLISH,
// PUBACK, PINGREQ, DISCONNECT) instead of using paho: on a small machine it
// shares the CPU with the broker it measures, so every cycle it spends is taken
// from that broker. A connection here is one TLS socket, one reader goroutine
// and a preencoded PUBLISH prefix; a publish costs one buffered write and no
// allocation. The same client drives Outpost and a plain broker, so whatever
// it costs, it costs both alike.

const (
	mqttDeviceAPIVersion = "2021-04-12"
	hubAPIVersion        = "2023-06-30"
	benchMaxPacketID     = 65535
)

// mqttBenchOptions are the flags of `outpost bench mqtt`.
type mqttBenchOptions struct {
	target     string
	broker     string
	caFile     string
	serverName string

	devices            int
	messages           int
	duration           time.Duration
	inflight           int
	qos                int
	size               int
	rate               float64
	idle               bool
	serverPID          int
	keepAlive          time.Duration
	connectConcurrency int
	drain              time.Duration

	hub           string
	resourceGroup string
	devicePrefix  string
}

// validate reports every problem at once.
func (o mqttBenchOptions) validate() error {
	var errs []error
	check := func(bad bool, format string, args ...any) {
		if bad {
			errs = append(errs, fmt.Errorf(format, args...))
		}
	}
	check(o.target != "outpost" && o.target != "mosquitto", "--target %q: use outpost or mosquitto", o.target)
	check(o.target == "mosquitto" && o.broker == "", "--target mosquitto needs --broker host:port")
	check(o.devices < 1, "--devices %d: at least 1", o.devices)
	check(o.messages < 0, "--messages %d is negative", o.messages)
	check(o.duration < 0 || (o.duration == 0 && (o.idle || o.messages == 0)), "--duration %s: give a positive duration (or --messages)", o.duration)
	check(o.qos != 0 && o.qos != 1, "--qos %d: use 0 or 1", o.qos)
	check(o.inflight < 1 || o.inflight > benchMaxPacketID, "--inflight %d is outside 1..%d", o.inflight, benchMaxPacketID)
	check(o.size < 0 || o.size > 256<<10, "--size %d is outside 0..262144 (IoT Hub's message limit)", o.size)
	check(o.rate < 0, "--rate %g is negative", o.rate)
	check(o.keepAlive < time.Second || o.keepAlive > 65535*time.Second, "--keepalive %s is outside 1s..65535s", o.keepAlive)
	check(o.connectConcurrency < 1, "--connect-concurrency %d: at least 1", o.connectConcurrency)
	check(o.drain < 0, "--drain %s is negative", o.drain)
	return errors.Join(errs...)
}

func newBenchMQTTCommand() *cobra.Command {
	var o mqttBenchOptions
	cmd := &cobra.Command{
		Use:   "mqtt",
		Short: "Devices publishing telemetry over MQTT/TLS: throughput, PUBACK latency, idle memory",
		Long: "Connects --devices simulated devices, each on its own TLS connection, and has each\n" +
			"publish --messages (or for --duration) telemetry messages of --size bytes with up to\n" +
			"--inflight QoS 1 messages awaiting their PUBACK; --rate caps the total rate. Prints the\n" +
			"connections made, messages sent/acknowledged/failed, msgs/s and publish→PUBACK latency\n" +
			"percentiles. --idle instead holds the connections for --duration and, with --server-pid,\n" +
			"reports the server's RSS per connection.\n\n" +
			"--target outpost (the default) creates or reuses --hub and its devices on the running node\n" +
			"(found as other commands find it) and connects each device with its own SAS token.\n" +
			"--target mosquitto publishes to any MQTT broker over TLS without authentication, on the\n" +
			"same topics, so one tool measures both. Sockets spread over 127.0.0.2–127.0.0.9 when the\n" +
			"broker is on a loopback address, so many connections don't run out of source ports.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if o.messages > 0 && !o.idle && !cmd.Flags().Changed("duration") {
				o.duration = 0 // --messages alone: no time limit
			}
			if err := o.validate(); err != nil {
				return err
			}
			return benchMQTT(cmd, o)
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&o.target, "target", "outpost", "broker kind: outpost (hub, devices and SAS tokens) or mosquitto (any broker, no authentication)")
	fs.StringVar(&o.broker, "broker", "", "MQTT over TLS address (default for outpost: the node's host, port 8883)")
	fs.StringVar(&o.caFile, "ca", "", "CA certificate the broker's certificate chains to (default for outpost: the node's CA)")
	fs.StringVar(&o.serverName, "server-name", "", "TLS server name (default: the hub's host name, or the --broker host)")
	fs.IntVar(&o.devices, "devices", 10, "simulated devices, each on its own TLS connection")
	fs.IntVar(&o.messages, "messages", 0, "messages per device (0: publish for --duration)")
	fs.DurationVar(&o.duration, "duration", 10*time.Second, "how long to publish, or with --idle how long to hold the connections")
	fs.IntVar(&o.inflight, "inflight", 16, "QoS 1 messages awaiting PUBACK per device")
	fs.IntVar(&o.qos, "qos", 1, "QoS of the telemetry: 0 or 1")
	fs.IntVar(&o.size, "size", 256, "payload bytes")
	fs.Float64Var(&o.rate, "rate", 0, "target total messages/s over all devices (0: as fast as possible)")
	fs.BoolVar(&o.idle, "idle", false, "connect, publish nothing, hold the connections for --duration and report memory")
	fs.IntVar(&o.serverPID, "server-pid", 0, "broker process to read RSS and CPU time from (default for outpost: the node's pid when it runs here)")
	fs.DurationVar(&o.keepAlive, "keepalive", 4*time.Minute, "MQTT keep-alive the devices ask for")
	fs.IntVar(&o.connectConcurrency, "connect-concurrency", 64, "connections being set up at once")
	fs.DurationVar(&o.drain, "drain", 10*time.Second, "how long to wait for outstanding PUBACKs after publishing stops")
	fs.StringVar(&o.hub, "hub", "benchhub", "outpost: the IoT hub to create or reuse")
	fs.StringVar(&o.resourceGroup, "resource-group", "rg-bench", "outpost: the hub's resource group")
	fs.StringVar(&o.devicePrefix, "device-prefix", "bench-", "device ids are this prefix and a number")
	return cmd
}

// benchDevice is what one simulated device connects with.
type benchDevice struct {
	id, username, password string
}

// benchTarget is the resolved broker and the devices to connect.
type benchTarget struct {
	describe   string
	addr       *net.TCPAddr
	tls        *tls.Config
	devices    []benchDevice
	serverPID  int
	setupNotes []string
}

func benchMQTT(cmd *cobra.Command, o mqttBenchOptions) error {
	ctx := cmd.Context()
	w := cmd.OutOrStdout()
	if note := raiseFileLimit(o.devices); note != "" {
		fmt.Fprintln(w, note)
	}
	var (
		t   benchTarget
		err error
	)
	if o.target == "outpost" {
		t, err = prepareOutpost(ctx, cmd, o)
	} else {
		t, err = preparePlainBroker(o)
	}
	if err != nil {
		return err
	}
	for _, n := range t.setupNotes {
		fmt.Fprintln(w, n)
	}
	local := sourceAddresses(t.addr.IP)
	fmt.Fprintf(w, "target: %s at %s; %d devices from %s\n", t.describe, t.addr, len(t.devices), describeSources(local))

	before, statErr := readProcStats(t.serverPID)
	conns, cs := connectAll(ctx, t, o, local)
	defer closeAll(conns)
	fmt.Fprintf(w, "connections: %d established, %d failed in %s (%.0f/s)", cs.ok, cs.failed, cs.elapsed.Round(time.Millisecond), float64(cs.ok)/cs.elapsed.Seconds())
	if cs.tls != "" {
		fmt.Fprintf(w, "; %s", cs.tls)
	}
	fmt.Fprintln(w)
	if cs.firstErr != nil {
		fmt.Fprintf(w, "first connection error: %v\n", cs.firstErr)
	}
	if cs.ok == 0 {
		return errors.New("no device connected")
	}
	stopPing := startKeepAlive(conns, o.keepAlive)
	defer stopPing()

	if o.idle {
		return holdIdle(ctx, w, t.serverPID, conns, before, statErr, o.duration)
	}
	before, statErr = readProcStats(t.serverPID)
	clientBefore := selfCPU()
	res := publishAll(ctx, conns, o)
	after, _ := readProcStats(t.serverPID)
	clientCPU := selfCPU() - clientBefore
	closeAll(conns) // the readers end, so their histograms may be read
	for _, c := range conns {
		res.hist.merge(c.hist)
	}
	printPublishResult(w, o, res)
	done := res.acked
	if o.qos == 0 {
		done = res.sent
	}
	perMessage := func(d time.Duration) string {
		if done == 0 {
			return "-"
		}
		return fmt.Sprintf("%.1f µs", float64(d.Microseconds())/float64(done))
	}
	if t.serverPID > 0 && statErr == nil {
		cpu := after.cpu - before.cpu
		fmt.Fprintf(w, "server pid %d: CPU %.2f s while publishing (%.2f cores, %s per message), RSS %s (peak %s)\n", t.serverPID,
			cpu.Seconds(), cpu.Seconds()/res.elapsed.Seconds(), perMessage(cpu), mib(after.rss), mib(after.hwm))
	}
	fmt.Fprintf(w, "load generator: CPU %.2f s while publishing (%.2f cores, %s per message; %d CPUs on this machine)\n",
		clientCPU.Seconds(), clientCPU.Seconds()/res.elapsed.Seconds(), perMessage(clientCPU), runtime.NumCPU())
	return nil
}

// benchConn is one simulated device's connection.
type benchConn struct {
	id string
	nc net.Conn

	wmu       sync.Mutex // guards bw and lastWrite: the publisher and the keep-alive loop write
	bw        *bufio.Writer
	lastWrite time.Time

	free     chan uint16    // QoS 1 packet ids not in flight; capacity --inflight
	sentAt   []atomic.Int64 // by packet id: when the PUBLISH was written (ns since base), or notInFlight
	base     time.Time
	hist     *latencyHistogram // the reader's alone until done is closed
	acked    atomic.Int64
	spurious atomic.Int64
	sent     int64 // the publisher's
	maxLag   time.Duration
	readErr  error
	done     chan struct{} // closed when the reader has returned
	closed   bool          // under wmu
}

const notInFlight = -1

type connectStats struct {
	ok, failed int
	elapsed    time.Duration
	firstErr   error
	tls        string
}

// connectAll connects every device, --connect-concurrency at a time, and
// returns the live connections.
func connectAll(ctx context.Context, t benchTarget, o mqttBenchOptions, local []*net.TCPAddr) ([]*benchConn, connectStats) {
	var (
		mu    sync.Mutex
		conns = make([]*benchConn, 0, len(t.devices))
		st    connectStats
		next  atomic.Int64
		wg    sync.WaitGroup
	)
	publishing := !o.idle
	start := time.Now()
	for range min(o.connectConcurrency, len(t.devices)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				i := int(next.Add(1) - 1)
				if i >= len(t.devices) {
					return
				}
				var src *net.TCPAddr
				if len(local) > 0 {
					src = local[i%len(local)]
				}
				c, state, err := dialDevice(ctx, t, t.devices[i], src, o.keepAlive, publishing)
				mu.Lock()
				if err != nil {
					st.failed++
					if st.firstErr == nil {
						st.firstErr = fmt.Errorf("%s: %w", t.devices[i].id, err)
					}
				} else {
					if publishing {
						c.prepare(o)
					}
					go c.read()
					st.ok++
					conns = append(conns, c)
					if st.tls == "" {
						st.tls = describeTLS(state)
					}
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	st.elapsed = time.Since(start)
	return conns, st
}

func describeTLS(s tls.ConnectionState) string {
	return fmt.Sprintf("%s %s %s", tls.VersionName(s.Version), tls.CipherSuiteName(s.CipherSuite), s.CurveID)
}

func dialDevice(ctx context.Context, t benchTarget, d benchDevice, src *net.TCPAddr, keepAlive time.Duration, publishing bool) (*benchConn, tls.ConnectionState, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	dialer := net.Dialer{Timeout: 30 * time.Second}
	if src != nil {
		dialer.LocalAddr = src
	}
	raw, err := dialer.DialContext(ctx, "tcp", t.addr.String())
	if err != nil {
		return nil, tls.ConnectionState{}, err
	}
	tc := tls.Client(raw, t.tls)
	if err := tc.HandshakeContext(ctx); err != nil {
		raw.Close()
		return nil, tls.ConnectionState{}, fmt.Errorf("TLS: %w", err)
	}
	deadline, _ := ctx.Deadline()
	tc.SetDeadline(deadline)
	if _, err := tc.Write(encodeConnect(d.id, d.username, d.password, keepAlive)); err != nil {
		tc.Close()
		return nil, tls.ConnectionState{}, fmt.Errorf("CONNECT: %w", err)
	}
	var ack [4]byte
	if _, err := io.ReadFull(tc, ack[:]); err != nil {
		tc.Close()
		return nil, tls.ConnectionState{}, fmt.Errorf("CONNACK: %w", err)
	}
	if ack[0] != 0x20 || ack[1] != 2 {
		tc.Close()
		return nil, tls.ConnectionState{}, fmt.Errorf("CONNACK: unexpected packet % x", ack)
	}
	if ack[3] != 0 {
		tc.Close()
		return nil, tls.ConnectionState{}, fmt.Errorf("refused: %s", connackReason(ack[3]))
	}
	tc.SetDeadline(time.Time{})
	bufSize := 256 // idle connections read only PINGRESP
	if publishing {
		bufSize = 32 << 10
	}
	return &benchConn{id: d.id, nc: tc, bw: bufio.NewWriterSize(tc, bufSize), lastWrite: time.Now(), done: make(chan struct{})},
		tc.ConnectionState(), nil
}

func connackReason(code byte) string {
	switch code {
	case 1:
		return "unacceptable protocol version (1)"
	case 2:
		return "identifier rejected (2)"
	case 3:
		return "server unavailable (3)"
	case 4:
		return "bad user name or password (4)"
	case 5:
		return "not authorized (5)"
	}
	return fmt.Sprintf("CONNACK return code %d", code)
}

// prepare gives a publishing connection its packet ids and histogram.
func (c *benchConn) prepare(o mqttBenchOptions) {
	c.base = time.Now()
	c.hist = newLatencyHistogram()
	if o.qos == 1 {
		c.free = make(chan uint16, o.inflight)
		for id := 1; id <= o.inflight; id++ {
			c.free <- uint16(id)
		}
		c.sentAt = make([]atomic.Int64, o.inflight+1)
		for i := range c.sentAt {
			c.sentAt[i].Store(notInFlight)
		}
	}
}

// read handles what the broker sends: PUBACKs (latency, and the packet id
// goes back to the publisher) and PINGRESPs; anything else is skipped.
func (c *benchConn) read() {
	defer close(c.done)
	size := 512
	if c.hist != nil {
		size = 4096
	}
	br := bufio.NewReaderSize(c.nc, size)
	var onPuback func(id uint16) error
	if c.free != nil {
		onPuback = func(id uint16) error {
			if int(id) >= len(c.sentAt) {
				return fmt.Errorf("PUBACK for packet id %d, never sent", id)
			}
			sent := c.sentAt[id].Swap(notInFlight)
			if sent == notInFlight {
				c.spurious.Add(1) // a second PUBACK for one PUBLISH: count it, don't free the id twice
				return nil
			}
			c.hist.record(time.Duration(int64(time.Since(c.base)) - sent))
			c.acked.Add(1)
			c.free <- id
			return nil
		}
	}
	c.readErr = readPubacks(br, onPuback)
}

func readRemainingLength(r io.ByteReader) (int, error) {
	n, shift := 0, 0
	for i := 0; i < 4; i++ {
		b, err := r.ReadByte()
		if err != nil {
			return 0, err
		}
		n |= int(b&0x7f) << shift
		if b&0x80 == 0 {
			return n, nil
		}
		shift += 7
	}
	return 0, errors.New("malformed remaining length")
}

// startKeepAlive sends PINGREQ on every connection that wrote nothing for
// half the keep-alive, so held connections stay up however long they idle.
func startKeepAlive(conns []*benchConn, keepAlive time.Duration) func() {
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(keepAlive / 4)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			for _, c := range conns {
				c.wmu.Lock()
				if !c.closed && time.Since(c.lastWrite) >= keepAlive/2 {
					c.nc.SetWriteDeadline(time.Now().Add(10 * time.Second))
					c.bw.Write([]byte{0xC0, 0})
					c.bw.Flush()
					c.nc.SetWriteDeadline(time.Time{})
					c.lastWrite = time.Now()
				}
				c.wmu.Unlock()
			}
		}
	}()
	return func() { close(stop); <-done }
}

// closeAll disconnects every connection (once) and waits for the readers.
func closeAll(conns []*benchConn) {
	for _, c := range conns {
		c.wmu.Lock()
		if !c.closed {
			c.closed = true
			c.nc.SetWriteDeadline(time.Now().Add(time.Second))
			c.bw.Write([]byte{0xE0, 0}) // DISCONNECT
			c.bw.Flush()
			c.nc.Close()
		}
		c.wmu.Unlock()
	}
	for _, c := range conns {
		<-c.done
	}
}

// publishResult sums the devices' publishing; hist is filled in once the
// connections are closed.
type publishResult struct {
	devices        int
	sent, acked    int64
	spurious       int64
	elapsed        time.Duration
	hist           *latencyHistogram
	maxLag         time.Duration
	dropped        int
	firstDropError error
}

// publishAll runs every connection's publisher until its messages are sent
// or --duration ends, then waits up to --drain for outstanding PUBACKs.
func publishAll(ctx context.Context, conns []*benchConn, o mqttBenchOptions) publishResult {
	pctx := ctx
	if o.duration > 0 {
		var cancel context.CancelFunc
		pctx, cancel = context.WithTimeout(ctx, o.duration)
		defer cancel()
	}
	payload := make([]byte, o.size)
	_, _ = rand.Read(payload)
	var interval time.Duration
	if o.rate > 0 {
		interval = time.Duration(float64(len(conns)) / o.rate * float64(time.Second))
	}
	var wg sync.WaitGroup
	start := time.Now()
	for i, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Rate-limited devices start staggered over one interval, not in step.
			first := start.Add(time.Duration(int64(interval) * int64(i) / int64(len(conns))))
			c.publish(pctx, o, payload, interval, first)
			c.awaitAcks(ctx, o.drain)
		}()
	}
	wg.Wait()
	res := publishResult{devices: len(conns), elapsed: time.Since(start), hist: newLatencyHistogram()}
	for _, c := range conns {
		res.sent += c.sent
		res.acked += c.acked.Load()
		res.spurious += c.spurious.Load()
		res.maxLag = max(res.maxLag, c.maxLag)
		select {
		case <-c.done:
			res.dropped++
			if res.firstDropError == nil {
				res.firstDropError = fmt.Errorf("%s: %w", c.id, c.readErr)
			}
		default:
		}
	}
	return res
}

// readPubacks reads packets until the connection ends (the error says
// how), handing each PUBACK's packet id (never 0) to onPuback and skipping
// everything else; a nil onPuback skips PUBACKs too. An error from onPuback
// ends the loop.
func readPubacks(br *bufio.Reader, onPuback func(id uint16) error) error {
	for {
		hdr, err := br.ReadByte()
		if err != nil {
			return err
		}
		n, err := readRemainingLength(br)
		if err != nil {
			return err
		}
		if hdr>>4 != 4 || n != 2 || onPuback == nil {
			if _, err := br.Discard(n); err != nil {
				return err
			}
			continue
		}
		var b [2]byte
		if _, err := io.ReadFull(br, b[:]); err != nil {
			return err
		}
		id := binary.BigEndian.Uint16(b[:])
		if id == 0 {
			return errors.New("PUBACK for packet id 0, never sent")
		}
		if err := onPuback(id); err != nil {
			return err
		}
	}
}

// takePacketID takes a QoS 1 packet id that is not in flight. When none is
// free it flushes what is buffered (the PUBACKs that free one answer it) and
// waits; false means the connection or ctx ended first, or the flush failed.
func takePacketID(ctx context.Context, free <-chan uint16, done <-chan struct{}, flush func() bool) (uint16, bool) {
	select {
	case id := <-free:
		return id, true
	default:
	}
	if !flush() {
		return 0, false
	}
	select {
	case id := <-free:
		return id, true
	case <-ctx.Done():
	case <-done:
	}
	return 0, false
}

// pacer spaces sends interval apart, starting at next (interval 0: no
// pacing).
type pacer struct {
	interval time.Duration
	next     time.Time
	timer    *time.Timer
}

// wait blocks until the next slot, calling beforeWait (when not nil) first
// if it has to wait; it returns how far behind its slot a late send is,
// and false when ctx ended or beforeWait failed.
func (p *pacer) wait(ctx context.Context, beforeWait func() bool) (time.Duration, bool) {
	if p.interval <= 0 {
		return 0, true
	}
	var lag time.Duration
	if d := time.Until(p.next); d > 0 {
		if beforeWait != nil && !beforeWait() {
			return 0, false
		}
		if p.timer == nil {
			p.timer = time.NewTimer(d)
		} else {
			p.timer.Reset(d)
		}
		select {
		case <-p.timer.C:
		case <-ctx.Done():
			return 0, false
		}
	} else {
		lag = -d
	}
	p.next = p.next.Add(p.interval)
	return lag, true
}

func (p *pacer) stop() {
	if p.timer != nil {
		p.timer.Stop()
	}
}

// publish writes PUBLISH packets: at once while a packet id is free (QoS 1)
// or on the rate schedule, flushing whenever it would otherwise wait.
func (c *benchConn) publish(ctx context.Context, o mqttBenchOptions, payload []byte, interval time.Duration, next time.Time) {
	prefix := encodePublishPrefix("devices/"+c.id+"/messages/events/", byte(o.qos), len(payload))
	flush := func() bool {
		c.wmu.Lock()
		defer c.wmu.Unlock()
		if c.bw.Buffered() == 0 {
			return true
		}
		c.lastWrite = time.Now()
		return c.bw.Flush() == nil
	}
	pace := pacer{interval: interval, next: next}
	defer pace.stop()
	for n := 0; o.messages == 0 || n < o.messages; n++ {
		if ctx.Err() != nil {
			break
		}
		lag, ok := pace.wait(ctx, flush)
		if !ok {
			return
		}
		c.maxLag = max(c.maxLag, lag)
		var id uint16
		if c.free != nil {
			var ok bool
			if id, ok = takePacketID(ctx, c.free, c.done, flush); !ok {
				return
			}
		}
		c.wmu.Lock()
		c.bw.Write(prefix)
		if c.free != nil {
			c.bw.Write([]byte{byte(id >> 8), byte(id)})
			c.sentAt[id].Store(int64(time.Since(c.base)))
		}
		_, err := c.bw.Write(payload)
		if interval > 0 && err == nil {
			c.lastWrite = time.Now()
			err = c.bw.Flush()
		}
		c.wmu.Unlock()
		if err != nil {
			return
		}
		c.sent++
	}
	flush()
}

// awaitAcks waits until every PUBACK is in, the connection drops, or the
// drain time runs out.
func (c *benchConn) awaitAcks(ctx context.Context, drain time.Duration) {
	if c.free == nil {
		return
	}
	deadline := time.Now().Add(drain)
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for c.acked.Load() < c.sent && time.Now().Before(deadline) {
		select {
		case <-tick.C:
		case <-c.done:
			return
		case <-ctx.Done():
			return
		}
	}
}

func printPublishResult(w io.Writer, o mqttBenchOptions, r publishResult) {
	rate := "as fast as possible"
	if o.rate > 0 {
		rate = fmt.Sprintf("target %.0f msgs/s", o.rate)
	}
	fmt.Fprintf(w, "messages: QoS %d, %d B payload, %d devices × %d in flight, %s\n", o.qos, o.size, r.devices, o.inflight, rate)
	if o.qos == 0 {
		fmt.Fprintf(w, "sent %d in %s (QoS 0: nothing is acknowledged)\n", r.sent, r.elapsed.Round(time.Millisecond))
		fmt.Fprintf(w, "throughput: %.0f msgs/s written\n", float64(r.sent)/r.elapsed.Seconds())
	} else {
		fmt.Fprintf(w, "sent %d, acknowledged %d, failed %d in %s\n", r.sent, r.acked, r.sent-r.acked, r.elapsed.Round(time.Millisecond))
		fmt.Fprintf(w, "throughput: %.0f msgs/s acknowledged (%.1f MB/s of payload)\n",
			float64(r.acked)/r.elapsed.Seconds(), float64(r.acked)*float64(o.size)/r.elapsed.Seconds()/1e6)
		h := r.hist
		fmt.Fprintf(w, "latency publish→PUBACK: p50 %s  p90 %s  p99 %s  p99.9 %s  max %s\n",
			fmtLatency(h.quantile(0.50)), fmtLatency(h.quantile(0.90)), fmtLatency(h.quantile(0.99)),
			fmtLatency(h.quantile(0.999)), fmtLatency(h.max))
	}
	if o.rate > 0 {
		fmt.Fprintf(w, "schedule: the furthest a publish fell behind its slot was %s\n", fmtLatency(r.maxLag))
	}
	if r.spurious > 0 {
		fmt.Fprintf(w, "PUBACKs for packet ids not in flight (ignored): %d\n", r.spurious)
	}
	if r.dropped > 0 {
		fmt.Fprintf(w, "connections lost during the run: %d (first: %v)\n", r.dropped, r.firstDropError)
	}
}

func fmtLatency(d time.Duration) string {
	switch {
	case d < time.Millisecond:
		return d.Round(time.Microsecond).String()
	case d < time.Second:
		return d.Round(10 * time.Microsecond).String()
	}
	return d.Round(time.Millisecond).String()
}
