package app

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"

	"github.com/outpost-iot/outpost/internal/arm"
	"github.com/outpost-iot/outpost/internal/egress"
	"github.com/outpost-iot/outpost/internal/identity/msi"
	"github.com/outpost-iot/outpost/internal/store"
	"github.com/outpost-iot/outpost/internal/targets/access"
	"github.com/outpost-iot/outpost/internal/targets/blob"
	"github.com/outpost-iot/outpost/internal/targets/eventhubs"
	"github.com/outpost-iot/outpost/internal/targets/eventhubs/ehresource"
	"github.com/outpost-iot/outpost/internal/targets/servicebus"
	"github.com/outpost-iot/outpost/internal/targets/servicebus/sbresource"
	"github.com/outpost-iot/outpost/internal/targets/storage"
)

// targetsPlane is the services the hub's egress reaches — blob storage,
// Event Hubs, Service Bus — and the egress client itself.
type targetsPlane struct {
	access     *access.Checker
	egress     *egress.Client
	serviceBus *servicebus.Handler
	eventHubs  *eventhubs.Handler
	ehStreams  *eventhubs.Streams
	accounts   *storage.Directory
	disk       *blob.Disk
	blob       *blob.Handler
	// blobLn is the path-style blob listener (nil when off).
	blobLn net.Listener
}

// buildTargets wires the egress targets' data planes. The ARM types come
// from targetTypes.
func (a *App) buildTargets() error {
	a.targets.access = access.New(a.validator, a.rbac, a.log.With("component", "access"))
	disk, err := blob.NewDisk(filepath.Join(a.cfg.DataDir, "blobs"))
	if err != nil {
		return fmt.Errorf("app: %w", err)
	}
	a.targets.disk = disk
	a.targets.accounts = storage.NewDirectory(a.store.Resources())
	a.targets.blob = blob.New(blob.Config{
		DNSSuffix: a.cfg.DNSSuffix, Accounts: a.targets.accounts,
		Containers: storage.NewContainers(a.store.Resources(), nil), Blobs: disk, Access: a.targets.access,
		AuthorityURL: a.endpoint, TenantID: a.installation.TenantID, Log: a.log.With("component", "blob"),
	})
	sb, err := servicebus.New(servicebus.Config{
		Resources: a.store.Resources(), Bus: a.bus, Access: a.targets.access,
		DNSSuffix: a.cfg.DNSSuffix, Log: a.log.With("component", "servicebus"),
	})
	if err != nil {
		return fmt.Errorf("app: %w", err)
	}
	a.targets.serviceBus = sb
	if a.targets.ehStreams, err = eventhubs.NewStreams(a.bus); err != nil {
		return fmt.Errorf("app: %w", err)
	}
	a.targets.eventHubs, err = eventhubs.New(eventhubs.Config{
		Resources: a.store.Resources(), Streams: a.targets.ehStreams, Access: a.targets.access,
		DNSSuffix: a.cfg.DNSSuffix, Log: a.log.With("component", "eventhubs"),
	})
	if err != nil {
		return fmt.Errorf("app: %w", err)
	}
	return nil
}

// targetTypes are the egress targets' ARM types and provider actions.
func (a *App) targetTypes() ([]arm.ResourceType, []arm.ProviderAction) {
	_, port, _ := net.SplitHostPort(strings.TrimPrefix(a.endpoint, "https://"))
	accounts := storage.NewAccounts(storage.Config{
		DNSSuffix: a.cfg.DNSSuffix, Port: port, Identities: a.msi, Resources: a.store.Resources(),
		Blobs: a.targets.disk, Directory: a.targets.accounts,
	})
	eh := ehresource.New(ehresource.Config{
		DNSSuffix: a.cfg.DNSSuffix, Identities: a.msi, Resources: a.store.Resources(),
		Runtime: a.targets.ehStreams, Changed: a.targets.eventHubs.Invalidate,
		NameTaken: a.namespaceTaken(sbresource.Namespace + "/namespaces"),
	})
	types, actions := sbresource.Types(sbresource.Config{
		DNSSuffix: a.cfg.DNSSuffix, Identities: a.msi, Resources: a.store.Resources(),
		Runtime: a.targets.serviceBus, NameTaken: eh.Holds,
	})
	types = append(types, eh.Types()...)
	types = append(types, accounts, storage.NewBlobServices(a.store.Resources()),
		storage.NewContainerType(a.store.Resources(), a.targets.disk, nil))
	actions = append(actions, eh.ProviderActions()...)
	return types, append(actions, accounts.ProviderActions()...)
}

// listenBlob binds the path-style blob listener (https://host:port/{account}/…,
// as Azurite serves), unless it is off.
func (a *App) listenBlob() error {
	addr := a.cfg.BlobAddress()
	if addr == "" {
		return nil
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("app: blob listen %s (set --blob-listen, or off): %w", addr, err)
	}
	a.targets.blobLn = ln
	return nil
}

// BlobAddr is the path-style blob address, nil when it is off.
func (a *App) BlobAddr() net.Addr {
	if a.targets.blobLn == nil {
		return nil
	}
	return a.targets.blobLn.Addr()
}

