package cli

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/bloberror"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/service"
	"github.com/spf13/cobra"
)

// newStorageCommand is `storage`: accounts through the resource manager,
// containers and blobs through the blob data plane, as az has them.
func newStorageCommand() *cobra.Command {
	st := &cobra.Command{Use: "storage", Short: "Storage accounts, containers and blobs"}
	st.AddCommand(newStorageAccountCommand(), newStorageContainerCommand(), newStorageBlobCommand())
	return st
}

const storageAccountType = "Microsoft.Storage/storageAccounts"

func newStorageAccountCommand() *cobra.Command {
	acct := &cobra.Command{Use: "account", Short: "Storage accounts"}
	var name, group string
	nameFlags := func(cmd *cobra.Command, groupRequired bool) {
		cmd.Flags().StringVarP(&name, "name", "n", "", "storage account name")
		use := "resource group (default: the account of that name in the subscription)"
		if groupRequired {
			use = "resource group"
		}
		cmd.Flags().StringVarP(&group, "resource-group", "g", "", use)
	}

	var (
		location, sku, kind, accessTier, minTLS string
		httpsOnly, publicAccess, sharedKey      string
		tags                                    []string
	)
	create := &cobra.Command{
		Use:   "create --name NAME --resource-group GROUP",
		Short: "Create a storage account",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := requireFlags(cmd, "name", "resource-group"); err != nil {
				return err
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
			props := map[string]any{}
			for flag, v := range map[string]string{"https-only": httpsOnly, "allow-blob-public-access": publicAccess, "allow-shared-key-access": sharedKey} {
				if v == "" {
					continue
				}
				b, err := parseBoolFlag(flag, v)
				if err != nil {
					return err
				}
				props[map[string]string{"https-only": "supportsHttpsTrafficOnly", "allow-blob-public-access": "allowBlobPublicAccess", "allow-shared-key-access": "allowSharedKeyAccess"}[flag]] = b
			}
			if accessTier != "" {
				props["accessTier"] = accessTier
			}
			if minTLS != "" {
				props["minimumTlsVersion"] = minTLS
			}
			body := map[string]any{"location": location, "sku": map[string]string{"name": sku}, "kind": kind, "properties": props}
			tagMap, err := parseTags(tags)
			if err != nil {
				return err
			}
			if tagMap != nil {
				body["tags"] = tagMap
			}
			out, err := c.put(ctx, http.MethodPut, c.resourcePath(group, storageAccountType, name), apiStorage, body, cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			m := storageAccountModel()
			return emitModel(cmd, m.view(out), nil, m.names())
		},
	}
	nameFlags(create, true)
	create.Flags().StringVarP(&location, "location", "l", "", "location (default: the resource group's)")
	create.Flags().StringVar(&sku, "sku", "Standard_RAGRS", "Standard_LRS, Standard_GRS, Standard_RAGRS, Standard_ZRS, Premium_LRS, …")
	create.Flags().StringVar(&kind, "kind", "StorageV2", "StorageV2, BlobStorage, BlockBlobStorage, Storage, FileStorage")
	create.Flags().StringVar(&accessTier, "access-tier", "", "Hot or Cool")
	create.Flags().StringVar(&minTLS, "min-tls-version", "", "TLS1_0, TLS1_1 or TLS1_2")
	create.Flags().StringVar(&httpsOnly, "https-only", "", "true or false")
	create.Flags().StringVar(&publicAccess, "allow-blob-public-access", "", "true or false")
	create.Flags().StringVar(&sharedKey, "allow-shared-key-access", "", "true or false")
	create.Flags().StringArrayVar(&tags, "tags", nil, "space-separated tags: key[=value] ...")
	addAlias(create.Flags(), "allow-shared-key-access", "sk")
	acct.AddCommand(create)

	show := &cobra.Command{
		Use:   "show --name NAME [--resource-group GROUP]",
		Short: "Show a storage account",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := requireFlags(cmd, "name"); err != nil {
				return err
			}
			c, err := newAPIClient(cmd)
			if err != nil {
				return err
			}
			out, err := c.findStorageAccount(cmd.Context(), name, group)
			if err != nil {
				return err
			}
			m := storageAccountModel()
			return emitModel(cmd, m.view(out), nil, m.names())
		},
	}
	nameFlags(show, false)
	acct.AddCommand(show)

	list := &cobra.Command{
		Use:   "list [--resource-group GROUP]",
		Short: "List storage accounts",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := newAPIClient(cmd)
			if err != nil {
				return err
			}
			out, err := c.listOfType(cmd.Context(), group, storageAccountType, apiStorage)
			if err != nil {
				return err
			}
			m := storageAccountModel()
			return emitModel(cmd, m.viewList(out), nil, m.names())
		},
	}
	list.Flags().StringVarP(&group, "resource-group", "g", "", "only this resource group's accounts")
	acct.AddCommand(list)

	var yes bool
	del := &cobra.Command{
		Use:   "delete --name NAME [--resource-group GROUP] [--yes]",
		Short: "Delete a storage account",
		Args:  cobra.NoArgs,
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
			ctx := cmd.Context()
			doc, err := c.findStorageAccount(ctx, name, group)
			if err != nil {
				return err
			}
			id, _ := doc["id"].(string)
			return c.remove(ctx, id, apiStorage, cmd.ErrOrStderr())
		},
	}
	nameFlags(del, false)
	del.Flags().BoolVarP(&yes, "yes", "y", false, "do not prompt for confirmation")
	acct.AddCommand(del)

	keys := &cobra.Command{Use: "keys", Short: "Account access keys"}
	keysList := &cobra.Command{
		Use:   "list --account-name NAME [--resource-group GROUP]",
		Short: "List an account's access keys",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := requireFlags(cmd, "account-name"); err != nil {
				return err
			}
			c, err := newAPIClient(cmd)
			if err != nil {
				return err
			}
			ks, err := c.storageKeys(cmd.Context(), name, group)
			if err != nil {
				return err
			}
			return emit(cmd, ks, nil)
		},
	}
	keysList.Flags().StringVarP(&name, "account-name", "n", "", "storage account name")
	keysList.Flags().StringVarP(&group, "resource-group", "g", "", "resource group (default: the account of that name in the subscription)")
	keys.AddCommand(keysList)

	var protocol, keyName string
	showCS := &cobra.Command{
		Use:   "show-connection-string --name NAME [--resource-group GROUP] [--key primary|secondary]",
		Short: "Print an account's connection string (az storage account show-connection-string)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := requireFlags(cmd, "name"); err != nil {
				return err
			}
			switch keyName {
			case "primary", "secondary", "key1", "key2":
			default:
				return usageErrorf("argument --key: invalid choice: %q (choose from 'key1', 'key2', 'primary', 'secondary')", keyName)
			}
			c, err := newAPIClient(cmd)
			if err != nil {
				return err
			}
			doc, err := c.findStorageAccount(cmd.Context(), name, group)
			if err != nil {
				return err
			}
			ks, err := c.storageKeys(cmd.Context(), name, group)
			if err != nil {
				return err
			}
			idx := 0
			if keyName == "secondary" || keyName == "key2" {
				idx = 1
			}
			if idx >= len(ks) {
				return fmt.Errorf("storage account %s has no %s key", name, keyName)
			}
			key, _ := ks[idx].(map[string]any)["value"].(string)
			cs, err := storageConnectionString(protocol, name, key, dig(doc, "properties", "primaryEndpoints"))
			if err != nil {
				return err
			}
			return emit(cmd, map[string]any{"connectionString": cs}, nil)
		},
	}
	showCS.Flags().StringVarP(&name, "name", "n", "", "storage account name")
	showCS.Flags().StringVarP(&group, "resource-group", "g", "", "resource group (default: the account of that name in the subscription)")
	showCS.Flags().StringVar(&protocol, "protocol", "https", "the endpoints' protocol")
	showCS.Flags().StringVar(&keyName, "key", "primary", "key1 (primary) or key2 (secondary)")
	acct.AddCommand(keys, showCS)
	return acct
}

