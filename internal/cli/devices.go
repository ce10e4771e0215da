package cli

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// Device authentication methods as the azure-iot extension names them
// (--auth-method), and the registry's names for them.
var deviceAuthMethods = map[string]string{
	"shared_private_key": "sas",
	"x509_thumbprint":    "selfSigned",
	"x509_ca":            "certificateAuthority",
}

// newDeviceIdentityCommand is `iot hub device-identity`: the azure-iot
// extension's commands over the hub's registry (service API, api-version
// 2021-04-12), with its flags and its output — the registry's device JSON.
func newDeviceIdentityCommand() *cobra.Command {
	group := &cobra.Command{Use: "device-identity", Short: "Manage a hub's devices (the azure-iot extension's commands)"}
	group.AddCommand(newDeviceCreateCommand(), newDeviceShowCommand(), newDeviceListCommand(),
		newDeviceDeleteCommand(), newDeviceUpdateCommand())
	cs := &cobra.Command{Use: "connection-string", Short: "A device's connection string"}
	cs.AddCommand(newDeviceConnectionStringCommand())
	group.AddCommand(cs)
	return group
}

// addAlias registers alias as a hidden second spelling of the flag name
// (the extension accepts --am for --auth-method, --pk for --primary-key…);
// setting it marks name as given, for requireFlags.
func addAlias(fs *pflag.FlagSet, name, alias string) {
	f := fs.Lookup(name)
	fs.AddFlag(&pflag.Flag{Name: alias, Usage: f.Usage, Value: aliasValue{f.Value, f}, DefValue: f.DefValue, NoOptDefVal: f.NoOptDefVal, Hidden: true})
}

// aliasValue is a flag's value reached through another name.
type aliasValue struct {
	pflag.Value
	of *pflag.Flag
}

func (a aliasValue) Set(s string) error {
	a.of.Changed = true
	return a.Value.Set(s)
}

// IsBoolFlag lets a boolean alias stand alone (--ee), as its flag does.
func (a aliasValue) IsBoolFlag() bool {
	b, ok := a.Value.(interface{ IsBoolFlag() bool })
	return ok && b.IsBoolFlag()
}

// changed reports whether a flag was given (under any of its spellings).
func changed(cmd *cobra.Command, name string) bool {
	f := cmd.Flags().Lookup(name)
	return f != nil && f.Changed
}

// deviceFlags are the per-device flags the commands share.
type deviceFlags struct {
	hub      hubFlags
	deviceID string
}

func (d *deviceFlags) register(cmd *cobra.Command) {
	d.hub.register(cmd.Flags())
	cmd.Flags().StringVarP(&d.deviceID, "device-id", "d", "", "device id")
}

// need fails unless the hub (by name or --login) and the device are named.
func (d *deviceFlags) need(cmd *cobra.Command) error {
	names := []string{"device-id"}
	if d.hub.login == "" {
		names = append([]string{"hub-name"}, names...)
	}
	return requireFlags(cmd, names...)
}

func devicePath(id string) string { return "/devices/" + url.PathEscape(id) }

// refuseEdge explains why --edge-enabled can't be honoured.
func refuseEdge(cmd *cobra.Command) error {
	if v, _ := cmd.Flags().GetBool("edge-enabled"); v {
		return usageErrorf("argument --edge-enabled/--ee: Outpost runs no IoT Edge runtime (no $edgeAgent/$edgeHub modules or deployments), so it does not create edge devices; leave the flag out")
	}
	return nil
}

// deviceAuthentication builds the authentication mechanism the extension's
// _assemble_auth sends for a method and its keys or thumbprints.
func deviceAuthentication(method, pk, sk, ptp, stp string) (map[string]any, error) {
	apiType, ok := deviceAuthMethods[method]
	if !ok {
		return nil, usageErrorf("argument --auth-method/--am: invalid choice: %q (choose from 'shared_private_key', 'x509_ca', 'x509_thumbprint')", method)
	}
	auth := map[string]any{"type": apiType}
	switch apiType {
	case "sas":
		if (pk == "") != (sk == "") {
			return nil, usageErrorf("When configuring symmetric key auth both primary and secondary keys are required.")
		}
		keys := map[string]any{}
		if pk != "" {
			keys["primaryKey"], keys["secondaryKey"] = pk, sk
		}
		auth["symmetricKey"] = keys
	case "selfSigned":
		if ptp == "" {
			return nil, usageErrorf("When configuring selfSigned auth the primary thumbprint is required.")
		}
		tp := map[string]any{"primaryThumbprint": ptp}
		if stp != "" {
			tp["secondaryThumbprint"] = stp
		}
		auth["x509Thumbprint"] = tp
	}
	return auth, nil
}

