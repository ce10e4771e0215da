// Package mitoken holds what the in-process consumers of managed identity
// tokens (App.ManagedIdentityToken: jobs' import/export, routing's storage
// and messaging endpoints) need to know about a token without verifying it.
package mitoken