// storageConnectionString is az's connection string for an account:
// protocol, the endpoint suffix its blob endpoint uses, name and key, then
// each service endpoint the account lists (blob, file, queue, table).
func storageConnectionString(protocol, account, key string, endpoints any) (string, error) {
	eps, _ := endpoints.(map[string]any)
	blob, _ := eps["blob"].(string)
	u, err := url.Parse(blob)
	if err != nil || u.Host == "" {
		return "", fmt.Errorf("storage account %s has no blob endpoint", account)
	}
	_, suffix, ok := strings.Cut(u.Hostname(), ".blob.")
	if !ok {
		return "", fmt.Errorf("storage account %s: blob endpoint %s is not {account}.blob.{suffix}", account, blob)
	}
	cs := "DefaultEndpointsProtocol=" + protocol + ";EndpointSuffix=" + suffix + ";AccountName=" + account + ";AccountKey=" + key
	for _, svc := range []struct{ key, name string }{{"blob", "BlobEndpoint"}, {"file", "FileEndpoint"}, {"queue", "QueueEndpoint"}, {"table", "TableEndpoint"}} {
		if ep, ok := eps[svc.key].(string); ok && ep != "" {
			cs += ";" + svc.name + "=" + ep
		}
	}
	return cs, nil
}

func parseBoolFlag(flag, v string) (bool, error) {
	switch strings.ToLower(v) {
	case "true", "yes", "1", "on":
		return true, nil
	case "false", "no", "0", "off":
		return false, nil
	}
	return false, usageErrorf("argument --%s: invalid choice: %q (choose from 'false', 'true')", flag, v)
}

