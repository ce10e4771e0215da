// Package sas parses, signs and verifies shared access signature tokens of
// IoT Hub, Event Hubs and Service Bus:
//
//	SharedAccessSignature sr={url-encoded resource}&sig={url-encoded base64 HMAC}&se={expiry}[&skn={policy}]
//
// The signature is HMAC-SHA256 over the
// URL-encoded resource URI as it appears in the token, "\n", and the expiry;
// IoT Hub keys the HMAC with the base64-decoded key (Verify, Sign), Event
// Hubs and Service Bus with the key string's bytes (VerifyRawKey, SignRawKey).
// Verification uses the sr value exactly as sent, so tokens from SDKs that
// encode differently (%2f or %2F) verify alike. A token's scope covers a
// target resource when its resource URI is a segment prefix of the target's,
// compared case-insensitively.
package sas
