package blob_test

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"
	sdkblob "github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/bloberror"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blockblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/sas"

	"github.com/outpost-iot/outpost/internal/arm/armtest"
)

func randomBytes(tb testing.TB, n int) []byte {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		tb.Fatal(err)
	}
	return b
}

func download(t *testing.T, c *azblob.Client, ctr, name string, opts *azblob.DownloadStreamOptions) []byte {
	t.Helper()
	resp, err := c.DownloadStream(context.Background(), ctr, name, opts)
	if err != nil {
		t.Fatalf("download %s: %v", name, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestSharedKeyRoundTrip drives the unmodified azblob client with a Shared
// Key through containers, small and 64 MiB uploads, listing, ranged
// downloads and deletes, and checks containers are ARM resources both ways.
func TestSharedKeyRoundTrip(t *testing.T) {
	f := newFixture(t)
	key := f.account(t, "acct1", "")
	c := f.sharedKeyClient(t, "acct1", key)
	ctx := context.Background()

	if _, err := c.CreateContainer(ctx, "data", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := c.CreateContainer(ctx, "data", nil); !bloberror.HasCode(err, bloberror.ContainerAlreadyExists) {
		t.Fatalf("second create: %v, want ContainerAlreadyExists", err)
	}
	// The container made on the data plane is an ARM resource.
	got := f.call(t, "GET", f.accountID("acct1")+"/blobServices/default/containers/data"+apiV, "", 200)
	if got["type"] != "Microsoft.Storage/storageAccounts/blobServices/containers" {
		t.Fatalf("ARM container = %v", got)
	}
	// ...and one made through ARM is a container on the data plane.
	f.call(t, "PUT", f.accountID("acct1")+"/blobServices/default/containers/fromarm"+apiV, `{"properties":{"metadata":{"k":"v"}}}`, 201)
	props, err := c.ServiceClient().NewContainerClient("fromarm").GetProperties(ctx, nil)
	if err != nil || meta(props.Metadata, "k") != "v" {
		t.Fatalf("ARM-made container on the data plane: %v %v", props.Metadata, err)
	}

	small := randomBytes(t, 1024)
	up, err := c.UploadBuffer(ctx, "data", "dir/small.bin", small, nil)
	if err != nil {
		t.Fatal(err)
	}
	if up.ETag == nil || *up.ETag == "" {
		t.Error("upload answered no ETag")
	}
	if b := download(t, c, "data", "dir/small.bin", nil); !bytes.Equal(b, small) {
		t.Fatal("small blob came back different")
	}

	big := randomBytes(t, 64<<20)
	if _, err := c.UploadStream(ctx, "data", "big.bin", bytes.NewReader(big), &azblob.UploadStreamOptions{BlockSize: 8 << 20, Concurrency: 4}); err != nil {
		t.Fatal(err)
	}
	if b := download(t, c, "data", "big.bin", nil); !bytes.Equal(b, big) {
		t.Fatal("64 MiB blob came back different")
	}
	ranged := download(t, c, "data", "big.bin", &azblob.DownloadStreamOptions{Range: azblob.HTTPRange{Offset: 10<<20 + 3, Count: 1000}})
	if !bytes.Equal(ranged, big[10<<20+3:10<<20+1003]) {
		t.Fatal("ranged download differs")
	}
	// Across the boundary of the first and second 8 MiB block.
	ranged = download(t, c, "data", "big.bin", &azblob.DownloadStreamOptions{Range: azblob.HTTPRange{Offset: 8<<20 - 500, Count: 1000}})
	if !bytes.Equal(ranged, big[8<<20-500:8<<20+500]) {
		t.Fatal("ranged download across blocks differs")
	}
	// Get Blob Properties, a conditional Get Blob and a range past the end
	// of the blocks decide before any block is read.
	bigProps, err := c.ServiceClient().NewContainerClient("data").NewBlobClient("big.bin").GetProperties(ctx, nil)
	if err != nil || bigProps.ContentLength == nil || *bigProps.ContentLength != 64<<20 {
		t.Fatalf("properties of the 64 MiB blob: %+v %v", bigProps, err)
	}
	// azblob takes the 304 for a success without a body.
	notModified, err := c.DownloadStream(ctx, "data", "big.bin", &azblob.DownloadStreamOptions{AccessConditions: &azblob.AccessConditions{ModifiedAccessConditions: &sdkblob.ModifiedAccessConditions{IfNoneMatch: bigProps.ETag}}})
	if err != nil || notModified.Body != nil {
		t.Fatalf("download If-None-Match its ETag: body %v, %v; want 304 Not Modified", notModified.Body != nil, err)
	}
	if _, err := c.DownloadStream(ctx, "data", "big.bin", &azblob.DownloadStreamOptions{Range: azblob.HTTPRange{Offset: 64 << 20, Count: 10}}); !bloberror.HasCode(err, bloberror.InvalidRange) {
		t.Fatalf("download past the end: %v, want InvalidRange", err)
	}
	if _, err := c.UploadStream(ctx, "data", "blocks.bin", bytes.NewReader(big[:9<<20]), &azblob.UploadStreamOptions{BlockSize: 4 << 20}); err != nil {
		t.Fatal(err)
	}
	bl, err := c.ServiceClient().NewContainerClient("data").NewBlockBlobClient("blocks.bin").GetBlockList(ctx, blockblob.BlockListTypeAll, nil)
	if err != nil || len(bl.CommittedBlocks) != 3 || len(bl.UncommittedBlocks) != 0 {
		t.Fatalf("block list: %+v %v", bl, err)
	}

	for _, n := range []string{"dir/a", "dir/b", "dir/sub/c", "dir/sub/d", "other"} {
		if _, err := c.UploadBuffer(ctx, "data", n, []byte(n), nil); err != nil {
			t.Fatal(err)
		}
	}
	// Flat listing with a prefix, paged two at a time.
	var names []string
	pager := c.NewListBlobsFlatPager("data", &azblob.ListBlobsFlatOptions{Prefix: to.Ptr("dir/"), MaxResults: to.Ptr(int32(2))})
	pages := 0
	for pager.More() {
		page, err := pager.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		pages++
		for _, b := range page.Segment.BlobItems {
			names = append(names, *b.Name)
		}
	}
	if want := "dir/a dir/b dir/small.bin dir/sub/c dir/sub/d"; strings.Join(names, " ") != want || pages != 3 {
		t.Fatalf("flat listing = %v in %d pages, want %s in 3", names, pages, want)
	}
	// Hierarchical listing with a delimiter.
	cc := c.ServiceClient().NewContainerClient("data")
	hp := cc.NewListBlobsHierarchyPager("/", &container.ListBlobsHierarchyOptions{Prefix: to.Ptr("dir/")})
	var items []string
	for hp.More() {
		page, err := hp.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range page.Segment.BlobPrefixes {
			items = append(items, "P:"+*p.Name)
		}
		for _, b := range page.Segment.BlobItems {
			items = append(items, *b.Name)
		}
	}
	if want := "P:dir/sub/ dir/a dir/b dir/small.bin"; strings.Join(items, " ") != want {
		t.Fatalf("hierarchy listing = %v, want %s", items, want)
	}

	if _, err := c.DeleteBlob(ctx, "data", "dir/a", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := c.DeleteBlob(ctx, "data", "dir/a", nil); !bloberror.HasCode(err, bloberror.BlobNotFound) {
		t.Fatalf("second delete: %v, want BlobNotFound", err)
	}
	// Deleting the container through ARM removes its blobs on disk.
	f.call(t, "DELETE", f.accountID("acct1")+"/blobServices/default/containers/data"+apiV, "", 200)
	if _, err := os.Stat(filepath.Join(f.root, "acct1", "data")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("blobs of the deleted container are still on disk: %v", err)
	}
	if _, err := c.DeleteContainer(ctx, "data", nil); !bloberror.HasCode(err, bloberror.ContainerNotFound) {
		t.Fatalf("delete of ARM-deleted container: %v", err)
	}
	// Deleting the account removes everything.
	if _, err := c.UploadBuffer(ctx, "fromarm", "x", []byte("x"), nil); err != nil {
		t.Fatal(err)
	}
	f.call(t, "DELETE", f.accountID("acct1")+apiV, "", 200)
	if _, err := os.Stat(filepath.Join(f.root, "acct1")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("blobs of the deleted account are still on disk: %v", err)
	}
}

func TestAppendBlobAndMetadata(t *testing.T) {
	f := newFixture(t)
	c := f.sharedKeyClient(t, "acct2", f.account(t, "acct2", ""))
	ctx := context.Background()
	if _, err := c.CreateContainer(ctx, "logs", nil); err != nil {
		t.Fatal(err)
	}
	ab := c.ServiceClient().NewContainerClient("logs").NewAppendBlobClient("log.txt")
	if _, err := ab.Create(ctx, nil); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"one\n", "two\n"} {
		if _, err := ab.AppendBlock(ctx, nopCloser{strings.NewReader(s)}, nil); err != nil {
			t.Fatal(err)
		}
	}
	if b := download(t, c, "logs", "log.txt", nil); string(b) != "one\ntwo\n" {
		t.Fatalf("append blob = %q", b)
	}
	bc := ab.BlobClient()
	if _, err := bc.SetMetadata(ctx, map[string]*string{"owner": to.Ptr("me")}, nil); err != nil {
		t.Fatal(err)
	}
	p, err := bc.GetProperties(ctx, nil)
	if err != nil || meta(p.Metadata, "owner") != "me" || *p.BlobType != "AppendBlob" || *p.ContentLength != 8 {
		t.Fatalf("properties: %+v %v", p, err)
	}
	// If-None-Match: * refuses to overwrite.
	_, err = c.UploadBuffer(ctx, "logs", "log.txt", []byte("x"), &azblob.UploadBufferOptions{AccessConditions: &azblob.AccessConditions{ModifiedAccessConditions: &sdkblob.ModifiedAccessConditions{IfNoneMatch: to.Ptr(azcore.ETagAny)}}})
	if !bloberror.HasCode(err, bloberror.BlobAlreadyExists) {
		t.Fatalf("overwrite with If-None-Match *: %v", err)
	}
}

type nopCloser struct{ io.ReadSeeker }

func (nopCloser) Close() error { return nil }

func TestServiceSAS(t *testing.T) {
	f := newFixture(t)
	key := f.account(t, "acct3", "")
	owner := f.sharedKeyClient(t, "acct3", key)
	ctx := context.Background()
	if _, err := owner.CreateContainer(ctx, "upl", nil); err != nil {
		t.Fatal(err)
	}
	cred, _ := azblob.NewSharedKeyCredential("acct3", key)
	sign := func(perms string, blob string, expiry time.Time) string {
		v := sas.BlobSignatureValues{Protocol: sas.ProtocolHTTPS, ExpiryTime: expiry, ContainerName: "upl", BlobName: blob, Permissions: perms}
		q, err := v.SignWithSharedKey(cred)
		if err != nil {
			t.Fatal(err)
		}
		return q.Encode()
	}
	blobURL := serviceURL("acct3") + "upl/dev1/file.txt?"
	// A blob SAS with create+write uploads (as the IoT device SDK does).
	bb, err := blockblob.NewClientWithNoCredential(blobURL+sign("cw", "dev1/file.txt", time.Now().Add(time.Hour)), &blockblob.ClientOptions{ClientOptions: f.clientOptions().ClientOptions})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bb.UploadBuffer(ctx, []byte("hello"), nil); err != nil {
		t.Fatalf("upload with SAS: %v", err)
	}
	// A container SAS with read downloads.
	rc, _ := azblob.NewClientWithNoCredential(serviceURL("acct3")+"?"+sign("r", "", time.Now().Add(time.Hour)), f.clientOptions())
	if b := download(t, rc, "upl", "dev1/file.txt", nil); string(b) != "hello" {
		t.Fatalf("download with SAS = %q", b)
	}
	// The read-only SAS cannot write: AuthorizationPermissionMismatch.
	if _, err := rc.UploadBuffer(ctx, "upl", "x", []byte("x"), nil); !bloberror.HasCode(err, bloberror.AuthorizationPermissionMismatch) {
		t.Fatalf("write with read SAS: %v", err)
	}
	// A blob SAS does not cover another blob.
	other, _ := blockblob.NewClientWithNoCredential(serviceURL("acct3")+"upl/dev1/other.txt?"+sign("cw", "dev1/file.txt", time.Now().Add(time.Hour)), &blockblob.ClientOptions{ClientOptions: f.clientOptions().ClientOptions})
	if _, err := other.UploadBuffer(ctx, []byte("x"), nil); !bloberror.HasCode(err, bloberror.AuthenticationFailed) {
		t.Fatalf("SAS for another blob: %v", err)
	}
	// An expired SAS: AuthenticationFailed with the reason.
	resp, body := f.raw(t, "GET", blobURL+sign("r", "dev1/file.txt", time.Now().Add(-time.Minute)), nil)
	if resp.StatusCode != 403 || resp.Header.Get("x-ms-error-code") != "AuthenticationFailed" || !strings.Contains(body, "Signed expiry time") {
		t.Fatalf("expired SAS: %d %s", resp.StatusCode, body)
	}
	// A tampered signature.
	tampered := strings.Replace(sign("r", "dev1/file.txt", time.Now().Add(time.Hour)), "sp=r", "sp=rwd", 1)
	resp, body = f.raw(t, "DELETE", blobURL+tampered, nil)
	if resp.StatusCode != 403 || !strings.Contains(body, "Signature did not match") {
		t.Fatalf("tampered SAS: %d %s", resp.StatusCode, body)
	}
}

func TestAccountSASAndUserDelegationRefusedWithoutBearer(t *testing.T) {
	f := newFixture(t)
	key := f.account(t, "acct4", "")
	cred, _ := azblob.NewSharedKeyCredential("acct4", key)
	v := sas.AccountSignatureValues{Protocol: sas.ProtocolHTTPS, ExpiryTime: time.Now().Add(time.Hour),
		Permissions:   to.Ptr(sas.AccountPermissions{Read: true, Write: true, Create: true, List: true}).String(),
		ResourceTypes: to.Ptr(sas.AccountResourceTypes{Service: true, Container: true, Object: true}).String()}
	q, err := v.SignWithSharedKey(cred)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := azblob.NewClientWithNoCredential(serviceURL("acct4")+"?"+q.Encode(), f.clientOptions())
	ctx := context.Background()
	if _, err := c.CreateContainer(ctx, "viaaccountsas", nil); err != nil {
		t.Fatalf("create container with account SAS: %v", err)
	}
	if _, err := c.UploadBuffer(ctx, "viaaccountsas", "b", []byte("b"), nil); err != nil {
		t.Fatal(err)
	}
	if _, err := c.DeleteBlob(ctx, "viaaccountsas", "b", nil); !bloberror.HasCode(err, bloberror.AuthorizationPermissionMismatch) {
		t.Fatalf("delete without d: %v", err)
	}
	// Get User Delegation Key needs a token.
	resp, _ := f.raw(t, "POST", serviceURL("acct4")+"?restype=service&comp=userdelegationkey&"+q.Encode(), strings.NewReader("<KeyInfo><Expiry>2099-01-01T00:00:00Z</Expiry></KeyInfo>"))
	if resp.StatusCode != 403 {
		t.Fatalf("UDK with SAS: %d", resp.StatusCode)
	}
}

func TestBadInput(t *testing.T) {
	f := newFixture(t)
	key := f.account(t, "acct5", "")
	c := f.sharedKeyClient(t, "acct5", key)
	ctx := context.Background()
	if _, err := c.CreateContainer(ctx, "ctr1", nil); err != nil {
		t.Fatal(err)
	}
	// Wrong Shared Key.
	bad := f.sharedKeyClient(t, "acct5", "AAAA"+key[4:])
	if _, err := bad.CreateContainer(ctx, "ctr2", nil); !bloberror.HasCode(err, bloberror.AuthenticationFailed) {
		t.Fatalf("wrong key: %v", err)
	}
	// No credentials at all: 401 with the Bearer challenge.
	resp, _ := f.raw(t, "GET", serviceURL("acct5")+"ctr1?restype=container&comp=list", nil)
	if resp.StatusCode != 401 || !strings.Contains(resp.Header.Get("WWW-Authenticate"), "resource_id=https://storage.azure.com") || !strings.Contains(resp.Header.Get("WWW-Authenticate"), f.tenant) {
		t.Fatalf("anonymous: %d %v", resp.StatusCode, resp.Header)
	}
	// Unknown account.
	resp, _ = f.raw(t, "GET", serviceURL("nosuch")+"?comp=list", nil)
	if resp.StatusCode != 404 || resp.Header.Get("x-ms-error-code") != "ResourceNotFound" {
		t.Fatalf("unknown account: %d", resp.StatusCode)
	}
	// Malformed block list XML, and a list naming a block never staged:
	// the existing blob stays as it was.
	if _, err := c.UploadBuffer(ctx, "ctr1", "keep", []byte("original"), nil); err != nil {
		t.Fatal(err)
	}
	bb := c.ServiceClient().NewContainerClient("ctr1").NewBlockBlobClient("keep")
	if _, err := bb.CommitBlockList(ctx, []string{"AAAA"}, nil); !bloberror.HasCode(err, bloberror.InvalidBlockList) {
		t.Fatalf("commit of an unstaged block: %v", err)
	}
	for _, body := range []string{"<BlockList><Latest>AAAA", "<Nope/>", "<BlockList><Latest>!!notbase64</Latest></BlockList>"} {
		resp := f.sharedKeyRaw(t, "acct5", key, "PUT", serviceURL("acct5")+"ctr1/keep?comp=blocklist", body)
		if resp.StatusCode != 400 {
			t.Errorf("block list %q: %d, want 400", body, resp.StatusCode)
		}
	}
	if b := download(t, c, "ctr1", "keep", nil); string(b) != "original" {
		t.Fatalf("blob after refused block lists = %q", b)
	}
	// Path traversal: names are data, never paths.
	for _, name := range []string{"../../escape", "..%2F..%2Fescape2", "/abs/olute", "a/../../../b", `..\..\win`} {
		if _, err := c.UploadBuffer(ctx, "ctr1", name, []byte(name), nil); err != nil {
			t.Fatalf("upload %q: %v", name, err)
		}
		if b := download(t, c, "ctr1", name, nil); string(b) != name {
			t.Fatalf("%q came back as %q", name, b)
		}
	}
	filepath.Walk(filepath.Dir(f.root), func(p string, info os.FileInfo, err error) error {
		if err == nil && !strings.HasPrefix(p, f.root) && strings.Contains(info.Name(), "escape") {
			t.Errorf("a blob escaped the root: %s", p)
		}
		return nil
	})
	resp = f.sharedKeyRaw(t, "acct5", key, "PUT", serviceURL("acct5")+"ctr1/nul%00name", "x", "x-ms-blob-type", "BlockBlob")
	if resp.StatusCode != 400 || resp.Header.Get("x-ms-error-code") != "InvalidResourceName" {
		t.Fatalf("NUL in a name: %d %s", resp.StatusCode, resp.Header.Get("x-ms-error-code"))
	}
	resp = f.sharedKeyRaw(t, "acct5", key, "PUT", serviceURL("acct5")+"Bad_Name?restype=container", "")
	if resp.StatusCode != 400 || resp.Header.Get("x-ms-error-code") != "InvalidResourceName" {
		t.Fatalf("bad container name: %d", resp.StatusCode)
	}

	// Shared Key disabled on the account.
	f.call(t, "PUT", f.accountID("acct5")+apiV, `{"location":"westus","properties":{"allowSharedKeyAccess":false}}`, 200)
	f.dirs.Invalidate()
	if _, err := c.CreateContainer(ctx, "ctr3", nil); !bloberror.HasCode(err, "KeyBasedAuthenticationNotPermitted") {
		t.Fatalf("shared key when disabled: %v", err)
	}
	// Network rules: default Deny without a matching rule.
	f.call(t, "PUT", f.accountID("acct5")+apiV, `{"location":"westus","properties":{"networkAcls":{"defaultAction":"Deny","ipRules":[{"value":"203.0.113.9"}]}}}`, 200)
	if _, err := c.CreateContainer(ctx, "ctr4", nil); !bloberror.HasCode(err, "AuthorizationFailure") || !strings.Contains(err.Error(), "203.0.113") && !strings.Contains(err.Error(), "deny") {
		t.Fatalf("network rules: %v", err)
	}
}

// sharedKeyRaw sends a request signed with the account key through the
// azblob pipeline's own signing policy (a raw body the SDK would not send).
func (f *fixture) sharedKeyRaw(t *testing.T, account, key, method, url, body string, headers ...string) *http.Response {
	t.Helper()
	req, _ := http.NewRequest(method, url, strings.NewReader(body))
	req.Header.Set("x-ms-date", time.Now().UTC().Format(http.TimeFormat))
	req.Header.Set("x-ms-version", "2025-11-05")
	req.Header.Set("Content-Length", fmt.Sprint(len(body)))
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	signRequest(t, account, key, req)
	resp, err := armtest.DialTo(f.blobSrv).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp
}

// signRequest signs a request with Shared Key the way the REST reference
// describes it (headers in byte order), independently of the server code.
func signRequest(t *testing.T, account, key string, req *http.Request) {
	t.Helper()
	k, err := base64.StdEncoding.DecodeString(key)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for n := range req.Header {
		if l := strings.ToLower(n); strings.HasPrefix(l, "x-ms-") {
			names = append(names, l)
		}
	}
	sort.Strings(names)
	var ch []string
	for _, n := range names {
		ch = append(ch, n+":"+req.Header.Get(n))
	}
	cr := "/" + account + req.URL.EscapedPath()
	q := req.URL.Query()
	var qn []string
	for n := range q {
		qn = append(qn, n)
	}
	sort.Strings(qn)
	for _, n := range qn {
		cr += "\n" + strings.ToLower(n) + ":" + strings.Join(q[n], ",")
	}
	length := req.Header.Get("Content-Length")
	if length == "0" {
		length = ""
	}
	sts := strings.Join([]string{req.Method, "", "", length, "", req.Header.Get("Content-Type"), "", "", "", "", "", "", strings.Join(ch, "\n"), cr}, "\n")
	m := hmac.New(sha256.New, k)
	m.Write([]byte(sts))
	req.Header.Set("Authorization", "SharedKey "+account+":"+base64.StdEncoding.EncodeToString(m.Sum(nil)))
}

// meta reads a metadata value whatever case the SDK gave its name.
func meta(m map[string]*string, name string) string {
	for k, v := range m {
		if strings.EqualFold(k, name) && v != nil {
			return *v
		}
	}
	return ""
}