// groupLocation is a resource group's location, the default for new
// resources in it as az uses it.
func (c *apiClient) groupLocation(ctx context.Context, group string) (string, error) {
	g, err := c.getJSON(ctx, c.groupPath(group), apiResources)
	if err != nil {
		return "", err
	}
	loc, _ := g["location"].(string)
	return loc, nil
}

// findStorageAccount is the account named name, in group when given, else
// the one of that name in the subscription (account names are global).
func (c *apiClient) findStorageAccount(ctx context.Context, name, group string) (map[string]any, error) {
	if group != "" {
		return c.getJSON(ctx, c.resourcePath(group, storageAccountType, name), apiStorage)
	}
	all, err := c.list(ctx, c.subscriptionPath()+"/providers/"+storageAccountType, apiStorage)
	if err != nil {
		return nil, err
	}
	for _, a := range all {
		m, _ := a.(map[string]any)
		if n, _ := m["name"].(string); strings.EqualFold(n, name) {
			return m, nil
		}
	}
	return nil, &apiError{Status: http.StatusNotFound, Code: "ResourceNotFound",
		Message: fmt.Sprintf("The Resource 'Microsoft.Storage/storageAccounts/%s' under subscription '%s' was not found.", name, c.subscription)}
}

// storageKeys lists an account's keys (the "keys" member, as az prints it).
func (c *apiClient) storageKeys(ctx context.Context, name, group string) ([]any, error) {
	doc, err := c.findStorageAccount(ctx, name, group)
	if err != nil {
		return nil, err
	}
	id, _ := doc["id"].(string)
	var out struct {
		Keys []any `json:"keys"`
	}
	if err := c.post(ctx, id+"/listKeys", apiStorage, nil, &out); err != nil {
		return nil, err
	}
	if out.Keys == nil {
		out.Keys = []any{}
	}
	return out.Keys, nil
}

// storageAuthFlags are az's data-plane credential arguments.
type storageAuthFlags struct {
	account, key, connectionString, authMode string
}

func (f *storageAuthFlags) register(cmd *cobra.Command) {
	cmd.Flags().StringVar(&f.account, "account-name", "", "storage account name (env AZURE_STORAGE_ACCOUNT)")
	cmd.Flags().StringVar(&f.key, "account-key", "", "account key (env AZURE_STORAGE_KEY; default: looked up with the resource manager)")
	cmd.Flags().StringVar(&f.connectionString, "connection-string", "", "account connection string (env AZURE_STORAGE_CONNECTION_STRING)")
	cmd.Flags().StringVar(&f.authMode, "auth-mode", "", "key (the account key, looked up when not given; the default) or login (an Entra token for storage) (env AZURE_STORAGE_AUTH_MODE)")
}

// withEnv fills what the command line left out from az's AZURE_STORAGE_*
// variables (read here, not as flag defaults, so --help never shows a key).
func (f storageAuthFlags) withEnv() storageAuthFlags {
	for _, v := range []struct {
		dst *string
		env string
	}{{&f.account, "AZURE_STORAGE_ACCOUNT"}, {&f.key, "AZURE_STORAGE_KEY"},
		{&f.connectionString, "AZURE_STORAGE_CONNECTION_STRING"}, {&f.authMode, "AZURE_STORAGE_AUTH_MODE"}} {
		if *v.dst == "" {
			*v.dst = os.Getenv(v.env)
		}
	}
	if f.authMode == "" {
		f.authMode = "key"
	}
	return f
}

// tokenCredential hands the API client's tokens to the Azure SDK.
type tokenCredential struct{ c *apiClient }

func (t tokenCredential) GetToken(ctx context.Context, opts policy.TokenRequestOptions) (azcore.AccessToken, error) {
	if len(opts.Scopes) == 0 {
		return azcore.AccessToken{}, errors.New("no scope to get a token for")
	}
	token, err := t.c.tokenFor(ctx, opts.Scopes[0])
	if err != nil {
		return azcore.AccessToken{}, err
	}
	// The issuer's tokens live an hour; one command never outlasts that.
	return azcore.AccessToken{Token: token, ExpiresOn: time.Now().Add(30 * time.Minute)}, nil
}

