package cli

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/spf13/cobra"
)

// systemIdentity is how az's --identity and --fileupload-storage-identity
// name a hub's system-assigned identity.
const systemIdentity = "[system]"

// Identity types of the IotHubs ArmIdentity block.
const (
	identitySystem     = "SystemAssigned"
	identityUser       = "UserAssigned"
	identitySystemUser = "SystemAssigned, UserAssigned"
	identityNone       = "None"
)

// Authentication types of endpoints and file upload storage.
const (
	authKeyBased      = "keyBased"
	authIdentityBased = "identityBased"
)

// Fields of the azure-mgmt-iothub models az 2.45 prints results through
// (api-version 2022-04-30-preview), in the models' order: emitModel adds
// the ones the server left out as null, as az's output has them.
var (
	hubModel        = []string{"id", "name", "type", "location", "tags", "etag", "properties", "sku", "identity", "systemData"}
	identityModel   = []string{"principalId", "tenantId", "type", "userAssignedIdentities"}
	routeModel      = []string{"name", "source", "condition", "endpointNames", "isEnabled"}
	enrichmentModel = []string{"key", "value", "endpointNames"}
	policyModel     = []string{"keyName", "primaryKey", "secondaryKey", "rights"}
	messagingModel  = []string{"id", "connectionString", "endpointUri", "entityPath", "authenticationType", "identity", "name", "subscriptionId", "resourceGroup"}
	storageModel    = []string{"id", "connectionString", "endpointUri", "authenticationType", "identity", "name", "subscriptionId", "resourceGroup",
		"containerName", "fileNameFormat", "batchFrequencyInSeconds", "maxChunkSizeInBytes", "encoding"}
	// RoutingEndpoints of the 2022-04-30-preview SDK knows Cosmos DB
	// endpoints as cosmosDbSqlCollections; the server's (2023-06-30)
	// cosmosDBSqlContainers is printed as the server sends it.
	endpointsModel = []string{"serviceBusQueues", "serviceBusTopics", "eventHubs", "storageContainers", "cosmosDbSqlCollections"}
)

// endpointModel is the model of the endpoints in member.
func endpointModel(member string) []string {
	if member == "storageContainers" {
		return storageModel
	}
	return messagingModel
}

// newHubCommands is the `outpost iot hub` ARM group, shaped like az's
// built-in iot module (azure-cli 2.45): the same verbs, flags, defaults and
// client-side checks; results are the server's JSON (az prints its SDK
// models, see each command).
func newHubCommands() []*cobra.Command {
	return []*cobra.Command{
		newHubCreateCommand(), newHubShowCommand(), newHubListCommand(), newHubDeleteCommand(), newHubUpdateCommand(),
		newHubIdentityCommand(), newRoutingEndpointCommand(), newRouteCommand(), newMessageEnrichmentCommand(),
		newHubPolicyCommand(), newHubShowConnectionStringCommand(), newHubConnectionStringCommand(),
	}
}

// hubRef is a command's hub: its name and, when given, its group.
type hubRef struct {
	name, group string
	// ids is az's --ids (Resource Id Arguments): the hub's resource id in
	// place of --name, --resource-group and --subscription.
	ids string
}

// idsFlag adds --ids.
func (h *hubRef) idsFlag(cmd *cobra.Command) {
	cmd.Flags().StringVar(&h.ids, "ids", "", "the hub's resource id (instead of --name and --resource-group)")
}

// resolve reads --ids into the name, group and subscription, or requires
// --name.
func (h *hubRef) resolve(cmd *cobra.Command) error {
	if h.ids == "" {
		return requireFlags(cmd, "name")
	}
	p := strings.Split(strings.Trim(h.ids, "/"), "/")
	if len(p) != 8 || !strings.EqualFold(p[0], "subscriptions") || !strings.EqualFold(p[2], "resourceGroups") ||
		!strings.EqualFold(p[4], "providers") || !strings.EqualFold(p[5]+"/"+p[6], "Microsoft.Devices/IotHubs") {
		return usageErrorf("argument --ids: %q is not an IoT hub's resource id (/subscriptions/SUB/resourceGroups/GROUP/providers/Microsoft.Devices/IotHubs/NAME)", h.ids)
	}
	h.group, h.name = p[3], p[7]
	return cmd.Flags().Set("subscription", p[1])
}

