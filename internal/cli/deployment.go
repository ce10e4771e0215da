package cli

import (
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/outpost-iot/outpost/internal/arm/deploy"
)

// newDeploymentCommand is `outpost deployment group|sub
// create|what-if|show|list|delete`, shaped like az's.
func newDeploymentCommand() *cobra.Command {
	dep := &cobra.Command{Use: "deployment", Short: "ARM template deployments (az deployment shaped)"}
	group := &cobra.Command{Use: "group", Short: "Deployments to a resource group"}
	sub := &cobra.Command{Use: "sub", Short: "Deployments to the subscription"}
	dep.AddCommand(group, sub)
	for _, atSub := range []bool{false, true} {
		parent := group
		if atSub {
			parent = sub
		}
		parent.AddCommand(deploymentCommand("create", atSub), deploymentCommand("what-if", atSub),
			deploymentReadCommand("show", atSub), deploymentReadCommand("list", atSub), deploymentReadCommand("delete", atSub))
	}
	return dep
}

// deploymentReadCommand builds show, list or delete at resource-group or
// subscription scope.
func deploymentReadCommand(verb string, atSubscription bool) *cobra.Command {
	var name, rg string
	var noWait bool
	use := verb
	if !atSubscription {
		use += " --resource-group RG"
	}
	if verb != "list" {
		use += " --name NAME"
	}
	cmd := &cobra.Command{
		Use: use, Args: cobra.NoArgs,
		Short: map[string]string{"show": "Show a deployment", "list": "List deployments", "delete": "Delete a deployment (not the resources it made)"}[verb],
		RunE: func(cmd *cobra.Command, _ []string) error {
			required := []string{}
			if !atSubscription {
				required = append(required, "resource-group")
			}
			if verb != "list" {
				required = append(required, "name")
			}
			if err := requireFlags(cmd, required...); err != nil {
				return err
			}
			c, err := newAPIClient(cmd)
			if err != nil {
				return err
			}
			base := c.subscriptionPath()
			if !atSubscription {
				base = c.groupPath(rg)
			}
			coll := base + "/providers/Microsoft.Resources/deployments"
			ctx := cmd.Context()
			switch verb {
			case "list":
				all, err := c.list(ctx, coll, apiResources)
				if err != nil {
					return err
				}
				return emit(cmd, all, deploymentListTable)
			case "show":
				out, err := c.getJSON(ctx, coll+"/"+url.PathEscape(name), apiResources)
				if err != nil {
					return err
				}
				return emit(cmd, out, deploymentTable)
			}
			if noWait {
				_, _, err := c.send(ctx, "DELETE", withAPI(coll+"/"+url.PathEscape(name), apiResources), nil)
				return err
			}
			return c.remove(ctx, coll+"/"+url.PathEscape(name), apiResources, cmd.ErrOrStderr())
		},
	}
	if verb != "list" {
		cmd.Flags().StringVarP(&name, "name", "n", "", "deployment name")
	}
	if !atSubscription {
		cmd.Flags().StringVarP(&rg, "resource-group", "g", "", "resource group")
	}
	if verb == "delete" {
		cmd.Flags().BoolVar(&noWait, "no-wait", false, "do not wait for the deletion to finish")
	}
	return cmd
}

// deploymentTable is az's transform_deployment.
func deploymentTable(v any) []orderedRow {
	var rows []orderedRow
	for _, d := range asList(v) {
		m, _ := d.(map[string]any)
		r := orderedRow{{"Name", m["name"]}, {"State", dig(m, "properties", "provisioningState")},
			{"Timestamp", dig(m, "properties", "timestamp")}, {"Mode", dig(m, "properties", "mode")}}
		if g, ok := m["resourceGroup"].(string); ok && g != "" {
			r = append(r, cell{"ResourceGroup", g})
		}
		rows = append(rows, r)
	}
	return rows
}

// deploymentListTable is az's transform_deployments_list: oldest first.
func deploymentListTable(v any) []orderedRow {
	l := append([]any(nil), asList(v)...)
	sort.SliceStable(l, func(i, j int) bool {
		return fmt.Sprint(dig(l[i], "properties", "timestamp")) < fmt.Sprint(dig(l[j], "properties", "timestamp"))
	})
	return deploymentTable(l)
}