// blobClient connects to an account's blob service with the credentials
// az would use: a connection string, an account key (given or looked up
// with the resource manager), or a token (--auth-mode login).
func blobClient(cmd *cobra.Command, f storageAuthFlags) (*azblob.Client, error) {
	f = f.withEnv()
	mode := strings.ToLower(f.authMode)
	if mode != "key" && mode != "login" {
		return nil, usageErrorf("argument --auth-mode: invalid choice: %q (choose from 'key', 'login')", f.authMode)
	}
	endpoint, account, key := "", f.account, f.key
	if f.connectionString != "" {
		cs := parseConnectionString(f.connectionString)
		account, key, endpoint = cs["accountname"], cs["accountkey"], cs["blobendpoint"]
		if endpoint == "" && account != "" {
			proto := cs["defaultendpointsprotocol"]
			if proto == "" {
				proto = "https"
			}
			suffix := cs["endpointsuffix"]
			if suffix == "" {
				suffix = "core.windows.net"
			}
			endpoint = proto + "://" + account + ".blob." + suffix
		}
		if endpoint == "" || key == "" {
			return nil, usageErrorf("argument --connection-string: needs AccountName and AccountKey (or BlobEndpoint and AccountKey)")
		}
	}
	if account == "" && endpoint == "" {
		return nil, usageErrorf("the following arguments are required: --account-name (or --connection-string) (see '%s --help')", cmd.CommandPath())
	}
	c, err := newAPIClient(cmd)
	if err != nil {
		return nil, err
	}
	ctx := cmd.Context()
	if endpoint == "" {
		doc, err := c.findStorageAccount(ctx, account, "")
		if err != nil {
			return nil, err
		}
		props, _ := doc["properties"].(map[string]any)
		eps, _ := props["primaryEndpoints"].(map[string]any)
		endpoint, _ = eps["blob"].(string)
		if endpoint == "" {
			return nil, fmt.Errorf("storage account %s has no blob endpoint", account)
		}
		if mode == "key" && key == "" {
			ks, err := c.storageKeys(ctx, account, "")
			if err != nil {
				return nil, err
			}
			if len(ks) > 0 {
				k, _ := ks[0].(map[string]any)
				key, _ = k["value"].(string)
			}
			if key == "" {
				return nil, fmt.Errorf("storage account %s has no keys to sign with; use --auth-mode login", account)
			}
		}
	}
	u, err := url.Parse(endpoint)
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("the blob endpoint %q is not a URL", endpoint)
	}
	h, err := c.nodeHTTP(parentDomain(u.Hostname()))
	if err != nil {
		return nil, err
	}
	opts := &azblob.ClientOptions{ClientOptions: azcore.ClientOptions{Transport: h, Retry: policy.RetryOptions{MaxRetries: 1}}}
	if mode == "login" {
		return azblob.NewClient(endpoint, tokenCredential{c}, opts)
	}
	cred, err := azblob.NewSharedKeyCredential(account, key)
	if err != nil {
		return nil, fmt.Errorf("the account key: %w", err)
	}
	return azblob.NewClientWithSharedKeyCredential(endpoint, cred, opts)
}

// storageError turns an SDK error into the service's code and the first
// line of its message, as az prints them.
func storageError(err error) error {
	var re *azcore.ResponseError
	if !errors.As(err, &re) {
		return err
	}
	msg := http.StatusText(re.StatusCode)
	if re.RawResponse != nil && re.RawResponse.Body != nil {
		var body struct{ Message string }
		if b, rerr := io.ReadAll(re.RawResponse.Body); rerr == nil && xml.Unmarshal(b, &body) == nil && body.Message != "" {
			msg, _, _ = strings.Cut(body.Message, "\n")
		}
	}
	return &apiError{Status: re.StatusCode, Code: re.ErrorCode, Message: strings.TrimSpace(msg)}
}

// pyTime is a timestamp as Python's isoformat() prints an aware datetime
// (nil stays None).
func pyTime(t *time.Time) any {
	if t == nil {
		return nil
	}
	return pyTimeString(*t)
}

func pyTimeString(t time.Time) string {
	u := t.UTC()
	if u.Nanosecond()/1000 != 0 {
		return u.Format("2006-01-02T15:04:05.000000+00:00")
	}
	return u.Format("2006-01-02T15:04:05+00:00")
}

func ptrValue[T any](p *T) any {
	if p == nil {
		return nil
	}
	return *p
}

func metadataView(m map[string]*string) map[string]any {
	out := map[string]any{}
	for k, v := range m {
		out[k] = ptrValue(v)
	}
	return out
}

