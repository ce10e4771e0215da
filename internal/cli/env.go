package cli

import (
	"fmt"
	"io"
	"net/netip"
	"net/url"
	"sort"
	"strings"

	"github.com/spf13/cobra"

	"github.com/outpost-iot/outpost/internal/app"
)

func newEnvCommand() *cobra.Command {
	var hosts, az bool
	cmd := &cobra.Command{
		Use:   "env",
		Short: "Print shell export lines that make Azure SDKs and az trust and find Outpost",
		Long: "Print shell export lines for the Outpost using --data-dir, ready for eval:\n\n" +
			"  eval \"$(outpost env)\"\n\n" +
			"They point SSL_CERT_FILE, NODE_EXTRA_CA_CERTS and REQUESTS_CA_BUNDLE at Outpost's CA and\n" +
			"name the endpoint, tenant and subscription.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			rt, err := app.ReadRuntime(dataDir(cmd))
			if err != nil {
				return err
			}
			if hosts {
				return writeHosts(cmd, rt)
			}
			if az {
				return writeAzLines(cmd.OutOrStdout(), rt)
			}
			return writeExports(cmd.OutOrStdout(), EnvVars(rt))
		},
	}
	cmd.Flags().BoolVar(&az, "az", false, "print the az lines instead: trust the CA, register Outpost as a cloud (ADFS form, which keeps MSAL off the public cloud) and sign in as the operator")
	cmd.Flags().BoolVar(&hosts, "hosts", false, "print /etc/hosts lines for every hub, storage account and namespace host name instead (SDKs resolve them; *.localhost does not resolve on Debian)")
	return cmd
}

// writeHosts prints an /etc/hosts line for every host name Outpost
// answers to — each hub and its built-in endpoint, each storage account's blob endpoint, each Event
// Hubs and Service Bus namespace — pointing at the address the node listens
// on.
func writeHosts(cmd *cobra.Command, rt app.Runtime) error {
	c, err := newAPIClient(cmd)
	if err != nil {
		return err
	}
	ip := "127.0.0.1"
	if u, err := url.Parse(rt.Endpoint); err == nil {
		if addr, err := netip.ParseAddr(u.Hostname()); err == nil {
			ip = addr.String()
		}
	}
	sources := []struct {
		typ, apiVersion string
		host            func(props map[string]any) string
	}{
		{"Microsoft.Devices/IotHubs", "2023-06-30", func(p map[string]any) string { s, _ := p["hostName"].(string); return s }},
		// The built-in Event Hubs-compatible endpoint, iothub-ns-{hub}.servicebus.{suffix}.
		{"Microsoft.Devices/IotHubs", "2023-06-30", func(p map[string]any) string {
			e, _ := p["eventHubEndpoints"].(map[string]any)
			ev, _ := e["events"].(map[string]any)
			return hostOf(ev["endpoint"])
		}},
		{"Microsoft.Storage/storageAccounts", "2023-05-01", func(p map[string]any) string {
			e, _ := p["primaryEndpoints"].(map[string]any)
			return hostOf(e["blob"])
		}},
		{"Microsoft.EventHub/namespaces", "2024-01-01", func(p map[string]any) string { return hostOf(p["serviceBusEndpoint"]) }},
		{"Microsoft.ServiceBus/namespaces", "2022-10-01-preview", func(p map[string]any) string { return hostOf(p["serviceBusEndpoint"]) }},
	}
	for _, src := range sources {
		var list struct {
			Value []struct {
				Properties map[string]any `json:"properties"`
			} `json:"value"`
		}
		path := "/subscriptions/" + rt.SubscriptionID + "/providers/" + src.typ + "?api-version=" + src.apiVersion
		if err := c.do(cmd.Context(), "GET", path, nil, &list); err != nil {
			return err
		}
		for _, r := range list.Value {
			if h := src.host(r.Properties); h != "" {
				fmt.Fprintf(cmd.OutOrStdout(), "%s %s\n", ip, h)
			}
		}
	}
	return nil
}

// hostOf is the host name of an endpoint URL ("" when it is none).
func hostOf(v any) string {
	s, _ := v.(string)
	u, err := url.Parse(s)
	if err != nil {
		return ""
	}
	return u.Hostname()
}

// EnvVars are the variables `outpost env` prints for a running node.
func EnvVars(rt app.Runtime) map[string]string {
	return map[string]string{
		"OUTPOST_ENDPOINT":      rt.Endpoint,
		"OUTPOST_CA_FILE":       rt.CAFile,
		"SSL_CERT_FILE":         rt.CAFile,
		"NODE_EXTRA_CA_CERTS":   rt.CAFile,
		"REQUESTS_CA_BUNDLE":    rt.CAFile,
		"AZURE_SUBSCRIPTION_ID": rt.SubscriptionID,
		"AZURE_TENANT_ID":       rt.TenantID,
		// The operator service principal, for azidentity's EnvironmentCredential
		// and @azure/identity (with the authority host and instance discovery off).
		"AZURE_CLIENT_ID":      rt.Operator.ClientID,
		"AZURE_CLIENT_SECRET":  rt.Operator.ClientSecret,
		"AZURE_AUTHORITY_HOST": rt.Endpoint + "/",
	}
}

func writeExports(w io.Writer, vars map[string]string) error {
	keys := make([]string, 0, len(vars))
	for k := range vars {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if _, err := fmt.Fprintf(w, "export %s=%s\n", k, shellQuote(vars[k])); err != nil {
			return err
		}
	}
	return nil
}

// AzLines are the shell lines that point Debian's az at a node: the CA for
// its HTTP stack, a cloud registered in the ADFS form (az then takes the
// authority as given instead of asking the public cloud about it), and a
// service principal login as the operator. Run twice, the cloud is updated
// rather than registered again.
func AzLines(rt app.Runtime) []string {
	q := shellQuote
	return []string{
		"export REQUESTS_CA_BUNDLE=" + q(rt.CAFile),
		"az cloud register --name Outpost" +
			" --endpoint-resource-manager " + q(rt.Endpoint+"/") +
			" --endpoint-active-directory " + q(rt.Endpoint+"/adfs") +
			" --endpoint-active-directory-resource-id https://management.core.windows.net/" +
			" --endpoint-active-directory-graph-resource-id https://graph.windows.net/" +
			" --endpoint-management https://management.core.windows.net/" +
			" --suffix-storage-endpoint " + q(rt.DNSSuffix) +
			" 2>/dev/null || az cloud update --name Outpost" +
			" --endpoint-resource-manager " + q(rt.Endpoint+"/") +
			" --endpoint-active-directory " + q(rt.Endpoint+"/adfs"),
		"az cloud set --name Outpost",
		"az login --service-principal --username " + q(rt.Operator.ClientID) +
			" --password " + q(rt.Operator.ClientSecret) + " --tenant " + q(rt.TenantID) + " --output none",
	}
}

func writeAzLines(w io.Writer, rt app.Runtime) error {
	for _, l := range AzLines(rt) {
		if _, err := fmt.Fprintln(w, l); err != nil {
			return err
		}
	}
	return nil
}

// shellQuote quotes s for POSIX shells.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
