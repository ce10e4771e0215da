package portal

import (
	"net/http"
	"testing"
)

// TestParseAPIError: each API surface's error shape becomes a code and a
// message.
func TestParseAPIError(t *testing.T) {
	for _, c := range []struct {
		name, body, code, message string
	}{
		{"ARM envelope", `{"error":{"code":"AuthorizationFailed","message":"The client 'x' ..."}}`, "AuthorizationFailed", "The client 'x' ..."},
		{"IoT Hub resource provider (flat)", `{"code":"400004","httpStatusCode":"BadRequest","message":"endpoint 'e' uses it"}`, "400004", "endpoint 'e' uses it"},
		{"IoT Hub data plane", `{"Message":"ErrorCode:ArgumentInvalid;Device id is invalid","ExceptionMessage":"Tracking ID:1"}`, "ArgumentInvalid", "Device id is invalid"},
		{"OAuth2", `{"error":"invalid_client","error_description":"AADSTS7000215: Invalid client secret."}`, "invalid_client", "AADSTS7000215: Invalid client secret."},
		{"not JSON", `upstream failed`, "Bad Request", "upstream failed"},
	} {
		e := parseAPIError(&apiResponse{status: http.StatusBadRequest, body: []byte(c.body)})
		if e.Status != http.StatusBadRequest || e.Code != c.code || e.Message != c.message {
			t.Errorf("%s: %+v, want %s / %s", c.name, e, c.code, c.message)
		}
	}
}

// TestSafeNext: sign-in only returns to portal paths.
func TestSafeNext(t *testing.T) {
	for in, want := range map[string]string{
		"/portal/iam?id=x":       "/portal/iam?id=x",
		"//evil.example/portal/": Prefix,
		"https://evil.example/":  Prefix,
		"/portal\\@evil":         Prefix,
		"/outpost/directory":     Prefix,
		"":                       Prefix,
	} {
		if got := safeNext(in); got != want {
			t.Errorf("safeNext(%q) = %q, want %q", in, got, want)
		}
	}
}