func newStorageContainerCommand() *cobra.Command {
	ctr := &cobra.Command{Use: "container", Short: "Blob containers (data plane)"}
	var (
		auth                     storageAuthFlags
		name, publicAccess       string
		failOnExist, failMissing bool
		prefix                   string
		max                      int
	)
	create := &cobra.Command{
		Use:   "create --name NAME --account-name ACCOUNT",
		Short: "Create a container",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := requireFlags(cmd, "name"); err != nil {
				return err
			}
			var opts *container.CreateOptions
			switch strings.ToLower(publicAccess) {
			case "", "off":
			case "blob", "container":
				access := container.PublicAccessType(strings.ToLower(publicAccess))
				opts = &container.CreateOptions{Access: &access}
			default:
				return usageErrorf("argument --public-access: invalid choice: %q (choose from 'blob', 'container', 'off')", publicAccess)
			}
			bc, err := blobClient(cmd, auth)
			if err != nil {
				return err
			}
			_, err = bc.CreateContainer(cmd.Context(), name, opts)
			created := err == nil
			if bloberror.HasCode(err, bloberror.ContainerAlreadyExists) && !failOnExist {
				err = nil
			}
			if err != nil {
				return storageError(err)
			}
			return emit(cmd, map[string]bool{"created": created}, nil)
		},
	}
	auth.register(create)
	create.Flags().StringVarP(&name, "name", "n", "", "container name")
	create.Flags().StringVar(&publicAccess, "public-access", "", "off, blob or container")
	create.Flags().BoolVar(&failOnExist, "fail-on-exist", false, "fail when the container exists")
	ctr.AddCommand(create)

	list := &cobra.Command{
		Use:   "list --account-name ACCOUNT",
		Short: "List containers",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			bc, err := blobClient(cmd, auth)
			if err != nil {
				return err
			}
			var opts azblob.ListContainersOptions
			if prefix != "" {
				opts.Prefix = &prefix
			}
			out := []any{}
			pager := bc.NewListContainersPager(&opts)
			for pager.More() && (max <= 0 || len(out) < max) {
				page, err := pager.NextPage(cmd.Context())
				if err != nil {
					return storageError(err)
				}
				for _, it := range page.ContainerItems {
					out = append(out, containerView(it))
				}
			}
			if max > 0 && len(out) > max {
				out = out[:max]
			}
			return emit(cmd, out, containerTable)
		},
	}
	auth.register(list)
	list.Flags().StringVar(&prefix, "prefix", "", "only containers whose names start with this")
	list.Flags().IntVar(&max, "num-results", 5000, "at most this many (* in az: all)")
	ctr.AddCommand(list)

	del := &cobra.Command{
		Use:   "delete --name NAME --account-name ACCOUNT",
		Short: "Delete a container",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := requireFlags(cmd, "name"); err != nil {
				return err
			}
			bc, err := blobClient(cmd, auth)
			if err != nil {
				return err
			}
			_, err = bc.DeleteContainer(cmd.Context(), name, nil)
			deleted := err == nil
			if bloberror.HasCode(err, bloberror.ContainerNotFound) && !failMissing {
				err = nil
			}
			if err != nil {
				return storageError(err)
			}
			return emit(cmd, map[string]bool{"deleted": deleted}, nil)
		},
	}
	auth.register(del)
	del.Flags().StringVarP(&name, "name", "n", "", "container name")
	del.Flags().BoolVar(&failMissing, "fail-not-exist", false, "fail when the container does not exist")
	ctr.AddCommand(del)
	return ctr
}

// containerView is az's transform_container_json_output of a listed
// container.
func containerView(it *service.ContainerItem) map[string]any {
	p := it.Properties
	if p == nil {
		p = &service.ContainerProperties{}
	}
	var etag any
	if p.ETag != nil {
		etag = string(*p.ETag)
	}
	var metadata any
	if it.Metadata != nil {
		metadata = metadataView(it.Metadata)
	}
	return map[string]any{
		"name":     ptrValue(it.Name),
		"metadata": metadata,
		"properties": map[string]any{
			"etag": etag, "hasImmutabilityPolicy": ptrValue(p.HasImmutabilityPolicy), "hasLegalHold": ptrValue(p.HasLegalHold),
			"lastModified": pyTime(p.LastModified), "publicAccess": ptrValue(p.PublicAccess),
			"lease": map[string]any{"duration": ptrValue(p.LeaseDuration), "state": ptrValue(p.LeaseState), "status": ptrValue(p.LeaseStatus)},
		},
		"deleted": ptrValue(it.Deleted),
		"encryptionScope": map[string]any{"defaultEncryptionScope": ptrValue(p.DefaultEncryptionScope),
			"preventEncryptionScopeOverride": ptrValue(p.PreventEncryptionScopeOverride)},
		"immutableStorageWithVersioningEnabled": ptrValue(p.IsImmutableStorageWithVersioningEnabled),
		"version":                               ptrValue(it.Version),
	}
}

// containerTable is az's transform_container_list.
func containerTable(v any) []orderedRow {
	return buildTable(v, []tableColumn{{"Name", "name"}, {"Lease Status", "properties.leaseStatus"}, {"Last Modified", "properties.lastModified"}})
}

