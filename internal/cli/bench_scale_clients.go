package cli

// The device side of `outpost bench scale`: client processes (this binary's
// hidden `bench scale-clients`) that each connect a range of devices to one
// node over MQTT/TLS and hold them or publish. One process per node, because
// RLIMIT_NOFILE bounds what one process may hold; the parent talks to each
// over its standard input and output, one JSON line per event.

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/outpost-iot/outpost/internal/sas"
)

// clientSpec is what one client process does.
type clientSpec struct {
	ids         []string // or, for large ranges, idFrom and idCount of scaleDeviceID
	idFrom      int
	idCount     int
	publish     bool
	messages    int
	inflight    int
	size        int
	concurrency int
}

// clientProcess is the parent's handle on a client process.
type clientProcess struct {
	node   int
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	events chan clientEvent
	exited chan struct{}
	stderr *strings.Builder
	mu     sync.Mutex
}

func startClientProcess(ctx context.Context, d *scaleDeployment, env *scaleEnv, hub scaleHub, node int, s clientSpec) (*clientProcess, error) {
	n := d.nodes[node]
	args := []string{"bench", "scale-clients", "--broker", n.ip + ":8883", "--ca", n.rt.CAFile, "--host", hub.host,
		"--seed", string(env.seed), "--connect-concurrency", strconv.Itoa(s.concurrency)}
	if len(s.ids) > 0 {
		args = append(args, "--ids", strings.Join(s.ids, ","))
	} else {
		args = append(args, "--from", strconv.Itoa(s.idFrom), "--count", strconv.Itoa(s.idCount))
	}
	if s.publish {
		args = append(args, "--publish", "--messages", strconv.Itoa(s.messages), "--inflight", strconv.Itoa(s.inflight), "--size", strconv.Itoa(s.size))
	}
	p := &clientProcess{node: node, cmd: exec.Command(d.bin, args...), events: make(chan clientEvent, 16), exited: make(chan struct{}), stderr: &strings.Builder{}}
	var err error
	if p.stdin, err = p.cmd.StdinPipe(); err != nil {
		return nil, fmt.Errorf("client process: %w", err)
	}
	stdout, err := p.cmd.StdoutPipe()
	if err != nil {
		return nil, fmt.Errorf("client process: %w", err)
	}
	p.cmd.Stderr = lockedWriter{&p.mu, p.stderr}
	if err := p.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start a client process: %w", err)
	}
	go func() {
		defer close(p.exited)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			var ev clientEvent
			if json.Unmarshal(sc.Bytes(), &ev) == nil && ev.Event != "" {
				p.events <- ev
			}
		}
		_ = p.cmd.Wait()
	}()
	return p, nil
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(b)
}

// next waits for the process's next event, which must be want.
func (p *clientProcess) next(ctx context.Context, want string, timeout time.Duration) (clientEvent, error) {
	select {
	case ev := <-p.events:
		if ev.Event != want {
			return ev, fmt.Errorf("client process for node %d: got %s, want %s", p.node, ev.Event, want)
		}
		return ev, nil
	case <-p.exited:
		p.mu.Lock()
		defer p.mu.Unlock()
		return clientEvent{}, fmt.Errorf("client process for node %d exited before %s: %s", p.node, want, strings.TrimSpace(p.stderr.String()))
	case <-ctx.Done():
		return clientEvent{}, ctx.Err()
	case <-time.After(timeout):
		return clientEvent{}, fmt.Errorf("client process for node %d: no %s within %s", p.node, want, timeout)
	}
}

func (p *clientProcess) send(line string) { _, _ = io.WriteString(p.stdin, line+"\n") }

func (p *clientProcess) pid() int {
	if p.cmd.Process == nil {
		return 0
	}
	return p.cmd.Process.Pid
}

// stop closes the process's standard input (it disconnects and exits) and
// waits for it, killing it after a minute.
func (p *clientProcess) stop() {
	_ = p.stdin.Close()
	select {
	case <-p.exited:
	case <-time.After(time.Minute):
		_ = p.cmd.Process.Kill()
		<-p.exited
	}
}

