package cli

import (
	"errors"

	"github.com/spf13/cobra"
)

// newMessageEnrichmentCommand is `outpost iot hub message-enrichment`;
// like az, create, update and delete print the whole hub.
func newMessageEnrichmentCommand() *cobra.Command {
	group := &cobra.Command{Use: "message-enrichment", Short: "Message enrichments of an IoT hub's endpoints"}
	type enrichFlags struct {
		key, value string
		endpoints  *list
	}
	command := func(verb, short string, required []string, run func(hub map[string]any, f *enrichFlags) error) *cobra.Command {
		var (
			h hubRef
			f enrichFlags
		)
		cmd := &cobra.Command{Use: verb + " --name HUB", Short: short}
		a := newAZArgs(cmd)
		h.flags(cmd, a, "name")
		if verb != "list" {
			cmd.Flags().StringVarP(&f.key, "key", "k", "", "the enrichment's key")
		}
		if verb == "create" || verb == "update" {
			cmd.Flags().StringVarP(&f.value, "value", "v", "", "the enrichment's value")
			f.endpoints = a.listFlag(cmd, "endpoints", "e", "`ENDPOINTS` to apply the enrichment to")
		}
		cmd.RunE = func(cmd *cobra.Command, args []string) error {
			if err := a.finish(cmd, args); err != nil {
				return err
			}
			if err := requireFlags(cmd, append([]string{"name"}, required...)...); err != nil {
				return err
			}
			c, hub, err := h.load(cmd)
			if err != nil {
				return err
			}
			if verb == "list" {
				list := arr(routingOf(hub), "enrichments")
				if list == nil {
					list = []any{}
				}
				return emitModel(cmd, list, nil, enrichmentModel)
			}
			if err := run(hub, &f); err != nil {
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
	find := func(hub map[string]any, key string) int {
		for i, v := range arr(routingOf(hub), "enrichments") {
			if e, ok := v.(map[string]any); ok && str(e, "key") == key {
				return i
			}
		}
		return -1
	}
	errNoEnrichment := errors.New("No message enrichment with that key exists")
	group.AddCommand(
		command("create", "Add a message enrichment (az iot hub message-enrichment create); prints the hub",
			[]string{"key", "value", "endpoints"}, func(hub map[string]any, f *enrichFlags) error {
				r := routingOf(hub)
				r["enrichments"] = append(arr(r, "enrichments"), map[string]any{"key": f.key, "value": f.value, "endpointNames": f.endpoints.values()})
				return nil
			}),
		command("list", "List the message enrichments (az iot hub message-enrichment list)", nil, nil),
		command("update", "Change a message enrichment (az iot hub message-enrichment update); prints the hub",
			[]string{"key", "value", "endpoints"}, func(hub map[string]any, f *enrichFlags) error {
				i := find(hub, f.key)
				if i < 0 {
					return errNoEnrichment
				}
				arr(routingOf(hub), "enrichments")[i] = map[string]any{"key": f.key, "value": f.value, "endpointNames": f.endpoints.values()}
				return nil
			}),
		command("delete", "Delete a message enrichment (az iot hub message-enrichment delete); prints the hub",
			[]string{"key"}, func(hub map[string]any, f *enrichFlags) error {
				i := find(hub, f.key)
				if i < 0 {
					return errNoEnrichment
				}
				r := routingOf(hub)
				list := arr(r, "enrichments")
				r["enrichments"] = append(list[:i:i], list[i+1:]...)
				return nil
			}),
	)
	return group
}
