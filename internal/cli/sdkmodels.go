package cli

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// az prints ARM resources through the Python SDK's models: properties are
// lifted to the top level under the model's (camelCase) attribute names,
// attributes the server left out appear as null, members the model doesn't
// know are dropped, and date-times come back as Python's isoformat(). The
// tables below are the models' _attribute_map entries, for the SDK versions
// Debian's az 2.45 uses (azure.cli.core.profiles: storage 2022-09-01, Event
// Hubs and Service Bus 2022-01-01-preview).

// sdkModel is a model's attributes in their order.
type sdkModel []modelField

type modelField struct {
	name string // attribute name as az prints it
	path string // dotted member path in the REST document
	kind modelKind
	// sub is the attribute's own model: its value, each element of it
	// (each) or each value of it (values) is printed through sub.
	sub          sdkModel
	each, values bool
}

// modelKind marks the attributes az re-prints: datetimes and timedeltas.
type modelKind int

const (
	modelPlain modelKind = iota
	modelDate
	modelDuration
)

// names lists the attributes, for emitModel's --query column order.
func (m sdkModel) names() []string {
	out := make([]string, len(m))
	for i, f := range m {
		out[i] = f.name
	}
	return out
}

// view is doc as az prints it through the model. Top-level members the
// model doesn't map survive (msrest keeps them as additional properties,
// which az merges back); unknown members of properties don't.
func (m sdkModel) view(doc map[string]any) map[string]any {
	out := make(map[string]any, len(m))
	known := map[string]bool{}
	for _, f := range m {
		first, _, _ := strings.Cut(f.path, ".")
		known[first] = true
		var v any = doc
		for _, k := range strings.Split(f.path, ".") {
			obj, _ := v.(map[string]any)
			v = obj[k]
		}
		out[f.name] = f.print(v)
	}
	for k, v := range doc {
		if !known[k] {
			out[k] = v
		}
	}
	return out
}

// print is one attribute's value as az prints it.
func (f modelField) print(v any) any {
	switch t := v.(type) {
	case string:
		switch f.kind {
		case modelDate:
			return pyDate(t)
		case modelDuration:
			return pyTimedelta(t)
		}
	case map[string]any:
		if f.sub == nil {
			return t
		}
		if !f.values {
			return f.sub.view(t)
		}
		out := make(map[string]any, len(t))
		for k, e := range t {
			out[k] = e
			if m, ok := e.(map[string]any); ok {
				out[k] = f.sub.view(m)
			}
		}
		return out
	case []any:
		if f.sub == nil || !f.each {
			return t
		}
		out := make([]any, len(t))
		for i, e := range t {
			out[i] = e
			if m, ok := e.(map[string]any); ok {
				out[i] = f.sub.view(m)
			}
		}
		return out
	}
	return v
}

// viewList is view for each resource of a list.
func (m sdkModel) viewList(items []any) []any {
	out := make([]any, 0, len(items))
	for _, it := range items {
		doc, _ := it.(map[string]any)
		out = append(out, m.view(doc))
	}
	return out
}

// pyDate re-prints an RFC 3339 time as msrest's datetime.isoformat() does
// (microseconds only when there are any, "+00:00" for UTC); anything
// unparseable is left as it is.
func pyDate(s string) string {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return s
	}
	u := t.UTC().Truncate(time.Microsecond)
	return pyTimeString(u)
}

// isoDayTimeDuration is the day-time subset of ISO 8601 durations ARM uses.
var isoDayTimeDuration = regexp.MustCompile(`^P(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+)(?:\.(\d+))?S)?)?$`)

// pyTimedelta re-prints an ISO 8601 duration as str(timedelta) does
// ("0:00:30", "14 days, 0:00:00", "10675199 days, 2:48:05.477581"),
// which is how az prints the SDKs' duration attributes; anything else is
// left as it is.
func pyTimedelta(s string) string {
	p := isoDayTimeDuration.FindStringSubmatch(s)
	if p == nil || s == "P" || s == "PT" {
		return s
	}
	num := func(x string) int64 {
		n, _ := strconv.ParseInt(x, 10, 64)
		return n
	}
	days, secs := num(p[1]), num(p[2])*3600+num(p[3])*60+num(p[4])
	// Microseconds, rounded half to even as timedelta rounds.
	frac := p[5] + "0000000"
	micro := num(frac[:6])
	if rest := frac[6:]; rest[0] > '5' || (rest[0] == '5' && (strings.Trim(rest[1:], "0") != "" || micro%2 == 1)) {
		micro++
	}
	if micro == 1e6 {
		micro, secs = 0, secs+1
	}
	days, secs = days+secs/86400, secs%86400
	out := fmt.Sprintf("%d:%02d:%02d", secs/3600, secs/60%60, secs%60)
	if micro != 0 {
		out += fmt.Sprintf(".%06d", micro)
	}
	switch days {
	case 0:
		return out
	case 1:
		return "1 day, " + out
	}
	return fmt.Sprintf("%d days, %s", days, out)
}

