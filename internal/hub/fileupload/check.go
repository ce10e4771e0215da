package fileupload

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/outpost-iot/outpost/internal/egress"
)

// CheckError is a failed file upload reachability check. Its message says
// what is missing and how to fix it; the control plane shows it as is.
type CheckError struct {
	Message string
	Err     error
}

func (e *CheckError) Error() string { return e.Message }
func (e *CheckError) Unwrap() error { return e.Err }

// Check makes a real round trip with the configured credentials, as the hub
// will at upload time: for identityBased settings it gets a user delegation
// key with the hub's identity (what a device's SAS is signed with), then it
// writes and deletes a probe blob ".outpost-file-upload-check-{random}" in
// the container. A failure is a *CheckError saying what is missing: a role
// assignment, the container, network access, a usable key.
func (s *Service) Check(ctx context.Context, st Settings, hubResourceID string) error {
	fail := func(what string, err error) error {
		return &CheckError{Message: fmt.Sprintf("File upload check failed (%s): %s", what, describeStorageFailure(st, hubResourceID, s.principalOf(ctx, st, hubResourceID), err)), Err: err}
	}
	if st.IdentityBased {
		if _, err := s.storage.delegationKey(ctx, st, hubResourceID); err != nil {
			return fail("get a user delegation key", err)
		}
	}
	c, err := s.storage.client(st, hubResourceID)
	if err != nil {
		return fail("build the storage client", err)
	}
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	probe := ".outpost-file-upload-check-" + hex.EncodeToString(b)
	bc := c.NewContainerClient(st.Container).NewBlockBlobClient(probe)
	if _, err := bc.UploadBuffer(ctx, []byte("outpost file upload check\n"), nil); err != nil {
		return fail("write a probe blob", err)
	}
	if _, err := bc.Delete(ctx, nil); err != nil {
		return fail("delete the probe blob "+probe, err)
	}
	return nil
}

// principalOf names the principal of the identity in messages, read from a
// token's oid; empty when none can be had.
func (s *Service) principalOf(ctx context.Context, st Settings, hubResourceID string) string {
	if !st.IdentityBased {
		return ""
	}
	tok, err := s.storage.tokens.ManagedIdentityToken(ctx, hubResourceID, st.UserAssignedIdentity, storageResource)
	if err != nil {
		return ""
	}
	return peekClaims(tok).OID
}

// describeStorageFailure says in one sentence what a failed storage call
// means for the operator.
func describeStorageFailure(st Settings, hubResourceID, principalID string, err error) string {
	who := "the account key of the connection string"
	if st.IdentityBased {
		who = describeIdentity(hubResourceID, st.UserAssignedIdentity, principalID)
	}
	var refused *egress.RefusedError
	if errors.As(err, &refused) {
		return fmt.Sprintf("the egress refused to connect to %s: %v", st.ServiceURL(), refused)
	}
	status, code, msg, ok := storageFailure(err)
	if !ok {
		if st.IdentityBased && strings.Contains(err.Error(), "token of") {
			return fmt.Sprintf("no token could be had for %s: %v. Check that the hub has this identity (identity block of the hub).", who, err)
		}
		return fmt.Sprintf("cannot reach %s: %v", st.ServiceURL(), err)
	}
	detail := fmt.Sprintf("%d %s", status, code)
	if msg != "" {
		detail += " (" + msg + ")"
	}
	switch {
	case code == "ContainerNotFound":
		return fmt.Sprintf("container '%s' not found in account '%s': %s; create it or change storageEndpoints.$default.containerName.", st.Container, st.Account, detail)
	case code == "ResourceNotFound" || code == "AccountNotFound" || (status == http.StatusNotFound && code == ""):
		return fmt.Sprintf("storage account '%s' not found at %s: %s; check the connection string.", st.Account, st.ServiceURL(), detail)
	case code == "KeyBasedAuthenticationNotPermitted":
		return fmt.Sprintf("account '%s' does not allow shared key access: %s; use authenticationType identityBased, or set allowSharedKeyAccess true on the account.", st.Account, detail)
	case st.IdentityBased && code == "AuthorizationPermissionMismatch":
		return fmt.Sprintf("%s cannot write to container '%s' of account '%s': %s; grant it 'Storage Blob Data Contributor' on the account or container.", who, st.Container, st.Account, detail)
	case code == "AuthorizationFailure" || code == "AuthorizationSourceIPMismatch" || strings.Contains(strings.ToLower(msg), "network"):
		return fmt.Sprintf("account '%s' refused %s by its network rules: %s; allow public network access, add an IP rule, or (for the hub's system-assigned identity) enable the trusted services bypass.", st.Account, who, detail)
	case code == "AuthenticationFailed":
		return fmt.Sprintf("account '%s' did not accept %s: %s; check the key in the connection string (or the identity).", st.Account, who, detail)
	}
	return fmt.Sprintf("account '%s' answered %s to %s.", st.Account, detail, who)
}
