package cli

// The bench soak consumers: one reader per endpoint (the built-in events
// endpoint and the event hub through the Event Hubs SDK, the queue and the
// subscription through the Service Bus SDK, the container through the blob
// SDK), each tallying the message ids it sees, so lost and duplicated
// messages are counted exactly, not estimated.

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/bits"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azeventhubs/v2"
	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"
)

// soakPayloadPrefix starts every soak message body: "SOAK <device> <seq> ".
const soakPayloadPrefix = "SOAK "

// appendSoakID writes a message's id at the start of its body.
func appendSoakID(b []byte, device int, seq int64) []byte {
	b = append(b, soakPayloadPrefix...)
	b = strconv.AppendInt(b, int64(device), 10)
	b = append(b, ' ')
	b = strconv.AppendInt(b, seq, 10)
	return append(b, ' ')
}

// parseSoakID reads the id appendSoakID wrote.
func parseSoakID(body []byte) (device int, seq int64, ok bool) {
	rest, found := bytes.CutPrefix(body, []byte(soakPayloadPrefix))
	if !found {
		return 0, 0, false
	}
	d, rest, found := bytes.Cut(rest, []byte{' '})
	if !found {
		return 0, 0, false
	}
	s, _, found := bytes.Cut(rest, []byte{' '})
	if !found {
		return 0, 0, false
	}
	dv, err1 := strconv.Atoi(string(d))
	sv, err2 := strconv.ParseInt(string(s), 10, 64)
	if err1 != nil || err2 != nil || dv < 0 || sv < 0 {
		return 0, 0, false
	}
	return dv, sv, true
}

// idSet is a growable bitmap of sequence numbers.
type idSet []uint64

// add sets seq and reports whether it was new.
func (s *idSet) add(seq int64) bool {
	w := int(seq / 64)
	for len(*s) <= w {
		*s = append(*s, 0)
	}
	bit := uint64(1) << (seq % 64)
	if (*s)[w]&bit != 0 {
		return false
	}
	(*s)[w] |= bit
	return true
}

// missingFrom counts the members of s that other lacks.
func (s idSet) missingFrom(other idSet) int64 {
	var n int64
	for i, w := range s {
		if i < len(other) {
			w &^= other[i]
		}
		n += int64(bits.OnesCount64(w))
	}
	return n
}

// soakTally is one endpoint's count of what it received.
type soakTally struct {
	mu         sync.Mutex
	seen       []idSet // by device
	unique     int64
	duplicates int64
	foreign    int64 // bodies without a soak id
	lastErr    string
	errors     int64
}

func (t *soakTally) record(body []byte) {
	d, seq, ok := parseSoakID(body)
	t.mu.Lock()
	defer t.mu.Unlock()
	if !ok {
		t.foreign++
		return
	}
	for len(t.seen) <= d {
		t.seen = append(t.seen, nil)
	}
	if t.seen[d].add(seq) {
		t.unique++
	} else {
		t.duplicates++
	}
}

func (t *soakTally) fail(err error) {
	t.mu.Lock()
	t.errors++
	t.lastErr = err.Error()
	t.mu.Unlock()
}

// counts are the tally's unique and duplicated messages so far.
func (t *soakTally) counts() (unique, duplicates int64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.unique, t.duplicates
}

// lostOf counts the acknowledged messages the endpoint never received.
func (t *soakTally) lostOf(acked []idSet) int64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	var n int64
	for d, a := range acked {
		var got idSet
		if d < len(t.seen) {
			got = t.seen[d]
		}
		n += a.missingFrom(got)
	}
	return n
}

// soakServiceBusReceivers is how many receivers read the queue, and the
// subscription, at once.
const soakServiceBusReceivers = 4

type soakReceiver struct {
	endpoint string
	r        *azservicebus.Receiver
}

// soakConsumers reads every endpoint until its context ends.
type soakConsumers struct {
	tallies map[string]*soakTally
	closers []func()
	wg      sync.WaitGroup
}

