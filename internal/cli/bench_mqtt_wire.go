package cli

// The bench mqtt load tool: idle holding, /proc readings, the MQTT encoding it writes and its latency histogram.

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/bits"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// holdIdle keeps the connections open for d and reports the server's memory.
func holdIdle(ctx context.Context, w io.Writer, pid int, conns []*benchConn, before procStats, statErr error, d time.Duration) error {
	connected, _ := readProcStats(pid)
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
	case <-ctx.Done():
	}
	lost := 0
	for _, c := range conns {
		select {
		case <-c.done:
			lost++
		default:
		}
	}
	fmt.Fprintf(w, "idle: %d connections held for %s, %d lost meanwhile\n", len(conns), d, lost)
	if pid == 0 {
		fmt.Fprintln(w, "no --server-pid: server memory not measured")
		return nil
	}
	if statErr != nil {
		fmt.Fprintf(w, "server memory not measured: %v\n", statErr)
		return nil
	}
	after, err := readProcStats(pid)
	if err != nil {
		return err
	}
	held := len(conns) - lost
	fmt.Fprintf(w, "server pid %d RSS: %s before connecting, %s once connected, %s after holding (peak %s)\n",
		pid, mib(before.rss), mib(connected.rss), mib(after.rss), mib(after.hwm))
	if held > 0 {
		fmt.Fprintf(w, "RSS per connection: %.1f KiB after holding (%.1f KiB right after connecting)\n",
			float64(after.rss-before.rss)/float64(held)/1024, float64(connected.rss-before.rss)/float64(held)/1024)
	}
	fmt.Fprintf(w, "server CPU while connecting and holding: %.2f s\n", (after.cpu - before.cpu).Seconds())
	return nil
}

// procStats is what /proc says about a process.
type procStats struct {
	rss, hwm int64         // bytes
	cpu      time.Duration // user + system
}

func readProcStats(pid int) (procStats, error) {
	if pid <= 0 {
		return procStats{}, errors.New("no pid")
	}
	var st procStats
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return st, fmt.Errorf("server process: %w", err)
	}
	for _, line := range strings.Split(string(status), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok || (k != "VmRSS" && k != "VmHWM") {
			continue
		}
		kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		if k == "VmRSS" {
			st.rss = kb << 10
		} else {
			st.hwm = kb << 10
		}
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return st, fmt.Errorf("server process: %w", err)
	}
	// Fields after the command name, which may contain spaces: utime and
	// stime are fields 14 and 15 of the line, 12 and 13 after ')'.
	if i := strings.LastIndexByte(string(stat), ')'); i >= 0 {
		f := strings.Fields(string(stat[i+1:]))
		if len(f) > 12 {
			u, _ := strconv.ParseInt(f[11], 10, 64)
			s, _ := strconv.ParseInt(f[12], 10, 64)
			st.cpu = time.Duration(u+s) * time.Second / 100 // USER_HZ is 100 on Linux
		}
	}
	return st, nil
}

func processExists(pid int) bool {
	if pid <= 0 {
		return false
	}
	_, err := os.Stat(fmt.Sprintf("/proc/%d", pid))
	return err == nil
}

func selfCPU() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func mib(b int64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }

func firstNonEmpty(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}

// MQTT 3.1.1 encoding, client side.

func appendRemainingLength(b []byte, n int) []byte {
	for {
		d := byte(n % 128)
		n /= 128
		if n > 0 {
			d |= 0x80
		}
		b = append(b, d)
		if n == 0 {
			return b
		}
	}
}

func appendMQTTString(b []byte, s string) []byte {
	return append(binary.BigEndian.AppendUint16(b, uint16(len(s))), s...)
}

// encodeConnect builds a clean-session CONNECT, with the user name and
// password only when given.
func encodeConnect(clientID, username, password string, keepAlive time.Duration) []byte {
	flags := byte(0x02)
	body := appendMQTTString(nil, "MQTT")
	body = append(body, 4) // protocol level 3.1.1
	if username != "" {
		flags |= 0x80
	}
	if password != "" {
		flags |= 0x40
	}
	body = append(body, flags)
	body = binary.BigEndian.AppendUint16(body, uint16(keepAlive/time.Second))
	body = appendMQTTString(body, clientID)
	if username != "" {
		body = appendMQTTString(body, username)
	}
	if password != "" {
		body = appendMQTTString(body, password)
	}
	out := appendRemainingLength([]byte{0x10}, len(body))
	return append(out, body...)
}

// encodePublishPrefix is a PUBLISH up to its packet id (QoS 1) or payload
// (QoS 0): the fixed header and the topic, the same for every message.
func encodePublishPrefix(topic string, qos byte, payloadLen int) []byte {
	n := 2 + len(topic) + payloadLen
	if qos > 0 {
		n += 2
	}
	b := appendRemainingLength([]byte{0x30 | qos<<1}, n)
	return appendMQTTString(b, topic)
}

// latencyHistogram records durations in log-linear buckets, HDR-style: exact
// below 128 ns, then 64 buckets per power of two, so a quantile is within
// 1/64 (1.6 %) of the true value whatever the range. Fixed size, no locking:
// each connection's reader has its own, merged at the end.
type latencyHistogram struct {
	counts []uint64
	total  uint64
	max    time.Duration
}

const (
	histSubBits    = 6
	histSubBuckets = 1 << histSubBits // per power of two
	histLinear     = 2 * histSubBuckets
	histMaxShift   = 40 // up to about 2^47 ns (39 hours)
)

func newLatencyHistogram() *latencyHistogram {
	return &latencyHistogram{counts: make([]uint64, histLinear+histMaxShift*histSubBuckets)}
}

func histIndex(v uint64) int {
	if v < histLinear {
		return int(v)
	}
	shift := bits.Len64(v) - histSubBits - 1 // v>>shift is in [64, 128)
	if shift > histMaxShift {
		return histLinear + histMaxShift*histSubBuckets - 1
	}
	return histLinear + (shift-1)*histSubBuckets + int(v>>shift) - histSubBuckets
}

// histUpper is the largest value bucket i holds.
func histUpper(i int) uint64 {
	if i < histLinear {
		return uint64(i)
	}
	shift := (i-histLinear)/histSubBuckets + 1
	sub := uint64((i-histLinear)%histSubBuckets + histSubBuckets)
	return (sub+1)<<shift - 1
}

func (h *latencyHistogram) record(d time.Duration) {
	if d < 0 {
		d = 0
	}
	h.counts[histIndex(uint64(d))]++
	h.total++
	h.max = max(h.max, d)
}

func (h *latencyHistogram) merge(o *latencyHistogram) {
	if o == nil {
		return
	}
	for i, n := range o.counts {
		h.counts[i] += n
	}
	h.total += o.total
	h.max = max(h.max, o.max)
}

// quantile is the upper edge of the bucket holding the q-th value (never
// above the recorded maximum).
func (h *latencyHistogram) quantile(q float64) time.Duration {
	if h.total == 0 {
		return 0
	}
	rank := uint64(q*float64(h.total) + 0.5)
	rank = max(rank, 1)
	var seen uint64
	for i, n := range h.counts {
		seen += n
		if seen >= rank {
			return min(time.Duration(histUpper(i)), h.max)
		}
	}
	return h.max
}