// systemDataField is ARM's systemData, as every 2022 model maps it.
func systemDataField() modelField {
	return modelField{name: "systemData", path: "systemData", sub: sdkModel{
		{name: "createdBy", path: "createdBy"},
		{name: "createdByType", path: "createdByType"},
		{name: "createdAt", path: "createdAt", kind: modelDate},
		{name: "lastModifiedBy", path: "lastModifiedBy"},
		{name: "lastModifiedByType", path: "lastModifiedByType"},
		{name: "lastModifiedAt", path: "lastModifiedAt", kind: modelDate},
	}}
}

// messagingPrivateEndpointConnections is privateEndpointConnections as the
// Event Hubs and Service Bus 2022-01-01-preview namespace models map it.
func messagingPrivateEndpointConnections() modelField {
	return modelField{name: "privateEndpointConnections", path: "properties.privateEndpointConnections", each: true, sub: sdkModel{
		{name: "id", path: "id"},
		{name: "name", path: "name"},
		{name: "type", path: "type"},
		{name: "location", path: "location"},
		systemDataField(),
		{name: "privateEndpoint", path: "properties.privateEndpoint", sub: sdkModel{
			{name: "id", path: "id"},
		}},
		{name: "privateLinkServiceConnectionState", path: "properties.privateLinkServiceConnectionState", sub: sdkModel{
			{name: "status", path: "status"},
			{name: "description", path: "description"},
		}},
		{name: "provisioningState", path: "properties.provisioningState"},
	}}
}