// buildEgress builds the client the hub's egress uses: Outpost's own names
// are dialed at its own listeners, and the operator's allow-list and public
// addresses (unless denied) are reachable; nothing else.
func (a *App) buildEgress(self net.Addr) error {
	cfg := egress.DefaultConfig()
	cfg.ServedSuffixes = []string{a.cfg.DNSSuffix}
	cfg.ServedNames = []string{"localhost"}
	cfg.SelfAddr = self.String()
	if b := a.BlobAddr(); b != nil {
		cfg.ExtraSelf = []string{b.String()}
	}
	cfg.Allow = a.cfg.Egress.Allow
	cfg.AllowPublic = !a.cfg.Egress.DenyPublic
	roots, err := a.egressRoots()
	if err != nil {
		return err
	}
	cfg.TLS = &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}
	cfg.Log = a.log.With("component", "egress")
	c, err := egress.New(cfg)
	if err != nil {
		return fmt.Errorf("app: egress: %w", err)
	}
	a.targets.egress = c
	return nil
}

// egressRoots are the CAs egress trusts: the system's (real Azure), Outpost's
// own, and the operator's --egress-ca-file certificates.
func (a *App) egressRoots() (*x509.CertPool, error) {
	roots, err := x509.SystemCertPool()
	if err != nil {
		roots = x509.NewCertPool()
	}
	roots.AppendCertsFromPEM(a.ca.CAPEM())
	for _, f := range a.cfg.Egress.CAFiles {
		pem, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("app: egress CA file: %w", err)
		}
		if !roots.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("app: egress CA file %s holds no PEM certificate", f)
		}
	}
	return roots, nil
}

// Egress is the client the hub's egress uses (tests use it to check what it
// refuses).
func (a *App) Egress() *egress.Client { return a.targets.egress }

// isBlobHost reports whether a request is for the blob service, whose
// handler bounds bodies itself (blocks of up to 4000 MiB).
func (a *App) isBlobHost(r *http.Request) bool {
	host := r.Host
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	return strings.HasSuffix(strings.ToLower(host), ".blob."+a.cfg.DNSSuffix)
}

// namespaceTaken reports whether a namespace of another provider holds a
// name: Event Hubs and Service Bus namespaces share the servicebus DNS zone,
// so a name is unique across both.
func (a *App) namespaceTaken(otherType string) func(ctx context.Context, name string) (bool, error) {
	return func(ctx context.Context, name string) (bool, error) {
		_, found, err := store.FindByName(ctx, a.store.Resources(), otherType, name)
		return found, err
	}
}

// messagingHost serves {namespace}.servicebus.{suffix}: Event Hubs and
// Service Bus share the host name zone (a name is unique across both), so
// the namespace decides. An unknown namespace reaches Service Bus, whose
// error names it.
type messagingHost struct {
	suffix     string
	eventHubs  *eventhubs.Handler
	serviceBus *servicebus.Handler
	// amqpWebSocket serves /$servicebus/websocket (AMQP over WebSocket).
	amqpWebSocket http.Handler
}

func (m messagingHost) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if m.amqpWebSocket != nil && strings.EqualFold(strings.TrimSuffix(r.URL.Path, "/"), "/$servicebus/websocket") {
		m.amqpWebSocket.ServeHTTP(w, r)
		return
	}
	if ns := eventhubs.NamespaceFromHost(r.Host, m.suffix); ns != "" {
		if ok, err := m.eventHubs.Serves(r.Context(), ns); err == nil && ok {
			m.eventHubs.ServeHTTP(w, r)
			return
		}
	}
	m.serviceBus.ServeHTTP(w, r)
}

// ManagedIdentityToken mints a token for a managed identity of resourceID —
// its system-assigned identity, or the user-assigned one named by
// userAssignedID — for resource (e.g. "https://storage.azure.com/"). It is
// the in-process path the hub's egress uses; `outpost run --as` reaches the
// same TokenSource over the managed identity endpoint.
func (a *App) ManagedIdentityToken(ctx context.Context, resourceID, userAssignedID, resource string) (string, error) {
	tok, _, err := a.tokens.Token(ctx, resourceID, msi.Selector{ResourceID: userAssignedID}, resource)
	if err != nil {
		return "", fmt.Errorf("app: managed identity token for %s: %w", resourceID, err)
	}
	return tok.AccessToken, nil
}

// mainTLS is the main listener's TLS configuration: connections for a blob
// host ({account}.blob.{suffix}, known from SNI) negotiate HTTP/1.1 only,
// as Azure Storage does — large transfers cost several times less CPU than
// over HTTP/2 — and every other host may use HTTP/2.
func (a *App) mainTLS() *tls.Config {
	base := a.ca.ServerTLSConfig()
	blob := a.ca.ServerTLSConfig()
	blob.NextProtos = []string{"http/1.1"}
	suffix := ".blob." + a.cfg.DNSSuffix
	base.GetConfigForClient = func(hello *tls.ClientHelloInfo) (*tls.Config, error) {
		if strings.HasSuffix(strings.ToLower(hello.ServerName), suffix) {
			return blob, nil
		}
		return nil, nil
	}
	return base
}