// blobTable is az's transform_blob_output.
func blobTable(v any) []orderedRow {
	return buildTable(v, []tableColumn{{"Name", "name"}, {"Blob Type", "properties.blobType"}, {"Blob Tier", "properties.blobTier"},
		{"Length", "properties.contentLength"}, {"Content Type", "properties.contentSettings.contentType"},
		{"Last Modified", "properties.lastModified"}, {"Snapshot", "snapshot"}})
}

// tableColumn is one (header, dotted path) pair of az's build_table_output.
type tableColumn struct{ header, path string }

// buildTable is azure.cli.core.commands.transform.build_table_output: one
// row per item with the named columns, each the value at its path, or a
// blank where that is missing or falsy (Python's `obj or ' '`).
func buildTable(v any, cols []tableColumn) []orderedRow {
	items, ok := v.([]any)
	if !ok {
		items = []any{v}
	}
	rows := make([]orderedRow, 0, len(items))
	for _, it := range items {
		var r orderedRow
		for _, c := range cols {
			var cur any = it
			for _, k := range strings.Split(c.path, ".") {
				m, _ := cur.(map[string]any)
				cur = m[k]
			}
			if pyFalsy(cur) {
				cur = " "
			}
			r = append(r, cell{c.header, cur})
		}
		rows = append(rows, r)
	}
	return rows
}

// pyFalsy is Python's truth test of a JSON value.
func pyFalsy(v any) bool {
	switch t := v.(type) {
	case nil:
		return true
	case bool:
		return !t
	case string:
		return t == ""
	case json.Number:
		f, err := t.Float64()
		return err == nil && f == 0
	case float64:
		return t == 0
	case []any:
		return len(t) == 0
	case map[string]any:
		return len(t) == 0
	}
	return false
}

