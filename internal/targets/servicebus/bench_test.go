package servicebus

import (
	"net/http"
	"testing"
)

// BenchmarkSendReceive is one SAS-authenticated send and one
// receive-and-delete over HTTPS per iteration, through the whole stack.
func BenchmarkSendReceive(b *testing.B) {
	f := newFixture(b)
	key := f.namespace("sbns-bench", "")
	f.armDo("PUT", f.nsBase+"sbns-bench/queues/q"+apiVersion, `{"properties":{}}`, 200)
	auth := f.sas("sbns-bench", "", "RootManageSharedAccessKey", key)
	headers := map[string]string{"BrokerProperties": `{"Label":"bench"}`, "Color": `"red"`}
	b.Run("sequential", func(b *testing.B) {
		for b.Loop() {
			if resp, body := f.call("POST", "sbns-bench", "/q/messages", auth, "payload-0123456789", headers); resp.StatusCode != http.StatusCreated {
				b.Fatalf("send = %d %s", resp.StatusCode, body)
			}
			if resp, body := f.call("DELETE", "sbns-bench", "/q/messages/head?timeout=5", auth, "", nil); resp.StatusCode != http.StatusOK {
				b.Fatalf("receive = %d %s", resp.StatusCode, body)
			}
		}
	})
	b.Run("parallel", func(b *testing.B) {
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if resp, body := f.call("POST", "sbns-bench", "/q/messages", auth, "payload-0123456789", headers); resp.StatusCode != http.StatusCreated {
					b.Errorf("send = %d %s", resp.StatusCode, body)
					return
				}
				if resp, body := f.call("DELETE", "sbns-bench", "/q/messages/head?timeout=5", auth, "", nil); resp.StatusCode != http.StatusOK {
					b.Errorf("receive = %d %s", resp.StatusCode, body)
					return
				}
			}
		})
	})
}
