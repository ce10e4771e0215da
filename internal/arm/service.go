package arm

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/outpost-iot/outpost/internal/store"
)

// Service is the control plane's core: every operation the REST handler,
// the deployment engine and the CLI perform on resources, written once.
type Service struct {
	store        store.Store
	registry     *Registry
	locations    []Location
	installation Installation
	log          *slog.Logger
	now          func() time.Time
	// enqueue hands a new long-running operation to the OperationRunner;
	// created lets it claim the operation as it is recorded.
	enqueue func(opID string)
	created func(op *store.Operation)
}

// ServiceConfig holds a Service's dependencies.
type ServiceConfig struct {
	Store        store.Store
	Registry     *Registry
	Locations    []Location
	Installation Installation
	Log          *slog.Logger
	// Now defaults to time.Now.
	Now func() time.Time
}

// NewService builds a Service. Long-running operations are queued until an
// OperationRunner is attached with (*OperationRunner).Attach.
func NewService(cfg ServiceConfig) *Service {
	s := &Service{
		store: cfg.Store, registry: cfg.Registry, locations: cfg.Locations,
		installation: cfg.Installation, log: cfg.Log, now: cfg.Now,
		enqueue: func(string) {},
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.locations == nil {
		s.locations = DefaultLocations()
	}
	return s
}

// Installation returns the tenant and default subscription.
func (s *Service) Installation() Installation { return s.installation }

// Registry returns the registered resource types.
func (s *Service) Registry() *Registry { return s.registry }

// Locations returns the accepted locations.
func (s *Service) Locations() []Location { return s.locations }

// CheckSubscription returns 404 SubscriptionNotFound unless sub exists.
func (s *Service) CheckSubscription(ctx context.Context, sub string) error {
	if _, err := s.store.Resources().Get(ctx, SubscriptionID(sub)); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return errSubscriptionNotFound(sub)
		}
		return fmt.Errorf("arm: get subscription: %w", err)
	}
	return nil
}

// Subscriptions lists the subscriptions.
func (s *Service) Subscriptions(ctx context.Context) ([]store.Resource, error) {
	return s.store.Resources().List(ctx, store.ResourceFilter{Type: "Microsoft.Resources/subscriptions"})
}

// Get returns a stored object by id (any kind), or ErrNotFound wrapped.
func (s *Service) Get(ctx context.Context, id string) (store.Resource, error) {
	return s.store.Resources().Get(ctx, id)
}

// ---- resource groups ----

const groupType = "Microsoft.Resources/resourceGroups"

// PutGroup creates or updates a resource group. A group's location can't
// change, as in ARM.
func (s *Service) PutGroup(ctx context.Context, sub, name string, body Document) (store.Resource, bool, error) {
	if err := validateGroupName(name); err != nil {
		return store.Resource{}, false, err
	}
	if err := s.CheckSubscription(ctx, sub); err != nil {
		return store.Resource{}, false, err
	}
	var req struct {
		Location  string            `json:"location"`
		Tags      map[string]string `json:"tags"`
		ManagedBy string            `json:"managedBy"`
	}
	if err := json.Unmarshal(body.Bytes(), &req); err != nil {
		return store.Resource{}, false, errInvalidContent(err)
	}
	if req.Location == "" {
		return store.Resource{}, false, Errorf(http.StatusBadRequest, "LocationRequired",
			"The location property is required for this definition. Add \"location\": \"<region>\", e.g. \"westus\".")
	}
	loc, ok := normalizeLocation(s.locations, req.Location)
	if !ok {
		return store.Resource{}, false, s.errLocation(req.Location)
	}
	id := GroupID(sub, name)
	return s.store.Resources().Put(ctx, id, func(cur *store.Resource) (store.Resource, error) {
		res := store.Resource{ID: id, Type: groupType, Subscription: sub, ResourceGroup: name,
			ParentID: SubscriptionID(sub), Name: name}
		if cur != nil {
			old, err := ParseDocument(cur.Body)
			if err != nil {
				return store.Resource{}, fmt.Errorf("decode stored group: %w", err)
			}
			if oldLoc := old.String("location"); oldLoc != loc {
				return store.Resource{}, Errorf(http.StatusConflict, "InvalidResourceGroupLocation",
					"Invalid resource group location '%s'. The Resource group already exists in location '%s'.", loc, oldLoc)
			}
			// Keep the name's original spelling, as ARM does.
			res.ID, res.Name, res.ResourceGroup = cur.ID, cur.Name, cur.ResourceGroup
		}
		doc := Document{}
		doc.Set("id", res.ID)
		doc.Set("name", res.Name)
		doc.Set("type", groupType)
		doc.Set("location", loc)
		if req.Tags != nil {
			doc.Set("tags", req.Tags)
		}
		if req.ManagedBy != "" {
			doc.Set("managedBy", req.ManagedBy)
		}
		doc.Set("properties", map[string]string{"provisioningState": "Succeeded"})
		res.Body = doc.Bytes()
		return res, nil
	})
}