func newStorageBlobCommand() *cobra.Command {
	bl := &cobra.Command{Use: "blob", Short: "Blobs (data plane)"}
	var (
		auth                              storageAuthFlags
		containerName, name, file, prefix string
		contentType, data                 string
		max                               int
		overwrite                         string
		noProgress                        bool
	)
	containerFlag := func(cmd *cobra.Command) {
		cmd.Flags().StringVarP(&containerName, "container-name", "c", "", "container name")
	}

	list := &cobra.Command{
		Use:   "list --container-name CONTAINER --account-name ACCOUNT",
		Short: "List a container's blobs",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := requireFlags(cmd, "container-name"); err != nil {
				return err
			}
			bc, err := blobClient(cmd, auth)
			if err != nil {
				return err
			}
			opts := &container.ListBlobsFlatOptions{Include: container.ListBlobsInclude{Metadata: true}}
			if prefix != "" {
				opts.Prefix = &prefix
			}
			out := []any{}
			pager := bc.NewListBlobsFlatPager(containerName, opts)
			for pager.More() && (max <= 0 || len(out) < max) {
				page, err := pager.NextPage(cmd.Context())
				if err != nil {
					return storageError(err)
				}
				for _, it := range page.Segment.BlobItems {
					out = append(out, blobView(containerName, it))
				}
			}
			if max > 0 && len(out) > max {
				out = out[:max]
			}
			return emit(cmd, out, blobTable)
		},
	}
	auth.register(list)
	containerFlag(list)
	list.Flags().StringVar(&prefix, "prefix", "", "only blobs whose names start with this")
	list.Flags().IntVar(&max, "num-results", 5000, "at most this many")
	bl.AddCommand(list)

	download := &cobra.Command{
		Use:   "download --container-name CONTAINER --name BLOB [--file PATH] --account-name ACCOUNT",
		Short: "Download a blob to a file (or to standard output)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := requireFlags(cmd, "container-name", "name"); err != nil {
				return err
			}
			over := true
			if overwrite != "" {
				var err error
				if over, err = parseBoolFlag("overwrite", overwrite); err != nil {
					return err
				}
			}
			if file != "" && !over {
				if _, err := os.Stat(file); err == nil {
					return fmt.Errorf("%s already exists. Please rename existing file or use --overwrite", file)
				}
			}
			bc, err := blobClient(cmd, auth)
			if err != nil {
				return err
			}
			resp, err := bc.DownloadStream(cmd.Context(), containerName, name, nil)
			if err != nil {
				return storageError(err)
			}
			defer resp.Body.Close()
			if file == "" {
				if _, err := io.Copy(cmd.OutOrStdout(), resp.Body); err != nil {
					return fmt.Errorf("download %s: %w", name, err)
				}
				return nil
			}
			f, err := os.Create(file)
			if err != nil {
				return fmt.Errorf("open --file: %w", err)
			}
			if _, err := io.Copy(f, resp.Body); err != nil {
				f.Close()
				return fmt.Errorf("download %s: %w", name, err)
			}
			if err := f.Close(); err != nil {
				return fmt.Errorf("write --file: %w", err)
			}
			return emit(cmd, downloadedView(name, containerName, resp), blobTable)
		},
	}
	auth.register(download)
	containerFlag(download)
	download.Flags().StringVarP(&name, "name", "n", "", "blob name")
	download.Flags().StringVarP(&file, "file", "f", "", "file to write (default: standard output)")
	download.Flags().StringVar(&overwrite, "overwrite", "", "overwrite an existing file (default true)")
	download.Flags().BoolVar(&noProgress, "no-progress", false, "accepted; no progress is shown")
	bl.AddCommand(download)

	upload := &cobra.Command{
		Use:   "upload --container-name CONTAINER --name BLOB (--file PATH | --data TEXT) --account-name ACCOUNT",
		Short: "Upload a file (or --data) to a block blob",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := requireFlags(cmd, "container-name"); err != nil {
				return err
			}
			if (file == "") == !cmd.Flags().Changed("data") {
				return usageErrorf("upload requires exactly one of --file and --data (see '%s --help')", cmd.CommandPath())
			}
			content := []byte(data)
			if file != "" {
				var err error
				if content, err = os.ReadFile(file); err != nil {
					return fmt.Errorf("read --file: %w", err)
				}
				if name == "" {
					name = baseName(file)
				}
			}
			if name == "" {
				return requireFlags(cmd, "name")
			}
			over := false
			if overwrite != "" {
				var err error
				if over, err = parseBoolFlag("overwrite", overwrite); err != nil {
					return err
				}
			}
			bc, err := blobClient(cmd, auth)
			if err != nil {
				return err
			}
			opts := &azblob.UploadBufferOptions{}
			if contentType != "" {
				opts.HTTPHeaders = &blob.HTTPHeaders{BlobContentType: &contentType}
			}
			if !over {
				any := azcore.ETagAny
				opts.AccessConditions = &blob.AccessConditions{ModifiedAccessConditions: &blob.ModifiedAccessConditions{IfNoneMatch: &any}}
			}
			resp, err := bc.UploadBuffer(cmd.Context(), containerName, name, content, opts)
			if err != nil {
				if bloberror.HasCode(err, bloberror.BlobAlreadyExists) || bloberror.HasCode(err, bloberror.ConditionNotMet) {
					return &apiError{Status: http.StatusConflict, Code: "BlobAlreadyExists",
						Message: "The specified blob already exists. If you want to overwrite the existing one, please add --overwrite in your command."}
				}
				return storageError(err)
			}
			var md5 any
			if resp.ContentMD5 != nil {
				md5 = base64.StdEncoding.EncodeToString(resp.ContentMD5)
			}
			var etag any
			if resp.ETag != nil {
				etag = string(*resp.ETag)
			}
			return emit(cmd, map[string]any{
				"client_request_id": ptrValue(resp.ClientRequestID), "content_md5": md5, "date": pyTime(resp.Date),
				"encryption_key_sha256": ptrValue(resp.EncryptionKeySHA256), "encryption_scope": ptrValue(resp.EncryptionScope),
				"etag": etag, "lastModified": pyTime(resp.LastModified), "request_id": ptrValue(resp.RequestID),
				"request_server_encrypted": ptrValue(resp.IsServerEncrypted), "version": ptrValue(resp.Version), "version_id": ptrValue(resp.VersionID),
			}, nil)
		},
	}
	auth.register(upload)
	containerFlag(upload)
	upload.Flags().StringVarP(&name, "name", "n", "", "blob name (default: the file's name)")
	upload.Flags().StringVarP(&file, "file", "f", "", "file to upload")
	upload.Flags().StringVar(&data, "data", "", "upload this text instead of a file")
	upload.Flags().StringVar(&contentType, "content-type", "", "the blob's content type")
	upload.Flags().StringVar(&overwrite, "overwrite", "", "replace an existing blob (default false)")
	upload.Flags().Lookup("overwrite").NoOptDefVal = "true"
	upload.Flags().BoolVar(&noProgress, "no-progress", false, "accepted; no progress is shown")
	bl.AddCommand(upload)
	return bl
}

