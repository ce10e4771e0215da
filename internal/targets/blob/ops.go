package blob

import (
	"context"
	"encoding/base64"
	"errors"
	"io"
	"io/fs"
	"net/http"
	"strings"

	"github.com/outpost-iot/outpost/internal/store"
	"github.com/outpost-iot/outpost/internal/targets/access"
)

// level is the resource level of an operation, as account SAS srt names it.
type level byte

const (
	levelService   level = 's'
	levelContainer level = 'c'
	levelObject    level = 'o'
)

// RBAC actions of the blob service.
const (
	actContainerRead   = "Microsoft.Storage/storageAccounts/blobServices/containers/read"
	actContainerWrite  = "Microsoft.Storage/storageAccounts/blobServices/containers/write"
	actContainerDelete = "Microsoft.Storage/storageAccounts/blobServices/containers/delete"
	actBlobRead        = "Microsoft.Storage/storageAccounts/blobServices/containers/blobs/read"
	actBlobWrite       = "Microsoft.Storage/storageAccounts/blobServices/containers/blobs/write"
	actBlobDelete      = "Microsoft.Storage/storageAccounts/blobServices/containers/blobs/delete"
	actBlobAdd         = "Microsoft.Storage/storageAccounts/blobServices/containers/blobs/add/action"
	actDelegationKey   = "Microsoft.Storage/storageAccounts/blobServices/generateUserDelegationKey/action"
)

type runFunc func(h *Handler, ctx context.Context, rq *request, caller *access.Caller) error

// operation is one Blob REST operation and what it takes to be allowed.
type operation struct {
	name string
	// action is the RBAC action checked for Bearer callers and user
	// delegation SAS; dataAction says which kind it is.
	action     string
	dataAction bool
	// onAccount checks RBAC at the account (or its blob service) rather
	// than at the container.
	onAccount bool
	// sasPerms are the SAS permission letters, any one of which suffices.
	sasPerms string
	level    level
	// accountSASOnly operations cannot be done with a service SAS.
	accountSASOnly bool
	// anonymous is the container publicAccess ("Blob" or "Container")
	// that admits the operation without credentials; "" never.
	anonymous  string
	bearerOnly bool
	run        runFunc
}

func (o operation) scope(rq *request) string {
	switch {
	case o.action == actDelegationKey:
		return rq.account.ResourceID
	case o.onAccount:
		return rq.account.BlobServiceID()
	}
	return rq.account.ContainerID(rq.container)
}

// permitSAS checks a verified token's resource type and permissions.
func (o operation) permitSAS(t sasToken, rq *request) error {
	mismatch := func(format string, args ...any) error {
		return errorf(http.StatusForbidden, "AuthorizationResourceTypeMismatch",
			"This request is not authorized to perform this operation using this resource type. "+format, args...)
	}
	if t.kind == accountSAS {
		if !strings.ContainsRune(t.get("srt"), rune(o.level)) {
			return mismatch("%s is a %s-level operation; the account SAS covers resource types '%s'.", o.name, levelName(o.level), t.get("srt"))
		}
	} else {
		if o.accountSASOnly {
			return mismatch("%s needs an account SAS (or a token); a %s covers only blobs and blob listing.", o.name, t.kind)
		}
		switch t.get("sr") {
		case "c":
		case "b":
			if o.level != levelObject {
				return mismatch("%s works on a container; the SAS covers one blob (sr=b). Sign it with sr=c.", o.name)
			}
		default:
			return mismatch("sr '%s' is not supported: sign the SAS for a blob (b) or a container (c).", t.get("sr"))
		}
	}
	sp := t.get("sp")
	if !strings.ContainsAny(sp, o.sasPerms) {
		return errPermissionMismatch("The SAS grants '" + sp + "'; " + o.name + " needs one of '" + o.sasPerms + "'.")
	}
	return nil
}

func levelName(l level) string {
	switch l {
	case levelService:
		return "service"
	case levelContainer:
		return "container"
	}
	return "object"
}

func unsupportedVerb(r *http.Request) error {
	return errorf(http.StatusMethodNotAllowed, "UnsupportedHttpVerb",
		"The resource doesn't support specified Http Verb: %s %s?%s.", r.Method, r.URL.Path, r.URL.RawQuery)
}

