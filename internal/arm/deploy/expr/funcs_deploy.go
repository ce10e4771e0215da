package expr

import (
	"errors"
	"fmt"
	"strings"
)

// Deployment and scope functions (template-functions-deployment.md,
// -scope.md).
func deploymentFunctions() []*function {
	return []*function{
		fixed("deployment", 0, func(ctx *Context, _ []any) (any, error) { return ctx.deploymentObject(), nil }),
		fixed("environment", 0, func(ctx *Context, _ []any) (any, error) {
			env := ctx.Environment
			if env == nil {
				env = AzureCloud()
			}
			return env.object(), nil
		}),
		fixed("parameters", 1, func(ctx *Context, args []any) (any, error) {
			return lookupValue(ctx, args, "parameter", ctx.Parameters)
		}),
		{name: "variables", minArgs: 1, maxArgs: 1,
			eval:  func(ctx *Context, args []any) (any, error) { return lookupValue(ctx, args, "variable", ctx.Variables) },
			sites: []Site{SiteVariables, SiteResource, SiteResourceProperties, SiteOutputs}, siteHint: "Parameter default values can't use variables."},
		fixed("resourceGroup", 0, fnResourceGroup),
		fixed("subscription", 0, fnSubscription),
		fixed("tenant", 0, func(ctx *Context, _ []any) (any, error) {
			t := ctx.Tenant
			return map[string]any{"countryCode": t.CountryCode, "displayName": t.DisplayName, "id": "/tenants/" + t.ID, "tenantId": t.ID}, nil
		}),
		fixed("managementGroup", 0, fnManagementGroup),
	}
}

func lookupValue(ctx *Context, args []any, kind string, values Values) (any, error) {
	name, err := argString(args, 0)
	if err != nil {
		return nil, err
	}
	if values == nil {
		return nil, errNotFound(kind, name, nil)
	}
	v, err := values.Value(ctx, name)
	var nf *NotFoundError
	if errors.As(err, &nf) {
		return nil, errNotFound(kind, name, nf.Known)
	}
	return v, err
}

func (c *Context) deploymentObject() map[string]any {
	d := c.Deployment
	props := map[string]any{
		"template":          orEmpty(d.Template),
		"templateHash":      d.TemplateHash,
		"parameters":        orEmpty(d.Parameters),
		"mode":              or(d.Mode, "Incremental"),
		"provisioningState": or(d.ProvisioningState, "Accepted"),
	}
	switch {
	case d.TemplateLinkURI != "":
		props["templateLink"] = map[string]any{"uri": d.TemplateLinkURI}
	case d.TemplateSpecID != "":
		props["templateLink"] = map[string]any{"id": d.TemplateSpecID}
	}
	out := map[string]any{"name": d.Name, "properties": props}
	if d.Location != "" {
		out["location"] = d.Location
	}
	return out
}

func orEmpty(m map[string]any) map[string]any {
	if m == nil {
		return map[string]any{}
	}
	return m
}

