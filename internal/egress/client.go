package egress

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"time"
)

// Pool sizes for a client that carries thousands of requests a second to
// a handful of storage accounts and event hubs: the standard library's 2
// idle connections per host would make most requests open a new one.
const (
	maxIdleConns        = 1024
	maxIdleConnsPerHost = 256
	idleConnTimeout     = 90 * time.Second
)

// Client sends requests to user-supplied URLs under the policy of its
// Config. It is safe for concurrent use and pools connections; make one and
// share it.
type Client struct {
	policy    *policy
	log       *slog.Logger
	dialer    *net.Dialer
	transport *http.Transport
	http      *http.Client
}

// New checks cfg and builds a Client. It starts no goroutines; Close
// releases idle connections.
func New(cfg Config) (*Client, error) {
	p, err := compile(cfg)
	if err != nil {
		return nil, err
	}
	timeout := cfg.Timeout
	if timeout == 0 {
		timeout = DefaultTimeout
	}
	log := cfg.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	tlsConfig := &tls.Config{}
	if cfg.TLS != nil {
		tlsConfig = cfg.TLS.Clone()
	}
	if tlsConfig.MinVersion < tls.VersionTLS12 {
		tlsConfig.MinVersion = tls.VersionTLS12
	}

	c := &Client{
		policy: p,
		log:    log,
		dialer: &net.Dialer{Timeout: timeout, KeepAlive: 30 * time.Second},
	}
	c.transport = &http.Transport{
		// No Proxy: a proxy from the environment would be dialed instead
		// of the destination the policy checked, and would reach anything.
		Proxy:                 nil,
		DialContext:           c.dial,
		TLSClientConfig:       tlsConfig,
		TLSHandshakeTimeout:   timeout,
		ResponseHeaderTimeout: timeout,
		ExpectContinueTimeout: time.Second,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          maxIdleConns,
		MaxIdleConnsPerHost:   maxIdleConnsPerHost,
		IdleConnTimeout:       idleConnTimeout,
	}
	c.http = &http.Client{
		Transport:     &httpsOnly{next: c.transport, log: log},
		CheckRedirect: c.refuseRedirect,
	}
	return c, nil
}

// Do sends req and returns the response, or an error that never contains
// req's query or user info. A request the policy refuses returns a
// *RefusedError, including a redirect: the 3xx response is not returned
// and its Location is not requested.
//
// Do makes *Client an azcore policy.Transporter.
func (c *Client) Do(req *http.Request) (*http.Response, error) {
	resp, err := c.http.Do(req)
	if err == nil {
		return resp, nil
	}
	if resp != nil {
		// A refused redirect: net/http has already drained and closed it.
		resp.Body.Close()
	}
	return nil, redactError(req.URL, err)
}

// HTTPClient returns an *http.Client with the same policy and connection
// pool, for APIs that want one. Each call returns a new value, so a caller
// changing its fields (CheckRedirect) changes only its own copy. Its
// errors are those of net/http, which may quote the URL's query.
func (c *Client) HTTPClient() *http.Client {
	hc := *c.http
	return &hc
}

// Check reports whether a request to u would be sent, without sending one:
// nil, a *RefusedError, or the error resolving its host. Useful to reject
// an endpoint when it is configured; the answer may change with DNS, and
// Do checks again on every new connection.
func (c *Client) Check(ctx context.Context, u *url.URL) error {
	if refused := schemeRefusal(u); refused != nil {
		return refused
	}
	_, err := c.policy.plan(ctx, hostPort(u))
	return redactError(u, err)
}

// Close closes idle connections. The Client stays usable.
func (c *Client) Close() {
	c.transport.CloseIdleConnections()
}

