package cli

// Setting up a bench soak run: a hub with a system-assigned identity, an
// event hub, a Service Bus queue, a topic with a subscription and a blob
// container, each granting the hub's identity its data role, and
// identity-based routing endpoints of all four types with a route to each
// (and one to the built-in events endpoint).

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/google/uuid"
)

// Built-in data roles the hub's identity is granted.
const (
	roleEventHubsDataSender        = "2b629674-e913-4c01-ae53-ef4638d8f975"
	roleServiceBusDataSender       = "69a216fc-b8fb-44d8-bc22-1f3c2cd27a39"
	roleStorageBlobDataContributor = "ba92f5b4-2d11-453d-a403-e96b0029c9fe"

	soakEventHubAPI   = "2024-01-01"
	soakServiceBusAPI = "2022-10-01-preview"
	soakStorageAPI    = "2023-05-01"
	soakRoleAPI       = "2022-04-01"
)

// soakEndpoint names of the routing endpoints (and the built-in one).
const (
	soakEPBuiltIn  = "events"
	soakEPEventHub = "eventhub"
	soakEPQueue    = "queue"
	soakEPTopic    = "topic"
	soakEPBlob     = "blob"
)

// soakEndpointNames is the order endpoints are reported in.
func soakEndpointNames() []string {
	return []string{soakEPBuiltIn, soakEPEventHub, soakEPQueue, soakEPTopic, soakEPBlob}
}

// soakSetup is what the run needs to know about the resources it made.
type soakSetup struct {
	hubID, hubName, hubHost, ownerKey string
	builtInHost, builtInPath          string

	ehHost, ehName, ehKey           string // event hub namespace host, entity, RootManageSharedAccessKey
	sbHost, sbKey                   string
	queue, topic, subscription      string
	account, accountKey, blobHost   string
	container                       string
	principalID                     string
	dnsSuffix                       string
	roleAssignments, routingSummary string
}

// soakNames are this run's resource names: a random tail keeps runs apart,
// so every endpoint starts empty.
type soakNames struct{ tail string }

func newSoakNames() soakNames {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return soakNames{tail: hex.EncodeToString(b)}
}