// storageAccountModel is azure-mgmt-storage 2022-09-01's StorageAccount.
func storageAccountModel() sdkModel {
	return sdkModel{
		{name: "id", path: "id"},
		{name: "name", path: "name"},
		{name: "type", path: "type"},
		{name: "tags", path: "tags"},
		{name: "location", path: "location"},
		{name: "sku", path: "sku", sub: sdkModel{
			{name: "name", path: "name"},
			{name: "tier", path: "tier"},
		}},
		{name: "kind", path: "kind"},
		{name: "identity", path: "identity", sub: sdkModel{
			{name: "principalId", path: "principalId"},
			{name: "tenantId", path: "tenantId"},
			{name: "type", path: "type"},
			{name: "userAssignedIdentities", path: "userAssignedIdentities", values: true, sub: sdkModel{
				{name: "principalId", path: "principalId"},
				{name: "clientId", path: "clientId"},
			}},
		}},
		{name: "extendedLocation", path: "extendedLocation", sub: sdkModel{
			{name: "name", path: "name"},
			{name: "type", path: "type"},
		}},
		{name: "provisioningState", path: "properties.provisioningState"},
		{name: "primaryEndpoints", path: "properties.primaryEndpoints", sub: sdkModel{
			{name: "blob", path: "blob"},
			{name: "queue", path: "queue"},
			{name: "table", path: "table"},
			{name: "file", path: "file"},
			{name: "web", path: "web"},
			{name: "dfs", path: "dfs"},
			{name: "microsoftEndpoints", path: "microsoftEndpoints", sub: sdkModel{
				{name: "blob", path: "blob"},
				{name: "queue", path: "queue"},
				{name: "table", path: "table"},
				{name: "file", path: "file"},
				{name: "web", path: "web"},
				{name: "dfs", path: "dfs"},
			}},
			{name: "internetEndpoints", path: "internetEndpoints", sub: sdkModel{
				{name: "blob", path: "blob"},
				{name: "file", path: "file"},
				{name: "web", path: "web"},
				{name: "dfs", path: "dfs"},
			}},
		}},
		{name: "primaryLocation", path: "properties.primaryLocation"},
		{name: "statusOfPrimary", path: "properties.statusOfPrimary"},
		{name: "lastGeoFailoverTime", path: "properties.lastGeoFailoverTime", kind: modelDate},
		{name: "secondaryLocation", path: "properties.secondaryLocation"},
		{name: "statusOfSecondary", path: "properties.statusOfSecondary"},
		{name: "creationTime", path: "properties.creationTime", kind: modelDate},
		{name: "customDomain", path: "properties.customDomain", sub: sdkModel{
			{name: "name", path: "name"},
			{name: "useSubDomainName", path: "useSubDomainName"},
		}},
		{name: "sasPolicy", path: "properties.sasPolicy", sub: sdkModel{
			{name: "sasExpirationPeriod", path: "sasExpirationPeriod"},
			{name: "expirationAction", path: "expirationAction"},
		}},
		{name: "keyPolicy", path: "properties.keyPolicy", sub: sdkModel{
			{name: "keyExpirationPeriodInDays", path: "keyExpirationPeriodInDays"},
		}},
		{name: "keyCreationTime", path: "properties.keyCreationTime", sub: sdkModel{
			{name: "key1", path: "key1", kind: modelDate},
			{name: "key2", path: "key2", kind: modelDate},
		}},
		{name: "secondaryEndpoints", path: "properties.secondaryEndpoints", sub: sdkModel{
			{name: "blob", path: "blob"},
			{name: "queue", path: "queue"},
			{name: "table", path: "table"},
			{name: "file", path: "file"},
			{name: "web", path: "web"},
			{name: "dfs", path: "dfs"},
			{name: "microsoftEndpoints", path: "microsoftEndpoints", sub: sdkModel{
				{name: "blob", path: "blob"},
				{name: "queue", path: "queue"},
				{name: "table", path: "table"},
				{name: "file", path: "file"},
				{name: "web", path: "web"},
				{name: "dfs", path: "dfs"},
			}},
			{name: "internetEndpoints", path: "internetEndpoints", sub: sdkModel{
				{name: "blob", path: "blob"},
				{name: "file", path: "file"},
				{name: "web", path: "web"},
				{name: "dfs", path: "dfs"},
			}},
		}},
		{name: "encryption", path: "properties.encryption", sub: sdkModel{
			{name: "services", path: "services", sub: sdkModel{
				{name: "blob", path: "blob", sub: sdkModel{
					{name: "enabled", path: "enabled"},
					{name: "lastEnabledTime", path: "lastEnabledTime", kind: modelDate},
					{name: "keyType", path: "keyType"},
				}},
				{name: "file", path: "file", sub: sdkModel{
					{name: "enabled", path: "enabled"},
					{name: "lastEnabledTime", path: "lastEnabledTime", kind: modelDate},
					{name: "keyType", path: "keyType"},
				}},
				{name: "table", path: "table", sub: sdkModel{
					{name: "enabled", path: "enabled"},
					{name: "lastEnabledTime", path: "lastEnabledTime", kind: modelDate},
					{name: "keyType", path: "keyType"},
				}},
				{name: "queue", path: "queue", sub: sdkModel{
					{name: "enabled", path: "enabled"},
					{name: "lastEnabledTime", path: "lastEnabledTime", kind: modelDate},
					{name: "keyType", path: "keyType"},
				}},
			}},
			{name: "keySource", path: "keySource"},
			{name: "requireInfrastructureEncryption", path: "requireInfrastructureEncryption"},
			{name: "keyVaultProperties", path: "keyvaultproperties", sub: sdkModel{
				{name: "keyName", path: "keyname"},
				{name: "keyVersion", path: "keyversion"},
				{name: "keyVaultUri", path: "keyvaulturi"},
				{name: "currentVersionedKeyIdentifier", path: "currentVersionedKeyIdentifier"},
				{name: "lastKeyRotationTimestamp", path: "lastKeyRotationTimestamp", kind: modelDate},
				{name: "currentVersionedKeyExpirationTimestamp", path: "currentVersionedKeyExpirationTimestamp", kind: modelDate},
			}},
			{name: "encryptionIdentity", path: "identity", sub: sdkModel{
				{name: "encryptionUserAssignedIdentity", path: "userAssignedIdentity"},
				{name: "encryptionFederatedIdentityClientId", path: "federatedIdentityClientId"},
			}},
		}},
		{name: "accessTier", path: "properties.accessTier"},
		{name: "azureFilesIdentityBasedAuthentication", path: "properties.azureFilesIdentityBasedAuthentication", sub: sdkModel{
			{name: "directoryServiceOptions", path: "directoryServiceOptions"},
			{name: "activeDirectoryProperties", path: "activeDirectoryProperties", sub: sdkModel{
				{name: "domainName", path: "domainName"},
				{name: "netBiosDomainName", path: "netBiosDomainName"},
				{name: "forestName", path: "forestName"},
				{name: "domainGuid", path: "domainGuid"},
				{name: "domainSid", path: "domainSid"},
				{name: "azureStorageSid", path: "azureStorageSid"},
				{name: "samAccountName", path: "samAccountName"},
				{name: "accountType", path: "accountType"},
			}},
			{name: "defaultSharePermission", path: "defaultSharePermission"},
		}},
		{name: "enableHttpsTrafficOnly", path: "properties.supportsHttpsTrafficOnly"},
		{name: "networkRuleSet", path: "properties.networkAcls", sub: sdkModel{
			{name: "bypass", path: "bypass"},
			{name: "resourceAccessRules", path: "resourceAccessRules", each: true, sub: sdkModel{
				{name: "tenantId", path: "tenantId"},
				{name: "resourceId", path: "resourceId"},
			}},
			{name: "virtualNetworkRules", path: "virtualNetworkRules", each: true, sub: sdkModel{
				{name: "virtualNetworkResourceId", path: "id"},
				{name: "action", path: "action"},
				{name: "state", path: "state"},
			}},
			{name: "ipRules", path: "ipRules", each: true, sub: sdkModel{
				{name: "ipAddressOrRange", path: "value"},
				{name: "action", path: "action"},
			}},
			{name: "defaultAction", path: "defaultAction"},
		}},
		{name: "isSftpEnabled", path: "properties.isSftpEnabled"},
		{name: "isLocalUserEnabled", path: "properties.isLocalUserEnabled"},
		{name: "isHnsEnabled", path: "properties.isHnsEnabled"},
		{name: "geoReplicationStats", path: "properties.geoReplicationStats", sub: sdkModel{
			{name: "status", path: "status"},
			{name: "lastSyncTime", path: "lastSyncTime", kind: modelDate},
			{name: "canFailover", path: "canFailover"},
		}},
		{name: "failoverInProgress", path: "properties.failoverInProgress"},
		{name: "largeFileSharesState", path: "properties.largeFileSharesState"},
		{name: "privateEndpointConnections", path: "properties.privateEndpointConnections", each: true, sub: sdkModel{
			{name: "id", path: "id"},
			{name: "name", path: "name"},
			{name: "type", path: "type"},
			{name: "privateEndpoint", path: "properties.privateEndpoint", sub: sdkModel{
				{name: "id", path: "id"},
			}},
			{name: "privateLinkServiceConnectionState", path: "properties.privateLinkServiceConnectionState", sub: sdkModel{
				{name: "status", path: "status"},
				{name: "description", path: "description"},
				{name: "actionRequired", path: "actionRequired"},
			}},
			{name: "provisioningState", path: "properties.provisioningState"},
		}},
		{name: "routingPreference", path: "properties.routingPreference", sub: sdkModel{
			{name: "routingChoice", path: "routingChoice"},
			{name: "publishMicrosoftEndpoints", path: "publishMicrosoftEndpoints"},
			{name: "publishInternetEndpoints", path: "publishInternetEndpoints"},
		}},
		{name: "blobRestoreStatus", path: "properties.blobRestoreStatus", sub: sdkModel{
			{name: "status", path: "status"},
			{name: "failureReason", path: "failureReason"},
			{name: "restoreId", path: "restoreId"},
			{name: "parameters", path: "parameters", sub: sdkModel{
				{name: "timeToRestore", path: "timeToRestore", kind: modelDate},
				{name: "blobRanges", path: "blobRanges", each: true, sub: sdkModel{
					{name: "startRange", path: "startRange"},
					{name: "endRange", path: "endRange"},
				}},
			}},
		}},
		{name: "allowBlobPublicAccess", path: "properties.allowBlobPublicAccess"},
		{name: "minimumTlsVersion", path: "properties.minimumTlsVersion"},
		{name: "allowSharedKeyAccess", path: "properties.allowSharedKeyAccess"},
		{name: "enableNfsV3", path: "properties.isNfsV3Enabled"},
		{name: "allowCrossTenantReplication", path: "properties.allowCrossTenantReplication"},
		{name: "defaultToOAuthAuthentication", path: "properties.defaultToOAuthAuthentication"},
		{name: "publicNetworkAccess", path: "properties.publicNetworkAccess"},
		{name: "immutableStorageWithVersioning", path: "properties.immutableStorageWithVersioning", sub: sdkModel{
			{name: "enabled", path: "enabled"},
			{name: "immutabilityPolicy", path: "immutabilityPolicy", sub: sdkModel{
				{name: "immutabilityPeriodSinceCreationInDays", path: "immutabilityPeriodSinceCreationInDays"},
				{name: "state", path: "state"},
				{name: "allowProtectedAppendWrites", path: "allowProtectedAppendWrites"},
			}},
		}},
		{name: "allowedCopyScope", path: "properties.allowedCopyScope"},
		{name: "storageAccountSkuConversionStatus", path: "properties.storageAccountSkuConversionStatus", sub: sdkModel{
			{name: "skuConversionStatus", path: "skuConversionStatus"},
			{name: "targetSkuName", path: "targetSkuName"},
			{name: "startTime", path: "startTime"},
			{name: "endTime", path: "endTime"},
		}},
		{name: "dnsEndpointType", path: "properties.dnsEndpointType"},
	}
}