func (h *hubRef) flags(cmd *cobra.Command, a *azArgs, nameFlag string) {
	usage := "IoT Hub name"
	switch nameFlag {
	case "name":
		cmd.Flags().StringVarP(&h.name, "name", "n", "", usage)
	case "hub-name":
		cmd.Flags().StringVar(&h.name, "hub-name", "", usage)
	case "hub-name-n": // az iot hub show-connection-string: --hub-name --name -n
		a.stringFlag(cmd, &h.name, "hub-name", "n", "", usage, "name")
	}
	cmd.Flags().StringVarP(&h.group, "resource-group", "g", "", "resource group (default: found from the hub's name)")
}

func (c *apiClient) hubPath(group, name string) string {
	return c.resourcePath(group, "Microsoft.Devices/IotHubs", name)
}

// find GETs the hub. Without a group it is looked up by name among the
// subscription's hubs, as az does (reading the hub's "resourcegroup").
func (h *hubRef) find(ctx context.Context, c *apiClient) (map[string]any, error) {
	if h.group != "" {
		return c.getJSON(ctx, c.hubPath(h.group, h.name), apiIoTHub)
	}
	hubs, err := c.list(ctx, c.subscriptionPath()+"/providers/Microsoft.Devices/IotHubs", apiIoTHub)
	if err != nil {
		return nil, err
	}
	for _, v := range hubs {
		hub, _ := v.(map[string]any)
		if name, _ := hub["name"].(string); strings.EqualFold(name, h.name) {
			h.group = hubGroup(hub)
			return hub, nil
		}
	}
	return nil, &apiError{Status: 404, Message: fmt.Sprintf("No IoT Hub found with name %s in current subscription.", h.name)}
}

// load signs in and finds the hub: the start of every command on one hub.
func (h *hubRef) load(cmd *cobra.Command) (*apiClient, map[string]any, error) {
	c, err := newAPIClient(cmd)
	if err != nil {
		return nil, nil, err
	}
	hub, err := h.find(cmd.Context(), c)
	return c, hub, err
}

// hubGroup is the hub's resource group: its "resourcegroup" member, else
// the one its id names.
func hubGroup(hub map[string]any) string {
	if g, _ := hub["resourcegroup"].(string); g != "" {
		return g
	}
	id, _ := hub["id"].(string)
	parts := strings.Split(id, "/")
	for i := 0; i+1 < len(parts); i++ {
		if strings.EqualFold(parts[i], "resourceGroups") {
			g, _ := url.PathUnescape(parts[i+1])
			return g
		}
	}
	return ""
}

// save PUTs the changed hub with If-Match: the etag it was read with, and
// waits for the update to finish: the read-modify-write az's update,
// identity and routing commands do.
func (h *hubRef) save(cmd *cobra.Command, c *apiClient, hub map[string]any) (map[string]any, error) {
	etag, _ := hub["etag"].(string)
	return c.putIfMatch(cmd.Context(), c.hubPath(h.group, h.name), apiIoTHub, hub, etag, cmd.ErrOrStderr())
}

// obj returns m[key] as an object, creating it when absent or null.
func obj(m map[string]any, key string) map[string]any {
	if o, ok := m[key].(map[string]any); ok {
		return o
	}
	o := map[string]any{}
	m[key] = o
	return o
}

// arr returns m[key] as a list (nil when absent or null).
func arr(m map[string]any, key string) []any {
	a, _ := m[key].([]any)
	return a
}

func str(m map[string]any, key string) string {
	s, _ := m[key].(string)
	return s
}