func or(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func scopeError(fn, where string) error {
	return &EvalError{Function: fn, standalone: true,
		Err: fmt.Errorf("The template function '%s' is not expected at this location. It can only be used in %s.", fn, where)}
}

func fnResourceGroup(ctx *Context, _ []any) (any, error) {
	rg := ctx.ResourceGroup
	if rg == nil {
		return nil, scopeError("resourceGroup", "a resource group deployment")
	}
	tags := map[string]any{}
	for k, v := range rg.Tags {
		tags[k] = v
	}
	out := map[string]any{
		"id":         ctx.resourceGroupID(rg.Name),
		"name":       rg.Name,
		"type":       "Microsoft.Resources/resourceGroups",
		"location":   rg.Location,
		"tags":       tags,
		"properties": map[string]any{"provisioningState": or(rg.ProvisioningState, "Succeeded")},
	}
	if rg.ManagedBy != "" {
		out["managedBy"] = rg.ManagedBy
	}
	return out, nil
}

func (c *Context) resourceGroupID(name string) string {
	sub := ""
	if c.Subscription != nil {
		sub = c.Subscription.ID
	}
	return "/subscriptions/" + sub + "/resourceGroups/" + name
}

func fnSubscription(ctx *Context, _ []any) (any, error) {
	s := ctx.Subscription
	if s == nil {
		return nil, scopeError("subscription", "a resource group or subscription deployment")
	}
	tenant := or(s.TenantID, ctx.Tenant.ID)
	return map[string]any{"id": "/subscriptions/" + s.ID, "subscriptionId": s.ID, "tenantId": tenant, "displayName": s.DisplayName}, nil
}

func fnManagementGroup(ctx *Context, _ []any) (any, error) {
	mg := ctx.ManagementGroup
	if mg == nil {
		return nil, scopeError("managementGroup", "a management group deployment")
	}
	details := map[string]any{}
	if mg.Parent != "" {
		details["parent"] = map[string]any{
			"displayName": mg.ParentDisplayName,
			"id":          managementGroupID(mg.Parent),
			"name":        mg.Parent,
		}
	}
	return map[string]any{
		"id":   managementGroupID(mg.Name),
		"name": mg.Name,
		"type": "/providers/Microsoft.Management/managementGroups",
		"properties": map[string]any{
			"details":     details,
			"displayName": or(mg.DisplayName, mg.Name),
			"tenantId":    or(mg.TenantID, ctx.Tenant.ID),
		},
	}, nil
}

func managementGroupID(name string) string {
	return "/providers/Microsoft.Management/managementGroups/" + name
}

// Environment is what environment() reports: the cloud's endpoints. Outpost
// sets its own resource manager and login endpoints so templates that build
// URLs from environment() reach it.
type Environment struct {
	Name                    string
	Gallery                 string
	Graph                   string
	Portal                  string
	GraphAudience           string
	ActiveDirectoryDataLake string
	Batch                   string
	Media                   string
	SQLManagement           string
	VMImageAliasDoc         string
	ResourceManager         string
	Authentication          EnvironmentAuthentication
	// Suffixes maps suffix names (storage, keyvaultDns, acrLoginServer…) to
	// DNS suffixes.
	Suffixes map[string]string
}

// EnvironmentAuthentication is environment().authentication.
type EnvironmentAuthentication struct {
	LoginEndpoint    string
	Audiences        []string
	Tenant           string
	IdentityProvider string
}

// AzureCloud is the public Azure cloud's environment().
func AzureCloud() *Environment {
	return &Environment{
		Name:                    "AzureCloud",
		Gallery:                 "https://gallery.azure.com/",
		Graph:                   "https://graph.windows.net/",
		Portal:                  "https://portal.azure.com",
		GraphAudience:           "https://graph.windows.net/",
		ActiveDirectoryDataLake: "https://datalake.azure.net/",
		Batch:                   "https://batch.core.windows.net/",
		Media:                   "https://rest.media.azure.net",
		SQLManagement:           "https://management.core.windows.net:8443/",
		VMImageAliasDoc:         "https://raw.githubusercontent.com/Azure/azure-rest-api-specs/master/arm-compute/quickstart-templates/aliases.json",
		ResourceManager:         "https://management.azure.com/",
		Authentication: EnvironmentAuthentication{
			LoginEndpoint:    "https://login.microsoftonline.com/",
			Audiences:        []string{"https://management.core.windows.net/", "https://management.azure.com/"},
			Tenant:           "common",
			IdentityProvider: "AAD",
		},
		Suffixes: map[string]string{
			"acrLoginServer":                      ".azurecr.io",
			"azureDatalakeAnalyticsCatalogAndJob": "azuredatalakeanalytics.net",
			"azureDatalakeStoreFileSystem":        "azuredatalakestore.net",
			"azureFrontDoorEndpointSuffix":        "azurefd.net",
			"keyvaultDns":                         ".vault.azure.net",
			"sqlServerHostname":                   ".database.windows.net",
			"storage":                             "core.windows.net",
		},
	}
}

func (e *Environment) object() map[string]any {
	audiences := make([]any, len(e.Authentication.Audiences))
	for i, a := range e.Authentication.Audiences {
		audiences[i] = a
	}
	suffixes := make(map[string]any, len(e.Suffixes))
	for k, v := range e.Suffixes {
		suffixes[k] = v
	}
	return map[string]any{
		"name":                    e.Name,
		"gallery":                 e.Gallery,
		"graph":                   e.Graph,
		"portal":                  e.Portal,
		"graphAudience":           e.GraphAudience,
		"activeDirectoryDataLake": e.ActiveDirectoryDataLake,
		"batch":                   e.Batch,
		"media":                   e.Media,
		"sqlManagement":           e.SQLManagement,
		"vmImageAliasDoc":         e.VMImageAliasDoc,
		"resourceManager":         e.ResourceManager,
		"authentication": map[string]any{
			"loginEndpoint":    e.Authentication.LoginEndpoint,
			"audiences":        audiences,
			"tenant":           e.Authentication.Tenant,
			"identityProvider": e.Authentication.IdentityProvider,
		},
		"suffixes": suffixes,
	}
}

// Resource functions (template-functions-resource.md).
func resourceFunctions() []*function {
	runtime := []Site{SiteResourceProperties, SiteOutputs}
	const runtimeHint = "reference() and list*() can only be used in a resource's properties and in outputs."
	return []*function{
		ranged("resourceId", 2, -1, fnResourceID),
		ranged("subscriptionResourceId", 2, -1, fnSubscriptionResourceID),
		ranged("managementGroupResourceId", 2, -1, fnManagementGroupResourceID),
		ranged("tenantResourceId", 2, -1, pure(fnTenantResourceID)),
		ranged("extensionResourceId", 3, -1, pure(fnExtensionResourceID)),
		{name: "reference", minArgs: 1, maxArgs: 3, eval: fnReference, sites: runtime, siteHint: runtimeHint, notInLambda: true},
		{name: "references", minArgs: 1, maxArgs: 2, eval: fnReferences, sites: runtime, siteHint: runtimeHint, notInLambda: true},
		ranged("pickZones", 3, 5, fnPickZones),
		ranged("providers", 1, 2, pure(func([]any) (any, error) {
			return nil, errors.New("providers() is deprecated and Outpost doesn't implement it; write the API version in the template")
		})),
	}
}

// listFunction serves every list* name (listKeys, listSecrets, list…): a
// POST to the resource's action of that name.
var listFunction = &function{name: "list*", minArgs: 2, maxArgs: 3, lazy: fnList, notInLambda: true,
	sites: []Site{SiteResourceProperties, SiteOutputs}, siteHint: "reference() and list*() can only be used in a resource's properties and in outputs."}

// resourceIDParts finds the resource type among a resourceId-style
// function's string arguments (the one with a '/'), returning the
// arguments before it (scope), and the type and name path interleaved:
// "Microsoft.Sql/servers/s1/databases/d1". wantSlashes is how many
// arguments are allowed to contain '/': 1, or 2 for extensionResourceId.
func resourceIDParts(args []any, maxPrefix, wantSlashes int) (prefix []string, path string, err error) {
	parts, err := allStrings(args)
	if err != nil {
		return nil, "", err
	}
	var slashed []int
	for i, p := range parts {
		if strings.Contains(p, "/") {
			slashed = append(slashed, i)
		}
	}
	if len(slashed) != wantSlashes || wantSlashes == 2 && slashed[0] != 0 {
		if wantSlashes == 2 {
			return nil, "", fmt.Errorf("function requires exactly two multi-segmented arguments. The first must be the parent resource id while the second must be resource type including resource provider namespace. Current function arguments '%s'.", strings.Join(parts, ","))
		}
		return nil, "", fmt.Errorf("function requires exactly one multi-segmented argument which must be resource type including resource provider namespace. Current function arguments '%s'. Names of nested resources are separate arguments: resourceId('Microsoft.Sql/servers/databases', 'server', 'db').", strings.Join(parts, ","))
	}
	ti := slashed[len(slashed)-1]
	if wantSlashes == 1 && ti > maxPrefix {
		return nil, "", fmt.Errorf("the resource type must be argument %d at the latest, but it is argument %d", maxPrefix+1, ti+1)
	}
	typ := strings.Trim(parts[ti], "/")
	segs := strings.Split(typ, "/")
	names := parts[ti+1:]
	if len(segs) < 2 || len(names) != len(segs)-1 {
		return nil, "", fmt.Errorf("the type '%s' requires '%d' resource name argument(s).", typ, max(len(segs)-1, 1))
	}
	var b strings.Builder
	b.WriteString(segs[0])
	for i, n := range names {
		if n == "" {
			return nil, "", fmt.Errorf("the resource name argument %d is empty", i+1)
		}
		b.WriteString("/" + segs[i+1] + "/" + n)
	}
	return parts[:ti], b.String(), nil
}

// fnResourceID is resourceId([subscriptionId], [resourceGroupName], type,
// names…): a resource group resource id, or at subscription scope a
// subscription resource id, or at management group and tenant scope
// /providers/….
func fnResourceID(ctx *Context, args []any) (any, error) {
	prefix, path, err := resourceIDParts(args, 2, 1)
	if err != nil {
		return nil, err
	}
	sub := ""
	if ctx.Subscription != nil {
		sub = ctx.Subscription.ID
	}
	switch len(prefix) {
	case 2:
		return "/subscriptions/" + prefix[0] + "/resourceGroups/" + prefix[1] + "/providers/" + path, nil
	case 1:
		if sub == "" {
			return nil, errors.New("a resource group name was given but this deployment has no subscription; give the subscription id first: resourceId('<subscription>', '<group>', type, name)")
		}
		return "/subscriptions/" + sub + "/resourceGroups/" + prefix[0] + "/providers/" + path, nil
	}
	switch {
	case ctx.ResourceGroup != nil:
		return "/subscriptions/" + sub + "/resourceGroups/" + ctx.ResourceGroup.Name + "/providers/" + path, nil
	case sub != "":
		return subscriptionResource(sub, path), nil
	}
	return "/providers/" + path, nil
}

// subscriptionResource is the id of a resource below a subscription. A
// resource group's id has no providers segment: ARM answers
// subscriptionResourceId('Microsoft.Resources/resourceGroups', 'rg') with
// /subscriptions/{sub}/resourceGroups/rg, the id the group really has.
func subscriptionResource(sub, path string) string {
	if segs := strings.Split(path, "/"); len(segs) == 3 && strings.EqualFold(segs[0]+"/"+segs[1], "Microsoft.Resources/resourceGroups") {
		return "/subscriptions/" + sub + "/resourceGroups/" + segs[2]
	}
	return "/subscriptions/" + sub + "/providers/" + path
}

func fnSubscriptionResourceID(ctx *Context, args []any) (any, error) {
	prefix, path, err := resourceIDParts(args, 1, 1)
	if err != nil {
		return nil, err
	}
	sub := ""
	if len(prefix) == 1 {
		sub = prefix[0]
	} else if ctx.Subscription != nil {
		sub = ctx.Subscription.ID
	}
	if sub == "" {
		return nil, errors.New("this deployment has no subscription; give the subscription id as the first argument")
	}
	return subscriptionResource(sub, path), nil
}

func fnManagementGroupResourceID(ctx *Context, args []any) (any, error) {
	prefix, path, err := resourceIDParts(args, 1, 1)
	if err != nil {
		return nil, err
	}
	mg := ""
	if len(prefix) == 1 {
		mg = prefix[0]
	} else if ctx.ManagementGroup != nil {
		mg = ctx.ManagementGroup.Name
	}
	if mg == "" {
		return nil, errors.New("this deployment has no management group; give the management group name as the first argument")
	}
	return managementGroupID(mg) + "/providers/" + path, nil
}

func fnTenantResourceID(args []any) (any, error) {
	_, path, err := resourceIDParts(args, 0, 1)
	if err != nil {
		return nil, err
	}
	return "/providers/" + path, nil
}

func fnExtensionResourceID(args []any) (any, error) {
	prefix, path, err := resourceIDParts(args, 1, 2)
	if err != nil {
		return nil, err
	}
	return strings.TrimRight(prefix[0], "/") + "/providers/" + path, nil
}

func fnReference(ctx *Context, args []any) (any, error) {
	req := ReferenceRequest{}
	var err error
	if req.Target, err = argString(args, 0); err != nil {
		return nil, err
	}
	if len(args) > 1 && args[1] != nil {
		if req.APIVersion, err = argString(args, 1); err != nil {
			return nil, err
		}
	}
	if len(args) > 2 {
		mode, err := argString(args, 2)
		if err != nil {
			return nil, err
		}
		if !strings.EqualFold(mode, "Full") {
			return nil, fmt.Errorf("the third argument must be 'Full', not '%s'", mode)
		}
		req.Full = true
	}
	if ctx.Reference == nil {
		return nil, errors.New("this context can't read resources (no deployment engine is attached)")
	}
	return ctx.Reference(req)
}

func fnReferences(ctx *Context, args []any) (any, error) {
	name, err := argString(args, 0)
	if err != nil {
		return nil, err
	}
	full := false
	if len(args) > 1 {
		mode, err := argString(args, 1)
		if err != nil {
			return nil, err
		}
		switch {
		case strings.EqualFold(mode, "Full"):
			full = true
		case strings.EqualFold(mode, "Properties"):
		default:
			return nil, fmt.Errorf("the second argument must be 'Full' or 'Properties', not '%s'", mode)
		}
	}
	if ctx.References == nil {
		return nil, errors.New("this context can't read resources (no deployment engine is attached)")
	}
	items, err := ctx.References(name, full)
	if err != nil {
		return nil, err
	}
	return append([]any{}, items...), nil
}

func fnList(ctx *Context, c *Call) (any, error) {
	args, err := c.evalArgs(ctx)
	if err != nil {
		return nil, err
	}
	req := ListRequest{Action: c.Name}
	if req.Target, err = argString(args, 0); err != nil {
		return nil, err
	}
	if req.APIVersion, err = argString(args, 1); err != nil {
		return nil, err
	}
	if len(args) > 2 {
		req.Body = args[2]
	}
	if ctx.List == nil {
		return nil, errors.New("this context can't call resource actions (no deployment engine is attached)")
	}
	return ctx.List(req)
}

// fnPickZones is pickZones(namespace, type, location, [count=1],
// [offset=0]): up to count of the type's zones in the location, or [] where
// it has none.
func fnPickZones(ctx *Context, args []any) (any, error) {
	parts, err := allStrings(args[:3])
	if err != nil {
		return nil, err
	}
	count, offset := int64(1), int64(0)
	if len(args) > 3 {
		if count, err = argInt(args, 3); err != nil {
			return nil, err
		}
	}
	if len(args) > 4 {
		if offset, err = argInt(args, 4); err != nil {
			return nil, err
		}
	}
	if count < 1 || offset < 0 {
		return nil, errors.New("numberOfZones must be at least 1 and offset at least 0")
	}
	out := []any{}
	if ctx.Zones == nil {
		return out, nil
	}
	zones := ctx.Zones(parts[0], parts[1], parts[2])
	for i := offset; i < int64(len(zones)) && int64(len(out)) < count; i++ {
		out = append(out, zones[i])
	}
	return out, nil
}
