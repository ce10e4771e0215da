package cli

import (
	"fmt"
	"net/url"
	"strings"

	"github.com/spf13/cobra"
)

// newHubPolicyCommand is `outpost iot hub policy list|show`: the shared
// access policies with their keys (POST listkeys), as az prints them.
func newHubPolicyCommand() *cobra.Command {
	group := &cobra.Command{Use: "policy", Short: "Shared access policies of an IoT hub"}
	var h hubRef
	list := &cobra.Command{
		Use:   "list --hub-name HUB",
		Short: "List the shared access policies of an IoT hub, with their keys (az iot hub policy list)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := requireFlags(cmd, "hub-name"); err != nil {
				return err
			}
			c, err := newAPIClient(cmd)
			if err != nil {
				return err
			}
			policies, err := hubPolicies(cmd, c, &h)
			if err != nil {
				return err
			}
			return emitModel(cmd, policies, nil, policyModel)
		},
	}
	h.flags(list, nil, "hub-name")
	var (
		sh     hubRef
		policy string
	)
	show := &cobra.Command{
		Use:   "show --hub-name HUB --name POLICY",
		Short: "Show a shared access policy of an IoT hub, with its keys (az iot hub policy show)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := requireFlags(cmd, "hub-name", "name"); err != nil {
				return err
			}
			c, err := newAPIClient(cmd)
			if err != nil {
				return err
			}
			if sh.group == "" {
				if _, err := sh.find(cmd.Context(), c); err != nil {
					return err
				}
			}
			var rule map[string]any
			if err := c.post(cmd.Context(), c.hubPath(sh.group, sh.name)+"/IotHubKeys/"+url.PathEscape(policy)+"/listkeys", apiIoTHub, nil, &rule); err != nil {
				return err
			}
			return emitModel(cmd, rule, nil, policyModel)
		},
	}
	sh.flags(show, nil, "hub-name")
	show.Flags().StringVarP(&policy, "name", "n", "", "shared access policy name")
	group.AddCommand(list, show)
	return group
}

func hubPolicies(cmd *cobra.Command, c *apiClient, h *hubRef) ([]any, error) {
	if h.group == "" {
		if _, err := h.find(cmd.Context(), c); err != nil {
			return nil, err
		}
	}
	var page struct {
		Value []any `json:"value"`
	}
	if err := c.post(cmd.Context(), c.hubPath(h.group, h.name)+"/listkeys", apiIoTHub, nil, &page); err != nil {
		return nil, err
	}
	if page.Value == nil {
		page.Value = []any{}
	}
	return page.Value, nil
}

// connectionStrings builds the hub's service connection strings, of one
// policy or (all) of every policy.
// With eventHub, they are the built-in endpoint's Event Hubs connection
// strings (az's --default-eventhub), which @azure/event-hubs and
// azeventhubs read telemetry with.
func connectionStrings(cmd *cobra.Command, h *hubRef, policy, key string, all, eventHub bool) (map[string]any, error) {
	var err error
	if key, err = oneOf("--key-type", key, "primary", "secondary"); err != nil {
		return nil, err
	}
	c, err := newAPIClient(cmd)
	if err != nil {
		return nil, err
	}
	hub, err := h.find(cmd.Context(), c)
	if err != nil {
		return nil, err
	}
	policies, err := hubPolicies(cmd, c, h)
	if err != nil {
		return nil, err
	}
	host := str(obj(hub, "properties"), "hostName")
	events := obj(obj(obj(hub, "properties"), "eventHubEndpoints"), "events")
	var out []any
	for _, v := range policies {
		p, _ := v.(map[string]any)
		if !all && !strings.EqualFold(str(p, "keyName"), policy) {
			continue
		}
		if eventHub {
			out = append(out, fmt.Sprintf("Endpoint=%s;SharedAccessKeyName=%s;SharedAccessKey=%s;EntityPath=%s",
				str(events, "endpoint"), str(p, "keyName"), str(p, key+"Key"), str(events, "path")))
			continue
		}
		out = append(out, fmt.Sprintf("HostName=%s;SharedAccessKeyName=%s;SharedAccessKey=%s", host, str(p, "keyName"), str(p, key+"Key")))
	}
	if len(out) == 0 {
		return nil, &apiError{Status: 404, Code: "IotHubPolicyNotFound", Message: fmt.Sprintf("The hub %s has no shared access policy %s.", h.name, policy)}
	}
	if all {
		return map[string]any{"connectionString": out}, nil
	}
	return map[string]any{"connectionString": out[0]}, nil
}

// newHubShowConnectionStringCommand is az 2.45's (deprecated)
// `iot hub show-connection-string`.
func newHubShowConnectionStringCommand() *cobra.Command {
	var (
		h           hubRef
		policy, key string
		all         bool
	)
	cmd := &cobra.Command{
		Use:   "show-connection-string --hub-name HUB [--policy-name P] [--key primary|secondary] [--all]",
		Short: "Show a hub's service connection string (az iot hub show-connection-string)",
	}
	a := newAZArgs(cmd)
	h.flags(cmd, a, "hub-name-n")
	cmd.Flags().StringVar(&policy, "policy-name", "iothubowner", "shared access policy to use")
	cmd.Flags().StringVar(&key, "key", "primary", "the key to use: primary or secondary")
	cmd.Flags().BoolVar(&all, "all", false, "show the connection strings of every policy")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if err := a.finish(cmd, args); err != nil {
			return err
		}
		if err := requireFlags(cmd, "hub-name"); err != nil {
			return err
		}
		out, err := connectionStrings(cmd, &h, policy, key, all, false)
		if err != nil {
			return err
		}
		return emit(cmd, out, nil)
	}
	return cmd
}

// newHubConnectionStringCommand is `iot hub connection-string show`, the
// azure-iot extension's spelling of the same.
func newHubConnectionStringCommand() *cobra.Command {
	group := &cobra.Command{Use: "connection-string", Short: "Connection strings of an IoT hub"}
	var (
		h               hubRef
		policy, key     string
		all, defaultHub bool
	)
	show := &cobra.Command{
		Use:   "show --hub-name HUB [--policy-name P] [--key-type primary|secondary] [--all]",
		Short: "Show a hub's service connection string (the azure-iot extension's az iot hub connection-string show)",
	}
	a := newAZArgs(show)
	h.flags(show, a, "hub-name-n")
	a.stringFlag(show, &policy, "policy-name", "", "iothubowner", "shared access policy to use", "pn")
	a.stringFlag(show, &key, "key-type", "", "primary", "the key to use: primary or secondary", "kt")
	show.Flags().BoolVar(&all, "all", false, "show the connection strings of every policy")
	show.Flags().BoolVar(&defaultHub, "default-eventhub", false, "show the built-in Event Hubs-compatible endpoint's connection string (for Event Hubs clients)")
	show.RunE = func(cmd *cobra.Command, args []string) error {
		if err := a.finish(cmd, args); err != nil {
			return err
		}
		if err := requireFlags(cmd, "hub-name"); err != nil {
			return err
		}
		out, err := connectionStrings(cmd, &h, policy, key, all, defaultHub)
		if err != nil {
			return err
		}
		return emit(cmd, out, nil)
	}
	group.AddCommand(show)
	return group
}