// eventHubNamespaceModel is azure-mgmt-eventhub 2022-01-01-preview's EHNamespace.
func eventHubNamespaceModel() sdkModel {
	return sdkModel{
		{name: "id", path: "id"},
		{name: "name", path: "name"},
		{name: "type", path: "type"},
		{name: "location", path: "location"},
		{name: "tags", path: "tags"},
		{name: "sku", path: "sku", sub: sdkModel{
			{name: "name", path: "name"},
			{name: "tier", path: "tier"},
			{name: "capacity", path: "capacity"},
		}},
		{name: "identity", path: "identity", sub: sdkModel{
			{name: "principalId", path: "principalId"},
			{name: "tenantId", path: "tenantId"},
			{name: "type", path: "type"},
			{name: "userAssignedIdentities", path: "userAssignedIdentities", values: true, sub: sdkModel{
				{name: "principalId", path: "principalId"},
				{name: "clientId", path: "clientId"},
			}},
		}},
		systemDataField(),
		{name: "minimumTlsVersion", path: "properties.minimumTlsVersion"},
		{name: "provisioningState", path: "properties.provisioningState"},
		{name: "status", path: "properties.status"},
		{name: "createdAt", path: "properties.createdAt", kind: modelDate},
		{name: "updatedAt", path: "properties.updatedAt", kind: modelDate},
		{name: "serviceBusEndpoint", path: "properties.serviceBusEndpoint"},
		{name: "clusterArmId", path: "properties.clusterArmId"},
		{name: "metricId", path: "properties.metricId"},
		{name: "isAutoInflateEnabled", path: "properties.isAutoInflateEnabled"},
		{name: "publicNetworkAccess", path: "properties.publicNetworkAccess"},
		{name: "maximumThroughputUnits", path: "properties.maximumThroughputUnits"},
		{name: "kafkaEnabled", path: "properties.kafkaEnabled"},
		{name: "zoneRedundant", path: "properties.zoneRedundant"},
		{name: "encryption", path: "properties.encryption", sub: sdkModel{
			{name: "keyVaultProperties", path: "keyVaultProperties", each: true, sub: sdkModel{
				{name: "keyName", path: "keyName"},
				{name: "keyVaultUri", path: "keyVaultUri"},
				{name: "keyVersion", path: "keyVersion"},
				{name: "identity", path: "identity", sub: sdkModel{
					{name: "userAssignedIdentity", path: "userAssignedIdentity"},
				}},
			}},
			{name: "keySource", path: "keySource"},
			{name: "requireInfrastructureEncryption", path: "requireInfrastructureEncryption"},
		}},
		messagingPrivateEndpointConnections(),
		{name: "disableLocalAuth", path: "properties.disableLocalAuth"},
		{name: "alternateName", path: "properties.alternateName"},
	}
}