// fleet is the loaded hub's held connections and what connecting them cost.
type fleet struct {
	procs        []*clientProcess
	connected    []clientEvent // per node
	before       []procStats   // nodes before connecting
	afterConnect []procStats   // nodes once every device connected
	afterHold    []procStats   // nodes after --hold
	clients      []procStats   // client processes after --hold
	elapsed      time.Duration
	// idle is the CPU the held connections cost while nothing else ran:
	// nodes and client processes over the --hold (of length held).
	idleNodes, idleClients time.Duration
	held                   time.Duration
}

func (f *fleet) ok() int {
	n := 0
	for _, c := range f.connected {
		n += c.OK
	}
	return n
}

// stillConnected asks every client process how many of its connections
// are still open.
func (f *fleet) stillConnected() int {
	n := 0
	for _, p := range f.procs {
		p.send("check")
		if ev, err := p.next(context.Background(), "alive", time.Minute); err == nil {
			n += ev.Alive
		}
	}
	return n
}

func (f *fleet) close() {
	var wg sync.WaitGroup
	for _, p := range f.procs {
		wg.Add(1)
		go func() { defer wg.Done(); p.stop() }()
	}
	wg.Wait()
}

// connectFleet connects the loaded hub's first --connections devices, an
// equal share to each node, each share from its own client process, all at
// once; then holds them for --hold.
func connectFleet(ctx context.Context, log *slog.Logger, d *scaleDeployment, env *scaleEnv, o scaleOptions) (*fleet, error) {
	f := &fleet{before: d.nodeStats()}
	nodes := len(d.nodes)
	start := time.Now()
	from := 0
	for i := range nodes {
		count := o.connections / nodes
		if i < o.connections%nodes {
			count++
		}
		if count == 0 {
			continue
		}
		p, err := startClientProcess(ctx, d, env, env.loaded, i, clientSpec{idFrom: from, idCount: count, concurrency: o.connectConc})
		if err != nil {
			f.close()
			return nil, err
		}
		f.procs = append(f.procs, p)
		from += count
	}
	f.connected = make([]clientEvent, nodes)
	f.afterConnect = make([]procStats, nodes)
	var firstErr error
	for _, p := range f.procs {
		ev, err := p.next(ctx, "connected", 30*time.Minute)
		if err != nil {
			firstErr = errors.Join(firstErr, err)
			continue
		}
		f.connected[p.node] = ev
		f.afterConnect[p.node], _ = readProcStats(d.pid(p.node))
		log.Info("connected", "node", p.node, "ok", ev.OK, "failed", ev.Failed, "seconds", fmt.Sprintf("%.1f", ev.ElapsedSec),
			"perSecond", fmt.Sprintf("%.0f", float64(ev.OK)/ev.ElapsedSec), "firstErr", ev.FirstErr)
	}
	f.elapsed = time.Since(start)
	if firstErr != nil {
		f.close()
		return nil, firstErr
	}
	log.Info("fleet connected", "connections", f.ok(), "seconds", f.elapsed.Seconds(), "holding", o.hold)
	holdStart, nodesBefore := time.Now(), d.nodeStats()
	clientsBefore := make([]procStats, len(f.procs))
	for i, p := range f.procs {
		clientsBefore[i], _ = readProcStats(p.pid())
	}
	select {
	case <-ctx.Done():
		f.close()
		return nil, ctx.Err()
	case <-time.After(o.hold):
	}
	f.afterHold = d.nodeStats()
	f.held = time.Since(holdStart)
	for i := range f.afterHold {
		f.idleNodes += f.afterHold[i].cpu - nodesBefore[i].cpu
	}
	for i, p := range f.procs {
		st, _ := readProcStats(p.pid())
		f.clients = append(f.clients, st)
		f.idleClients += st.cpu - clientsBefore[i].cpu
	}
	return f, nil
}

// The client process.

type clientFlags struct {
	broker, caFile, host, seed, ids string
	from, count, concurrency        int
	publish                         bool
	messages, inflight, size        int
}

