// Command whoami gets a storage token with azidentity's
// DefaultAzureCredential and prints the token's claims as JSON. The identity
// tests run it under `outpost run --as` to prove the program really runs as
// the managed identity.
package main

import (
	"context"
	"encoding/base64"
	"fmt"
	"os"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
)

func main() {
	cred, err := azidentity.NewDefaultAzureCredential(nil)
	if err != nil {
		fmt.Fprintln(os.Stderr, "credential:", err)
		os.Exit(2)
	}
	tok, err := cred.GetToken(context.Background(), policy.TokenRequestOptions{Scopes: []string{"https://storage.azure.com/.default"}})
	if err != nil {
		fmt.Fprintln(os.Stderr, "token:", err)
		os.Exit(3)
	}
	parts := strings.Split(tok.Token, ".")
	if len(parts) != 3 {
		fmt.Fprintln(os.Stderr, "not a JWT")
		os.Exit(4)
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, "payload:", err)
		os.Exit(5)
	}
	fmt.Println(string(payload))
}