// eventHubModel is azure-mgmt-eventhub 2022-01-01-preview's Eventhub.
func eventHubModel() sdkModel {
	return sdkModel{
		{name: "id", path: "id"},
		{name: "name", path: "name"},
		{name: "type", path: "type"},
		{name: "location", path: "location"},
		systemDataField(),
		{name: "partitionIds", path: "properties.partitionIds"},
		{name: "createdAt", path: "properties.createdAt", kind: modelDate},
		{name: "updatedAt", path: "properties.updatedAt", kind: modelDate},
		{name: "messageRetentionInDays", path: "properties.messageRetentionInDays"},
		{name: "partitionCount", path: "properties.partitionCount"},
		{name: "status", path: "properties.status"},
		{name: "captureDescription", path: "properties.captureDescription", sub: sdkModel{
			{name: "enabled", path: "enabled"},
			{name: "encoding", path: "encoding"},
			{name: "intervalInSeconds", path: "intervalInSeconds"},
			{name: "sizeLimitInBytes", path: "sizeLimitInBytes"},
			{name: "destination", path: "destination", sub: sdkModel{
				{name: "name", path: "name"},
				{name: "storageAccountResourceId", path: "properties.storageAccountResourceId"},
				{name: "blobContainer", path: "properties.blobContainer"},
				{name: "archiveNameFormat", path: "properties.archiveNameFormat"},
				{name: "dataLakeSubscriptionId", path: "properties.dataLakeSubscriptionId"},
				{name: "dataLakeAccountName", path: "properties.dataLakeAccountName"},
				{name: "dataLakeFolderPath", path: "properties.dataLakeFolderPath"},
			}},
			{name: "skipEmptyArchives", path: "skipEmptyArchives"},
		}},
	}
}

