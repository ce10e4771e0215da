package servicebus

import (
	"context"
	"crypto/tls"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"
	goamqp "github.com/Azure/go-amqp"
	"github.com/google/uuid"

	"github.com/outpost-iot/outpost/internal/identity/authz"
	"github.com/outpost-iot/outpost/internal/identity/rbac"
	"github.com/outpost-iot/outpost/internal/sas"
	"github.com/outpost-iot/outpost/internal/store"
)

// issuedCredential hands the SDK tokens from the fixture's issuer for a
// fixed resource, whatever scope the SDK asks for.
type issuedCredential struct {
	f        *amqpFixture
	p        store.Principal
	resource string
}

func (c issuedCredential) GetToken(context.Context, policy.TokenRequestOptions) (azcore.AccessToken, error) {
	tk, err := c.f.issuer.Issue(c.p, c.resource, "1")
	if err != nil {
		return azcore.AccessToken{}, err
	}
	return azcore.AccessToken{Token: tk.AccessToken, ExpiresOn: time.Now().Add(time.Hour)}, nil
}

// assignRole gives principal a built-in role at scope.
func (f *amqpFixture) assignRole(scope, roleID, principal string) {
	f.t.Helper()
	ctx := context.Background()
	name := uuid.NewString()
	id := scope + "/providers/Microsoft.Authorization/roleAssignments/" + name
	body := `{"properties":{"roleDefinitionId":"` + scope + `/providers/Microsoft.Authorization/roleDefinitions/` + roleID +
		`","principalId":"` + principal + `","principalType":"ServicePrincipal","scope":"` + scope + `"}}`
	if _, _, err := f.st.Resources().Put(ctx, id, func(*store.Resource) (store.Resource, error) {
		return store.Resource{ID: id, Type: rbac.AssignmentType, Name: name, ParentID: scope, Body: []byte(body)}, nil
	}); err != nil {
		f.t.Fatal(err)
	}
	if err := f.rbac.ReloadNow(ctx); err != nil {
		f.t.Fatal(err)
	}
}