// deploymentCommand builds create or what-if at resource-group or
// subscription scope.
func deploymentCommand(verb string, atSubscription bool) *cobra.Command {
	var (
		name, rg, file, mode, location string
		params                         []string
		noWait                         bool
	)
	where := "--resource-group RG"
	if atSubscription {
		where = "--location LOCATION"
	}
	cmd := &cobra.Command{
		Use: verb + " " + where + " --template-file FILE [--name NAME] [--parameters k=v|@file.json …]",
		// az takes `--parameters a=1 b=2`: the words after the first value
		// arrive as arguments and are parameters too.
		Args: cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			for _, a := range args {
				if !strings.Contains(a, "=") && !strings.HasPrefix(a, "@") {
					return usageErrorf("unexpected argument %q: parameters are name=value or @file.json", a)
				}
			}
			params = append(params, args...)
			required := []string{"template-file", "resource-group"}
			if atSubscription {
				required[1] = "location"
			}
			if err := requireFlags(cmd, required...); err != nil {
				return err
			}
			raw, err := os.ReadFile(file)
			if err != nil {
				return usageErrorf("--template-file: %v", err)
			}
			tpl, err := deploy.ParseLenient(raw)
			if err != nil {
				return usageErrorf("--template-file %s is not a JSON template: %v", file, err)
			}
			if name == "" {
				base := file[strings.LastIndex(file, "/")+1:]
				name = strings.TrimSuffix(base, ".json")
			}
			parameters, err := deploymentParameters(params)
			if err != nil {
				return err
			}
			c, err := newAPIClient(cmd)
			if err != nil {
				return err
			}
			base := "/subscriptions/" + c.subscription
			if !atSubscription {
				base += "/resourcegroups/" + url.PathEscape(rg)
			}
			path := base + "/providers/Microsoft.Resources/deployments/" + url.PathEscape(name)
			body := map[string]any{"properties": map[string]any{"mode": mode, "template": tpl, "parameters": parameters}}
			if location != "" {
				body["location"] = location
			}
			if verb == "what-if" {
				return whatIf(cmd, c, path, body)
			}
			return deployAndFollow(cmd, c, path, name, body, noWait)
		},
	}
	if verb == "what-if" {
		cmd.Short = "Show what a deployment would change, without deploying"
	} else {
		cmd.Short = "Deploy a template and follow its operations"
		cmd.Long = "Deploys an ARM template (JSON, comments allowed), printing each resource operation as it\n" +
			"starts and ends, and the deployment as JSON at the end. Exits non-zero when it fails."
		cmd.Flags().BoolVar(&noWait, "no-wait", false, "return once the deployment is accepted")
	}
	cmd.Flags().StringVarP(&name, "name", "n", "", "deployment name (default: the template file's base name)")
	if atSubscription {
		cmd.Flags().StringVarP(&location, "location", "l", "", "the deployment's location")
	} else {
		cmd.Flags().StringVarP(&rg, "resource-group", "g", "", "resource group")
	}
	cmd.Flags().StringVarP(&file, "template-file", "f", "", "template file (JSON; comments allowed)")
	cmd.Flags().StringArrayVarP(&params, "parameters", "p", nil, "name=value, or @file.json (a parameters file); repeatable, and several in one flag separated by spaces")
	cmd.Flags().StringVar(&mode, "mode", "Incremental", "Incremental or Complete")
	return cmd
}

const deploymentsAPI = "?api-version=2021-04-01"

// deployAndFollow PUTs a deployment and, unless noWait, follows it to the
// end: every operation (one per resource) is printed when it appears and
// when its state changes, then the deployment as JSON.
func deployAndFollow(cmd *cobra.Command, c *apiClient, path, name string, body map[string]any, noWait bool) error {
	ctx := cmd.Context()
	var out map[string]any
	if err := c.do(ctx, "PUT", path+deploymentsAPI, body, &out); err != nil {
		return err
	}
	stderr := cmd.ErrOrStderr()
	last, seen := "", map[string]string{}
	for !noWait {
		props, _ := out["properties"].(map[string]any)
		state, _ := props["provisioningState"].(string)
		var ops struct {
			Value []struct {
				OperationID string `json:"operationId"`
				Properties  struct {
					ProvisioningOperation string `json:"provisioningOperation"`
					ProvisioningState     string `json:"provisioningState"`
					StatusCode            string `json:"statusCode"`
					TargetResource        struct {
						ResourceType string `json:"resourceType"`
						ResourceName string `json:"resourceName"`
					} `json:"targetResource"`
				} `json:"properties"`
			} `json:"value"`
		}
		if err := c.do(ctx, "GET", path+"/operations"+deploymentsAPI, nil, &ops); err == nil {
			for _, o := range ops.Value {
				p := o.Properties
				if seen[o.OperationID] == p.ProvisioningState {
					continue
				}
				seen[o.OperationID] = p.ProvisioningState
				fmt.Fprintf(stderr, "%s  %-6s %s %s: %s %s\n", time.Now().Format("15:04:05"), p.ProvisioningOperation,
					p.TargetResource.ResourceType, p.TargetResource.ResourceName, p.ProvisioningState, p.StatusCode)
			}
		}
		if state != last {
			fmt.Fprintf(stderr, "%s  deployment %s: %s\n", time.Now().Format("15:04:05"), name, state)
			last = state
		}
		if state == "Succeeded" || state == "Failed" || state == "Canceled" {
			break
		}
		time.Sleep(500 * time.Millisecond)
		if err := c.do(ctx, "GET", path+deploymentsAPI, nil, &out); err != nil {
			return err
		}
	}
	if props, _ := out["properties"].(map[string]any); props["provisioningState"] == "Failed" || props["provisioningState"] == "Canceled" {
		return deploymentError(name, props)
	}
	return emit(cmd, out, deploymentTable)
}