// serviceBusNamespaceModel is azure-mgmt-servicebus 2022-01-01-preview's SBNamespace.
func serviceBusNamespaceModel() sdkModel {
	return sdkModel{
		{name: "id", path: "id"},
		{name: "name", path: "name"},
		{name: "type", path: "type"},
		{name: "location", path: "location"},
		{name: "tags", path: "tags"},
		{name: "sku", path: "sku", sub: sdkModel{
			{name: "name", path: "name"},
			{name: "tier", path: "tier"},
			{name: "capacity", path: "capacity"},
		}},
		{name: "identity", path: "identity", sub: sdkModel{
			{name: "principalId", path: "principalId"},
			{name: "tenantId", path: "tenantId"},
			{name: "type", path: "type"},
			{name: "userAssignedIdentities", path: "userAssignedIdentities", values: true, sub: sdkModel{
				{name: "principalId", path: "principalId"},
				{name: "clientId", path: "clientId"},
			}},
		}},
		systemDataField(),
		{name: "minimumTlsVersion", path: "properties.minimumTlsVersion"},
		{name: "provisioningState", path: "properties.provisioningState"},
		{name: "status", path: "properties.status"},
		{name: "createdAt", path: "properties.createdAt", kind: modelDate},
		{name: "updatedAt", path: "properties.updatedAt", kind: modelDate},
		{name: "serviceBusEndpoint", path: "properties.serviceBusEndpoint"},
		{name: "metricId", path: "properties.metricId"},
		{name: "zoneRedundant", path: "properties.zoneRedundant"},
		{name: "encryption", path: "properties.encryption", sub: sdkModel{
			{name: "keyVaultProperties", path: "keyVaultProperties", each: true, sub: sdkModel{
				{name: "keyName", path: "keyName"},
				{name: "keyVaultUri", path: "keyVaultUri"},
				{name: "keyVersion", path: "keyVersion"},
				{name: "identity", path: "identity", sub: sdkModel{
					{name: "userAssignedIdentity", path: "userAssignedIdentity"},
				}},
			}},
			{name: "keySource", path: "keySource"},
			{name: "requireInfrastructureEncryption", path: "requireInfrastructureEncryption"},
		}},
		messagingPrivateEndpointConnections(),
		{name: "disableLocalAuth", path: "properties.disableLocalAuth"},
		{name: "alternateName", path: "properties.alternateName"},
		{name: "publicNetworkAccess", path: "properties.publicNetworkAccess"},
	}
}

