package servicebus

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"

	"github.com/outpost-iot/outpost/internal/amqp"
)

// amqpFixture is the package's fixture with Service Bus's AMQP handler
// served on a loopback listener, plain TCP (the SDKs' emulator mode) and
// TLS (for Entra tokens, which the SDKs send only over TLS).
type amqpFixture struct {
	*fixture
	addr    string // plain TCP
	tlsAddr string
}

func newAMQPFixture(t *testing.T) *amqpFixture {
	t.Helper()
	f := &amqpFixture{fixture: newFixture(t)}
	srv := amqp.NewServer(amqp.Config{Handler: f.h.AMQP(), Logger: f.arm.Log, IdleTimeout: 30 * time.Second})
	ctx, cancel := context.WithCancel(context.Background())
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	// httptest's certificate: the clients skip verification.
	ts := httptest.NewUnstartedServer(http.NotFoundHandler())
	ts.StartTLS()
	cert := ts.TLS.Certificates[0]
	ts.Close()
	done := make(chan struct{}, 2)
	go func() { _ = srv.Serve(ctx, ln); done <- struct{}{} }()
	go func() {
		_ = srv.Serve(ctx, tls.NewListener(tln, &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}))
		done <- struct{}{}
	}()
	t.Cleanup(func() {
		// Let connections the test closed finish first: Shutdown waits 5 s
		// for a connection whose handshake failed a moment ago (its writer
		// never started), see the report on the engine.
		for i := 0; i < 100 && srv.Conns() > 0; i++ {
			time.Sleep(10 * time.Millisecond)
		}
		cancel()
		srv.Shutdown()
		<-done
		<-done
	})
	f.addr, f.tlsAddr = ln.Addr().String(), tln.Addr().String()
	return f
}

// fastRetries keeps refusals quick: the SDK's defaults retry for seconds.
var fastRetries = azservicebus.RetryOptions{MaxRetries: 1, RetryDelay: 10 * time.Millisecond, MaxRetryDelay: 50 * time.Millisecond}

func (f *amqpFixture) host(ns string) string { return ns + ".servicebus." + suffix }

// connectionString is the namespace's connection string in emulator mode
// (plain TCP); auth is "SharedAccessKeyName=…;SharedAccessKey=…" or
// "SharedAccessSignature=…".
func (f *amqpFixture) connectionString(ns, auth string) string {
	return "Endpoint=sb://" + f.host(ns) + "/;" + auth + ";UseDevelopmentEmulator=true"
}

// client connects with a connection string; the host names the namespace,
// the custom endpoint is the loopback listener.
func (f *amqpFixture) client(connStr string) *azservicebus.Client {
	f.t.Helper()
	c, err := azservicebus.NewClientFromConnectionString(connStr, &azservicebus.ClientOptions{CustomEndpoint: f.addr, RetryOptions: fastRetries})
	if err != nil {
		f.t.Fatal(err)
	}
	f.t.Cleanup(func() { _ = c.Close(context.Background()) })
	return c
}

// rootClient is a client with the namespace's RootManageSharedAccessKey.
func (f *amqpFixture) rootClient(ns, key string) *azservicebus.Client {
	return f.client(f.connectionString(ns, "SharedAccessKeyName=RootManageSharedAccessKey;SharedAccessKey="+key))
}

// receive receives until n messages arrived or within passed.
func receive(t *testing.T, r *azservicebus.Receiver, n int, within time.Duration) []*azservicebus.ReceivedMessage {
	t.Helper()
	deadline := time.Now().Add(within)
	var out []*azservicebus.ReceivedMessage
	for len(out) < n && time.Now().Before(deadline) {
		ctx, cancel := context.WithDeadline(context.Background(), deadline)
		msgs, err := r.ReceiveMessages(ctx, n-len(out), nil)
		cancel()
		out = append(out, msgs...)
		if err != nil && !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("ReceiveMessages after %d of %d: %v", len(out), n, err)
		}
	}
	return out
}

func sbCode(err error) azservicebus.Code {
	var e *azservicebus.Error
	if errors.As(err, &e) {
		return e.Code
	}
	return ""
}

func ptr[T any](v T) *T { return &v }
