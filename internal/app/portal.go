package app

import (
	"fmt"
	"net/http"

	"github.com/outpost-iot/outpost/internal/portal"
	"github.com/outpost-iot/outpost/internal/server"
)

// mountPortal serves the web portal at /portal/ on the main endpoint. Its
// pages call api — the same path router, so the same resource manager,
// token endpoint and hub service API clients reach — in process with the
// signed-in principal's token.
func (a *App) mountPortal(paths *server.PathRouter, api http.Handler) error {
	p, err := portal.New(portal.Config{
		API: api, TenantID: a.installation.TenantID, SubscriptionID: a.installation.SubscriptionID,
		DNSSuffix: a.cfg.DNSSuffix, Log: a.log.With("component", "portal"),
	})
	if err != nil {
		return fmt.Errorf("app: %w", err)
	}
	paths.Handle("portal", p)
	return nil
}