// serviceBusQueueModel is azure-mgmt-servicebus 2022-01-01-preview's SBQueue.
func serviceBusQueueModel() sdkModel {
	return sdkModel{
		{name: "id", path: "id"},
		{name: "name", path: "name"},
		{name: "type", path: "type"},
		{name: "location", path: "location"},
		systemDataField(),
		{name: "countDetails", path: "properties.countDetails", sub: sdkModel{
			{name: "activeMessageCount", path: "activeMessageCount"},
			{name: "deadLetterMessageCount", path: "deadLetterMessageCount"},
			{name: "scheduledMessageCount", path: "scheduledMessageCount"},
			{name: "transferMessageCount", path: "transferMessageCount"},
			{name: "transferDeadLetterMessageCount", path: "transferDeadLetterMessageCount"},
		}},
		{name: "createdAt", path: "properties.createdAt", kind: modelDate},
		{name: "updatedAt", path: "properties.updatedAt", kind: modelDate},
		{name: "accessedAt", path: "properties.accessedAt", kind: modelDate},
		{name: "sizeInBytes", path: "properties.sizeInBytes"},
		{name: "messageCount", path: "properties.messageCount"},
		{name: "lockDuration", path: "properties.lockDuration", kind: modelDuration},
		{name: "maxSizeInMegabytes", path: "properties.maxSizeInMegabytes"},
		{name: "maxMessageSizeInKilobytes", path: "properties.maxMessageSizeInKilobytes"},
		{name: "requiresDuplicateDetection", path: "properties.requiresDuplicateDetection"},
		{name: "requiresSession", path: "properties.requiresSession"},
		{name: "defaultMessageTimeToLive", path: "properties.defaultMessageTimeToLive", kind: modelDuration},
		{name: "deadLetteringOnMessageExpiration", path: "properties.deadLetteringOnMessageExpiration"},
		{name: "duplicateDetectionHistoryTimeWindow", path: "properties.duplicateDetectionHistoryTimeWindow", kind: modelDuration},
		{name: "maxDeliveryCount", path: "properties.maxDeliveryCount"},
		{name: "status", path: "properties.status"},
		{name: "enableBatchedOperations", path: "properties.enableBatchedOperations"},
		{name: "autoDeleteOnIdle", path: "properties.autoDeleteOnIdle", kind: modelDuration},
		{name: "enablePartitioning", path: "properties.enablePartitioning"},
		{name: "enableExpress", path: "properties.enableExpress"},
		{name: "forwardTo", path: "properties.forwardTo"},
		{name: "forwardDeadLetteredMessagesTo", path: "properties.forwardDeadLetteredMessagesTo"},
	}
}

// serviceBusTopicModel is azure-mgmt-servicebus 2022-01-01-preview's SBTopic.
func serviceBusTopicModel() sdkModel {
	return sdkModel{
		{name: "id", path: "id"},
		{name: "name", path: "name"},
		{name: "type", path: "type"},
		{name: "location", path: "location"},
		systemDataField(),
		{name: "sizeInBytes", path: "properties.sizeInBytes"},
		{name: "createdAt", path: "properties.createdAt", kind: modelDate},
		{name: "updatedAt", path: "properties.updatedAt", kind: modelDate},
		{name: "accessedAt", path: "properties.accessedAt", kind: modelDate},
		{name: "subscriptionCount", path: "properties.subscriptionCount"},
		{name: "countDetails", path: "properties.countDetails", sub: sdkModel{
			{name: "activeMessageCount", path: "activeMessageCount"},
			{name: "deadLetterMessageCount", path: "deadLetterMessageCount"},
			{name: "scheduledMessageCount", path: "scheduledMessageCount"},
			{name: "transferMessageCount", path: "transferMessageCount"},
			{name: "transferDeadLetterMessageCount", path: "transferDeadLetterMessageCount"},
		}},
		{name: "defaultMessageTimeToLive", path: "properties.defaultMessageTimeToLive", kind: modelDuration},
		{name: "maxSizeInMegabytes", path: "properties.maxSizeInMegabytes"},
		{name: "maxMessageSizeInKilobytes", path: "properties.maxMessageSizeInKilobytes"},
		{name: "requiresDuplicateDetection", path: "properties.requiresDuplicateDetection"},
		{name: "duplicateDetectionHistoryTimeWindow", path: "properties.duplicateDetectionHistoryTimeWindow", kind: modelDuration},
		{name: "enableBatchedOperations", path: "properties.enableBatchedOperations"},
		{name: "status", path: "properties.status"},
		{name: "supportOrdering", path: "properties.supportOrdering"},
		{name: "autoDeleteOnIdle", path: "properties.autoDeleteOnIdle", kind: modelDuration},
		{name: "enablePartitioning", path: "properties.enablePartitioning"},
		{name: "enableExpress", path: "properties.enableExpress"},
	}
}
