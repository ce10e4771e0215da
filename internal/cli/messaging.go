package cli

import (
	"net/http"
	"strconv"
	"strings"

	"github.com/spf13/cobra"
)

// Event Hubs and Service Bus namespaces and their entities through the
// resource manager, as `az eventhubs …` and `az servicebus …` manage them
// (az has no table transformers for these: -o table is knack's default).

// entityProperty is a typed create flag of an entity that maps to one
// member of its properties.
type entityProperty struct {
	flag, property, usage string
	kind                  string // "int", "bool" or "string"
}

// messagingProvider is one of the two namespace providers.
type messagingProvider struct {
	title, namespaceType, apiVersion string
	namespaceModel                   sdkModel
}

func eventHubsProvider() messagingProvider {
	return messagingProvider{"Event Hubs", "Microsoft.EventHub/namespaces", apiEventHub, eventHubNamespaceModel()}
}

func serviceBusProvider() messagingProvider {
	return messagingProvider{"Service Bus", "Microsoft.ServiceBus/namespaces", apiServiceBus, serviceBusNamespaceModel()}
}

// addEventHubsManagement adds `namespace` and `eventhub` to the eventhubs
// group (which also has `read`).
func addEventHubsManagement(eh *cobra.Command) {
	p := eventHubsProvider()
	eh.AddCommand(newNamespaceCommand(p), newEntityCommand(p, "eventhub", "eventhubs", "Event hub", eventHubModel(), []entityProperty{
		{"partition-count", "partitionCount", "number of partitions", "int"},
		{"message-retention", "messageRetentionInDays", "days events are retained", "int"},
		{"status", "status", "Active, Disabled or SendDisabled", "string"},
	}))
}

func newServiceBusCommand() *cobra.Command {
	sb := &cobra.Command{Use: "servicebus", Short: "Service Bus namespaces, queues and topics"}
	common := []entityProperty{
		{"max-size", "maxSizeInMegabytes", "maximum size in megabytes", "int"},
		{"default-message-time-to-live", "defaultMessageTimeToLive", "ISO 8601 duration messages live", "string"},
		{"enable-partitioning", "enablePartitioning", "true or false", "bool"},
		{"enable-batched-operations", "enableBatchedOperations", "true or false", "bool"},
		{"enable-duplicate-detection", "requiresDuplicateDetection", "true or false", "bool"},
		{"status", "status", "Active, Disabled, SendDisabled or ReceiveDisabled", "string"},
	}
	queue := append([]entityProperty{
		{"lock-duration", "lockDuration", "ISO 8601 peek-lock duration", "string"},
		{"max-delivery-count", "maxDeliveryCount", "deliveries before a message is dead-lettered", "int"},
		{"enable-session", "requiresSession", "true or false", "bool"},
		{"enable-dead-lettering-on-message-expiration", "deadLetteringOnMessageExpiration", "true or false", "bool"},
		{"forward-to", "forwardTo", "queue or topic to forward messages to", "string"},
	}, common...)
	topic := append([]entityProperty{
		{"enable-ordering", "supportOrdering", "true or false", "bool"},
	}, common...)
	p := serviceBusProvider()
	sb.AddCommand(newNamespaceCommand(p),
		newEntityCommand(p, "queue", "queues", "Queue", serviceBusQueueModel(), queue),
		newEntityCommand(p, "topic", "topics", "Topic", serviceBusTopicModel(), topic))
	return sb
}

