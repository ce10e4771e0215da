// Package server runs Outpost's one HTTPS listener: it binds the configured
// address (falling back to another port, loudly, when 443 can't be bound),
// routes requests by Host and path to the domain handlers, and wraps them in
// the cross-cutting middleware every API surface shares: request ids, body
// size limits, panic recovery, metrics and access logs. It also answers
// /healthz, /readyz and /metrics.
package server