func checkStatus(status string) error {
	if status != "enabled" && status != "disabled" {
		return usageErrorf("argument --status/--sta: invalid choice: %q (choose from 'disabled', 'enabled')", status)
	}
	return nil
}

func newDeviceCreateCommand() *cobra.Command {
	var (
		d                                     deviceFlags
		method, pk, sk, ptp, stp, status, why string
		edge                                  bool
	)
	cmd := &cobra.Command{
		Use:   "create --hub-name NAME --device-id ID",
		Short: "Create a device in a hub's registry",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := d.need(cmd); err != nil {
				return err
			}
			if err := refuseEdge(cmd); err != nil {
				return err
			}
			if err := checkStatus(status); err != nil {
				return err
			}
			auth, err := deviceAuthentication(method, pk, sk, ptp, stp)
			if err != nil {
				return err
			}
			body := map[string]any{"deviceId": d.deviceID, "authentication": auth,
				"capabilities": map[string]any{"iotEdge": false}, "status": status}
			if why != "" {
				body["statusReason"] = why
			}
			c, err := newAPIClient(cmd)
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			t, err := c.resolveHub(ctx, d.hub)
			if err != nil {
				return err
			}
			var out map[string]any
			if err := t.doJSON(ctx, hubRequest{method: http.MethodPut, path: devicePath(d.deviceID), body: body}, &out); err != nil {
				return err
			}
			m := deviceModel()
			return emitModel(cmd, m.view(out), nil, m.names())
		},
	}
	d.register(cmd)
	fs := cmd.Flags()
	fs.StringVar(&method, "auth-method", "shared_private_key", "authentication: shared_private_key, x509_thumbprint or x509_ca")
	fs.StringVar(&pk, "primary-key", "", "primary symmetric key (base64; default: the hub generates one)")
	fs.StringVar(&sk, "secondary-key", "", "secondary symmetric key (base64)")
	fs.StringVar(&ptp, "primary-thumbprint", "", "primary X.509 thumbprint (x509_thumbprint)")
	fs.StringVar(&stp, "secondary-thumbprint", "", "secondary X.509 thumbprint (x509_thumbprint)")
	fs.StringVar(&status, "status", "enabled", "enabled or disabled")
	fs.StringVar(&why, "status-reason", "", "why the device has its status")
	fs.BoolVar(&edge, "edge-enabled", false, "an IoT Edge device (not supported: Outpost runs no Edge runtime)")
	for name, alias := range map[string]string{"auth-method": "am", "primary-key": "pk", "secondary-key": "sk",
		"primary-thumbprint": "ptp", "secondary-thumbprint": "stp", "status": "sta", "status-reason": "star", "edge-enabled": "ee"} {
		addAlias(fs, name, alias)
	}
	return cmd
}

// showDevice GETs a device and adds "hub" (its hub's host name), as the
// extension's iot_device_show does.
func showDevice(cmd *cobra.Command, d deviceFlags) (*hubTarget, map[string]any, error) {
	c, err := newAPIClient(cmd)
	if err != nil {
		return nil, nil, err
	}
	ctx := cmd.Context()
	t, err := c.resolveHub(ctx, d.hub)
	if err != nil {
		return nil, nil, err
	}
	var dev map[string]any
	if err := t.doJSON(ctx, hubRequest{method: http.MethodGet, path: devicePath(d.deviceID)}, &dev); err != nil {
		return nil, nil, err
	}
	if dev == nil {
		dev = map[string]any{}
	}
	dev["hub"] = t.HostName
	return t, dev, nil
}

func newDeviceShowCommand() *cobra.Command {
	var d deviceFlags
	cmd := &cobra.Command{
		Use:   "show --hub-name NAME --device-id ID",
		Short: "Show a device",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := d.need(cmd); err != nil {
				return err
			}
			_, dev, err := showDevice(cmd, d)
			if err != nil {
				return err
			}
			return emit(cmd, dev, nil)
		},
	}
	d.register(cmd)
	return cmd
}

