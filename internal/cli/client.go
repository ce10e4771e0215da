package cli

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/outpost-iot/outpost/internal/app"
)

// apiClient calls a running Outpost's public APIs as the operator (or the
// service principal named by AZURE_CLIENT_ID/AZURE_CLIENT_SECRET).
type apiClient struct {
	endpoint string
	tenant   string
	clientID string
	secret   string
	// subscription is AZURE_SUBSCRIPTION_ID, or the node's default one.
	subscription string
	http         *http.Client
	token        string
}

// newAPIClient finds the server: OUTPOST_ENDPOINT and the AZURE_* variables
// when set (what `outpost env` prints), else the runtime record of the node
// using --data-dir.
func newAPIClient(cmd *cobra.Command) (*apiClient, error) {
	c := &apiClient{
		endpoint: os.Getenv("OUTPOST_ENDPOINT"), tenant: os.Getenv("AZURE_TENANT_ID"),
		clientID: os.Getenv("AZURE_CLIENT_ID"), secret: os.Getenv("AZURE_CLIENT_SECRET"),
		subscription: os.Getenv("AZURE_SUBSCRIPTION_ID"),
	}
	caFile := os.Getenv("OUTPOST_CA_FILE")
	if c.endpoint == "" || c.clientID == "" || c.secret == "" {
		rt, err := app.ReadRuntime(dataDir(cmd))
		if err != nil {
			return nil, err
		}
		c.endpoint, c.tenant, caFile = rt.Endpoint, rt.TenantID, rt.CAFile
		c.clientID, c.secret = rt.Operator.ClientID, rt.Operator.ClientSecret
		if c.subscription == "" {
			c.subscription = rt.SubscriptionID
		}
	}
	pool, err := x509.SystemCertPool()
	if err != nil {
		pool = x509.NewCertPool()
	}
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("read the CA file: %w", err)
		}
		pool.AppendCertsFromPEM(pem)
	}
	c.http = &http.Client{Timeout: 60 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12},
	}}
	return c, nil
}

// authenticate gets a resource-manager token with the client-credentials grant.
func (c *apiClient) authenticate(ctx context.Context) error {
	if c.token != "" {
		return nil
	}
	form := url.Values{"grant_type": {"client_credentials"}, "client_id": {c.clientID},
		"client_secret": {c.secret}, "scope": {"https://management.core.windows.net//.default"}}
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, c.endpoint+"/"+c.tenant+"/oauth2/v2.0/token", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("can't reach Outpost at %s: %w (is `outpost serve` running?)", c.endpoint, err)
	}
	defer resp.Body.Close()
	var body struct {
		AccessToken string `json:"access_token"`
		Error       string `json:"error"`
		Description string `json:"error_description"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return fmt.Errorf("sign in: %s: %w", resp.Status, err)
	}
	if body.AccessToken == "" {
		return fmt.Errorf("sign in: %s: %s", body.Error, body.Description)
	}
	c.token = body.AccessToken
	return nil
}

// do sends a JSON request and decodes a JSON answer into out (when not
// nil). ARM-shaped errors become "(Code) message".
func (c *apiClient) do(ctx context.Context, method, path string, in, out any) error {
	if err := c.authenticate(ctx); err != nil {
		return err
	}
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.endpoint+path, body)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("can't reach Outpost at %s: %w", c.endpoint, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 {
		return c.errorFrom(resp)
	}
	b, _ := io.ReadAll(resp.Body)
	if out != nil && len(b) > 0 {
		if err := json.Unmarshal(b, out); err != nil {
			return fmt.Errorf("decode the answer: %w", err)
		}
	}
	return nil
}

// errorFrom turns an error response into "(Code) message".
func (c *apiClient) errorFrom(resp *http.Response) error {
	b, _ := io.ReadAll(resp.Body)
	var e struct {
		Error struct{ Code, Message string }
	}
	if json.Unmarshal(b, &e) == nil && e.Error.Code != "" {
		return fmt.Errorf("(%s) %s", e.Error.Code, e.Error.Message)
	}
	return fmt.Errorf("%s: %s", resp.Status, strings.TrimSpace(string(b)))
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
