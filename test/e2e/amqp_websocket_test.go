package e2e

import (
	"context"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azeventhubs/v2"
	"github.com/coder/websocket"

	"github.com/outpost-iot/outpost/internal/testserver"
)

// TestAMQPOverWebSocket: azeventhubs with a WebSocket connection (as
// behind a proxy that only passes 443) sends to and reads from an
// embedded event hub through wss://{namespace}/$servicebus/websocket on
// the main listener.
func TestAMQPOverWebSocket(t *testing.T) {
	s := testserver.Start(t)
	e := createMessagingEntity(t, s, "rg-amqp-ws", "Microsoft.EventHub", "eventhubs", "")
	client := s.HTTPClient()
	dial := func(ctx context.Context, args azeventhubs.WebSocketConnParams) (net.Conn, error) {
		if !strings.HasSuffix(args.Host, "/$servicebus/websocket") {
			t.Errorf("the SDK dials %q", args.Host)
		}
		ws, resp, err := websocket.Dial(ctx, args.Host, &websocket.DialOptions{HTTPClient: client, Subprotocols: []string{"amqp"}})
		if err != nil {
			return nil, err
		}
		if resp.StatusCode != http.StatusSwitchingProtocols || ws.Subprotocol() != "amqp" {
			t.Errorf("upgrade: %d, subprotocol %q", resp.StatusCode, ws.Subprotocol())
		}
		return websocket.NetConn(context.Background(), ws, websocket.MessageBinary), nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	prod, err := azeventhubs.NewProducerClientFromConnectionString(e.ConnectionString(), e.Name,
		&azeventhubs.ProducerClientOptions{NewWebSocketConn: dial, RetryOptions: ehRetry})
	if err != nil {
		t.Fatal(err)
	}
	closeOnCleanup(t, prod)
	batch, err := prod.NewEventDataBatch(ctx, &azeventhubs.EventDataBatchOptions{PartitionID: to.Ptr("1")})
	if err != nil {
		t.Fatal(err)
	}
	for _, body := range []string{"over", "web", "socket"} {
		if err := batch.AddEventData(&azeventhubs.EventData{Body: []byte(body)}, nil); err != nil {
			t.Fatal(err)
		}
	}
	if err := prod.SendEventDataBatch(ctx, batch, nil); err != nil {
		t.Fatalf("send over WebSocket: %v", err)
	}
	cons, err := azeventhubs.NewConsumerClientFromConnectionString(e.ConnectionString(), e.Name, azeventhubs.DefaultConsumerGroup,
		&azeventhubs.ConsumerClientOptions{NewWebSocketConn: dial, RetryOptions: ehRetry})
	if err != nil {
		t.Fatal(err)
	}
	closeOnCleanup(t, cons)
	pc, err := cons.NewPartitionClient("1", &azeventhubs.PartitionClientOptions{StartPosition: azeventhubs.StartPosition{Earliest: to.Ptr(true)}})
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close(ctx)
	got := receiveEvents(t, pc, 3, 15*time.Second)
	if len(got) != 3 || string(got[0].Body) != "over" || string(got[2].Body) != "socket" {
		t.Fatalf("read back %v", seqs(got))
	}
}