// startSoakConsumers connects a reader to each endpoint. amqpAddr is the
// node's AMQP listener; httpClient reaches its blob host.
func startSoakConsumers(ctx context.Context, st soakSetup, amqpAddr string, tlsFor func(host string) *tls.Config,
	httpClient *http.Client, blobPoll time.Duration, log *slog.Logger) (*soakConsumers, error) {
	sc := &soakConsumers{tallies: map[string]*soakTally{}}
	for _, name := range soakEndpointNames() {
		sc.tallies[name] = &soakTally{}
	}
	ehRetry := azeventhubs.RetryOptions{MaxRetries: 5, RetryDelay: 500 * time.Millisecond, MaxRetryDelay: 5 * time.Second}
	eventHub := func(name, host, entity, keyName, key string) error {
		conn := "Endpoint=sb://" + host + "/;SharedAccessKeyName=" + keyName + ";SharedAccessKey=" + key + ";EntityPath=" + entity
		cc, err := azeventhubs.NewConsumerClientFromConnectionString(conn, "", azeventhubs.DefaultConsumerGroup,
			&azeventhubs.ConsumerClientOptions{TLSConfig: tlsFor(host), CustomEndpoint: amqpAddr, RetryOptions: ehRetry})
		if err != nil {
			return fmt.Errorf("%s consumer: %w", name, err)
		}
		sc.closers = append(sc.closers, func() { closeQuietly(cc) })
		props, err := cc.GetEventHubProperties(ctx, nil)
		if err != nil {
			return fmt.Errorf("%s properties: %w", name, err)
		}
		earliest := true
		for _, pid := range props.PartitionIDs {
			pc, err := cc.NewPartitionClient(pid, &azeventhubs.PartitionClientOptions{
				StartPosition: azeventhubs.StartPosition{Earliest: &earliest}, Prefetch: 1000})
			if err != nil {
				return fmt.Errorf("%s partition %s: %w", name, pid, err)
			}
			sc.closers = append(sc.closers, func() { closeQuietly(pc) })
			sc.loop(ctx, name, func(ctx context.Context) ([][]byte, error) {
				rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
				defer cancel()
				events, err := pc.ReceiveEvents(rctx, 1000, nil)
				if errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
					err = nil
				}
				bodies := make([][]byte, len(events))
				for i, e := range events {
					bodies[i] = e.Body
				}
				return bodies, err
			})
		}
		return nil
	}
	if err := eventHub(soakEPBuiltIn, st.builtInHost, st.builtInPath, "iothubowner", st.ownerKey); err != nil {
		return sc, err
	}
	if err := eventHub(soakEPEventHub, st.ehHost, st.ehName, "RootManageSharedAccessKey", st.ehKey); err != nil {
		return sc, err
	}

	sb, err := azservicebus.NewClientFromConnectionString(
		"Endpoint=sb://"+st.sbHost+"/;SharedAccessKeyName=RootManageSharedAccessKey;SharedAccessKey="+st.sbKey,
		&azservicebus.ClientOptions{TLSConfig: tlsFor(st.sbHost), CustomEndpoint: amqpAddr,
			RetryOptions: azservicebus.RetryOptions{MaxRetries: 5, RetryDelay: 500 * time.Millisecond, MaxRetryDelay: 5 * time.Second}})
	if err != nil {
		return sc, fmt.Errorf("service bus client: %w", err)
	}
	sc.closers = append(sc.closers, func() { closeQuietly(sb) })
	// Receive-and-delete: the soak counts what arrives, it doesn't settle.
	opts := &azservicebus.ReceiverOptions{ReceiveMode: azservicebus.ReceiveModeReceiveAndDelete}
	// Several receivers per entity: one receive call waits out a round trip
	// per batch, and a single receiver fell behind the load on 2 cores.
	var receivers []soakReceiver
	for range soakServiceBusReceivers {
		queue, err := sb.NewReceiverForQueue(st.queue, opts)
		if err != nil {
			return sc, fmt.Errorf("queue receiver: %w", err)
		}
		sub, err := sb.NewReceiverForSubscription(st.topic, st.subscription, opts)
		if err != nil {
			return sc, fmt.Errorf("subscription receiver: %w", err)
		}
		receivers = append(receivers, soakReceiver{soakEPQueue, queue}, soakReceiver{soakEPTopic, sub})
	}
	for _, sr := range receivers {
		name, r := sr.endpoint, sr.r
		sc.closers = append(sc.closers, func() { closeQuietly(r) })
		sc.loop(ctx, name, func(ctx context.Context) ([][]byte, error) {
			rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			defer cancel()
			msgs, err := r.ReceiveMessages(rctx, 1000, nil)
			if errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
				err = nil
			}
			bodies := make([][]byte, len(msgs))
			for i, m := range msgs {
				bodies[i] = m.Body
			}
			return bodies, err
		})
	}

	cred, err := azblob.NewSharedKeyCredential(st.account, st.accountKey)
	if err != nil {
		return sc, fmt.Errorf("blob credential: %w", err)
	}
	blobs, err := azblob.NewClientWithSharedKeyCredential("https://"+st.blobHost+"/", cred,
		&azblob.ClientOptions{ClientOptions: azcore.ClientOptions{Transport: httpClient, Retry: policy.RetryOptions{MaxRetries: 3}}})
	if err != nil {
		return sc, fmt.Errorf("blob client: %w", err)
	}
	read := map[string]bool{}
	sc.loop(ctx, soakEPBlob, func(ctx context.Context) ([][]byte, error) {
		bodies, err := readNewBlobs(ctx, blobs, st.container, read)
		if len(bodies) == 0 && err == nil {
			select {
			case <-ctx.Done():
			case <-time.After(blobPoll):
			}
		}
		return bodies, err
	})
	log.Debug("soak consumers started")
	return sc, nil
}