// isoDuration is how msrest serialises a timedelta (isodate's
// duration_isoformat): days, then hours, minutes and seconds.
func isoDuration(seconds int) string {
	if seconds == 0 {
		return "P0D"
	}
	d, rest := seconds/86400, seconds%86400
	out := "P"
	if d > 0 {
		out += fmt.Sprintf("%dD", d)
	}
	if rest > 0 {
		out += "T"
		if h := rest / 3600; h > 0 {
			out += fmt.Sprintf("%dH", h)
		}
		if m := rest % 3600 / 60; m > 0 {
			out += fmt.Sprintf("%dM", m)
		}
		if s := rest % 60; s > 0 {
			out += fmt.Sprintf("%dS", s)
		}
	}
	return out
}

func oneOf(flag, v string, allowed ...string) (string, error) {
	for _, a := range allowed {
		if strings.EqualFold(v, a) {
			return a, nil
		}
	}
	return "", usageErrorf("argument %s: invalid choice: '%s' (choose from %s)", flag, v, "'"+strings.Join(allowed, "', '")+"'")
}

// hubSettings are the flags create and update share (az's 'iot hub'
// argument context). In update, a flag left out changes nothing.
type hubSettings struct {
	sku                                                      string
	unit, retentionDay, c2dTTL, c2dMaxDelivery               int
	feedbackLock, feedbackTTL, feedbackMaxDelivery           int
	fnLock, fnMaxDelivery, fnTTL, sasTTL                     int
	storageConnectionString, storageContainer, storageAuth   string
	storageIdentity                                          string
	fileUploadNotifications, disableLocalAuth, disableDevSAS *triState
	disableModSAS                                            *triState
	tags                                                     *list
}

type intRange struct {
	flag     string
	v        *int
	min, max int
	msg      string
}

func (s *hubSettings) flags(cmd *cobra.Command, a *azArgs, create bool) {
	def := func(v int) int {
		if create {
			return v
		}
		return 0
	}
	skuDef := ""
	if create {
		skuDef = "S1"
	}
	a.stringFlag(cmd, &s.sku, "sku", "", skuDef, "pricing tier: B1, B2, B3, F1, S1, S2 or S3")
	a.intFlag(cmd, &s.unit, "unit", "", def(1), "units in the hub")
	a.intFlag(cmd, &s.retentionDay, "retention-day", "", def(1), "how long the hub keeps device-to-cloud events, 1 to 7 days", "rd")
	a.intFlag(cmd, &s.c2dTTL, "c2d-ttl", "", def(1), "hours a cloud-to-device message is available to the device, 1 to 48", "ct")
	a.intFlag(cmd, &s.c2dMaxDelivery, "c2d-max-delivery-count", "", def(10), "times the hub tries to deliver a cloud-to-device message, 1 to 100", "cdd")
	a.intFlag(cmd, &s.feedbackLock, "feedback-lock-duration", "", def(5), "lock duration of the feedback queue, 5 to 300 seconds", "fld")
	a.intFlag(cmd, &s.feedbackTTL, "feedback-ttl", "", def(1), "hours the hub keeps feedback, 1 to 48", "ft")
	a.intFlag(cmd, &s.feedbackMaxDelivery, "feedback-max-delivery-count", "", def(10), "times the hub tries to deliver a feedback message, 1 to 100", "fd")
	s.fileUploadNotifications = a.triStateFlag(cmd, "fileupload-notifications", "", "log uploaded files to the file notifications endpoint", "fn")
	a.intFlag(cmd, &s.fnLock, "fileupload-notification-lock-duration", "", def(5), "lock duration of the file notification queue, 5 to 300 seconds", "fnld")
	a.intFlag(cmd, &s.fnMaxDelivery, "fileupload-notification-max-delivery-count", "", def(10), "times the hub tries to deliver a file notification, 1 to 100", "fnd")
	a.intFlag(cmd, &s.fnTTL, "fileupload-notification-ttl", "", def(1), "hours a file notification is available, 1 to 48", "fnt")
	a.stringFlag(cmd, &s.storageConnectionString, "fileupload-storage-connectionstring", "", "", "connection string of the storage account files are uploaded to", "fcs")
	a.stringFlag(cmd, &s.storageContainer, "fileupload-storage-container-name", "", "", "container files are uploaded to", "fc")
	a.intFlag(cmd, &s.sasTTL, "fileupload-sas-ttl", "", def(1), "hours a file upload SAS URI is valid, 1 to 24", "fst")
	a.stringFlag(cmd, &s.storageAuth, "fileupload-storage-auth-type", "", "", "file upload storage authentication: identityBased or keyBased", "fsa")
	a.stringFlag(cmd, &s.storageIdentity, "fileupload-storage-identity", "", "", "identity for file upload: [system] or a user-assigned identity's resource id", "fsi")
	s.disableLocalAuth = a.triStateFlag(cmd, "disable-local-auth", "", "disable hub-scoped SAS keys", "dla")
	s.disableDevSAS = a.triStateFlag(cmd, "disable-device-sas", "", "disable device-scoped SAS keys", "dds")
	s.disableModSAS = a.triStateFlag(cmd, "disable-module-sas", "", "disable module-scoped SAS keys", "dms")
	s.tags = a.listFlag(cmd, "tags", "", "tags: `KEY[=VALUE]` …; '' clears them")
}

