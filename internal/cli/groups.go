package cli

import (
	"bufio"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"sort"
	"strings"

	"github.com/mattn/go-isatty"
	"github.com/spf13/cobra"
)

// newGroupCommand is `outpost group`, shaped like `az group`.
func newGroupCommand() *cobra.Command {
	group := &cobra.Command{Use: "group", Short: "Resource groups (az group shaped)"}
	var name, location string
	var tags []string
	var yes, noWait bool

	create := &cobra.Command{
		Use: "create --name NAME --location LOCATION [--tags k=v …]", Short: "Create or update a resource group", Args: tagWords,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := requireFlags(cmd, "name", "location"); err != nil {
				return err
			}
			t, err := parseTags(append(tags, args...))
			if err != nil {
				return err
			}
			c, err := newAPIClient(cmd)
			if err != nil {
				return err
			}
			body := map[string]any{"location": location}
			if t != nil {
				body["tags"] = t
			}
			out, err := c.put(cmd.Context(), http.MethodPut, c.groupPath(name), apiResources, body, cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			return emitModel(cmd, out, nil, resourceGroupModel())
		},
	}
	create.Flags().StringVarP(&name, "name", "n", "", "resource group name")
	create.Flags().StringVarP(&location, "location", "l", "", "location, e.g. westus")
	create.Flags().StringSliceVar(&tags, "tags", nil, "space-separated tags: key[=value]")

	show := &cobra.Command{
		Use: "show --name NAME", Short: "Show a resource group", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := requireFlags(cmd, "name"); err != nil {
				return err
			}
			c, err := newAPIClient(cmd)
			if err != nil {
				return err
			}
			out, err := c.getJSON(cmd.Context(), c.groupPath(name), apiResources)
			if err != nil {
				return err
			}
			return emitModel(cmd, out, nil, resourceGroupModel())
		},
	}
	show.Flags().StringVarP(&name, "name", "n", "", "resource group name")

	exists := &cobra.Command{
		Use: "exists --name NAME", Short: "Print true when the resource group exists, else false", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := requireFlags(cmd, "name"); err != nil {
				return err
			}
			c, err := newAPIClient(cmd)
			if err != nil {
				return err
			}
			_, err = c.getJSON(cmd.Context(), c.groupPath(name), apiResources)
			var ae *apiError
			switch {
			case err == nil:
				return emit(cmd, true, nil)
			case errors.As(err, &ae) && ae.Status == http.StatusNotFound:
				return emit(cmd, false, nil)
			}
			return err
		},
	}
	exists.Flags().StringVarP(&name, "name", "n", "", "resource group name")

	list := &cobra.Command{
		Use: "list [--tag k=v]", Short: "List resource groups", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := newAPIClient(cmd)
			if err != nil {
				return err
			}
			all, err := c.list(cmd.Context(), c.subscriptionPath()+"/resourcegroups", apiResources)
			if err != nil {
				return err
			}
			want, err := parseTags(tags)
			if err != nil {
				return err
			}
			return emitModel(cmd, filterByTags(all, want), groupTable, resourceGroupModel())
		},
	}
	list.Flags().StringSliceVar(&tags, "tag", nil, "only groups with this tag (key[=value])")

	del := &cobra.Command{
		Use: "delete --name NAME [--yes] [--no-wait]", Short: "Delete a resource group and every resource in it", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := requireFlags(cmd, "name"); err != nil {
				return err
			}
			if err := confirm(cmd, yes); err != nil {
				return err
			}
			c, err := newAPIClient(cmd)
			if err != nil {
				return err
			}
			if noWait {
				_, _, err := c.send(cmd.Context(), http.MethodDelete, withAPI(c.groupPath(name), apiResources), nil)
				return err
			}
			return c.remove(cmd.Context(), c.groupPath(name), apiResources, cmd.ErrOrStderr())
		},
	}
	del.Flags().StringVarP(&name, "name", "n", "", "resource group name")
	del.Flags().BoolVarP(&yes, "yes", "y", false, "do not prompt for confirmation")
	del.Flags().BoolVar(&noWait, "no-wait", false, "do not wait for the deletion to finish")

	group.AddCommand(create, show, exists, list, del)
	return group
}

