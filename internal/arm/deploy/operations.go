package deploy

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/outpost-iot/outpost/internal/arm"
	"github.com/outpost-iot/outpost/internal/store"
)

// OperationsType is the ARM type of a deployment's operations.
const OperationsType = Type + "/operations"

// groupType is the ARM type a subscription deployment creates groups with.
const groupType = "Microsoft.Resources/resourceGroups"

// operation is one deployment operation: what the deployment did to one
// resource (create or update it, delete it in Complete mode), as
// GET …/deployments/{name}/operations lists it. Each is stored as a child
// record of the deployment while the deployment runs, so progress shows
// before the deployment ends; a redeploy replaces them.
type operation struct {
	ID           string
	Provisioning string // Create, Delete
	State        string // Running, Succeeded, Failed
	Started      time.Time
	Duration     time.Duration
	StatusCode   string // OK, Created, BadRequest, Conflict…
	Error        *arm.Error
	Target       targetResource
}

type targetResource struct {
	ID, Type, Name, APIVersion string
}

func newOperationID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return strings.ToUpper(hex.EncodeToString(b[:]))
}

// document is the operation as ARM shows it.
func (o operation) document(deploymentID string) map[string]any {
	props := map[string]any{
		"provisioningOperation": o.Provisioning,
		"provisioningState":     o.State,
		"timestamp":             o.Started.Add(o.Duration).UTC().Format(time.RFC3339Nano),
		"duration":              isoSeconds(o.Duration),
		"trackingId":            o.ID,
		"targetResource": map[string]any{
			"id": o.Target.ID, "resourceType": o.Target.Type, "resourceName": o.Target.Name, "apiVersion": o.Target.APIVersion,
		},
	}
	if o.StatusCode != "" {
		props["statusCode"] = o.StatusCode
	}
	if o.Error != nil {
		props["statusMessage"] = map[string]any{"status": "Failed", "error": o.Error.Body()}
	}
	return map[string]any{"id": deploymentID + "/operations/" + o.ID, "operationId": o.ID, "properties": props}
}

// statusCodeName is the HTTP status as ARM names it in statusCode.
func statusCodeName(code int) string {
	return strings.ReplaceAll(http.StatusText(code), " ", "")
}

// operationRecorder keeps a deployment's operations in the store.
type operationRecorder struct {
	resources    store.Resources
	deploymentID string
}

// reset removes the operations of an earlier run of the same deployment.
func (r operationRecorder) reset(ctx context.Context) error {
	list, err := r.resources.List(ctx, store.ResourceFilter{ParentID: r.deploymentID, Type: OperationsType})
	if err != nil {
		return err
	}
	for _, res := range list {
		if err := r.resources.Delete(ctx, res.ID, ""); err != nil && !errors.Is(err, store.ErrNotFound) {
			return err
		}
	}
	return nil
}

// record stores (or updates) one operation.
func (r operationRecorder) record(ctx context.Context, o operation) error {
	id, err := arm.ParseResourceID(r.deploymentID)
	if err != nil {
		return err
	}
	body, _ := json.Marshal(o.document(r.deploymentID))
	opID := r.deploymentID + "/operations/" + o.ID
	_, _, err = r.resources.Put(ctx, opID, func(*store.Resource) (store.Resource, error) {
		return store.Resource{ID: opID, Type: OperationsType, Subscription: id.Subscription, ResourceGroup: id.ResourceGroup,
			ParentID: r.deploymentID, Name: o.ID, Body: body}, nil
	})
	return err
}

// Operations is the read-only Microsoft.Resources/deployments/operations
// type: list and get are the resource manager's; PUT is refused.
type Operations struct{}

var _ arm.ResourceType = Operations{}

// Info implements arm.ResourceType.
func (Operations) Info() arm.TypeInfo {
	return arm.TypeInfo{Namespace: "Microsoft.Resources", Type: "deployments/operations", APIVersions: APIVersions()}
}

// Prepare implements arm.ResourceType: operations are written by their
// deployment only.
func (Operations) Prepare(context.Context, arm.PutRequest) (arm.Document, error) {
	return nil, arm.Errorf(http.StatusMethodNotAllowed, "MethodNotAllowed", "Deployment operations are read-only: they are recorded by the deployment.")
}

// Provision implements arm.ResourceType.
func (Operations) Provision(_ context.Context, _ arm.ResourceID, doc arm.Document) (arm.Document, error) {
	return doc, nil
}

// Deprovision implements arm.ResourceType.
func (Operations) Deprovision(context.Context, store.Resource) error { return nil }
