package e2e

import "testing"

// TestAzuriteBlobSuite validates the npm blob conformance suite
// (test/clients/storage-blob.test.mjs, @azure/storage-blob) against Azurite,
// the reference emulator, with shared key and with SAS authentication. The
// same suite judges Outpost's blob service; this run shows that what it
// expects is what the reference does. BLOB_PEER=azurite relaxes the one
// assertion on which Azurite differs from real Azure (the error code of a
// bad signature; see the suite).
func TestAzuriteBlobSuite(t *testing.T) {
	endpoint, caFile := startAzurite(t)
	for _, auth := range []string{"sharedkey", "sas"} {
		t.Run(auth, func(t *testing.T) {
			runBlobSuite(t, map[string]string{
				"BLOB_ENDPOINT":       endpoint,
				"BLOB_AUTH":           auth,
				"BLOB_ACCOUNT":        azuriteAccount,
				"BLOB_KEY":            azuriteKey,
				"BLOB_PEER":           "azurite",
				"NODE_EXTRA_CA_CERTS": caFile,
			})
		})
	}
}