// resourceGroupModel lists the fields of the SDK model az prints a
// resource group through, in its order.
func resourceGroupModel() []string {
	return []string{"id", "name", "type", "properties", "location", "managedBy", "tags"}
}

// groupTable is az's transform_resource_group_list.
func groupTable(v any) []orderedRow {
	var rows []orderedRow
	for _, r := range asList(v) {
		m, _ := r.(map[string]any)
		rows = append(rows, orderedRow{{"Name", m["name"]}, {"Location", m["location"]}, {"Status", dig(m, "properties", "provisioningState")}})
	}
	return rows
}

// confirm asks az's question on a terminal; elsewhere it needs --yes.
func confirm(cmd *cobra.Command, yes bool) error {
	if yes {
		return nil
	}
	if !isatty.IsTerminal(os.Stdin.Fd()) {
		return usageErrorf("this deletes for good: pass --yes (-y) to confirm without a prompt")
	}
	fmt.Fprint(cmd.ErrOrStderr(), "Are you sure you want to perform this operation? (y/n): ")
	line, _ := bufio.NewReader(os.Stdin).ReadString('\n')
	if a := strings.ToLower(strings.TrimSpace(line)); a != "y" && a != "yes" {
		return errors.New("operation cancelled")
	}
	return nil
}

// tagWords lets a command take az's `--tags a=b c=d`: the words after the
// first tag arrive as arguments, and are tags only when --tags was given.
func tagWords(cmd *cobra.Command, args []string) error {
	if len(args) > 0 && !cmd.Flags().Changed("tags") {
		return usageErrorf("unexpected argument %q (see '%s --help')", args[0], cmd.CommandPath())
	}
	return nil
}

// parseTags reads az's tag arguments: "k=v" or "k" (empty value); a lone
// "" clears the tags. Nil means no --tags flag.
func parseTags(args []string) (map[string]any, error) {
	if args == nil {
		return nil, nil
	}
	out := map[string]any{}
	for _, a := range args {
		for _, item := range strings.Fields(a) {
			k, v, _ := strings.Cut(item, "=")
			if k == "" {
				return nil, usageErrorf("tag %q: use key[=value]", item)
			}
			out[k] = v
		}
	}
	return out, nil
}

// filterByTags keeps the items carrying every wanted tag (a wanted empty
// value matches any value).
func filterByTags(items []any, want map[string]any) []any {
	if len(want) == 0 {
		return items
	}
	out := []any{}
	for _, it := range items {
		m, _ := it.(map[string]any)
		have, _ := m["tags"].(map[string]any)
		ok := true
		for k, v := range want {
			hv, present := have[k]
			ok = ok && present && (v == "" || hv == v)
		}
		if ok {
			out = append(out, it)
		}
	}
	return out
}

func asList(v any) []any {
	if l, ok := v.([]any); ok {
		return l
	}
	return []any{v}
}

// dig follows keys through nested objects; nil when any is missing.
func dig(v any, keys ...string) any {
	for _, k := range keys {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[k]
	}
	return v
}