func newDeviceListCommand() *cobra.Command {
	var (
		hf   hubFlags
		top  int
		edge bool
	)
	cmd := &cobra.Command{
		Use:   "list --hub-name NAME",
		Short: "List a hub's devices (their twins, as the extension's query does)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if hf.login == "" {
				if err := requireFlags(cmd, "hub-name"); err != nil {
					return err
				}
			}
			if top == 0 || top < -1 {
				return usageErrorf("argument --top: top must be a positive integer, or -1 for every device")
			}
			query := "select * from devices"
			if edge {
				query += " where capabilities.iotEdge = true"
			}
			c, err := newAPIClient(cmd)
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			t, err := c.resolveHub(ctx, hf)
			if err != nil {
				return err
			}
			// The extension's _execute_query: pages of x-ms-max-item-count,
			// followed by x-ms-continuation until --top are read.
			all := []any{}
			continuation := ""
			for {
				h := http.Header{"Cache-Control": {"no-cache, must-revalidate"}}
				if top > 0 {
					h.Set("x-ms-max-item-count", strconv.Itoa(top-len(all)))
				}
				if continuation != "" {
					h.Set("x-ms-continuation", continuation)
				}
				resp, b, err := t.do(ctx, hubRequest{method: http.MethodPost, path: "/devices/query", header: h, body: map[string]string{"query": query}})
				if err != nil {
					return err
				}
				var page []any
				if err := json.Unmarshal(b, &page); err != nil {
					return fmt.Errorf("decode the query answer: %w", err)
				}
				all = append(all, page...)
				continuation = resp.Header.Get("x-ms-continuation")
				if continuation == "" || (top > 0 && len(all) >= top) {
					break
				}
			}
			if top > 0 && len(all) > top {
				all = all[:top]
			}
			return emit(cmd, all, nil)
		},
	}
	hf.register(cmd.Flags())
	cmd.Flags().IntVar(&top, "top", 1000, "at most this many devices (-1 for all)")
	cmd.Flags().BoolVar(&edge, "edge-enabled", false, "only IoT Edge devices")
	addAlias(cmd.Flags(), "edge-enabled", "ee")
	return cmd
}

func newDeviceDeleteCommand() *cobra.Command {
	var (
		d    deviceFlags
		etag string
	)
	cmd := &cobra.Command{
		Use:   "delete --hub-name NAME --device-id ID",
		Short: "Delete a device",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := d.need(cmd); err != nil {
				return err
			}
			c, err := newAPIClient(cmd)
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			t, err := c.resolveHub(ctx, d.hub)
			if err != nil {
				return err
			}
			if etag == "" {
				etag = "*"
			}
			_, _, err = t.do(ctx, hubRequest{method: http.MethodDelete, path: devicePath(d.deviceID),
				header: http.Header{"If-Match": {quoteETag(etag)}}})
			return err
		},
	}
	d.register(cmd)
	cmd.Flags().StringVarP(&etag, "etag", "e", "", "delete only if the device's etag is this (default: unconditionally)")
	return cmd
}

// quoteETag quotes an etag as the extension does ('"{}"'), leaving one
// already quoted alone.
func quoteETag(e string) string {
	if strings.HasPrefix(e, `"`) && strings.HasSuffix(e, `"`) && len(e) > 1 {
		return e
	}
	return `"` + e + `"`
}