// check is az's argument validators, and the enum choices.
func (s *hubSettings) check() error {
	for _, r := range []intRange{
		{"--retention-day", &s.retentionDay, 1, 7, "Please specify the retention time for device-to-cloud messages from 1 to 7 days only."},
		{"--c2d-ttl", &s.c2dTTL, 1, 48, "Please specify the default time from 1 to 48 hours to live for cloud-to-device messages in the device queue."},
		{"--c2d-max-delivery-count", &s.c2dMaxDelivery, 1, 100, "Please specify the maximum delivery count from 1 to 100 only for cloud-to-device messages in the device queue."},
		{"--feedback-lock-duration", &s.feedbackLock, 5, 300, "Please specify the feedback lock duration from 5 to 300 seconds only."},
		{"--feedback-ttl", &s.feedbackTTL, 1, 48, "Please specify the period of time from 1 to 48 hours for which a message is available to consume before it is expired by the IoT hub."},
		{"--feedback-max-delivery-count", &s.feedbackMaxDelivery, 1, 100, "Please specify the number of retry from 1 to 100 only to deliver a message on the feedback queue."},
		{"--fileupload-notification-lock-duration", &s.fnLock, 5, 300, "Please specify the notification lock duration from 5 to 300 seconds only."},
		{"--fileupload-notification-max-delivery-count", &s.fnMaxDelivery, 1, 100, "Please specify the number of retry from 1 to 100 only to deliver a message"},
		{"--fileupload-notification-ttl", &s.fnTTL, 1, 48, "Please specify the period of time from 1 to 48 hours for which a file upload notification is available to consume before it is expired."},
		{"--fileupload-sas-ttl", &s.sasTTL, 1, 24, "Please specify the period of time from 1 to 24 hours for which the SAS URI generated by IoT Hub for file upload is valid."},
	} {
		// az's validators skip a value of 0 (falsy), so do we.
		if *r.v != 0 && (*r.v < r.min || *r.v > r.max) {
			return usageErrorf("%s", r.msg)
		}
	}
	var err error
	if s.sku != "" {
		if s.sku, err = oneOf("--sku", s.sku, "B1", "B2", "B3", "F1", "S1", "S2", "S3"); err != nil {
			return err
		}
	}
	if s.storageAuth != "" {
		if s.storageAuth, err = oneOf("--fileupload-storage-auth-type", s.storageAuth, authIdentityBased, authKeyBased); err != nil {
			return err
		}
	}
	return nil
}