// classify names the operation of a request.
func classify(r *http.Request, container, blob string) (operation, error) {
	q := r.URL.Query()
	restype, comp := strings.ToLower(q.Get("restype")), strings.ToLower(q.Get("comp"))
	m := r.Method
	read := m == http.MethodGet || m == http.MethodHead
	switch {
	case container == "":
		switch {
		case m == http.MethodGet && comp == "list":
			return operation{name: "List Containers", action: actContainerRead, onAccount: true, sasPerms: "l", level: levelService, accountSASOnly: true, run: (*Handler).listContainers}, nil
		case m == http.MethodPost && restype == "service" && comp == "userdelegationkey":
			return operation{name: "Get User Delegation Key", action: actDelegationKey, bearerOnly: true, level: levelService, run: (*Handler).userDelegationKey}, nil
		case read && restype == "account" && comp == "properties":
			return accountInfoOp(), nil
		case read && restype == "service" && comp == "properties":
			return operation{name: "Get Blob Service Properties", action: actContainerRead, onAccount: true, sasPerms: "r", level: levelService, accountSASOnly: true, run: (*Handler).serviceProperties}, nil
		}
		return operation{}, errInvalidQuery("comp", comp, "the account supports GET ?comp=list, POST ?restype=service&comp=userdelegationkey and GET ?restype=account&comp=properties")
	case blob == "":
		if read && restype == "account" && comp == "properties" {
			return accountInfoOp(), nil
		}
		if restype != "container" {
			return operation{}, errInvalidQuery("restype", restype, "container operations need restype=container")
		}
		switch {
		case m == http.MethodPut && comp == "":
			return operation{name: "Create Container", action: actContainerWrite, sasPerms: "cw", level: levelContainer, accountSASOnly: true, run: (*Handler).createContainer}, nil
		case m == http.MethodPut && comp == "metadata":
			return operation{name: "Set Container Metadata", action: actContainerWrite, sasPerms: "w", level: levelContainer, accountSASOnly: true, run: (*Handler).setContainerMetadata}, nil
		case m == http.MethodPut && comp == "acl":
			return operation{name: "Set Container ACL", action: actContainerWrite, sasPerms: "w", level: levelContainer, accountSASOnly: true, run: (*Handler).setContainerACL}, nil
		case read && (comp == "" || comp == "metadata"):
			return operation{name: "Get Container Properties", action: actContainerRead, sasPerms: "r", level: levelContainer, anonymous: "Container", run: (*Handler).containerProperties}, nil
		case read && comp == "acl":
			return operation{name: "Get Container ACL", action: actContainerRead, sasPerms: "r", level: levelContainer, accountSASOnly: true, run: (*Handler).containerACL}, nil
		case m == http.MethodDelete && comp == "":
			return operation{name: "Delete Container", action: actContainerDelete, sasPerms: "d", level: levelContainer, accountSASOnly: true, run: (*Handler).deleteContainer}, nil
		case m == http.MethodGet && comp == "list":
			return operation{name: "List Blobs", action: actBlobRead, dataAction: true, sasPerms: "l", level: levelContainer, anonymous: "Container", run: (*Handler).listBlobs}, nil
		}
		if comp != "" {
			return operation{}, errInvalidQuery("comp", comp, "containers support comp=list, metadata and acl")
		}
		return operation{}, unsupportedVerb(r)
	}
	obj := func(name, action, perms string, run runFunc) (operation, error) {
		return operation{name: name, action: action, dataAction: true, sasPerms: perms, level: levelObject, run: run}, nil
	}
	switch {
	case m == http.MethodPut && comp == "":
		return obj("Put Blob", actBlobWrite, "cw", (*Handler).putBlob)
	case m == http.MethodPut && comp == "block":
		return obj("Put Block", actBlobWrite, "cw", (*Handler).putBlock)
	case m == http.MethodPut && comp == "blocklist":
		return obj("Put Block List", actBlobWrite, "cw", (*Handler).putBlockList)
	case m == http.MethodPut && comp == "appendblock":
		return obj("Append Block", actBlobAdd, "aw", (*Handler).appendBlock)
	case m == http.MethodPut && comp == "metadata":
		return obj("Set Blob Metadata", actBlobWrite, "w", (*Handler).setBlobMetadata)
	case m == http.MethodPut && comp == "properties":
		return obj("Set Blob Properties", actBlobWrite, "w", (*Handler).setBlobProperties)
	case read && comp == "":
		op, _ := obj("Get Blob", actBlobRead, "r", (*Handler).getBlob)
		op.anonymous = "Blob"
		return op, nil
	case read && comp == "metadata":
		op, _ := obj("Get Blob Metadata", actBlobRead, "r", (*Handler).getBlobMetadata)
		op.anonymous = "Blob"
		return op, nil
	case m == http.MethodGet && comp == "blocklist":
		return obj("Get Block List", actBlobRead, "r", (*Handler).getBlockList)
	case m == http.MethodDelete && comp == "":
		return obj("Delete Blob", actBlobDelete, "d", (*Handler).deleteBlob)
	}
	if comp != "" {
		return operation{}, errInvalidQuery("comp", comp, "blobs support comp=block, blocklist, appendblock, metadata and properties")
	}
	return operation{}, unsupportedVerb(r)
}

func accountInfoOp() operation {
	return operation{name: "Get Account Information", action: actContainerRead, onAccount: true, sasPerms: "rwdlacup", level: levelService, run: (*Handler).accountInfo}
}

// ---- small helpers ----

func ioCopyN(r io.Reader, n int64) (int64, error) { return io.CopyN(io.Discard, r, n) }

func decodeBase64(s string) ([]byte, error) { return base64.StdEncoding.DecodeString(s) }

func isNotExist(err error) bool {
	return errors.Is(err, fs.ErrNotExist) || errors.Is(err, store.ErrNotFound)
}