func newDeviceUpdateCommand() *cobra.Command {
	var (
		d                                          deviceFlags
		method, pk, sk, ptp, stp, status, why, tag string
		sets                                       []string
		edge                                       bool
	)
	cmd := &cobra.Command{
		Use:   "update --hub-name NAME --device-id ID [--status disabled] [--set path=value]",
		Short: "Update a device (the extension's generic update: show, change, put back)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := d.need(cmd); err != nil {
				return err
			}
			if err := refuseEdge(cmd); err != nil {
				return err
			}
			if changed(cmd, "status") {
				if err := checkStatus(status); err != nil {
					return err
				}
			}
			t, dev, err := showDevice(cmd, d)
			if err != nil {
				return err
			}
			delete(dev, "hub")
			if err := updateDeviceCustom(cmd, dev, method, pk, sk, ptp, stp, status, why); err != nil {
				return err
			}
			for _, s := range sets {
				if err := setPath(dev, s); err != nil {
					return err
				}
			}
			if caps, _ := dev["capabilities"].(map[string]any); caps != nil && caps["iotEdge"] == true {
				return usageErrorf("capabilities.iotEdge: Outpost runs no IoT Edge runtime, so a device can't be made an edge device")
			}
			// iot_device_update: the device reassembled from what the
			// registry takes, with If-Match "*" unless --etag is given.
			body := map[string]any{"deviceId": dev["deviceId"], "authentication": dev["authentication"],
				"capabilities": dev["capabilities"], "status": strings.ToLower(fmt.Sprint(dev["status"]))}
			if v, ok := dev["statusReason"]; ok && v != nil {
				body["statusReason"] = v
			}
			if v, ok := dev["deviceScope"]; ok && v != nil {
				body["deviceScope"] = v
			}
			if tag == "" {
				tag = "*"
			}
			var out map[string]any
			if err := t.doJSON(cmd.Context(), hubRequest{method: http.MethodPut, path: devicePath(d.deviceID), body: body,
				header: http.Header{"If-Match": {quoteETag(tag)}}}, &out); err != nil {
				return err
			}
			m := deviceModel()
			return emitModel(cmd, m.view(out), nil, m.names())
		},
	}
	d.register(cmd)
	fs := cmd.Flags()
	fs.StringVar(&method, "auth-method", "", "new authentication: shared_private_key, x509_thumbprint or x509_ca")
	fs.StringVar(&pk, "primary-key", "", "primary symmetric key")
	fs.StringVar(&sk, "secondary-key", "", "secondary symmetric key")
	fs.StringVar(&ptp, "primary-thumbprint", "", "primary X.509 thumbprint")
	fs.StringVar(&stp, "secondary-thumbprint", "", "secondary X.509 thumbprint")
	fs.StringVar(&status, "status", "", "enabled or disabled")
	fs.StringVar(&why, "status-reason", "", "why the device has its status")
	fs.BoolVar(&edge, "edge-enabled", false, "make it an IoT Edge device (not supported)")
	fs.StringVarP(&tag, "etag", "e", "", "update only if the device's etag is this")
	fs.StringArrayVar(&sets, "set", nil, "set a property by path: --set status=disabled, --set statusReason=maintenance")
	for name, alias := range map[string]string{"auth-method": "am", "primary-key": "pk", "secondary-key": "sk",
		"primary-thumbprint": "ptp", "secondary-thumbprint": "stp", "status": "sta", "status-reason": "star", "edge-enabled": "ee"} {
		addAlias(fs, name, alias)
	}
	return cmd
}

// updateDeviceCustom is the extension's update_iot_device_custom: the
// typed flags applied to the device as shown.
func updateDeviceCustom(cmd *cobra.Command, dev map[string]any, method, pk, sk, ptp, stp, status, why string) error {
	if changed(cmd, "status") {
		dev["status"] = status
	}
	if changed(cmd, "status-reason") {
		dev["statusReason"] = why
	}
	auth, _ := dev["authentication"].(map[string]any)
	if auth == nil {
		auth = map[string]any{}
		dev["authentication"] = auth
	}
	sub := func(key string) map[string]any {
		m, _ := auth[key].(map[string]any)
		if m == nil {
			m = map[string]any{}
			auth[key] = m
		}
		return m
	}
	current, _ := auth["type"].(string)
	if method != "" {
		apiType, ok := deviceAuthMethods[method]
		if !ok {
			return usageErrorf("argument --auth-method/--am: invalid choice: %q (choose from 'shared_private_key', 'x509_ca', 'x509_thumbprint')", method)
		}
		switch apiType {
		case "sas":
			if (pk == "") != (sk == "") {
				return usageErrorf("primary + secondary Key required with sas auth")
			}
			keys := sub("symmetricKey")
			keys["primaryKey"], keys["secondaryKey"] = nilIfEmpty(pk), nilIfEmpty(sk)
		case "selfSigned":
			if ptp == "" && stp == "" {
				return usageErrorf("primary or secondary Thumbprint required with selfSigned auth")
			}
			tp := sub("x509Thumbprint")
			if ptp != "" {
				tp["primaryThumbprint"] = ptp
			}
			if stp != "" {
				tp["secondaryThumbprint"] = stp
			}
		}
		auth["type"] = apiType
		return nil
	}
	switch current {
	case "sas":
		if ptp != "" || stp != "" {
			return usageErrorf("Device authorization method shared_private_key does not support primary or secondary thumbprints.")
		}
		keys := sub("symmetricKey")
		if pk != "" {
			keys["primaryKey"] = pk
		}
		if sk != "" {
			keys["secondaryKey"] = sk
		}
	case "selfSigned":
		if pk != "" || sk != "" {
			return usageErrorf("Device authorization method x509_thumbprint does not support primary or secondary keys.")
		}
		tp := sub("x509Thumbprint")
		if ptp != "" {
			tp["primaryThumbprint"] = ptp
		}
		if stp != "" {
			tp["secondaryThumbprint"] = stp
		}
	}
	return nil
}