func newHubCreateCommand() *cobra.Command {
	var (
		h                       hubRef
		s                       hubSettings
		location, minTLS, role  string
		partitions              int
		systemMI, dataResidency *triState
		userMI, scopes          *list
		noWait                  bool
	)
	cmd := &cobra.Command{
		Use:   "create --name NAME --resource-group GROUP",
		Short: "Create an IoT hub (az iot hub create); prints the hub",
	}
	a := newAZArgs(cmd)
	h.flags(cmd, a, "name")
	s.flags(cmd, a, true)
	cmd.Flags().StringVarP(&location, "location", "l", "", "location (default: the resource group's)")
	cmd.Flags().IntVar(&partitions, "partition-count", 4, "partitions of the device-to-cloud events endpoint")
	a.stringFlag(cmd, &minTLS, "min-tls-version", "", "", "minimum TLS version clients must use, e.g. 1.2", "mintls")
	dataResidency = a.triStateFlag(cmd, "enforce-data-residency", "", "disable cross-region disaster recovery", "edr")
	systemMI = a.triStateFlag(cmd, "mi-system-assigned", "", "enable the system-assigned managed identity")
	userMI = a.listFlag(cmd, "mi-user-assigned", "", "user-assigned identities' resource `IDs`")
	cmd.Flags().StringVar(&role, "role", "", "role to give the system-assigned identity at --scopes")
	scopes = a.listFlag(cmd, "scopes", "", "`SCOPES` to give the system-assigned identity --role at")
	cmd.Flags().BoolVar(&noWait, "no-wait", false, "do not wait for the long-running operation to finish")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if err := a.finish(cmd, args); err != nil {
			return err
		}
		if err := requireFlags(cmd, "name", "resource-group"); err != nil {
			return err
		}
		if err := s.check(); err != nil {
			return err
		}
		fn := s.fileUploadNotifications.set && s.fileUploadNotifications.val
		switch {
		case fn && (s.storageConnectionString == "" || s.storageContainer == ""):
			return usageErrorf("Please specify storage endpoint (storage connection string and storage container name).")
		case s.storageConnectionString != "" && s.storageContainer == "":
			return usageErrorf("Please mention storage container name.")
		case s.storageContainer != "" && s.storageConnectionString == "":
			return usageErrorf("Please mention storage connection string.")
		}
		identityUpload := s.storageAuth == authIdentityBased
		systemOn := systemMI.set && systemMI.val
		if !identityUpload && s.storageIdentity != "" {
			return usageErrorf("In order to set a fileupload storage identity, please set file upload storage authentication (--fsa) to IdentityBased")
		}
		if identityUpload || s.storageIdentity != "" {
			if (s.storageIdentity == "" || s.storageIdentity == systemIdentity) && !systemOn {
				return usageErrorf("System managed identity [--mi-system-assigned] must be enabled in order to use managed identity for file upload")
			}
			if s.storageIdentity != "" && s.storageIdentity != systemIdentity && len(userMI.values()) == 0 {
				return usageErrorf("User identity [--mi-user-assigned] must be added in order to use it for file upload")
			}
		}
		if (role == "") != (len(scopes.values()) == 0) {
			return usageErrorf("At least one scope (--scopes) and one role (--role) required for system-assigned managed identity role assignment")
		}
		c, err := newAPIClient(cmd)
		if err != nil {
			return err
		}
		ctx := cmd.Context()
		if location == "" {
			rg, err := c.getJSON(ctx, c.groupPath(h.group), apiResources)
			if err != nil {
				return err
			}
			location = str(rg, "location")
		}
		storage := map[string]any{
			"sasTtlAsIso8601":  isoDuration(s.sasTTL * 3600),
			"connectionString": s.storageConnectionString,
			"containerName":    s.storageContainer,
		}
		if s.storageAuth != "" {
			storage["authenticationType"] = s.storageAuth
		}
		if s.storageIdentity != "" {
			storage["identity"] = map[string]any{"userAssignedIdentity": s.storageIdentity}
		}
		props := map[string]any{
			"eventHubEndpoints":             map[string]any{"events": map[string]any{"retentionTimeInDays": s.retentionDay, "partitionCount": partitions}},
			"storageEndpoints":              map[string]any{"$default": storage},
			"messagingEndpoints":            map[string]any{"fileNotifications": map[string]any{"lockDurationAsIso8601": isoDuration(s.fnLock), "ttlAsIso8601": isoDuration(s.fnTTL * 3600), "maxDeliveryCount": s.fnMaxDelivery}},
			"enableFileUploadNotifications": fn,
			"cloudToDevice": map[string]any{
				"maxDeliveryCount": s.c2dMaxDelivery, "defaultTtlAsIso8601": isoDuration(s.c2dTTL * 3600),
				"feedback": map[string]any{"lockDurationAsIso8601": isoDuration(s.feedbackLock), "ttlAsIso8601": isoDuration(s.feedbackTTL * 3600), "maxDeliveryCount": s.feedbackMaxDelivery},
			},
		}
		for k, v := range map[string]*triState{"enableDataResidency": dataResidency, "disableLocalAuth": s.disableLocalAuth, "disableDeviceSAS": s.disableDevSAS, "disableModuleSAS": s.disableModSAS} {
			if p := v.ptr(); p != nil {
				props[k] = *p
			}
		}
		if minTLS != "" {
			props["minTlsVersion"] = minTLS
		}
		body := map[string]any{"location": location, "sku": map[string]any{"name": s.sku, "capacity": s.unit}, "properties": props}
		if s.tags.given {
			if body["tags"], err = parseTags(s.tags.values()); err != nil {
				return err
			}
		}
		if systemOn || len(userMI.values()) > 0 {
			body["identity"] = buildIdentity(systemOn, userMI.values())
		}
		path := c.hubPath(h.group, h.name)
		if noWait {
			_, _, err := c.send(ctx, "PUT", withAPI(path, apiIoTHub), body)
			return err
		}
		hub, err := c.put(ctx, "PUT", path, apiIoTHub, body, cmd.ErrOrStderr())
		if err != nil {
			return err
		}
		if role != "" {
			principal := str(obj(hub, "identity"), "principalId")
			if principal == "" {
				return errors.New("the hub has no system-assigned identity to give --role to; add --mi-system-assigned")
			}
			for _, scope := range scopes.values() {
				if err := assignRoleTo(cmd, c, principal, role, scope); err != nil {
					return err
				}
			}
		}
		return emitModel(cmd, hub, nil, hubModel)
	}
	return cmd
}

