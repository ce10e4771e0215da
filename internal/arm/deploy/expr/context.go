package expr

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// Site is where in a template an expression sits; some functions are only
// allowed in some places.
type Site int

const (
	// SiteAny lifts every placement restriction (tools, tests).
	SiteAny Site = iota
	// SiteParameterDefault is a parameter's defaultValue: the only place
	// utcNow() and newGuid() are allowed, and variables() is not.
	SiteParameterDefault
	// SiteVariables is the variables section.
	SiteVariables
	// SiteResource is a resource's name, type, apiVersion, location,
	// condition, copy count and dependsOn: values needed before anything is
	// deployed, so reference() and list*() are not allowed.
	SiteResource
	// SiteResourceProperties is a resource's properties (and the rest of
	// its body), evaluated at deployment time.
	SiteResourceProperties
	// SiteOutputs is the outputs section.
	SiteOutputs
)

func (s Site) String() string {
	switch s {
	case SiteParameterDefault:
		return "parameter default value"
	case SiteVariables:
		return "variables"
	case SiteResource:
		return "resource name, type, location, condition or dependsOn"
	case SiteResourceProperties:
		return "resource properties"
	case SiteOutputs:
		return "outputs"
	}
	return "any"
}

// Context is what an expression is evaluated against: the deployment, its
// scope, the template's parameters and variables, and hooks into the
// deployment engine for the functions that read live resources. The zero
// value works for expressions that need none of it.
//
// A Context is not modified by evaluation (loops and lambdas derive copies),
// so one Context may serve concurrent evaluations as long as its hooks and
// Values are safe for concurrent use; LazyValues is.
type Context struct {
	Site Site

	// Parameters and Variables answer parameters('name') and
	// variables('name'); names are case-insensitive.
	Parameters Values
	Variables  Values

	// Deployment describes the running deployment for deployment().
	Deployment Deployment
	// Tenant is always set; Subscription is set for resource-group and
	// subscription deployments; ResourceGroup for resource-group
	// deployments; ManagementGroup for management-group deployments. Which
	// are set decides the form of resourceId()'s result.
	Tenant          Tenant
	Subscription    *Subscription
	ResourceGroup   *ResourceGroup
	ManagementGroup *ManagementGroup
	// Deployer answers deployer(): the principal running the deployment.
	Deployer Deployer
	// Environment answers environment(); nil is the public Azure cloud.
	// Outpost sets its own endpoints here.
	Environment *Environment

	// Reference reads a resource for reference(); nil makes reference() fail.
	Reference func(ReferenceRequest) (any, error)
	// References answers references(symbolicName, 'Full'|'Properties') for
	// languageVersion 2.0 copy loops.
	References func(symbolicName string, full bool) ([]any, error)
	// List calls a resource action for list*() (listKeys, listSecrets…).
	List func(ListRequest) (any, error)
	// UserFunction calls a template's user-defined function
	// ("namespace.member"); args are evaluated.
	UserFunction func(ctx *Context, name string, args []any) (any, error)
	// Zones answers pickZones(): the availability zones of a resource type
	// in a location. nil means no zones anywhere, so pickZones returns [].
	Zones func(providerNamespace, resourceType, location string) []string

	// Now is the clock for utcNow(); nil is time.Now.
	Now func() time.Time
	// NewGUID generates newGuid(); nil is a random version 4 UUID.
	NewGUID func() string

	copies    *copyFrame
	lambdas   *lambdaFrame
	resolving *resolvingFrame
	run       *evalRun
}

// Deployment is what deployment() reports.
type Deployment struct {
	Name string
	// Location is set for subscription, management group and tenant
	// deployments only.
	Location string
	// TemplateLinkURI is set when the template was deployed from a URI;
	// TemplateSpecID when from a template spec.
	TemplateLinkURI string
	TemplateSpecID  string
	// Template is the deployed template (deployment().properties.template).
	Template     map[string]any
	TemplateHash string
	Parameters   map[string]any
	// Mode defaults to Incremental, ProvisioningState to Accepted.
	Mode              string
	ProvisioningState string
}

// Tenant is what tenant() reports.
type Tenant struct {
	ID          string
	DisplayName string
	CountryCode string
}

// Subscription is what subscription() reports.
type Subscription struct {
	ID          string // the subscription GUID
	DisplayName string
	TenantID    string
}

// ResourceGroup is what resourceGroup() reports.
type ResourceGroup struct {
	Name              string
	Location          string
	ManagedBy         string
	Tags              map[string]string
	ProvisioningState string // defaults to Succeeded
}

// ManagementGroup is what managementGroup() reports.
type ManagementGroup struct {
	Name        string
	DisplayName string
	TenantID    string
	// Parent is the parent group's name, if any.
	Parent            string
	ParentDisplayName string
}

