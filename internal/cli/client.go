package cli

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
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
	// subscription is --subscription, AZURE_SUBSCRIPTION_ID, or the node's
	// default one.
	subscription string
	http         *http.Client
	token        string
	retried      bool // a 401 was already retried with a fresh token
}

// newAPIClient finds the server and the principal to sign in as, first of:
// the OUTPOST_ENDPOINT and AZURE_* variables (what `outpost env` prints);
// the node of an explicit --data-dir; the saved `outpost login`; the node of
// the default data directory.
func newAPIClient(cmd *cobra.Command) (*apiClient, error) {
	c, err := findServer(cmd)
	if err != nil {
		return nil, err
	}
	if sub, _ := cmd.Flags().GetString("subscription"); sub != "" {
		c.subscription = sub
	}
	if c.subscription == "" {
		return nil, usageErrorf("no subscription: pass --subscription or set AZURE_SUBSCRIPTION_ID (`outpost env` prints it)")
	}
	return c, nil
}

func findServer(cmd *cobra.Command) (*apiClient, error) {
	if os.Getenv("OUTPOST_ENDPOINT") != "" && os.Getenv("AZURE_CLIENT_ID") != "" && os.Getenv("AZURE_CLIENT_SECRET") != "" {
		return clientFromProfile(&profile{
			Endpoint: os.Getenv("OUTPOST_ENDPOINT"), CAFile: os.Getenv("OUTPOST_CA_FILE"), TenantID: os.Getenv("AZURE_TENANT_ID"),
			ClientID: os.Getenv("AZURE_CLIENT_ID"), ClientSecret: os.Getenv("AZURE_CLIENT_SECRET"),
			Subscription: os.Getenv("AZURE_SUBSCRIPTION_ID"),
		})
	}
	explicit := cmd.Flags().Lookup("data-dir").Changed || os.Getenv("OUTPOST_DATA_DIR") != ""
	if !explicit {
		pr, err := readProfile()
		if err != nil {
			return nil, err
		}
		if pr != nil {
			return clientFromProfile(pr)
		}
	}
	rt, err := app.ReadRuntime(dataDir(cmd))
	if err != nil {
		return nil, fmt.Errorf("%w (start one with `outpost serve`, or sign in to another with `outpost login`)", err)
	}
	sub := os.Getenv("AZURE_SUBSCRIPTION_ID")
	if sub == "" {
		sub = rt.SubscriptionID
	}
	return clientFromProfile(&profile{Endpoint: rt.Endpoint, CAFile: rt.CAFile, TenantID: rt.TenantID,
		ClientID: rt.Operator.ClientID, ClientSecret: rt.Operator.ClientSecret, Subscription: sub})
}

// httpClientTrusting is an HTTP client trusting the CA in caFile, or the
// system's CAs when there is none.
func httpClientTrusting(caFile string) (*http.Client, error) {
	// With a CA file, trust only it: Outpost's certificates all come from
	// its own CA, and not loading the system's roots saves each command
	// several milliseconds.
	var pool *x509.CertPool
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("read the CA file: %w", err)
		}
		pool = x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, usageErrorf("%s holds no PEM certificate", caFile)
		}
	}
	return &http.Client{Timeout: 60 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12},
	}}, nil
}

// armScope is the resource manager's audience as a client-credentials scope.
const armScope = "https://management.core.windows.net//.default"

// authenticate gets a resource-manager token with the client-credentials grant.
func (c *apiClient) authenticate(ctx context.Context) error {
	if c.token != "" {
		return nil
	}
	token, err := c.tokenFor(ctx, armScope)
	if err != nil {
		return err
	}
	c.token = token
	return nil
}

