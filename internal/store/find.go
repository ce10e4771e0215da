package store

import (
	"context"
	"fmt"
	"strings"
)

// Lister lists stored resources; Resources implements it.
type Lister interface {
	List(ctx context.Context, filter ResourceFilter) ([]Resource, error)
}

// FindByName finds the resource of a type whose name matches,
// case-insensitively, in any subscription and group — for the types whose
// names are DNS names and so unique across an installation (IoT hubs,
// storage accounts, Event Hubs and Service Bus namespaces). It pages
// through the type's resources.
func FindByName(ctx context.Context, r Lister, typ, name string) (Resource, bool, error) {
	const page = 500
	after := ""
	for {
		batch, err := r.List(ctx, ResourceFilter{Type: typ, After: after, Limit: page})
		if err != nil {
			return Resource{}, false, fmt.Errorf("store: find %s %q: %w", typ, name, err)
		}
		for _, res := range batch {
			if strings.EqualFold(res.Name, name) {
				return res, true, nil
			}
		}
		if len(batch) < page {
			return Resource{}, false, nil
		}
		after = batch[len(batch)-1].ID
	}
}