// PatchGroup updates a group's tags (and managedBy).
func (s *Service) PatchGroup(ctx context.Context, sub, name string, patch Document) (store.Resource, error) {
	if err := s.CheckSubscription(ctx, sub); err != nil {
		return store.Resource{}, err
	}
	res, _, err := s.store.Resources().Put(ctx, GroupID(sub, name), func(cur *store.Resource) (store.Resource, error) {
		if cur == nil {
			return store.Resource{}, errGroupNotFound(name)
		}
		doc, err := ParseDocument(cur.Body)
		if err != nil {
			return store.Resource{}, fmt.Errorf("decode stored group: %w", err)
		}
		if loc := patch.String("location"); loc != "" {
			if n, _ := normalizeLocation(s.locations, loc); n != doc.String("location") {
				return store.Resource{}, Errorf(http.StatusConflict, "InvalidResourceGroupLocation",
					"Invalid resource group location '%s'. The Resource group already exists in location '%s'.", loc, doc.String("location"))
			}
		}
		for _, k := range []string{"tags", "managedBy"} {
			if v, ok := patch[k]; ok {
				doc[k] = v
			}
		}
		out := *cur
		out.Body = doc.Bytes()
		return out, nil
	})
	return res, err
}

// GetGroup returns a resource group or 404 ResourceGroupNotFound.
func (s *Service) GetGroup(ctx context.Context, sub, name string) (store.Resource, error) {
	if err := s.CheckSubscription(ctx, sub); err != nil {
		return store.Resource{}, err
	}
	res, err := s.store.Resources().Get(ctx, GroupID(sub, name))
	if errors.Is(err, store.ErrNotFound) {
		return store.Resource{}, errGroupNotFound(name)
	}
	return res, err
}

// ListGroups lists a subscription's resource groups.
func (s *Service) ListGroups(ctx context.Context, sub string, page Page) ([]store.Resource, error) {
	if err := s.CheckSubscription(ctx, sub); err != nil {
		return nil, err
	}
	return s.store.Resources().List(ctx, store.ResourceFilter{
		Subscription: sub, Type: groupType, After: page.After, Limit: page.Limit,
	})
}

// DeleteGroup starts deleting a group and everything in it. It returns the
// operation to poll.
func (s *Service) DeleteGroup(ctx context.Context, sub, name string) (store.Operation, error) {
	group, err := s.GetGroup(ctx, sub, name)
	if err != nil {
		return store.Operation{}, err
	}
	op, err := s.startOperation(ctx, group.ID, opDeleteGroup)
	if err != nil {
		return store.Operation{}, err
	}
	s.enqueue(op.ID)
	return op, nil
}

func validateGroupName(name string) error {
	bad := len(name) == 0 || len(name) > 90 || strings.HasSuffix(name, ".")
	for _, r := range name {
		switch {
		case r == '-' || r == '_' || r == '.' || r == '(' || r == ')':
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9':
		case r > 127: // ARM accepts Unicode letters and digits
		default:
			bad = true
		}
	}
	if bad {
		return Errorf(http.StatusBadRequest, "InvalidResourceGroup",
			"The provided resource group name '%s' has these invalid characters or length. Use 1-90 letters, digits, '_', '-', '.', '(' or ')', not ending in '.'.", name)
	}
	return nil
}

func (s *Service) errLocation(loc string) *Error {
	names := make([]string, len(s.locations))
	for i, l := range s.locations {
		names[i] = l.Name
	}
	return Errorf(http.StatusBadRequest, "LocationNotAvailableForResourceGroup",
		"The provided location '%s' is not available. List of available regions is '%s'.", loc, strings.Join(names, ","))
}

// Page selects a page of a listing.
type Page struct {
	After string
	Limit int
}

// newOperationID returns an id for an operation.
func newOperationID() string { return uuid.NewString() }