// ReferenceRequest is one reference() call.
type ReferenceRequest struct {
	// Target is a resource id, a resource name in this template, or a
	// symbolic name (languageVersion 2.0), as the template wrote it.
	Target string
	// APIVersion is empty when the template left it out (allowed for
	// resources deployed by the same template).
	APIVersion string
	// Full asks for the whole resource rather than its properties.
	Full bool
}

// ListRequest is one list*() call.
type ListRequest struct {
	// Action is the function name as written: "listKeys", "listSecrets"…
	Action     string
	Target     string
	APIVersion string
	// Body is the optional functionValues argument (the POST body).
	Body any
}

// Values resolves parameters('name') or variables('name').
type Values interface {
	// Value returns the named value; name matching is case-insensitive.
	// ctx is the context of the expression asking.
	Value(ctx *Context, name string) (any, error)
}

// StaticValues are values that are already final (supplied parameters).
type StaticValues map[string]any

// Value implements Values.
func (v StaticValues) Value(_ *Context, name string) (any, error) {
	if x, ok := lookupProperty(v, name); ok {
		return x, nil
	}
	return nil, &NotFoundError{Name: name, Known: mapKeys(v)}
}

// NotFoundError is what a Values returns for a name the template doesn't
// declare; parameters() and variables() turn it into ARM's message.
type NotFoundError struct {
	Name  string
	Known []string
}

func (e *NotFoundError) Error() string { return fmt.Sprintf("'%s' is not declared", e.Name) }

func mapKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	return keys
}

func errNotFound(kind, name string, known []string) error {
	msg := fmt.Sprintf("The template %s '%s' is not found.", kind, name)
	if len(known) == 0 {
		msg += fmt.Sprintf(" The template declares no %ss.", kind)
	} else {
		slices.Sort(known)
		msg += fmt.Sprintf(" Declared %ss: '%s'.", kind, strings.Join(known, "', '"))
	}
	return &EvalError{Err: fmt.Errorf("%s", msg), standalone: true}
}

// copyFrame is one enclosing copy loop.
type copyFrame struct {
	name     string
	index    int64
	resource bool // resource or output loop: what copyIndex() without a name means
	parent   *copyFrame
}

// WithCopyIndex returns a context inside iteration index of the property
// or variable copy loop called name; copyIndex('name') reads it.
func (c *Context) WithCopyIndex(name string, index int) *Context {
	d := c.derive()
	d.copies = &copyFrame{name: name, index: int64(index), parent: c.copies}
	return d
}

// WithResourceCopyIndex returns a context inside iteration index of a
// resource or output copy loop; both copyIndex() and copyIndex('name')
// read it.
func (c *Context) WithResourceCopyIndex(name string, index int) *Context {
	d := c.derive()
	d.copies = &copyFrame{name: name, index: int64(index), resource: true, parent: c.copies}
	return d
}

// WithSite returns a copy of the context for expressions at another site.
func (c *Context) WithSite(s Site) *Context {
	d := c.derive()
	d.Site = s
	return d
}

type lambdaFrame struct {
	names  []string
	values []any
	parent *lambdaFrame
}

// resolvingFrame is one parameter or variable being evaluated, for cycle
// detection; it lives on the context, not on shared state, so concurrent
// evaluations don't see each other's work as cycles.
type resolvingFrame struct {
	kind, name string
	owner      *LazyValues
	parent     *resolvingFrame
}

// maxCost bounds the work of one evaluation (function calls plus the size
// of the values they build). Real templates use a tiny fraction of it.
const maxCost = 2_000_000

type evalRun struct{ left int }

func (r *evalRun) charge(n int) error {
	r.left -= n
	if r.left < 0 {
		return &EvalError{standalone: true, Err: fmt.Errorf("the expression is too expensive to evaluate: it exceeded %d units of work (function calls plus the size of the values built)", maxCost)}
	}
	return nil
}

// begin prepares a context for a top-level evaluation.
func (c *Context) begin() *Context {
	if c == nil {
		return &Context{run: &evalRun{left: maxCost}}
	}
	if c.run != nil {
		return c
	}
	d := *c
	d.run = &evalRun{left: maxCost}
	return &d
}

func (c *Context) derive() *Context {
	if c == nil {
		return &Context{}
	}
	d := *c
	return &d
}

// root is the context variables and parameter defaults are evaluated in:
// the template's top level, outside any loop or lambda.
func (c *Context) root(site Site) *Context {
	d := *c
	d.copies, d.lambdas = nil, nil
	if c.Site != SiteAny {
		d.Site = site
	}
	return &d
}

func (c *Context) now() time.Time {
	if c.Now != nil {
		return c.Now().UTC()
	}
	return time.Now().UTC()
}

// EvalString evaluates a template string: an expression is evaluated, a
// literal returned unchanged (an escaped "[[…]" loses its first bracket).
func EvalString(s string, ctx *Context) (any, error) {
	if !IsExpression(s) {
		return Unescape(s), nil
	}
	e, err := Parse(s)
	if err != nil {
		return nil, err
	}
	return e.Eval(ctx)
}