func newNamespaceCommand(p messagingProvider) *cobra.Command {
	ns := &cobra.Command{Use: "namespace", Short: p.title + " namespaces"}
	var (
		name, group, location, sku string
		capacity                   int
		tags                       []string
	)
	nameFlags := func(cmd *cobra.Command) {
		cmd.Flags().StringVarP(&name, "name", "n", "", "namespace name")
		cmd.Flags().StringVarP(&group, "resource-group", "g", "", "resource group")
	}
	create := &cobra.Command{
		Use:   "create --name NAME --resource-group GROUP",
		Short: "Create a namespace",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := requireFlags(cmd, "name", "resource-group"); err != nil {
				return err
			}
			switch sku {
			case "Basic", "Standard", "Premium":
			default:
				return usageErrorf("argument --sku: invalid choice: %q (choose from 'Basic', 'Premium', 'Standard')", sku)
			}
			c, err := newAPIClient(cmd)
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			if location == "" {
				if location, err = c.groupLocation(ctx, group); err != nil {
					return err
				}
			}
			skuBody := map[string]any{"name": sku, "tier": sku}
			if capacity > 0 {
				skuBody["capacity"] = capacity
			}
			body := map[string]any{"location": location, "sku": skuBody, "properties": map[string]any{}}
			tagMap, err := parseTags(tags)
			if err != nil {
				return err
			}
			if tagMap != nil {
				body["tags"] = tagMap
			}
			out, err := c.put(ctx, http.MethodPut, c.resourcePath(group, p.namespaceType, name), p.apiVersion, body, cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			return emitModel(cmd, p.namespaceModel.view(out), nil, p.namespaceModel.names())
		},
	}
	nameFlags(create)
	create.Flags().StringVarP(&location, "location", "l", "", "location (default: the resource group's)")
	create.Flags().StringVar(&sku, "sku", "Standard", "Basic, Standard or Premium")
	create.Flags().IntVar(&capacity, "capacity", 0, "throughput (or messaging) units")
	create.Flags().StringArrayVar(&tags, "tags", nil, "space-separated tags: key[=value] ...")
	ns.AddCommand(create)

	show := &cobra.Command{
		Use:   "show --name NAME --resource-group GROUP",
		Short: "Show a namespace",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := requireFlags(cmd, "name", "resource-group"); err != nil {
				return err
			}
			c, err := newAPIClient(cmd)
			if err != nil {
				return err
			}
			out, err := c.getJSON(cmd.Context(), c.resourcePath(group, p.namespaceType, name), p.apiVersion)
			if err != nil {
				return err
			}
			return emitModel(cmd, p.namespaceModel.view(out), nil, p.namespaceModel.names())
		},
	}
	nameFlags(show)
	ns.AddCommand(show)

	list := &cobra.Command{
		Use:   "list [--resource-group GROUP]",
		Short: "List namespaces",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := newAPIClient(cmd)
			if err != nil {
				return err
			}
			out, err := c.listOfType(cmd.Context(), group, p.namespaceType, p.apiVersion)
			if err != nil {
				return err
			}
			return emitModel(cmd, p.namespaceModel.viewList(out), nil, p.namespaceModel.names())
		},
	}
	list.Flags().StringVarP(&group, "resource-group", "g", "", "only this resource group's namespaces")
	ns.AddCommand(list)

	del := &cobra.Command{
		Use:   "delete --name NAME --resource-group GROUP",
		Short: "Delete a namespace and its entities",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := requireFlags(cmd, "name", "resource-group"); err != nil {
				return err
			}
			c, err := newAPIClient(cmd)
			if err != nil {
				return err
			}
			return c.remove(cmd.Context(), c.resourcePath(group, p.namespaceType, name), p.apiVersion, cmd.ErrOrStderr())
		},
	}
	nameFlags(del)
	ns.AddCommand(del)
	return ns
}