// deploymentError flattens a failed deployment's error tree into one
// message: the top error, then each detail's code and message.
func deploymentError(name string, props map[string]any) error {
	var e struct {
		Code    string
		Message string
		Details []json.RawMessage
	}
	b, _ := json.Marshal(props["error"])
	_ = json.Unmarshal(b, &e)
	var details []string
	var walk func(raw json.RawMessage)
	walk = func(raw json.RawMessage) {
		var d struct {
			Code    string
			Message string
			Details []json.RawMessage
		}
		if json.Unmarshal(raw, &d) != nil {
			return
		}
		if d.Code != "" || d.Message != "" {
			details = append(details, "("+d.Code+") "+d.Message)
		}
		for _, x := range d.Details {
			walk(x)
		}
	}
	for _, d := range e.Details {
		walk(d)
	}
	if e.Code == "" {
		e.Code = "Deployment" + fmt.Sprint(props["provisioningState"])
		e.Message = "deployment " + name + " ended " + strings.ToLower(fmt.Sprint(props["provisioningState"]))
	}
	msg := e.Message
	if len(details) > 0 {
		msg += " Details: " + strings.Join(details, "; ")
	}
	return &apiError{Code: e.Code, Message: msg}
}

// whatIf prints the change set: one line per resource, then the JSON.
func whatIf(cmd *cobra.Command, c *apiClient, path string, body map[string]any) error {
	var out struct {
		Status     string `json:"status"`
		Properties struct {
			Changes []struct {
				ResourceID string `json:"resourceId"`
				ChangeType string `json:"changeType"`
				Delta      []struct {
					Path               string `json:"path"`
					PropertyChangeType string `json:"propertyChangeType"`
				} `json:"delta"`
			} `json:"changes"`
		} `json:"properties"`
	}
	var raw json.RawMessage
	if err := c.do(cmd.Context(), "POST", path+"/whatIf"+deploymentsAPI, body, &raw); err != nil {
		return err
	}
	if err := json.Unmarshal(raw, &out); err != nil {
		return fmt.Errorf("what-if: %w", err)
	}
	w := cmd.ErrOrStderr()
	for _, ch := range out.Properties.Changes {
		fmt.Fprintf(w, "%-9s %s\n", ch.ChangeType, ch.ResourceID)
		for _, d := range ch.Delta {
			fmt.Fprintf(w, "          %s %s\n", d.PropertyChangeType, d.Path)
		}
	}
	var generic any
	if err := json.Unmarshal(raw, &generic); err != nil {
		return fmt.Errorf("what-if: %w", err)
	}
	return emit(cmd, generic, nil)
}

// deploymentParameters turns az-style --parameters into the deployment's
// {"name": {"value": …}} object: name=value pairs (a value that is JSON is
// taken as JSON) and @file.json parameter files.
func deploymentParameters(args []string) (map[string]any, error) {
	out := map[string]any{}
	var items []string
	for _, a := range args {
		items = append(items, strings.Fields(a)...)
	}
	for _, item := range items {
		if f, ok := strings.CutPrefix(item, "@"); ok {
			raw, err := os.ReadFile(f)
			if err != nil {
				return nil, usageErrorf("--parameters @%s: %v", f, err)
			}
			v, err := deploy.ParseLenient(raw)
			if err != nil {
				return nil, usageErrorf("--parameters @%s is not JSON: %v", f, err)
			}
			m, _ := v.(map[string]any)
			if p, ok := m["parameters"].(map[string]any); ok { // a deploymentParameters file
				m = p
			}
			for k, val := range m {
				out[k] = val
			}
			continue
		}
		k, v, ok := strings.Cut(item, "=")
		if !ok || k == "" {
			return nil, usageErrorf("--parameters %q: use name=value or @file.json", item)
		}
		var value any = v
		if j, err := deploy.ParseLenient([]byte(v)); err == nil {
			if _, isString := j.(string); !isString {
				value = j
			}
		}
		out[k] = map[string]any{"value": value}
	}
	return out, nil
}