// loop runs receive until ctx ends, tallying every body.
func (sc *soakConsumers) loop(ctx context.Context, name string, receive func(context.Context) ([][]byte, error)) {
	t := sc.tallies[name]
	sc.wg.Add(1)
	go func() {
		defer sc.wg.Done()
		for ctx.Err() == nil {
			bodies, err := receive(ctx)
			for _, b := range bodies {
				t.record(b)
			}
			if err != nil && ctx.Err() == nil {
				t.fail(err)
				select {
				case <-ctx.Done():
				case <-time.After(time.Second):
				}
			}
		}
	}()
}

// stop waits for the readers (their context has ended) and closes the clients.
func (sc *soakConsumers) stop() {
	sc.wg.Wait()
	for _, c := range sc.closers {
		c()
	}
}

func closeQuietly(c interface{ Close(context.Context) error }) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = c.Close(ctx)
}

// readNewBlobs downloads the blobs not read yet (the router writes each
// window as a new block blob and never rewrites one) and returns the bodies
// of their JSON records.
func readNewBlobs(ctx context.Context, blobs *azblob.Client, container string, read map[string]bool) ([][]byte, error) {
	var bodies [][]byte
	pager := blobs.NewListBlobsFlatPager(container, nil)
	for pager.More() {
		page, err := pager.NextPage(ctx)
		if err != nil {
			return bodies, fmt.Errorf("list blobs: %w", err)
		}
		for _, b := range page.Segment.BlobItems {
			if b.Name == nil || read[*b.Name] {
				continue
			}
			resp, err := blobs.DownloadStream(ctx, container, *b.Name, nil)
			if err != nil {
				return bodies, fmt.Errorf("download %s: %w", *b.Name, err)
			}
			data, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil {
				return bodies, fmt.Errorf("download %s: %w", *b.Name, err)
			}
			recs, err := blobRecordBodies(data)
			if err != nil {
				return bodies, fmt.Errorf("blob %s: %w", *b.Name, err)
			}
			read[*b.Name] = true
			bodies = append(bodies, recs...)
		}
	}
	return bodies, nil
}

// blobRecordBodies reads JSON-encoded routing records, one per line; the
// body is base64 unless the message said it is UTF-8 JSON.
func blobRecordBodies(data []byte) ([][]byte, error) {
	var out [][]byte
	for _, line := range bytes.Split(data, []byte{'\n'}) {
		line = bytes.TrimSpace(line)
		if len(line) == 0 {
			continue
		}
		var rec struct {
			Body json.RawMessage `json:"Body"`
		}
		if err := json.Unmarshal(line, &rec); err != nil {
			return out, fmt.Errorf("record: %w", err)
		}
		var s string
		if json.Unmarshal(rec.Body, &s) == nil {
			if b, err := base64.StdEncoding.DecodeString(s); err == nil {
				out = append(out, b)
				continue
			}
			out = append(out, []byte(s))
			continue
		}
		out = append(out, rec.Body)
	}
	return out, nil
}