// newEntityCommand is create|show|list|delete for one entity type of a
// namespace (collection is its ARM type: eventhubs, queues, topics).
func newEntityCommand(p messagingProvider, use, collection, title string, model sdkModel, props []entityProperty) *cobra.Command {
	ent := &cobra.Command{Use: use, Short: title + "s of a " + p.title + " namespace"}
	var name, namespace, group string
	typ := p.namespaceType + "/" + collection
	path := func(c *apiClient) string { return c.resourcePath(group, typ, namespace+"/"+name) }
	flags := func(cmd *cobra.Command, withName bool) {
		if withName {
			cmd.Flags().StringVarP(&name, "name", "n", "", strings.ToLower(title)+" name")
		}
		cmd.Flags().StringVar(&namespace, "namespace-name", "", "namespace name")
		cmd.Flags().StringVarP(&group, "resource-group", "g", "", "resource group")
	}
	values := make([]string, len(props))
	create := &cobra.Command{
		Use:   "create --name NAME --namespace-name NAMESPACE --resource-group GROUP",
		Short: "Create (or update) a " + strings.ToLower(title),
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := requireFlags(cmd, "name", "namespace-name", "resource-group"); err != nil {
				return err
			}
			properties := map[string]any{}
			for i, ep := range props {
				if !cmd.Flags().Changed(ep.flag) {
					continue
				}
				v, err := entityValue(ep, values[i])
				if err != nil {
					return err
				}
				properties[ep.property] = v
			}
			c, err := newAPIClient(cmd)
			if err != nil {
				return err
			}
			out, err := c.put(cmd.Context(), http.MethodPut, path(c), p.apiVersion, map[string]any{"properties": properties}, cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			return emitModel(cmd, model.view(out), nil, model.names())
		},
	}
	flags(create, true)
	for i, ep := range props {
		create.Flags().StringVar(&values[i], ep.flag, "", ep.usage)
	}
	ent.AddCommand(create)

	show := &cobra.Command{
		Use:   "show --name NAME --namespace-name NAMESPACE --resource-group GROUP",
		Short: "Show a " + strings.ToLower(title),
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := requireFlags(cmd, "name", "namespace-name", "resource-group"); err != nil {
				return err
			}
			c, err := newAPIClient(cmd)
			if err != nil {
				return err
			}
			out, err := c.getJSON(cmd.Context(), path(c), p.apiVersion)
			if err != nil {
				return err
			}
			return emitModel(cmd, model.view(out), nil, model.names())
		},
	}
	flags(show, true)
	ent.AddCommand(show)

	list := &cobra.Command{
		Use:   "list --namespace-name NAMESPACE --resource-group GROUP",
		Short: "List a namespace's " + strings.ToLower(title) + "s",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := requireFlags(cmd, "namespace-name", "resource-group"); err != nil {
				return err
			}
			c, err := newAPIClient(cmd)
			if err != nil {
				return err
			}
			out, err := c.list(cmd.Context(), c.resourcePath(group, p.namespaceType, namespace)+"/"+collection, p.apiVersion)
			if err != nil {
				return err
			}
			return emitModel(cmd, model.viewList(out), nil, model.names())
		},
	}
	flags(list, false)
	ent.AddCommand(list)

	del := &cobra.Command{
		Use:   "delete --name NAME --namespace-name NAMESPACE --resource-group GROUP",
		Short: "Delete a " + strings.ToLower(title),
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := requireFlags(cmd, "name", "namespace-name", "resource-group"); err != nil {
				return err
			}
			c, err := newAPIClient(cmd)
			if err != nil {
				return err
			}
			return c.remove(cmd.Context(), path(c), p.apiVersion, cmd.ErrOrStderr())
		},
	}
	flags(del, true)
	ent.AddCommand(del)
	return ent
}

// entityValue reads one typed create flag.
func entityValue(ep entityProperty, raw string) (any, error) {
	switch ep.kind {
	case "int":
		n, err := strconv.ParseInt(raw, 10, 64)
		if err != nil {
			return nil, usageErrorf("argument --%s: invalid int value: %q", ep.flag, raw)
		}
		return n, nil
	case "bool":
		return parseBoolFlag(ep.flag, raw)
	}
	if raw == "" {
		return nil, usageErrorf("argument --%s: expected a value", ep.flag)
	}
	return raw, nil
}
