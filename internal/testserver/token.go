package testserver

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"testing"
)

// ARMResource is the resource manager's token audience.
const ARMResource = "https://management.core.windows.net/"

// ClientCredentialsToken runs the OAuth2 client-credentials grant against
// endpoint's v2 token endpoint and returns the access token.
func ClientCredentialsToken(t testing.TB, c *http.Client, endpoint, tenant, clientID, secret, resource string) string {
	t.Helper()
	resp, err := c.PostForm(endpoint+"/"+tenant+"/oauth2/v2.0/token", url.Values{
		"grant_type": {"client_credentials"}, "client_id": {clientID}, "client_secret": {secret},
		"scope": {resource + "/.default"},
	})
	if err != nil {
		t.Fatalf("token request: %v", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("token request: %s %s", resp.Status, b)
	}
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	if err := json.Unmarshal(b, &tok); err != nil || tok.AccessToken == "" {
		t.Fatalf("token response %s: %v", b, err)
	}
	return tok.AccessToken
}

// Token gets an operator token from a subprocess's token endpoint.
func (p *Process) Token(t testing.TB, resource string) string {
	t.Helper()
	rt := p.Runtime(t)
	return ClientCredentialsToken(t, p.HTTPClient(t), p.Endpoint, rt.TenantID, rt.Operator.ClientID, rt.Operator.ClientSecret, resource)
}