// buildIdentity is az's _build_identity.
func buildIdentity(system bool, users []string) map[string]any {
	typ := identityNone
	switch {
	case system && len(users) > 0:
		typ = identitySystemUser
	case system:
		typ = identitySystem
	case len(users) > 0:
		typ = identityUser
	}
	id := map[string]any{"type": typ}
	if len(users) > 0 {
		u := map[string]any{}
		for _, r := range users {
			u[r] = map[string]any{}
		}
		id["userAssignedIdentities"] = u
	}
	return id
}

func newHubShowCommand() *cobra.Command {
	var h hubRef
	cmd := &cobra.Command{
		Use:   "show --name NAME [--resource-group GROUP]",
		Short: "Show an IoT hub (az iot hub show)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := h.resolve(cmd); err != nil {
				return err
			}
			_, hub, err := h.load(cmd)
			if err != nil {
				return err
			}
			return emitModel(cmd, hub, nil, hubModel)
		},
	}
	h.flags(cmd, nil, "name")
	h.idsFlag(cmd)
	return cmd
}

func newHubListCommand() *cobra.Command {
	var group string
	cmd := &cobra.Command{
		Use:   "list [--resource-group GROUP]",
		Short: "List IoT hubs of the subscription or of a group (az iot hub list)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := newAPIClient(cmd)
			if err != nil {
				return err
			}
			path := c.subscriptionPath()
			if group != "" {
				path = c.groupPath(group)
			}
			hubs, err := c.list(cmd.Context(), path+"/providers/Microsoft.Devices/IotHubs", apiIoTHub)
			if err != nil {
				return err
			}
			return emitModel(cmd, hubs, nil, hubModel)
		},
	}
	cmd.Flags().StringVarP(&group, "resource-group", "g", "", "resource group (default: every hub of the subscription)")
	return cmd
}