// newResourceCommand is `outpost resource show|list|delete`, shaped like az's.
func newResourceCommand() *cobra.Command {
	res := &cobra.Command{Use: "resource", Short: "Generic resource commands (az resource shaped)"}
	var ids []string
	var rg, typ, namespace, parent, name, apiVersion, location string
	var tags []string
	addTarget := func(cmd *cobra.Command) {
		cmd.Flags().StringSliceVar(&ids, "ids", nil, "resource ids (instead of the other target flags)")
		cmd.Flags().StringVarP(&rg, "resource-group", "g", "", "resource group")
		cmd.Flags().StringVar(&typ, "resource-type", "", "resource type, e.g. Microsoft.Devices/IotHubs (or just IotHubs with --namespace)")
		cmd.Flags().StringVar(&namespace, "namespace", "", "provider namespace, e.g. Microsoft.Devices")
		cmd.Flags().StringVar(&parent, "parent", "", "parent path, e.g. namespaces/ns1 for a child type")
		cmd.Flags().StringVarP(&name, "name", "n", "", "resource name")
		cmd.Flags().StringVar(&apiVersion, "api-version", "", "api-version (default: the newest non-preview one the provider lists)")
	}
	// targets resolves the target flags to resource ids.
	targets := func(cmd *cobra.Command, c *apiClient) ([]string, error) {
		if len(ids) > 0 {
			if rg != "" || name != "" || typ != "" {
				return nil, usageErrorf("--ids can't be combined with --resource-group, --name or --resource-type")
			}
			return ids, nil
		}
		if rg == "" || name == "" || typ == "" {
			return nil, usageErrorf("name the resource with --ids, or with --resource-group, --name and --resource-type (see '%s --help')", cmd.CommandPath())
		}
		full := typ
		if namespace != "" {
			full = namespace + "/" + typ
		}
		ns, t, ok := strings.Cut(full, "/")
		if !ok {
			return nil, usageErrorf("--resource-type %q: use Namespace/type, or type with --namespace", typ)
		}
		p := c.groupPath(rg) + "/providers/" + ns
		if parent != "" {
			p += "/" + strings.Trim(parent, "/")
		}
		return []string{p + "/" + t + "/" + url.PathEscape(name)}, nil
	}
	version := func(cmd *cobra.Command, c *apiClient, id string) (string, error) {
		if apiVersion != "" {
			return apiVersion, nil
		}
		return c.resolveAPIVersion(cmd, id)
	}

	show := &cobra.Command{
		Use: "show (--ids ID… | --resource-group RG --resource-type NS/TYPE --name NAME)", Short: "Show resources", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := newAPIClient(cmd)
			if err != nil {
				return err
			}
			ts, err := targets(cmd, c)
			if err != nil {
				return err
			}
			var all []any
			for _, id := range ts {
				v, err := version(cmd, c, id)
				if err != nil {
					return err
				}
				out, err := c.getJSON(cmd.Context(), id, v)
				if err != nil {
					return err
				}
				all = append(all, out)
			}
			if len(all) == 1 {
				return emitModel(cmd, all[0], nil, genericResourceModel())
			}
			return emitModel(cmd, all, nil, genericResourceModel())
		},
	}
	addTarget(show)

	del := &cobra.Command{
		Use: "delete (--ids ID… | --resource-group RG --resource-type NS/TYPE --name NAME)", Short: "Delete resources", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := newAPIClient(cmd)
			if err != nil {
				return err
			}
			ts, err := targets(cmd, c)
			if err != nil {
				return err
			}
			for _, id := range ts {
				v, err := version(cmd, c, id)
				if err != nil {
					return err
				}
				if err := c.remove(cmd.Context(), id, v, cmd.ErrOrStderr()); err != nil {
					return err
				}
			}
			return nil
		},
	}
	addTarget(del)

	list := &cobra.Command{
		Use: "list [--resource-group RG] [--resource-type NS/TYPE] [--name NAME] [--location L] [--tag k=v]", Short: "List resources", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := newAPIClient(cmd)
			if err != nil {
				return err
			}
			p := c.subscriptionPath() + "/resources"
			if rg != "" {
				p = c.groupPath(rg) + "/resources"
			}
			if typ != "" {
				p += "?$filter=" + url.QueryEscape("resourceType eq '"+typ+"'")
			}
			all, err := c.list(cmd.Context(), p, apiResources)
			if err != nil {
				return err
			}
			want, err := parseTags(tags)
			if err != nil {
				return err
			}
			out := []any{}
			for _, it := range filterByTags(all, want) {
				m, _ := it.(map[string]any)
				if (name == "" || strings.EqualFold(fmt.Sprint(m["name"]), name)) &&
					(location == "" || strings.EqualFold(fmt.Sprint(m["location"]), location)) {
					out = append(out, it)
				}
			}
			// GenericResourceExpanded: GenericResource's fields and three more.
			model := append(genericResourceModel(), "createdTime", "changedTime", "provisioningState")
			return emitModel(cmd, out, resourceListTable, model)
		},
	}
	list.Flags().StringVarP(&rg, "resource-group", "g", "", "resource group")
	list.Flags().StringVar(&typ, "resource-type", "", "only this type, e.g. Microsoft.Devices/IotHubs")
	list.Flags().StringVarP(&name, "name", "n", "", "only resources of this name")
	list.Flags().StringVarP(&location, "location", "l", "", "only resources in this location")
	list.Flags().StringSliceVar(&tags, "tag", nil, "only resources with this tag (key[=value])")

	res.AddCommand(show, del, list)
	return res
}