// dial is the transport's DialContext: it plans the connection, so every
// new connection is checked on the addresses its name resolves to now, and
// dials only the planned IP addresses.
func (c *Client) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	targets, err := c.policy.plan(ctx, addr)
	if err != nil {
		var refused *RefusedError
		if errors.As(err, &refused) {
			logRefusal(ctx, c.log, refused)
		}
		return nil, err
	}
	var errs []error
	for _, t := range targets {
		conn, err := c.dialer.DialContext(ctx, network, t.String())
		if err == nil {
			return conn, nil
		}
		errs = append(errs, err)
		if ctx.Err() != nil {
			break
		}
	}
	return nil, fmt.Errorf("egress: dial %s: %w", addr, errors.Join(errs...))
}

// refuseRedirect is the http.Client's CheckRedirect: a token is meant for
// the host it was sent to, and a Location (possibly on a host the policy
// allows, possibly http) is not that host.
func (c *Client) refuseRedirect(next *http.Request, via []*http.Request) error {
	prev := via[len(via)-1]
	status := "a redirect"
	if next.Response != nil {
		status = next.Response.Status
	}
	err := &RefusedError{
		URL:  redactURL(via[0].URL),
		Addr: hostPort(prev.URL),
		Reason: fmt.Sprintf("redirect (%s) to %s not followed: egress never follows redirects, so credentials stay with the host they were sent to",
			status, redactURL(next.URL)),
	}
	logRefusal(prev.Context(), c.log, err)
	return err
}

// httpsOnly refuses every scheme but https before the transport dials, for
// Do and HTTPClient alike.
type httpsOnly struct {
	next *http.Transport
	log  *slog.Logger
}

func (h *httpsOnly) RoundTrip(req *http.Request) (*http.Response, error) {
	if refused := schemeRefusal(req.URL); refused != nil {
		if req.Body != nil {
			req.Body.Close() // RoundTrip owns the body, even when failing
		}
		logRefusal(req.Context(), h.log, refused)
		return nil, refused
	}
	return h.next.RoundTrip(req)
}

// CloseIdleConnections lets http.Client.CloseIdleConnections reach the pool.
func (h *httpsOnly) CloseIdleConnections() { h.next.CloseIdleConnections() }

// logRefusal logs r at Warn: a refusal is a misconfigured endpoint or an
// attempt, and the operator should see either.
func logRefusal(ctx context.Context, log *slog.Logger, r *RefusedError) {
	attrs := []slog.Attr{slog.String("addr", r.Addr), slog.String("reason", r.Reason)}
	if r.URL != "" {
		attrs = append(attrs, slog.String("url", r.URL))
	}
	if r.IP != "" {
		attrs = append(attrs, slog.String("ip", r.IP))
	}
	log.LogAttrs(ctx, slog.LevelWarn, "egress refused", attrs...)
}

// schemeRefusal refuses every URL but https, or returns nil.
func schemeRefusal(u *url.URL) *RefusedError {
	if u.Scheme == "https" {
		return nil
	}
	reason := fmt.Sprintf("scheme %q is refused: egress speaks only https", u.Scheme)
	if u.Scheme == "http" {
		reason = "plain http is refused: egress sends credentials, and sends them only over https; use an https:// URL"
	}
	return &RefusedError{URL: redactURL(u), Addr: hostPort(u), Reason: reason}
}

// hostPort is the address a request to u is for, as the transport dials it.
func hostPort(u *url.URL) string {
	port := u.Port()
	if port == "" {
		port = "443"
		if u.Scheme == "http" {
			port = "80"
		}
	}
	return net.JoinHostPort(u.Hostname(), port)
}

// redactError returns err with every URL in it reduced to redactURL(u).
func redactError(u *url.URL, err error) error {
	if err == nil {
		return nil
	}
	var refused *RefusedError
	if errors.As(err, &refused) {
		r := *refused // the transport's value may be shared; never mutate it
		r.URL = redactURL(u)
		return &r
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		return &url.Error{Op: ue.Op, URL: redactURL(u), Err: ue.Err}
	}
	return err
}

// redactURL is u without user info, query or fragment.
func redactURL(u *url.URL) string {
	if u == nil {
		return ""
	}
	r := url.URL{Scheme: u.Scheme, Host: u.Host, Path: u.Path, RawPath: u.RawPath}
	return r.String()
}