func nilIfEmpty(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// setPath is az's generic --set: "a.b=value" sets a nested property; the
// value is read as JSON when it parses, else as a string.
func setPath(doc map[string]any, expr string) error {
	path, raw, ok := strings.Cut(expr, "=")
	if !ok || path == "" {
		return usageErrorf("argument --set: %q is not path=value", expr)
	}
	var v any
	if err := json.Unmarshal([]byte(raw), &v); err != nil {
		v = raw
	}
	keys := strings.Split(path, ".")
	m := doc
	for _, k := range keys[:len(keys)-1] {
		next, _ := m[k].(map[string]any)
		if next == nil {
			next = map[string]any{}
			m[k] = next
		}
		m = next
	}
	m[keys[len(keys)-1]] = v
	return nil
}

func newDeviceConnectionStringCommand() *cobra.Command {
	var (
		d       deviceFlags
		keyType string
	)
	cmd := &cobra.Command{
		Use:   "show --hub-name NAME --device-id ID",
		Short: "Show a device's connection string",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := d.need(cmd); err != nil {
				return err
			}
			if keyType != "primary" && keyType != "secondary" {
				return usageErrorf("argument --key-type/--kt: invalid choice: %q (choose from 'primary', 'secondary')", keyType)
			}
			_, dev, err := showDevice(cmd, d)
			if err != nil {
				return err
			}
			cs, err := deviceConnectionString(dev, keyType)
			if err != nil {
				return err
			}
			return emit(cmd, map[string]string{"connectionString": cs}, nil)
		},
	}
	d.register(cmd)
	cmd.Flags().StringVar(&keyType, "key-type", "primary", "primary or secondary")
	addAlias(cmd.Flags(), "key-type", "kt")
	return cmd
}

// deviceConnectionString is the extension's
// _build_device_or_module_connection_string for a device as shown.
func deviceConnectionString(dev map[string]any, keyType string) (string, error) {
	auth, _ := dev["authentication"].(map[string]any)
	typ, _ := auth["type"].(string)
	var cred string
	switch strings.ToLower(typ) {
	case "sas":
		keys, _ := auth["symmetricKey"].(map[string]any)
		k, _ := keys[keyType+"Key"].(string)
		cred = "SharedAccessKey=" + k
	case "certificateauthority", "selfsigned":
		cred = "x509=true"
	default:
		return "", fmt.Errorf("Unable to form target connection string")
	}
	return fmt.Sprintf("HostName=%v;DeviceId=%v;%s", dev["hub"], dev["deviceId"], cred), nil
}

// deviceModel is the Device model of the azure-iot extension's service SDK
// (azext_iot/sdk/iothub/service/models): create and update print the
// registry's answer through it; show prints the answer as it came.
func deviceModel() sdkModel {
	return sdkModel{
		{name: "deviceId", path: "deviceId"},
		{name: "generationId", path: "generationId"},
		{name: "etag", path: "etag"},
		{name: "connectionState", path: "connectionState"},
		{name: "status", path: "status"},
		{name: "statusReason", path: "statusReason"},
		{name: "connectionStateUpdatedTime", path: "connectionStateUpdatedTime", kind: modelDate},
		{name: "statusUpdatedTime", path: "statusUpdatedTime", kind: modelDate},
		{name: "lastActivityTime", path: "lastActivityTime", kind: modelDate},
		{name: "cloudToDeviceMessageCount", path: "cloudToDeviceMessageCount"},
		{name: "authentication", path: "authentication", sub: sdkModel{
			{name: "symmetricKey", path: "symmetricKey", sub: sdkModel{
				{name: "primaryKey", path: "primaryKey"},
				{name: "secondaryKey", path: "secondaryKey"},
			}},
			{name: "x509Thumbprint", path: "x509Thumbprint", sub: sdkModel{
				{name: "primaryThumbprint", path: "primaryThumbprint"},
				{name: "secondaryThumbprint", path: "secondaryThumbprint"},
			}},
			{name: "type", path: "type"},
		}},
		{name: "capabilities", path: "capabilities", sub: sdkModel{{name: "iotEdge", path: "iotEdge"}}},
		{name: "deviceScope", path: "deviceScope"},
		{name: "parentScopes", path: "parentScopes"},
		{name: "attributes", path: "attributes"},
	}
}
