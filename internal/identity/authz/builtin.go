package authz

// GUIDs of the built-in roles in BuiltInRoles. They are the same in every
// Azure cloud.
const (
	OwnerRoleID                      = "8e3af657-a8ff-443c-a75c-2fe8c4bcb635"
	ContributorRoleID                = "b24988ac-6180-42a0-ab88-20f7382dd24c"
	ReaderRoleID                     = "acdd72a7-3385-48ef-bd42-f606fba81ae7"
	UserAccessAdministratorRoleID    = "18d7d88d-d35e-4fb5-a5c3-7773c20a72d9"
	ManagedIdentityOperatorRoleID    = "f1a07417-d97a-45cb-824c-7a7467783830"
	ManagedIdentityContributorRoleID = "e40ec5ca-96e0-45a2-b4ff-59039f2c2b59"
	StorageBlobDataOwnerRoleID       = "b7e6dc6d-f1e8-4753-8033-0f276bb0955b"
	StorageBlobDataContributorRoleID = "ba92f5b4-2d11-453d-a403-e96b0029c9fe"
	StorageBlobDataReaderRoleID      = "2a2b9908-6ea1-4ae2-8e65-a410df84e7d1"
	StorageBlobDelegatorRoleID       = "db58b8e5-c6ad-4a2a-8342-4190687cbf4a"
	EventHubsDataOwnerRoleID         = "f526a384-b230-433a-b45c-95f59c4a2dec"
	EventHubsDataSenderRoleID        = "2b629674-e913-4c01-ae53-ef4638d8f975"
	EventHubsDataReceiverRoleID      = "a638d3c7-ab3a-418d-83e6-5f17a39d4fde"
	ServiceBusDataOwnerRoleID        = "090c5cfd-751d-490a-894a-3ce6f1109419"
	ServiceBusDataSenderRoleID       = "69a216fc-b8fb-44d8-bc22-1f3c2cd27a39"
	ServiceBusDataReceiverRoleID     = "4f6d3b9b-027b-4f4c-9142-0e5a2a2247e0"
	IoTHubDataContributorRoleID      = "4fc6c259-987e-4a07-842e-c321cc9d413f"
	IoTHubDataReaderRoleID           = "b447c946-2db7-41ec-983d-d8bf3b1c77e3"
	IoTHubRegistryContributorRoleID  = "4ea46cd5-c1b2-4a8e-910b-273211f9ce47"
	IoTHubTwinContributorRoleID      = "494bdba2-168f-4f31-a0a1-191d2f7c028c"
)

