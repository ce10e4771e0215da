package identity

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/outpost-iot/outpost/internal/store"
)

// ClientAssertionType is the only client_assertion_type Entra accepts.
const ClientAssertionType = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

// AuthenticateAssertion checks a certificate credential: a JWT signed with
// the key of a certificate registered on the service principal (found by the
// x5t header), with iss = sub = client id, aud = the token endpoint (or the
// issuer), and a valid lifetime.
func (d *Directory) AuthenticateAssertion(ctx context.Context, clientID, assertion string, audiences []string) (store.Principal, error) {
	fail := func(aadsts int, format string, args ...any) error {
		return &AuthError{Status: 401, Code: "invalid_client", AADSTS: aadsts, Description: fmt.Sprintf(format, args...)}
	}
	var claims jwt.RegisteredClaims
	var principal store.Principal
	p := jwt.NewParser(
		jwt.WithValidMethods([]string{"RS256", "PS256", "ES256"}),
		jwt.WithExpirationRequired(),
		jwt.WithLeeway(5*time.Minute),
		jwt.WithTimeFunc(d.now),
	)
	_, err := p.ParseWithClaims(assertion, &claims, func(t *jwt.Token) (any, error) {
		iss, _ := t.Claims.GetIssuer()
		if clientID == "" {
			clientID = iss
		}
		pr, err := d.principals.GetByAppID(ctx, clientID)
		if err != nil {
			return nil, err
		}
		principal = pr
		c, err := decodeCredentials(pr.Credentials)
		if err != nil {
			return nil, err
		}
		cert, x5t, ok := c.certificateFor(t.Header)
		if !ok {
			return nil, fmt.Errorf("no certificate with thumbprint '%s' is registered for the application", x5t)
		}
		if d.now().After(cert.NotAfter) {
			return nil, fmt.Errorf("the certificate '%s' expired at %s", x5t, cert.NotAfter.Format(time.RFC3339))
		}
		return cert.PublicKey, nil
	})
	if errors.Is(err, store.ErrNotFound) {
		return store.Principal{}, &AuthError{Status: 400, Code: "unauthorized_client", AADSTS: 700016,
			Description: fmt.Sprintf("Application with identifier '%s' was not found in the directory.", clientID)}
	}
	if err != nil {
		return store.Principal{}, fail(700027, "Client assertion failed signature validation: %v", err)
	}
	if claims.Issuer != clientID || claims.Subject != clientID {
		return store.Principal{}, fail(700021, "The client assertion's iss and sub must both be the client id '%s'.", clientID)
	}
	audOK := false
	for _, a := range claims.Audience {
		for _, want := range audiences {
			audOK = audOK || a == want
		}
	}
	if !audOK {
		return store.Principal{}, fail(700212, "The client assertion's audience %v must be the token endpoint, one of %v.", []string(claims.Audience), audiences)
	}
	return principal, nil
}
