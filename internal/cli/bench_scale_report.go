package cli

// The report of `outpost bench scale`.

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"time"
)

func printScaleReport(w io.Writer, o scaleOptions, d *scaleDeployment, imp importResult, f *fleet, final []procStats, still int, empty, loaded scaleResults) {
	fmt.Fprintf(w, "\n== bench scale: %d nodes on PostgreSQL + NATS (database %s, stream prefix %s)\n", len(d.nodes), d.dbName, d.prefix)
	fmt.Fprintf(w, "import: %d devices (%.1f MB devices.txt, uploaded in %s) imported by one job in %s (%.0f devices/s), %s\n",
		imp.devices, float64(imp.fileBytes)/1e6, imp.upload.Round(time.Millisecond), imp.elapsed.Round(time.Millisecond),
		float64(imp.devices)/imp.elapsed.Seconds(), imp.status)

	fmt.Fprintf(w, "each node: --max-device-connections %d\n", d.maxConnections())
	fmt.Fprintf(w, "connections: %d of %d established in %s (%.0f/s overall); still open after the measurements: %d\n",
		f.ok(), o.connections, f.elapsed.Round(time.Millisecond), float64(f.ok())/f.elapsed.Seconds(), still)
	fmt.Fprintln(w, "| node | connections | failed | set-up s | set-up /s | node CPU s while connecting | RSS before MiB | RSS connected MiB | RSS after hold MiB | KiB per connection (after hold) | RSS at end MiB |")
	fmt.Fprintln(w, "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
	for i := range d.nodes {
		c := f.connected[i]
		perConn := "-"
		if c.OK > 0 && f.afterHold[i].rss > 0 {
			perConn = fmt.Sprintf("%.1f", float64(f.afterHold[i].rss-f.before[i].rss)/1024/float64(c.OK))
		}
		rate := 0.0
		if c.ElapsedSec > 0 {
			rate = float64(c.OK) / c.ElapsedSec
		}
		fmt.Fprintf(w, "| %d | %d | %d | %.1f | %.0f | %.1f | %.0f | %.0f | %.0f | %s | %.0f |\n", i, c.OK, c.Failed, c.ElapsedSec, rate,
			(f.afterConnect[i].cpu - f.before[i].cpu).Seconds(), mibf(f.before[i].rss), mibf(f.afterConnect[i].rss), mibf(f.afterHold[i].rss), perConn, mibf(final[i].rss))
	}
	var clientRSS int64
	for _, c := range f.clients {
		clientRSS += c.rss
	}
	if f.ok() > 0 {
		fmt.Fprintf(w, "client processes: %d, RSS %.0f MiB in all (%.1f KiB per connection); TLS %s\n", len(f.clients), mibf(clientRSS),
			float64(clientRSS)/1024/float64(f.ok()), f.connected[0].TLS)
	}
	if f.held > 0 {
		fmt.Fprintf(w, "held connections, idle, over %s: nodes %.2f cores in all, client processes %.2f cores in all\n",
			f.held.Round(time.Second), f.idleNodes.Seconds()/f.held.Seconds(), f.idleClients.Seconds()/f.held.Seconds())
	}
	for i, c := range f.connected {
		if c.FirstErr != "" {
			fmt.Fprintf(w, "node %d first connection error: %s\n", i, c.FirstErr)
		}
	}

	fmt.Fprintf(w, "\n| figure | empty hub | loaded hub (%d devices, %d connected) | loaded ÷ empty |\n| --- | --- | --- | --- |\n", o.devices, f.ok())
	row := func(name string, e, l float64, unit string) {
		ratio := "-"
		if e > 0 {
			ratio = fmt.Sprintf("%.2f", l/e)
		}
		fmt.Fprintf(w, "| %s | %.0f %s | %.0f %s | %s |\n", name, e, unit, l, unit, ratio)
	}
	row(fmt.Sprintf("device creates through the service API (%d, %d clients over the nodes)", o.creates, o.registryWorkers), empty.creates.rate(), loaded.creates.rate(), "/s")
	row(fmt.Sprintf("get device / update twin tags, 1:1, %s", o.mixDuration), empty.mix.rate(), loaded.mix.rate(), "/s")
	row(fmt.Sprintf("routing: MQTT publish → identity-based Event Hubs (%d devices × %d)", o.publishers, o.messagesPerDevice), empty.routing.rate(), loaded.routing.rate(), "msgs/s")
	pub := publishRate
	row("  the same, counted as events stored in the event hub", empty.routing.storedRate(), loaded.routing.storedRate(), "msgs/s")
	row("  publishes acknowledged (MQTT PUBACK)", pub(empty.routing), pub(loaded.routing), "msgs/s")
	for _, x := range []struct {
		name string
		r    scaleResults
	}{{"empty", empty}, {"loaded", loaded}} {
		fmt.Fprintf(w, "%s: creates p50 %s p99 %s, %d failed (%v); mix p50 %s p99 %s, %d failed (%v); routing published %d, acked %d, delivered %d in %s, stored %d in %s (complete: %t)\n",
			x.name, fmtLatency(x.r.creates.hist.quantile(0.5)), fmtLatency(x.r.creates.hist.quantile(0.99)), x.r.creates.failed, x.r.creates.firstErr,
			fmtLatency(x.r.mix.hist.quantile(0.5)), fmtLatency(x.r.mix.hist.quantile(0.99)), x.r.mix.failed, x.r.mix.firstErr,
			x.r.routing.published, x.r.routing.acked, x.r.routing.delivered, x.r.routing.elapsed.Round(time.Millisecond),
			x.r.routing.stored, x.r.routing.storedElapsed.Round(time.Millisecond), x.r.routing.complete)
	}
	fmt.Fprintf(w, "PostgreSQL sessions opened by the nodes during the registry measurements: empty %d for %d requests, loaded %d for %d requests\n",
		empty.sessions, empty.creates.ops+empty.mix.ops, loaded.sessions, loaded.creates.ops+loaded.mix.ops)
	fmt.Fprintf(w, "goals (single node, within 20%%): creates ≥ 4,000/s (5,000 − 20%%): empty %s, loaded %s; routing ≥ 16,000 msgs/s (20,000 − 20%%): empty %s, loaded %s\n",
		met(empty.creates.rate() >= 4000), met(loaded.creates.rate() >= 4000), met(empty.routing.rate() >= 16000), met(loaded.routing.rate() >= 16000))
	// The other reading of "within 20%": the loaded hub against the empty
	// one measured in the same run, on the same machine.
	within := func(e, l float64) string { return met(e > 0 && l >= 0.8*e) }
	fmt.Fprintf(w, "loaded within 20%% of empty (same run): creates %s, get/update mix %s, routing %s\n",
		within(empty.creates.rate(), loaded.creates.rate()), within(empty.mix.rate(), loaded.mix.rate()), within(empty.routing.rate(), loaded.routing.rate()))
}

// printScaleRounds prints the side-by-side rounds: each round's figures
// and ratio, and the median ratio per figure — the run's verdict on
// "within 20 %", as drift of a shared machine between measurements cancels
// within a round.
func printScaleRounds(w io.Writer, rounds []scaleRound) {
	if len(rounds) == 0 {
		return
	}
	figures := []struct {
		name string
		rate func(r scaleResults) float64
	}{
		{"device creates /s", func(r scaleResults) float64 { return r.creates.rate() }},
		{"get/update mix /s", func(r scaleResults) float64 { return r.mix.rate() }},
		{"routing msgs/s", func(r scaleResults) float64 { return r.routing.rate() }},
		{"PUBACKs /s", func(r scaleResults) float64 { return publishRate(r.routing) }},
	}
	fmt.Fprintf(w, "\nside by side, fleet held (round: empty → loaded, ratio; even rounds measured the loaded hub first)\n| figure |")
	for i := range rounds {
		fmt.Fprintf(w, " round %d |", i+1)
	}
	fmt.Fprintf(w, " median ratio | within 20%% |\n|%s\n", strings.Repeat(" --- |", len(rounds)+3))
	for _, f := range figures {
		fmt.Fprintf(w, "| %s |", f.name)
		ratios := make([]float64, 0, len(rounds))
		for _, r := range rounds {
			e, l := f.rate(r.empty), f.rate(r.loaded)
			ratio := 0.0
			if e > 0 {
				ratio = l / e
			}
			ratios = append(ratios, ratio)
			fmt.Fprintf(w, " %.0f → %.0f (%.2f) |", e, l, ratio)
		}
		m := median(ratios)
		fmt.Fprintf(w, " %.2f | %s |\n", m, met(m >= 0.8))
	}
	for i, r := range rounds {
		for _, x := range []struct {
			name string
			r    scaleResults
		}{{"empty", r.empty}, {"loaded", r.loaded}} {
			if x.r.creates.failed > 0 || x.r.mix.failed > 0 || !x.r.routing.complete {
				fmt.Fprintf(w, "round %d %s: creates failed %d (%v), mix failed %d (%v), routing delivered %d of %d (complete: %t)\n", i+1, x.name,
					x.r.creates.failed, x.r.creates.firstErr, x.r.mix.failed, x.r.mix.firstErr, x.r.routing.delivered, x.r.routing.published, x.r.routing.complete)
			}
		}
	}
}

// median of xs (sorted in place).
func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	slices.Sort(xs)
	if n := len(xs); n%2 == 0 {
		return (xs[n/2-1] + xs[n/2]) / 2
	}
	return xs[len(xs)/2]
}

// publishRate is the rate the publishers' messages were acknowledged.
func publishRate(r routingResult) float64 {
	if r.publishElapsed <= 0 {
		return 0
	}
	return float64(r.acked) / r.publishElapsed.Seconds()
}

func mibf(b int64) float64 { return float64(b) / (1 << 20) }

func met(ok bool) string {
	if ok {
		return "met"
	}
	return "not met"
}