// BuiltInRoles returns the built-in role definitions Outpost knows, as
// published in MicrosoftDocs/azure-docs
// articles/role-based-access-control/built-in-roles/*.md. Every call
// returns fresh slices the caller may keep or modify.
func BuiltInRoles() []RoleDefinition {
	return []RoleDefinition{
		// privileged.md
		builtIn(OwnerRoleID, "Owner",
			"Grants full access to manage all resources, including the ability to assign roles in Azure RBAC.",
			Permission{Actions: []string{"*"}}),
		builtIn(ContributorRoleID, "Contributor",
			"Grants full access to manage all resources, but does not allow you to assign roles in Azure RBAC, manage assignments in Azure Blueprints, or share image galleries.",
			Permission{
				Actions: []string{"*"},
				NotActions: []string{
					"Microsoft.Authorization/*/Delete",
					"Microsoft.Authorization/*/Write",
					"Microsoft.Authorization/elevateAccess/Action",
					"Microsoft.Blueprint/blueprintAssignments/write",
					"Microsoft.Blueprint/blueprintAssignments/delete",
					"Microsoft.Compute/galleries/share/action",
					"Microsoft.Purview/consents/write",
					"Microsoft.Purview/consents/delete",
					"Microsoft.Resources/deploymentStacks/manageDenySetting/action",
					"Microsoft.Subscription/cancel/action",
					"Microsoft.Subscription/enable/action",
				},
			}),
		builtIn(UserAccessAdministratorRoleID, "User Access Administrator",
			"Lets you manage user access to Azure resources.",
			Permission{Actions: []string{"*/read", "Microsoft.Authorization/*", "Microsoft.Support/*"}}),
		// general.md
		builtIn(ReaderRoleID, "Reader",
			"View all resources, but does not allow you to make any changes.",
			Permission{Actions: []string{"*/read"}}),
		// identity.md
		builtIn(ManagedIdentityContributorRoleID, "Managed Identity Contributor",
			"Create, Read, Update, and Delete User Assigned Identity",
			Permission{Actions: []string{
				"Microsoft.ManagedIdentity/userAssignedIdentities/read",
				"Microsoft.ManagedIdentity/userAssignedIdentities/write",
				"Microsoft.ManagedIdentity/userAssignedIdentities/delete",
				"Microsoft.ManagedIdentity/userAssignedIdentities/federatedIdentityCredentials/read",
				"Microsoft.ManagedIdentity/userAssignedIdentities/federatedIdentityCredentials/write",
				"Microsoft.ManagedIdentity/userAssignedIdentities/federatedIdentityCredentials/delete",
				"Microsoft.ManagedIdentity/userAssignedIdentities/revokeTokens/action",
				"Microsoft.Authorization/*/read",
				"Microsoft.Insights/alertRules/*",
				"Microsoft.Resources/subscriptions/resourceGroups/read",
				"Microsoft.Resources/deployments/*",
				"Microsoft.Support/*",
			}}),
		builtIn(ManagedIdentityOperatorRoleID, "Managed Identity Operator",
			"Read and Assign User Assigned Identity",
			Permission{Actions: []string{
				"Microsoft.ManagedIdentity/userAssignedIdentities/*/read",
				"Microsoft.ManagedIdentity/userAssignedIdentities/*/assign/action",
				"Microsoft.Authorization/*/read",
				"Microsoft.Insights/alertRules/*",
				"Microsoft.Resources/subscriptions/resourceGroups/read",
				"Microsoft.Resources/deployments/*",
				"Microsoft.Support/*",
			}}),
		// storage.md
		builtIn(StorageBlobDataContributorRoleID, "Storage Blob Data Contributor",
			"Allows for read, write and delete access to Azure Storage blob containers and data",
			Permission{
				Actions: []string{
					"Microsoft.Storage/storageAccounts/blobServices/containers/delete",
					"Microsoft.Storage/storageAccounts/blobServices/containers/read",
					"Microsoft.Storage/storageAccounts/blobServices/containers/write",
					"Microsoft.Storage/storageAccounts/blobServices/generateUserDelegationKey/action",
				},
				DataActions: []string{
					"Microsoft.Storage/storageAccounts/blobServices/containers/blobs/delete",
					"Microsoft.Storage/storageAccounts/blobServices/containers/blobs/read",
					"Microsoft.Storage/storageAccounts/blobServices/containers/blobs/write",
					"Microsoft.Storage/storageAccounts/blobServices/containers/blobs/move/action",
					"Microsoft.Storage/storageAccounts/blobServices/containers/blobs/add/action",
				},
			}),
		builtIn(StorageBlobDataOwnerRoleID, "Storage Blob Data Owner",
			"Allows for full access to Azure Storage blob containers and data, including assigning POSIX access control.",
			Permission{
				Actions: []string{
					"Microsoft.Storage/storageAccounts/blobServices/containers/*",
					"Microsoft.Storage/storageAccounts/blobServices/generateUserDelegationKey/action",
				},
				DataActions: []string{
					"Microsoft.Storage/storageAccounts/blobServices/containers/blobs/*",
				},
			}),
		builtIn(StorageBlobDataReaderRoleID, "Storage Blob Data Reader",
			"Allows for read access to Azure Storage blob containers and data",
			Permission{
				Actions: []string{
					"Microsoft.Storage/storageAccounts/blobServices/containers/read",
					"Microsoft.Storage/storageAccounts/blobServices/generateUserDelegationKey/action",
				},
				DataActions: []string{
					"Microsoft.Storage/storageAccounts/blobServices/containers/blobs/read",
				},
			}),
		builtIn(StorageBlobDelegatorRoleID, "Storage Blob Delegator",
			"Allows for generation of a user delegation key which can be used to sign SAS tokens",
			Permission{Actions: []string{
				"Microsoft.Storage/storageAccounts/blobServices/generateUserDelegationKey/action",
			}}),
		// analytics.md
		builtIn(EventHubsDataOwnerRoleID, "Azure Event Hubs Data Owner",
			"Allows for full access to Azure Event Hubs resources.",
			Permission{Actions: []string{"Microsoft.EventHub/*"}, DataActions: []string{"Microsoft.EventHub/*"}}),
		builtIn(EventHubsDataReceiverRoleID, "Azure Event Hubs Data Receiver",
			"Allows receive access to Azure Event Hubs resources.",
			Permission{
				Actions:     []string{"Microsoft.EventHub/*/eventhubs/consumergroups/read"},
				DataActions: []string{"Microsoft.EventHub/*/receive/action"},
			}),
		builtIn(EventHubsDataSenderRoleID, "Azure Event Hubs Data Sender",
			"Allows send access to Azure Event Hubs resources.",
			Permission{
				Actions:     []string{"Microsoft.EventHub/*/eventhubs/read"},
				DataActions: []string{"Microsoft.EventHub/*/send/action"},
			}),
		// integration.md
		builtIn(ServiceBusDataOwnerRoleID, "Azure Service Bus Data Owner",
			"Allows for full access to Azure Service Bus resources.",
			Permission{Actions: []string{"Microsoft.ServiceBus/*"}, DataActions: []string{"Microsoft.ServiceBus/*"}}),
		builtIn(ServiceBusDataReceiverRoleID, "Azure Service Bus Data Receiver",
			"Allows for receive access to Azure Service Bus resources.",
			Permission{
				Actions: []string{
					"Microsoft.ServiceBus/*/queues/read",
					"Microsoft.ServiceBus/*/topics/read",
					"Microsoft.ServiceBus/*/topics/subscriptions/read",
				},
				DataActions: []string{"Microsoft.ServiceBus/*/receive/action"},
			}),
		builtIn(ServiceBusDataSenderRoleID, "Azure Service Bus Data Sender",
			"Allows for send access to Azure Service Bus resources.",
			Permission{
				Actions: []string{
					"Microsoft.ServiceBus/*/queues/read",
					"Microsoft.ServiceBus/*/topics/read",
					"Microsoft.ServiceBus/*/topics/subscriptions/read",
				},
				DataActions: []string{"Microsoft.ServiceBus/*/send/action"},
			}),
		// internet-of-things.md
		builtIn(IoTHubDataContributorRoleID, "IoT Hub Data Contributor",
			"Allows for full access to IoT Hub data plane operations.",
			Permission{DataActions: []string{"Microsoft.Devices/IotHubs/*"}}),
		builtIn(IoTHubDataReaderRoleID, "IoT Hub Data Reader",
			"Allows for full read access to IoT Hub data-plane properties",
			Permission{DataActions: []string{
				"Microsoft.Devices/IotHubs/*/read",
				"Microsoft.Devices/IotHubs/fileUpload/notifications/action",
			}}),
		builtIn(IoTHubRegistryContributorRoleID, "IoT Hub Registry Contributor",
			"Allows for full access to IoT Hub device registry.",
			Permission{DataActions: []string{"Microsoft.Devices/IotHubs/devices/*"}}),
		builtIn(IoTHubTwinContributorRoleID, "IoT Hub Twin Contributor",
			"Allows for read and write access to all IoT Hub device and module twins.",
			Permission{DataActions: []string{"Microsoft.Devices/IotHubs/twins/*"}}),
	}
}

// builtIn assembles a single-block built-in role assignable everywhere. Empty
// lists become empty (not nil) slices so that they render as [] in JSON, as
// ARM does.
func builtIn(id, name, description string, p Permission) RoleDefinition {
	return RoleDefinition{
		ID:               id,
		Name:             name,
		Description:      description,
		Type:             BuiltInRole,
		AssignableScopes: []string{"/"},
		Permissions: []Permission{{
			Actions:        nonNil(p.Actions),
			NotActions:     nonNil(p.NotActions),
			DataActions:    nonNil(p.DataActions),
			NotDataActions: nonNil(p.NotDataActions),
		}},
	}
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