// tokenFor gets an access token for scope (a data plane's audience +
// "/.default"): from the token cache while it has five minutes left, else
// with the client-credentials grant (then cached). Caching spares each
// command a round trip, as az's MSAL cache does.
func (c *apiClient) tokenFor(ctx context.Context, scope string) (string, error) {
	cache := c.tokenCacheFile(scope)
	if tok, ok := readCachedToken(cache); ok {
		return tok, nil
	}
	form := url.Values{"grant_type": {"client_credentials"}, "client_id": {c.clientID},
		"client_secret": {c.secret}, "scope": {scope}}
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, c.endpoint+"/"+c.tenant+"/oauth2/v2.0/token", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := c.http.Do(req)
	if err != nil {
		return "", fmt.Errorf("can't reach Outpost at %s: %w (is `outpost serve` running?)", c.endpoint, err)
	}
	defer resp.Body.Close()
	var body struct {
		AccessToken string `json:"access_token"`
		ExpiresIn   int64  `json:"expires_in"`
		Error       string `json:"error"`
		Description string `json:"error_description"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return "", fmt.Errorf("sign in: %s: %w", resp.Status, err)
	}
	if body.AccessToken == "" {
		return "", fmt.Errorf("sign in: %s: %s", body.Error, body.Description)
	}
	writeCachedToken(cache, body.AccessToken, time.Now().Add(time.Duration(body.ExpiresIn)*time.Second))
	return body.AccessToken, nil
}

// tokenCacheFile names the cache entry of this client's token for scope:
// a hash of everything that identifies it, secret included, so a new
// secret or another server never reuses a token ("" when there is no
// configuration directory).
func (c *apiClient) tokenCacheFile(scope string) string {
	p, err := profilePath()
	if err != nil {
		return ""
	}
	sum := sha256.Sum256([]byte(strings.Join([]string{c.endpoint, c.tenant, c.clientID, c.secret, scope}, "\x00")))
	return filepath.Join(filepath.Dir(p), "tokens", hex.EncodeToString(sum[:16])+".json")
}

type cachedToken struct {
	AccessToken string    `json:"accessToken"`
	ExpiresOn   time.Time `json:"expiresOn"`
}

func readCachedToken(file string) (string, bool) {
	if file == "" {
		return "", false
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return "", false
	}
	var ct cachedToken
	if json.Unmarshal(b, &ct) != nil || time.Until(ct.ExpiresOn) < 5*time.Minute {
		return "", false
	}
	return ct.AccessToken, true
}

// writeCachedToken keeps a token for later commands (mode 0600); a cache
// that can't be written only costs the next command a sign-in.
func writeCachedToken(file, token string, expires time.Time) {
	if file == "" {
		return
	}
	if err := os.MkdirAll(filepath.Dir(file), 0o700); err != nil {
		return
	}
	b, _ := json.Marshal(cachedToken{AccessToken: token, ExpiresOn: expires})
	tmp := file + ".tmp" + strconv.Itoa(os.Getpid())
	if os.WriteFile(tmp, b, 0o600) == nil {
		_ = os.Rename(tmp, file)
	}
}

// do sends a JSON request and decodes a JSON answer into out (when not
// nil). Error answers become *apiError.
func (c *apiClient) do(ctx context.Context, method, path string, in, out any) error {
	_, b, err := c.send(ctx, method, path, in)
	if err != nil {
		return err
	}
	if out != nil && len(b) > 0 {
		if err := json.Unmarshal(b, out); err != nil {
			return fmt.Errorf("decode the answer: %w", err)
		}
	}
	return nil
}

// send makes one authenticated request and returns the successful response
// (body read and closed) or an *apiError.
func (c *apiClient) send(ctx context.Context, method, path string, in any) (*http.Response, []byte, error) {
	return c.sendHeader(ctx, method, path, in, nil)
}

// sendHeader is send with extra request headers (If-Match, …).
func (c *apiClient) sendHeader(ctx context.Context, method, path string, in any, header http.Header) (*http.Response, []byte, error) {
	if err := c.authenticate(ctx); err != nil {
		return nil, nil, err
	}
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return nil, nil, err
		}
		body = bytes.NewReader(b)
	}
	u := path
	if !strings.HasPrefix(u, "https://") && !strings.HasPrefix(u, "http://") {
		u = c.endpoint + path
	}
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return nil, nil, err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	req.Header.Set("Content-Type", "application/json")
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, nil, fmt.Errorf("can't reach Outpost at %s: %w (is `outpost serve` running? `outpost env` names the endpoint)", c.endpoint, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, nil, fmt.Errorf("read the answer: %w", err)
	}
	if resp.StatusCode == http.StatusUnauthorized && !c.retried {
		// A cached token the server no longer takes (its keys changed):
		// forget it and sign in once more.
		c.retried = true
		if f := c.tokenCacheFile(armScope); f != "" {
			_ = os.Remove(f)
		}
		c.token = ""
		return c.send(ctx, method, path, in)
	}
	if resp.StatusCode >= 300 {
		return nil, nil, errorFrom(resp.StatusCode, resp.Status, b)
	}
	return resp, b, nil
}

// errorFrom reads an error answer: the ARM envelope ({"error":{code,
// message}}), IoT Hub's flat body ({"Code"/"code", "Message"/"message"}),
// or whatever text came back.
func errorFrom(status int, statusText string, b []byte) *apiError {
	var env struct {
		Error struct{ Code, Message string }
	}
	if json.Unmarshal(b, &env) == nil && env.Error.Code != "" {
		return &apiError{Status: status, Code: env.Error.Code, Message: env.Error.Message}
	}
	var flat struct{ Code, Message, ErrorCode string }
	// IoT Hub's data plane: {"Message":"ErrorCode:<code>;<text>", …}.
	if json.Unmarshal(b, &flat) == nil && flat.Code == "" && flat.ErrorCode == "" {
		if rest, ok := strings.CutPrefix(flat.Message, "ErrorCode:"); ok {
			flat.ErrorCode, flat.Message, _ = strings.Cut(rest, ";")
		}
	}
	if flat.Code != "" || flat.ErrorCode != "" {
		code := flat.Code
		if code == "" {
			code = flat.ErrorCode
		}
		return &apiError{Status: status, Code: code, Message: flat.Message}
	}
	msg := strings.TrimSpace(string(b))
	if msg == "" {
		msg = statusText
	}
	return &apiError{Status: status, Message: statusText + ": " + msg}
}

// responseError reads an error response a caller streamed itself.
func responseError(resp *http.Response) error {
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return errorFrom(resp.StatusCode, resp.Status, b)
}
