package hubamqp_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	goamqp "github.com/Azure/go-amqp"

	"github.com/outpost-iot/outpost/internal/hub/hubamqp"
	"github.com/outpost-iot/outpost/internal/hub/throttle"
)

// TestTwinThrottledOverAMQP: over the hub's twin read rate a GET is
// answered with status 429 and IoT Hub's 429001 body, and the links stay
// up for the next request.
func TestTwinThrottledOverAMQP(t *testing.T) {
	limits := throttle.New(throttle.Limits{TwinReads: 1}, nil)
	f := newFixture(t, func(c *hubamqp.Config) { c.Throttle = limits })
	ctx := ctxT(t, 20*time.Second)
	dev := f.device(t, "dev1", "")
	props := map[string]any{"com.microsoft:channel-correlation-id": "twin:thr", "com.microsoft:api-version": "2021-04-12"}
	snd, err := dev.NewSender(ctx, "/devices/dev1/twin", &goamqp.SenderOptions{Properties: props,
		SettlementMode: goamqp.SenderSettleModeSettled.Ptr(), RequestedReceiverSettleMode: goamqp.ReceiverSettleModeFirst.Ptr()})
	if err != nil {
		t.Fatal(err)
	}
	rcv, err := dev.NewReceiver(ctx, "/devices/dev1/twin", &goamqp.ReceiverOptions{Properties: props,
		RequestedSenderSettleMode: goamqp.SenderSettleModeSettled.Ptr(), SettlementMode: goamqp.ReceiverSettleModeFirst.Ptr()})
	if err != nil {
		t.Fatal(err)
	}
	statuses := map[int32]int{}
	for i := range 4 {
		corr := "get-" + string(rune('a'+i))
		m := &goamqp.Message{Properties: &goamqp.MessageProperties{CorrelationID: corr},
			Annotations: goamqp.Annotations{"operation": "GET"}, Data: [][]byte{[]byte(" ")}}
		if err := snd.Send(ctx, m, nil); err != nil {
			t.Fatal(err)
		}
		resp, err := rcv.Receive(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		st, _ := resp.Annotations["status"].(int32)
		statuses[st]++
		if st == 429 {
			var body struct {
				ErrorCode int    `json:"errorCode"`
				Message   string `json:"message"`
			}
			if json.Unmarshal(resp.GetData(), &body) != nil || body.ErrorCode != 429001 || !strings.Contains(body.Message, "--hub-twin-read-rate") {
				t.Errorf("429 body %s", resp.GetData())
			}
		}
	}
	if statuses[200] != 1 || statuses[429] != 3 {
		t.Errorf("statuses %v at 1 read a second, want one 200 and three 429", statuses)
	}
}