// genericResourceModel is the SDK model az resource show prints through
// (GenericResource), in its order.
func genericResourceModel() []string {
	return []string{"id", "name", "type", "location", "extendedLocation", "tags", "plan", "properties", "kind", "managedBy", "sku", "identity",
		"sku.name", "sku.tier", "sku.size", "sku.family", "sku.model", "sku.capacity",
		"identity.principalId", "identity.tenantId", "identity.type", "identity.userAssignedIdentities"}
}

// resourceListTable is az's transform_resource_list (Status is a blank
// when the list entry has no properties, which the list API never returns).
func resourceListTable(v any) []orderedRow {
	var rows []orderedRow
	for _, r := range asList(v) {
		m, _ := r.(map[string]any)
		rg := m["resourceGroup"]
		status := any(" ")
		if p, ok := m["properties"].(map[string]any); ok {
			status = p["provisioningStatus"]
		}
		rows = append(rows, orderedRow{{"Name", m["name"]}, {"ResourceGroup", rg}, {"Location", m["location"]}, {"Type", m["type"]}, {"Status", status}})
	}
	return rows
}

// resolveAPIVersion finds the api-version az would use for the resource id:
// the newest non-preview version its provider lists for the type (the
// newest preview when there is no other).
func (c *apiClient) resolveAPIVersion(cmd *cobra.Command, id string) (string, error) {
	parts := strings.Split(strings.Trim(id, "/"), "/")
	pi := -1
	for i, p := range parts {
		if strings.EqualFold(p, "providers") {
			pi = i
		}
	}
	if pi < 0 || pi+2 >= len(parts) {
		return "", usageErrorf("%q is not a resource id (/subscriptions/…/providers/Namespace/type/name)", id)
	}
	ns := parts[pi+1]
	var types []string
	for i := pi + 2; i < len(parts); i += 2 {
		types = append(types, parts[i])
	}
	typ := strings.Join(types, "/")
	var prov struct {
		ResourceTypes []struct {
			ResourceType string   `json:"resourceType"`
			APIVersions  []string `json:"apiVersions"`
		} `json:"resourceTypes"`
	}
	if err := c.do(cmd.Context(), http.MethodGet, withAPI(c.subscriptionPath()+"/providers/"+ns, apiResources), nil, &prov); err != nil {
		return "", fmt.Errorf("find an api-version for %s/%s: %w", ns, typ, err)
	}
	for _, rt := range prov.ResourceTypes {
		if !strings.EqualFold(rt.ResourceType, typ) || len(rt.APIVersions) == 0 {
			continue
		}
		vs := append([]string(nil), rt.APIVersions...)
		sort.Sort(sort.Reverse(sort.StringSlice(vs)))
		for _, v := range vs {
			if !strings.Contains(strings.ToLower(v), "preview") {
				return v, nil
			}
		}
		return vs[0], nil
	}
	return "", &apiError{Status: http.StatusNotFound, Code: "NoRegisteredProviderFound",
		Message: fmt.Sprintf("no api-version is registered for resource type %s/%s; pass --api-version", ns, typ)}
}
