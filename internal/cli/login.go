package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"
)

// profile is what `outpost login` keeps for later commands: where Outpost
// is, which CA to trust, and the service principal to sign in as.
type profile struct {
	Endpoint     string `json:"endpoint"`
	CAFile       string `json:"caFile,omitempty"`
	TenantID     string `json:"tenantId"`
	ClientID     string `json:"clientId"`
	ClientSecret string `json:"clientSecret"`
	Subscription string `json:"subscriptionId"`
}

// profilePath is the profile's file: $OUTPOST_CONFIG_DIR/profile.json, else
// under the user's configuration directory.
func profilePath() (string, error) {
	if d := os.Getenv("OUTPOST_CONFIG_DIR"); d != "" {
		return filepath.Join(d, "profile.json"), nil
	}
	d, err := os.UserConfigDir()
	if err != nil {
		return "", fmt.Errorf("find a configuration directory (set OUTPOST_CONFIG_DIR): %w", err)
	}
	return filepath.Join(d, "outpost", "profile.json"), nil
}

// readProfile returns the saved profile, or nil when there is none.
func readProfile() (*profile, error) {
	p, err := profilePath()
	if err != nil {
		return nil, err
	}
	b, err := os.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read the login profile: %w", err)
	}
	var pr profile
	if err := json.Unmarshal(b, &pr); err != nil {
		return nil, fmt.Errorf("login profile %s: %w (run `outpost login` again)", p, err)
	}
	return &pr, nil
}

// newLoginCommands are `outpost login` and `outpost logout`.
func newLoginCommands() []*cobra.Command {
	var pr profile
	var sp bool
	login := &cobra.Command{
		Use:   "login --endpoint URL --service-principal --username ID --password SECRET --tenant TENANT [--ca-file FILE]",
		Short: "Sign in to an Outpost as a service principal; later commands use it",
		Long: "Checks the credentials against the Outpost's token endpoint and keeps them (file mode 0600)\n" +
			"for later commands. Without login, commands use the OUTPOST_ENDPOINT and AZURE_* variables that\n" +
			"`outpost env` prints, or the local node found by --data-dir.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := requireFlags(cmd, "endpoint", "username", "password", "tenant"); err != nil {
				return err
			}
			if !sp {
				return usageErrorf("only service principals sign in from the command line: add --service-principal")
			}
			pr.Endpoint = strings.TrimRight(pr.Endpoint, "/")
			if pr.CAFile != "" {
				abs, err := filepath.Abs(pr.CAFile)
				if err != nil {
					return err
				}
				pr.CAFile = abs
			}
			c, err := clientFromProfile(&pr)
			if err != nil {
				return err
			}
			if err := c.authenticate(cmd.Context()); err != nil {
				return err
			}
			subs, err := c.list(cmd.Context(), "/subscriptions", apiResources)
			if err != nil {
				return err
			}
			if pr.Subscription == "" && len(subs) > 0 {
				pr.Subscription, _ = subs[0].(map[string]any)["subscriptionId"].(string)
			}
			path, err := profilePath()
			if err != nil {
				return err
			}
			if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
				return fmt.Errorf("save the login: %w", err)
			}
			b, _ := json.MarshalIndent(pr, "", "  ")
			if err := os.WriteFile(path, b, 0o600); err != nil {
				return fmt.Errorf("save the login: %w", err)
			}
			return emit(cmd, subs, nil)
		},
	}
	login.Flags().StringVar(&pr.Endpoint, "endpoint", "", "Outpost's resource manager URL, e.g. https://outpost.example:8443")
	login.Flags().StringVar(&pr.CAFile, "ca-file", "", "PEM file of the CA to trust (default: the system's)")
	login.Flags().BoolVar(&sp, "service-principal", false, "sign in as a service principal")
	login.Flags().StringVarP(&pr.ClientID, "username", "u", "", "the service principal's application (client) id")
	login.Flags().StringVarP(&pr.ClientSecret, "password", "p", "", "the service principal's secret")
	login.Flags().StringVar(&pr.TenantID, "tenant", "", "tenant id")

	logout := &cobra.Command{
		Use: "logout", Short: "Forget the saved login", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			path, err := profilePath()
			if err != nil {
				return err
			}
			if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return err
			}
			return nil
		},
	}
	return []*cobra.Command{login, logout}
}

// clientFromProfile is an API client for a saved (or about to be saved)
// login.
func clientFromProfile(pr *profile) (*apiClient, error) {
	c := &apiClient{endpoint: pr.Endpoint, tenant: pr.TenantID, clientID: pr.ClientID, secret: pr.ClientSecret,
		subscription: pr.Subscription}
	hc, err := httpClientTrusting(pr.CAFile)
	if err != nil {
		return nil, err
	}
	c.http = hc
	return c, nil
}