func baseName(p string) string {
	p = strings.TrimRight(p, `/\`)
	if i := strings.LastIndexAny(p, `/\`); i >= 0 {
		return p[i+1:]
	}
	return p
}

// blobView is az's transform_blob_json_output of a listed blob.
func blobView(containerName string, it *container.BlobItem) map[string]any {
	p := it.Properties
	if p == nil {
		p = &container.BlobProperties{}
	}
	var etag, md5 any
	if p.ETag != nil {
		etag = string(*p.ETag)
	}
	if len(p.ContentMD5) > 0 {
		md5 = base64.StdEncoding.EncodeToString(p.ContentMD5)
	}
	metadata := map[string]any{}
	if it.Metadata != nil {
		metadata = metadataView(it.Metadata)
	}
	return map[string]any{
		"container": containerName, "content": "", "deleted": ptrValue(it.Deleted), "metadata": metadata, "name": ptrValue(it.Name),
		"properties": map[string]any{
			"appendBlobCommittedBlockCount": nil, "blobTier": ptrValue(p.AccessTier), "blobTierChangeTime": pyTime(p.AccessTierChangeTime),
			"blobTierInferred": ptrValue(p.AccessTierInferred), "blobType": ptrValue(p.BlobType), "contentLength": ptrValue(p.ContentLength),
			"contentRange": nil,
			"contentSettings": map[string]any{"cacheControl": ptrValue(p.CacheControl), "contentDisposition": ptrValue(p.ContentDisposition),
				"contentEncoding": ptrValue(p.ContentEncoding), "contentLanguage": ptrValue(p.ContentLanguage), "contentMd5": md5,
				"contentType": ptrValue(p.ContentType)},
			"copy": map[string]any{"completionTime": pyTime(p.CopyCompletionTime), "destinationSnapshot": ptrValue(p.DestinationSnapshot),
				"id": ptrValue(p.CopyID), "incrementalCopy": ptrValue(p.IncrementalCopy), "progress": ptrValue(p.CopyProgress),
				"source": ptrValue(p.CopySource), "status": ptrValue(p.CopyStatus), "statusDescription": ptrValue(p.CopyStatusDescription)},
			"creationTime": pyTime(p.CreationTime), "deletedTime": pyTime(p.DeletedTime), "etag": etag, "lastModified": pyTime(p.LastModified),
			"lease":                  map[string]any{"duration": ptrValue(p.LeaseDuration), "state": ptrValue(p.LeaseState), "status": ptrValue(p.LeaseStatus)},
			"pageBlobSequenceNumber": ptrValue(p.BlobSequenceNumber), "pageRanges": nil, "rehydrationStatus": ptrValue(p.ArchiveStatus),
			"remainingRetentionDays": ptrValue(p.RemainingRetentionDays), "serverEncrypted": ptrValue(p.ServerEncrypted),
		},
		"snapshot": ptrValue(it.Snapshot), "versionId": ptrValue(it.VersionID), "isCurrentVersion": ptrValue(it.IsCurrentVersion),
		"encryptionKeySha256": ptrValue(p.CustomerProvidedKeySHA256), "encryptionScope": ptrValue(p.EncryptionScope),
		"hasLegalHold": ptrValue(p.LegalHold), "hasVersionsOnly": ptrValue(it.HasVersionsOnly), "lastAccessedOn": pyTime(p.LastAccessedOn),
		"immutabilityPolicy": map[string]any{"expiryTime": pyTime(p.ImmutabilityPolicyExpiresOn), "policyMode": ptrValue(p.ImmutabilityPolicyMode)},
		"isAppendBlobSealed": ptrValue(p.IsSealed), "objectReplicationDestinationPolicy": nil, "objectReplicationSourceProperties": []any{},
		"rehydratePriority": ptrValue(p.RehydratePriority), "requestServerEncrypted": nil, "tagCount": ptrValue(p.TagCount), "tags": nil,
	}
}

// downloadedView is the blob az prints after `storage blob download
// --file`: its properties as the download returned them.
func downloadedView(name, containerName string, r azblob.DownloadStreamResponse) map[string]any {
	var etag, md5 any
	if r.ETag != nil {
		etag = string(*r.ETag)
	}
	if len(r.ContentMD5) > 0 {
		md5 = base64.StdEncoding.EncodeToString(r.ContentMD5)
	}
	metadata := map[string]any{}
	if r.Metadata != nil {
		metadata = metadataView(r.Metadata)
	}
	return map[string]any{
		"container": containerName, "content": "", "deleted": false, "metadata": metadata, "name": name,
		"properties": map[string]any{
			"blobType": ptrValue(r.BlobType), "contentLength": ptrValue(r.ContentLength), "contentRange": ptrValue(r.ContentRange),
			"contentSettings": map[string]any{"cacheControl": ptrValue(r.CacheControl), "contentDisposition": ptrValue(r.ContentDisposition),
				"contentEncoding": ptrValue(r.ContentEncoding), "contentLanguage": ptrValue(r.ContentLanguage), "contentMd5": md5,
				"contentType": ptrValue(r.ContentType)},
			"creationTime": pyTime(r.CreationTime), "etag": etag, "lastModified": pyTime(r.LastModified),
			"lease":           map[string]any{"duration": ptrValue(r.LeaseDuration), "state": ptrValue(r.LeaseState), "status": ptrValue(r.LeaseStatus)},
			"serverEncrypted": ptrValue(r.IsServerEncrypted),
		},
		"snapshot": nil, "versionId": ptrValue(r.VersionID),
	}
}