func newHubDeleteCommand() *cobra.Command {
	var (
		h      hubRef
		noWait bool
	)
	cmd := &cobra.Command{
		Use:   "delete --name NAME [--resource-group GROUP]",
		Short: "Delete an IoT hub (az iot hub delete); prints nothing",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := h.resolve(cmd); err != nil {
				return err
			}
			c, err := newAPIClient(cmd)
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			if h.group == "" {
				if _, err := h.find(ctx, c); err != nil {
					return err
				}
			}
			path := c.hubPath(h.group, h.name)
			if noWait {
				_, _, err := c.send(ctx, "DELETE", withAPI(path, apiIoTHub), nil)
				return err
			}
			return c.remove(ctx, path, apiIoTHub, cmd.ErrOrStderr())
		},
	}
	h.flags(cmd, nil, "name")
	h.idsFlag(cmd)
	cmd.Flags().BoolVar(&noWait, "no-wait", false, "do not wait for the long-running operation to finish")
	return cmd
}

func newHubUpdateCommand() *cobra.Command {
	var (
		h hubRef
		s hubSettings
	)
	cmd := &cobra.Command{
		Use:   "update --name NAME [--resource-group GROUP] [settings] [--set PATH=VALUE] [--add …] [--remove …]",
		Short: "Update an IoT hub (az iot hub update): read it, change it, write it back with If-Match",
		Long: "Reads the hub, applies the setting flags (as az's update_iot_hub_custom does), then --set, --add\n" +
			"and --remove in the order given, and PUTs it back with If-Match: the etag it read; prints the hub.",
	}
	a := newAZArgs(cmd)
	h.flags(cmd, a, "name")
	h.idsFlag(cmd)
	s.flags(cmd, a, false)
	g := addGenericUpdateFlags(cmd, a)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if err := a.finish(cmd, args); err != nil {
			return err
		}
		if err := h.resolve(cmd); err != nil {
			return err
		}
		if err := s.check(); err != nil {
			return err
		}
		c, hub, err := h.load(cmd)
		if err != nil {
			return err
		}
		if err := s.apply(cmd, hub); err != nil {
			return err
		}
		if err := g.apply(hub); err != nil {
			return err
		}
		out, err := h.save(cmd, c, hub)
		if err != nil {
			return err
		}
		return emitModel(cmd, out, nil, hubModel)
	}
	return cmd
}

// apply is az's update_iot_hub_custom on the hub document.
func (s *hubSettings) apply(cmd *cobra.Command, hub map[string]any) error {
	changed := cmd.Flags().Changed
	props := obj(hub, "properties")
	if s.tags.given {
		tags, err := parseTags(append([]string{}, s.tags.values()...))
		if err != nil {
			return err
		}
		hub["tags"] = tags
	}
	if changed("sku") {
		obj(hub, "sku")["name"] = s.sku
	}
	if changed("unit") {
		obj(hub, "sku")["capacity"] = s.unit
	}
	if changed("retention-day") {
		obj(obj(props, "eventHubEndpoints"), "events")["retentionTimeInDays"] = s.retentionDay
	}
	c2d := func() map[string]any { return obj(props, "cloudToDevice") }
	if changed("c2d-ttl") {
		c2d()["defaultTtlAsIso8601"] = isoDuration(s.c2dTTL * 3600)
	}
	if changed("c2d-max-delivery-count") {
		c2d()["maxDeliveryCount"] = s.c2dMaxDelivery
	}
	if changed("feedback-lock-duration") {
		obj(c2d(), "feedback")["lockDurationAsIso8601"] = isoDuration(s.feedbackLock)
	}
	if changed("feedback-ttl") {
		obj(c2d(), "feedback")["ttlAsIso8601"] = isoDuration(s.feedbackTTL * 3600)
	}
	if changed("feedback-max-delivery-count") {
		obj(c2d(), "feedback")["maxDeliveryCount"] = s.feedbackMaxDelivery
	}
	if p := s.fileUploadNotifications.ptr(); p != nil {
		props["enableFileUploadNotifications"] = *p
	}
	notes := func() map[string]any { return obj(obj(props, "messagingEndpoints"), "fileNotifications") }
	if changed("fileupload-notification-lock-duration") {
		notes()["lockDurationAsIso8601"] = isoDuration(s.fnLock)
	}
	if changed("fileupload-notification-max-delivery-count") {
		notes()["maxDeliveryCount"] = s.fnMaxDelivery
	}
	if changed("fileupload-notification-ttl") {
		notes()["ttlAsIso8601"] = isoDuration(s.fnTTL * 3600)
	}
	if s.storageConnectionString != "" || s.storageContainer != "" || s.sasTTL != 0 || s.storageAuth != "" || s.storageIdentity != "" {
		if err := s.applyStorage(hub, props); err != nil {
			return err
		}
	}
	for k, v := range map[string]*triState{"disableLocalAuth": s.disableLocalAuth, "disableDeviceSAS": s.disableDevSAS, "disableModuleSAS": s.disableModSAS} {
		if p := v.ptr(); p != nil {
			props[k] = *p
		}
	}
	return nil
}

