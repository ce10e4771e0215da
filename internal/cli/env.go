package cli

import (
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/spf13/cobra"

	"github.com/outpost-iot/outpost/internal/app"
)

func newEnvCommand() *cobra.Command {
	return &cobra.Command{
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
			return writeExports(cmd.OutOrStdout(), EnvVars(rt))
		},
	}
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

// shellQuote quotes s for POSIX shells.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
