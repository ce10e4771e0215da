package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/outpost-iot/outpost/internal/arm/deploy"
)

// newDeploymentCommand is `outpost deployment group create`, shaped like az's.
func newDeploymentCommand() *cobra.Command {
	dep := &cobra.Command{Use: "deployment", Short: "ARM template deployments (az deployment shaped)"}
	group := &cobra.Command{Use: "group", Short: "Deployments to a resource group"}
	dep.AddCommand(group)
	var (
		name, rg, file, mode string
		params               []string
		noWait               bool
	)
	create := &cobra.Command{
		Use:   "create --resource-group RG --template-file FILE [--name NAME] [--parameters k=v|@file.json …]",
		Short: "Deploy a template into a resource group and wait for it",
		Long: "Deploys an ARM template (JSON, comments allowed) into a resource group, printing each state\n" +
			"change while it runs and the deployment as JSON at the end. Exits non-zero when it fails.",
		// az takes `--parameters a=1 b=2`: the words after the first value
		// arrive as arguments and are parameters too.
		Args: cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			for _, a := range args {
				if !strings.Contains(a, "=") && !strings.HasPrefix(a, "@") {
					return fmt.Errorf("unexpected argument %q: parameters are name=value or @file.json", a)
				}
			}
			params = append(params, args...)
			if rg == "" || file == "" {
				return errors.New("--resource-group (-g) and --template-file (-f) are required")
			}
			raw, err := os.ReadFile(file)
			if err != nil {
				return err
			}
			tpl, err := deploy.ParseLenient(raw)
			if err != nil {
				return fmt.Errorf("%s: %w", file, err)
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
			ctx := cmd.Context()
			path := "/subscriptions/" + c.subscription + "/resourcegroups/" + url.PathEscape(rg) +
				"/providers/Microsoft.Resources/deployments/" + url.PathEscape(name) + "?api-version=2021-04-01"
			body := map[string]any{"properties": map[string]any{"mode": mode, "template": tpl, "parameters": parameters}}
			var out map[string]any
			if err := c.do(ctx, "PUT", path, body, &out); err != nil {
				return err
			}
			last := ""
			for !noWait {
				props, _ := out["properties"].(map[string]any)
				state, _ := props["provisioningState"].(string)
				if state != last {
					fmt.Fprintf(cmd.ErrOrStderr(), "%s  deployment %s: %s\n", time.Now().Format("15:04:05"), name, state)
					last = state
				}
				if state == "Succeeded" || state == "Failed" || state == "Canceled" {
					break
				}
				time.Sleep(500 * time.Millisecond)
				if err := c.do(ctx, "GET", path, nil, &out); err != nil {
					return err
				}
			}
			b, _ := json.MarshalIndent(out, "", "  ")
			fmt.Fprintln(cmd.OutOrStdout(), string(b))
			if props, _ := out["properties"].(map[string]any); props["provisioningState"] == "Failed" {
				e, _ := json.Marshal(props["error"])
				return fmt.Errorf("deployment %s failed: %s", name, e)
			}
			return nil
		},
	}
	create.Flags().StringVarP(&name, "name", "n", "", "deployment name (default: the template file's base name)")
	create.Flags().StringVarP(&rg, "resource-group", "g", "", "resource group")
	create.Flags().StringVarP(&file, "template-file", "f", "", "template file (JSON; comments allowed)")
	create.Flags().StringArrayVarP(&params, "parameters", "p", nil, "name=value, or @file.json (a parameters file); repeatable, and several in one flag separated by spaces")
	create.Flags().StringVar(&mode, "mode", "Incremental", "Incremental or Complete")
	create.Flags().BoolVar(&noWait, "no-wait", false, "return once the deployment is accepted")
	group.AddCommand(create)
	return dep
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
				return nil, err
			}
			v, err := deploy.ParseLenient(raw)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", f, err)
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
			return nil, fmt.Errorf("--parameters %q: use name=value or @file.json", item)
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

// newResourceCommand is `outpost resource show`, shaped like az's.
func newResourceCommand() *cobra.Command {
	res := &cobra.Command{Use: "resource", Short: "Generic resource commands (az resource shaped)"}
	var typ, name, rg, apiVersion string
	show := &cobra.Command{
		Use:   "show --resource-type NS/TYPE --name NAME --resource-group RG",
		Short: "Print a resource as JSON",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if typ == "" || name == "" || rg == "" {
				return errors.New("--resource-type, --name (-n) and --resource-group (-g) are required")
			}
			c, err := newAPIClient(cmd)
			if err != nil {
				return err
			}
			if apiVersion == "" {
				apiVersion = "2023-06-30"
				if !strings.EqualFold(typ, "Microsoft.Devices/IotHubs") {
					return errors.New("--api-version is required for types other than Microsoft.Devices/IotHubs")
				}
			}
			var out map[string]any
			path := "/subscriptions/" + c.subscription + "/resourceGroups/" + url.PathEscape(rg) + "/providers/" + typ + "/" + url.PathEscape(name) + "?api-version=" + url.QueryEscape(apiVersion)
			if err := c.do(cmd.Context(), "GET", path, nil, &out); err != nil {
				return err
			}
			b, _ := json.MarshalIndent(out, "", "  ")
			fmt.Fprintln(cmd.OutOrStdout(), string(b))
			return nil
		},
	}
	show.Flags().StringVar(&typ, "resource-type", "", "resource type, e.g. Microsoft.Devices/IotHubs")
	show.Flags().StringVarP(&name, "name", "n", "", "resource name")
	show.Flags().StringVarP(&rg, "resource-group", "g", "", "resource group")
	show.Flags().StringVar(&apiVersion, "api-version", "", "api-version (default for IoT hubs: 2023-06-30)")
	res.AddCommand(show)
	return res
}