// applyStorage is the file upload part of update_iot_hub_custom, with
// _validate_fileupload_identity and _process_fileupload_args.
func (s *hubSettings) applyStorage(hub, props map[string]any) error {
	endpoints := obj(props, "storageEndpoints")
	def, ok := endpoints["$default"].(map[string]any)
	if !ok {
		if s.storageConnectionString == "" || s.storageContainer == "" {
			return fmt.Errorf("This hub has no default storage endpoint for file upload.\nPlease recreate your default storage endpoint by running " +
				"`outpost iot hub update --name {hub_name} --fcs {storage_connection_string} --fc {storage_container_name}`")
		}
		def = map[string]any{"containerName": s.storageContainer, "connectionString": s.storageConnectionString}
	}
	if s.storageIdentity != "" || s.storageAuth == authIdentityBased {
		typ := str(obj(hub, "identity"), "type")
		if typ == "" || typ == identityNone {
			return usageErrorf("Hub has no identity assigned, please assign a system or user-assigned managed identity to use for file-upload with `outpost iot hub identity assign`")
		}
		hasSystem := typ == identitySystem || typ == identitySystemUser
		hasUser := typ == identityUser || typ == identitySystemUser
		if s.storageIdentity == "" || s.storageIdentity == systemIdentity {
			if !hasSystem {
				return usageErrorf("System managed identity must be enabled in order to use managed identity for file upload")
			}
		} else if !hasUser {
			return usageErrorf("User identity %s must be added to hub in order to use it for file upload", s.storageIdentity)
		}
	}
	switch s.storageAuth {
	case authIdentityBased:
		def["authenticationType"] = authIdentityBased
	case authKeyBased:
		def["authenticationType"] = authKeyBased
		delete(def, "identity")
	}
	switch {
	case s.storageConnectionString != "" && s.storageContainer != "":
		def["connectionString"] = s.storageConnectionString
		def["containerName"] = s.storageContainer
	case s.storageConnectionString != "":
		return usageErrorf("Please mention storage container name.")
	case s.storageContainer != "":
		return usageErrorf("Please mention storage connection string.")
	}
	if s.sasTTL != 0 {
		def["sasTtlAsIso8601"] = isoDuration(s.sasTTL * 3600)
	}
	if str(def, "authenticationType") == authIdentityBased && s.storageIdentity != "" {
		if s.storageIdentity == systemIdentity || s.storageIdentity == identityNone {
			delete(def, "identity")
		} else {
			def["identity"] = map[string]any{"userAssignedIdentity": s.storageIdentity}
		}
	} else if s.storageIdentity != "" {
		return usageErrorf("In order to set a file upload storage identity, you must set the file upload storage authentication type (--fsa) to IdentityBased")
	}
	endpoints["$default"] = def
	return nil
}