func newBenchScaleClientsCommand() *cobra.Command {
	var f clientFlags
	cmd := &cobra.Command{
		Use:    "scale-clients",
		Short:  "A client process of `outpost bench scale` (connects devices to one node; driven over stdin/stdout)",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runScaleClients(cmd.Context(), cmd.OutOrStdout(), cmd.InOrStdin(), f)
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&f.broker, "broker", "", "node MQTT address")
	fs.StringVar(&f.caFile, "ca", "", "CA file")
	fs.StringVar(&f.host, "host", "", "hub host name")
	fs.StringVar(&f.seed, "seed", "", "device key seed")
	fs.StringVar(&f.ids, "ids", "", "comma-separated device ids")
	fs.IntVar(&f.from, "from", 0, "first device number")
	fs.IntVar(&f.count, "count", 0, "devices from --from")
	fs.IntVar(&f.concurrency, "connect-concurrency", 24, "connections set up at once")
	fs.BoolVar(&f.publish, "publish", false, "publish after \"go\" on stdin instead of holding")
	fs.IntVar(&f.messages, "messages", 1000, "messages per device")
	fs.IntVar(&f.inflight, "inflight", 16, "QoS 1 messages in flight per device")
	fs.IntVar(&f.size, "size", 256, "payload bytes")
	return cmd
}

func runScaleClients(ctx context.Context, out io.Writer, in io.Reader, f clientFlags) error {
	emit := func(ev clientEvent) { fmt.Fprintln(out, ev.String()) }
	var ids []string
	if f.ids != "" {
		ids = strings.Split(f.ids, ",")
	} else {
		for n := f.from; n < f.from+f.count; n++ {
			ids = append(ids, scaleDeviceID(n))
		}
	}
	if note := raiseFileLimit(len(ids)); note != "" {
		fmt.Fprintln(os.Stderr, note)
	}
	expiry := time.Now().Add(24 * time.Hour)
	t := benchTarget{devices: make([]benchDevice, len(ids))}
	for i, id := range ids {
		token, err := sas.Sign(f.host+"/devices/"+id, deviceKey([]byte(f.seed), id, 1), "", expiry)
		if err != nil {
			return fmt.Errorf("sign a token for %s: %w", id, err)
		}
		t.devices[i] = benchDevice{id: id, username: f.host + "/" + id + "/?api-version=" + mqttDeviceAPIVersion, password: token}
	}
	var err error
	if t.addr, err = resolveBroker(ctx, f.broker); err != nil {
		return err
	}
	if t.tls, err = benchTLSConfig(f.caFile, f.host); err != nil {
		return err
	}
	o := mqttBenchOptions{idle: !f.publish, keepAlive: 4 * time.Minute, connectConcurrency: f.concurrency, qos: 1,
		inflight: f.inflight, size: f.size, messages: f.messages, drain: time.Minute}
	conns, cs := connectAll(ctx, t, o, sourceAddresses(t.addr.IP))
	defer closeAll(conns)
	ev := clientEvent{Event: "connected", OK: cs.ok, Failed: cs.failed, ElapsedSec: cs.elapsed.Seconds(), TLS: cs.tls}
	if cs.firstErr != nil {
		ev.FirstErr = cs.firstErr.Error()
	}
	emit(ev)
	stopPing := startKeepAlive(conns, o.keepAlive)
	defer stopPing()
	lines := bufio.NewScanner(in)
	if f.publish {
		if !lines.Scan() {
			return nil
		}
		res := publishAll(ctx, conns, o)
		end := time.Now()
		closeAll(conns)
		for _, c := range conns {
			res.hist.merge(c.hist)
		}
		ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
		emit(clientEvent{Event: "published", Sent: res.sent, Acked: res.acked, EndNs: end.UnixNano(), ElapsedSec: res.elapsed.Seconds(),
			P50Ms: ms(res.hist.quantile(0.5)), P99Ms: ms(res.hist.quantile(0.99))})
		return nil
	}
	for lines.Scan() {
		if lines.Text() == "check" {
			alive := 0
			for _, c := range conns {
				select {
				case <-c.done:
				default:
					alive++
				}
			}
			emit(clientEvent{Event: "alive", Alive: alive})
		}
	}
	return nil
}