// TestAMQPEntraTokens: Entra tokens over TLS (the SDKs send them only over
// TLS), RBAC data roles at the entity, and a token for another audience.
func TestAMQPEntraTokens(t *testing.T) {
	t.Parallel()
	f := newAMQPFixture(t)
	f.namespace("sbns-aad-amqp", "")
	f.armDo("PUT", f.nsBase+"sbns-aad-amqp/queues/q"+apiVersion, `{"properties":{}}`, 200)
	sp, _, err := f.dir.CreateServicePrincipal(context.Background(), "amqp-sender")
	if err != nil {
		t.Fatal(err)
	}
	f.assignRole(f.nsBase+"sbns-aad-amqp/queues/q", authz.ServiceBusDataSenderRoleID, sp.ObjectID)
	client := func(resource string) *azservicebus.Client {
		c, err := azservicebus.NewClient(f.host("sbns-aad-amqp"), issuedCredential{f: f, p: sp, resource: resource}, &azservicebus.ClientOptions{
			TLSConfig: &tls.Config{InsecureSkipVerify: true}, CustomEndpoint: f.tlsAddr, RetryOptions: fastRetries, //nolint:gosec // the test listener's own certificate
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.Close(context.Background()) })
		return c
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	good := client("https://servicebus.azure.net/")
	sender, err := good.NewSender("q", nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := sender.SendMessage(ctx, &azservicebus.Message{Body: []byte("with a token"), MessageID: ptr("aad-1")}, nil); err != nil {
		t.Fatalf("send with the Data Sender role: %v", err)
	}
	// The sender role does not receive.
	r, err := good.NewReceiverForQueue("q", nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.ReceiveMessages(ctx, 1, nil); sbCode(err) != azservicebus.CodeUnauthorizedAccess || !strings.Contains(err.Error(), "'Listen' claim(s) are required") {
		t.Errorf("receive with only the sender role: %v", err)
	}
	// A token for another service.
	wrong, err := client("https://storage.azure.com/").NewSender("q", nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := wrong.SendMessage(ctx, &azservicebus.Message{Body: []byte("x")}, nil); sbCode(err) != azservicebus.CodeUnauthorizedAccess || !strings.Contains(err.Error(), "InvalidToken") {
		t.Errorf("send with a storage token: %v", err)
	}
	// The receiver role, granted at the namespace, covers the queue.
	f.assignRole(f.nsBase+"sbns-aad-amqp", authz.ServiceBusDataReceiverRoleID, sp.ObjectID)
	r2, err := client("https://servicebus.azure.net/").NewReceiverForQueue("q", nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := receive(t, r2, 1, 10*time.Second); len(got) != 1 || got[0].MessageID != "aad-1" {
		t.Fatalf("receive with the receiver role: %v", ids(got))
	}
}

// TestAMQPClaimExpiry: a link lives as long as the token that authorized
// it; the SDK's error when the token runs out is unauthorized.
func TestAMQPClaimExpiry(t *testing.T) {
	t.Parallel()
	f := newAMQPFixture(t)
	key := f.namespace("sbns-exp", "")
	f.armDo("PUT", f.nsBase+"sbns-exp/queues/q"+apiVersion, `{"properties":{}}`, 200)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	conn, err := goamqp.Dial(ctx, "amqp://"+f.addr, &goamqp.ConnOptions{SASLType: goamqp.SASLTypeAnonymous(), HostName: f.host("sbns-exp")})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	sess, err := conn.NewSession(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	// se has whole seconds: the claim lapses at the next second boundary
	// but one (a token is accepted until its expiry plus the skew).
	expiry := time.Now().Truncate(time.Second).Add(2*time.Second - sas.ClockSkew)
	token := sas.SignRawKey("sb://"+f.host("sbns-exp")+"/q", key, "RootManageSharedAccessKey", expiry)
	if status, desc := putToken(t, ctx, sess, "sb://"+f.host("sbns-exp")+"/q", token, "servicebus.windows.net:sastoken"); status != 200 {
		t.Fatalf("put-token: %d %s", status, desc)
	}
	snd, err := sess.NewSender(ctx, "q", nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := snd.Send(ctx, goamqp.NewMessage([]byte("before")), nil); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Until(expiry.Add(sas.ClockSkew)) + 200*time.Millisecond)
	err = snd.Send(ctx, goamqp.NewMessage([]byte("after")), nil)
	var le *goamqp.LinkError
	if !errors.As(err, &le) || le.RemoteErr == nil || le.RemoteErr.Condition != "amqp:unauthorized-access" {
		t.Fatalf("send after the token expired: %v", err)
	}
}

// TestAMQPSASLPlain: PLAIN with a rule's name and key, checked when open
// names the namespace (go-amqp sends no SASL host name).
func TestAMQPSASLPlain(t *testing.T) {
	t.Parallel()
	f := newAMQPFixture(t)
	key := f.namespace("sbns-plain", "")
	f.armDo("PUT", f.nsBase+"sbns-plain/queues/q"+apiVersion, `{"properties":{}}`, 200)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	dial := func(addr, password string, tlsCfg *tls.Config) (*goamqp.Conn, error) {
		return goamqp.Dial(ctx, addr, &goamqp.ConnOptions{SASLType: goamqp.SASLTypePlain("RootManageSharedAccessKey", password),
			HostName: f.host("sbns-plain"), TLSConfig: tlsCfg})
	}
	for _, tc := range []struct {
		name string
		addr string
		tls  *tls.Config
	}{
		{"tcp", "amqp://" + f.addr, nil},
		{"tls", "amqps://" + f.tlsAddr, &tls.Config{InsecureSkipVerify: true, ServerName: f.host("sbns-plain")}}, //nolint:gosec // the test listener's own certificate
	} {
		t.Run(tc.name, func(t *testing.T) {
			conn, err := dial(tc.addr, key, tc.tls)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			sess, err := conn.NewSession(ctx, nil)
			if err != nil {
				t.Fatal(err)
			}
			snd, err := sess.NewSender(ctx, "q", nil)
			if err != nil {
				t.Fatalf("attach after PLAIN: %v", err)
			}
			if err := snd.Send(ctx, goamqp.NewMessage([]byte("plain "+tc.name)), nil); err != nil {
				t.Fatal(err)
			}
			// A wrong key: SASL fails (TLS: the namespace is known from
			// the server name) or the connection is closed at open.
			bad, err := dial(tc.addr, "wrong", tc.tls)
			if err == nil {
				_, err = bad.NewSession(ctx, nil)
				bad.Close()
			}
			if err == nil {
				t.Fatal("PLAIN with a wrong key was accepted")
			}
		})
	}
}

// putToken does a CBS put-token the way the Go SDKs do and returns the
// status and description.
func putToken(t *testing.T, ctx context.Context, sess *goamqp.Session, audience, token, typ string) (int32, string) {
	t.Helper()
	replyTo := "$cbs-reply-" + uuid.NewString()
	rcv, err := sess.NewReceiver(ctx, "$cbs", &goamqp.ReceiverOptions{TargetAddress: replyTo, SettlementMode: goamqp.ReceiverSettleModeFirst.Ptr(),
		RequestedSenderSettleMode: goamqp.SenderSettleModeSettled.Ptr()})
	if err != nil {
		t.Fatal(err)
	}
	defer rcv.Close(ctx)
	snd, err := sess.NewSender(ctx, "$cbs", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer snd.Close(ctx)
	msg := &goamqp.Message{
		Properties:            &goamqp.MessageProperties{MessageID: uuid.NewString(), ReplyTo: &replyTo},
		ApplicationProperties: map[string]any{"operation": "put-token", "type": typ, "name": audience},
		Value:                 token,
	}
	if err := snd.Send(ctx, msg, nil); err != nil {
		t.Fatal(err)
	}
	resp, err := rcv.Receive(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	desc, _ := resp.ApplicationProperties["status-description"].(string)
	return resp.ApplicationProperties["status-code"].(int32), desc
}