// armPut PUTs a resource and polls it until it is provisioned.
func armPut(ctx context.Context, c *apiClient, id, api string, body any) (map[string]any, error) {
	if err := c.do(ctx, http.MethodPut, id+"?api-version="+api, body, nil); err != nil {
		return nil, fmt.Errorf("PUT %s: %w", id, err)
	}
	deadline := time.Now().Add(2 * time.Minute)
	for {
		var doc map[string]any
		if err := c.do(ctx, http.MethodGet, id+"?api-version="+api, nil, &doc); err != nil {
			return nil, fmt.Errorf("GET %s: %w", id, err)
		}
		props, _ := doc["properties"].(map[string]any)
		state, _ := props["provisioningState"].(string)
		switch {
		case state == "Succeeded" || state == "":
			return doc, nil
		case state == "Failed" || time.Now().After(deadline):
			return nil, fmt.Errorf("%s: provisioning state %q", id, state)
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("%s: %w", id, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// setUpSoak creates the resources of one soak run.
func setUpSoak(ctx context.Context, c *apiClient, subscription, group, dnsSuffix string, batchFrequency time.Duration) (soakSetup, error) {
	n := newSoakNames()
	st := soakSetup{dnsSuffix: dnsSuffix, hubName: "soak-" + n.tail}
	sub := "/subscriptions/" + subscription
	rg := sub + "/resourceGroups/" + group
	if err := c.do(ctx, http.MethodPut, sub+"/resourcegroups/"+group+"?api-version=2021-04-01", map[string]any{"location": "westus"}, nil); err != nil {
		return st, fmt.Errorf("create resource group %s: %w", group, err)
	}
	st.hubID = rg + "/providers/Microsoft.Devices/IotHubs/" + st.hubName
	hubBody := map[string]any{"location": "westus", "sku": map[string]any{"name": "S1", "capacity": 1},
		"identity": map[string]any{"type": "SystemAssigned"}}
	hub, err := armPut(ctx, c, st.hubID, hubAPIVersion, hubBody)
	if err != nil {
		return st, fmt.Errorf("hub: %w", err)
	}
	if err := st.readHub(ctx, c, hub); err != nil {
		return st, err
	}

	// Event Hubs: a namespace and an event hub of 4 partitions.
	ehNS := "soakeh-" + n.tail
	ehNSID := rg + "/providers/Microsoft.EventHub/namespaces/" + ehNS
	nsBody := map[string]any{"location": "westus", "sku": map[string]any{"name": "Standard", "tier": "Standard"}}
	if _, err := armPut(ctx, c, ehNSID, soakEventHubAPI, nsBody); err != nil {
		return st, fmt.Errorf("event hubs namespace: %w", err)
	}
	st.ehName = "telemetry"
	ehID := ehNSID + "/eventhubs/" + st.ehName
	if _, err := armPut(ctx, c, ehID, soakEventHubAPI, map[string]any{"properties": map[string]any{"partitionCount": 4, "messageRetentionInDays": 1}}); err != nil {
		return st, fmt.Errorf("event hub: %w", err)
	}
	st.ehHost = ehNS + ".servicebus." + dnsSuffix
	if st.ehKey, err = namespaceKey(ctx, c, ehNSID, soakEventHubAPI); err != nil {
		return st, err
	}

	// Service Bus: a queue, and a topic with one subscription.
	sbNS := "soaksb-" + n.tail
	sbNSID := rg + "/providers/Microsoft.ServiceBus/namespaces/" + sbNS
	if _, err := armPut(ctx, c, sbNSID, soakServiceBusAPI, nsBody); err != nil {
		return st, fmt.Errorf("service bus namespace: %w", err)
	}
	st.queue, st.topic, st.subscription = "orders", "alerts", "all"
	queueID, topicID := sbNSID+"/queues/"+st.queue, sbNSID+"/topics/"+st.topic
	for _, id := range []string{queueID, topicID, topicID + "/subscriptions/" + st.subscription} {
		if _, err := armPut(ctx, c, id, soakServiceBusAPI, map[string]any{"properties": map[string]any{}}); err != nil {
			return st, fmt.Errorf("service bus: %w", err)
		}
	}
	st.sbHost = sbNS + ".servicebus." + dnsSuffix
	if st.sbKey, err = namespaceKey(ctx, c, sbNSID, soakServiceBusAPI); err != nil {
		return st, err
	}

	// Storage: an account and a container.
	st.account = "soak" + n.tail
	accountID := rg + "/providers/Microsoft.Storage/storageAccounts/" + st.account
	if _, err := armPut(ctx, c, accountID, soakStorageAPI, map[string]any{"location": "westus", "kind": "StorageV2", "sku": map[string]any{"name": "Standard_LRS"}}); err != nil {
		return st, fmt.Errorf("storage account: %w", err)
	}
	st.container = "archive"
	if _, err := armPut(ctx, c, accountID+"/blobServices/default/containers/"+st.container, soakStorageAPI, map[string]any{"properties": map[string]any{}}); err != nil {
		return st, fmt.Errorf("container: %w", err)
	}
	var keys struct {
		Keys []struct{ Value string } `json:"keys"`
	}
	if err := c.do(ctx, http.MethodPost, accountID+"/listKeys?api-version="+soakStorageAPI, nil, &keys); err != nil || len(keys.Keys) == 0 {
		return st, fmt.Errorf("storage account keys: %w", errors.Join(err, errors.New("no key")))
	}
	st.accountKey = keys.Keys[0].Value
	st.blobHost = st.account + ".blob." + dnsSuffix

	// The hub's identity gets the data role at each target.
	grants := []struct{ scope, role, what string }{
		{ehID, roleEventHubsDataSender, "Azure Event Hubs Data Sender on the event hub"},
		{queueID, roleServiceBusDataSender, "Azure Service Bus Data Sender on the queue"},
		{topicID, roleServiceBusDataSender, "Azure Service Bus Data Sender on the topic"},
		{accountID, roleStorageBlobDataContributor, "Storage Blob Data Contributor on the account"},
	}
	var granted []string
	for _, g := range grants {
		id := g.scope + "/providers/Microsoft.Authorization/roleAssignments/" + uuid.NewString()
		body := map[string]any{"properties": map[string]any{
			"roleDefinitionId": sub + "/providers/Microsoft.Authorization/roleDefinitions/" + g.role,
			"principalId":      st.principalID, "principalType": "ServicePrincipal"}}
		if err := c.do(ctx, http.MethodPut, id+"?api-version="+soakRoleAPI, body, nil); err != nil {
			return st, fmt.Errorf("role assignment %s: %w", g.what, err)
		}
		granted = append(granted, g.what)
	}
	st.roleAssignments = strings.Join(granted, "; ")

	// Identity-based endpoints of the four types and a route to each, and
	// one to the built-in endpoint.
	identity := map[string]any{"authenticationType": "identityBased"}
	ep := func(extra map[string]any) map[string]any {
		m := map[string]any{}
		for k, v := range identity {
			m[k] = v
		}
		for k, v := range extra {
			m[k] = v
		}
		return m
	}
	routes := []map[string]any{}
	for _, name := range soakEndpointNames() {
		routes = append(routes, map[string]any{"name": "to-" + name, "source": "DeviceMessages", "condition": "true",
			"endpointNames": []string{name}, "isEnabled": true})
	}
	routing := map[string]any{
		"endpoints": map[string]any{
			"eventHubs":        []any{ep(map[string]any{"name": soakEPEventHub, "endpointUri": "sb://" + st.ehHost, "entityPath": st.ehName})},
			"serviceBusQueues": []any{ep(map[string]any{"name": soakEPQueue, "endpointUri": "sb://" + st.sbHost, "entityPath": st.queue})},
			"serviceBusTopics": []any{ep(map[string]any{"name": soakEPTopic, "endpointUri": "sb://" + st.sbHost, "entityPath": st.topic})},
			"storageContainers": []any{ep(map[string]any{"name": soakEPBlob, "endpointUri": "https://" + st.blobHost, "containerName": st.container,
				"encoding": "JSON", "batchFrequencyInSeconds": int(batchFrequency / time.Second)})},
		},
		"routes": routes,
	}
	hubBody["properties"] = map[string]any{"routing": routing}
	if _, err := armPut(ctx, c, st.hubID, hubAPIVersion, hubBody); err != nil {
		return st, fmt.Errorf("hub routing: %w", err)
	}
	st.routingSummary = fmt.Sprintf("routes %s, %s, %s, %s and %s (condition true), identity-based, system-assigned identity %s",
		soakEPBuiltIn, soakEPEventHub, soakEPQueue, soakEPTopic, soakEPBlob, st.principalID)
	return st, nil
}

// readHub takes the hub's host name, identity, built-in endpoint and owner key.
func (st *soakSetup) readHub(ctx context.Context, c *apiClient, doc map[string]any) error {
	props, _ := doc["properties"].(map[string]any)
	st.hubHost, _ = props["hostName"].(string)
	ident, _ := doc["identity"].(map[string]any)
	st.principalID, _ = ident["principalId"].(string)
	eps, _ := props["eventHubEndpoints"].(map[string]any)
	events, _ := eps["events"].(map[string]any)
	endpoint, _ := events["endpoint"].(string)
	st.builtInPath, _ = events["path"].(string)
	if u, err := url.Parse(endpoint); err == nil {
		st.builtInHost = u.Host
	}
	if st.hubHost == "" || st.principalID == "" || st.builtInHost == "" || st.builtInPath == "" {
		return fmt.Errorf("hub %s: host %q, principal %q, built-in endpoint %q %q", st.hubName, st.hubHost, st.principalID, endpoint, st.builtInPath)
	}
	var keys struct {
		Value []struct {
			KeyName    string `json:"keyName"`
			PrimaryKey string `json:"primaryKey"`
		} `json:"value"`
	}
	if err := c.do(ctx, http.MethodPost, st.hubID+"/listkeys?api-version="+hubAPIVersion, nil, &keys); err != nil {
		return fmt.Errorf("hub keys: %w", err)
	}
	for _, k := range keys.Value {
		if k.KeyName == "iothubowner" {
			st.ownerKey = k.PrimaryKey
		}
	}
	if st.ownerKey == "" {
		return fmt.Errorf("hub %s has no iothubowner key", st.hubName)
	}
	return nil
}

func namespaceKey(ctx context.Context, c *apiClient, nsID, api string) (string, error) {
	var keys struct {
		PrimaryKey string `json:"primaryKey"`
	}
	if err := c.do(ctx, http.MethodPost, nsID+"/authorizationRules/RootManageSharedAccessKey/listKeys?api-version="+api, nil, &keys); err != nil || keys.PrimaryKey == "" {
		return "", fmt.Errorf("namespace keys %s: %w", nsID, errors.Join(err, errors.New("no primary key")))
	}
	return keys.PrimaryKey, nil
}
