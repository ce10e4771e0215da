package hubresource

import (
	"fmt"
	"net/http"
	"strings"

	"github.com/outpost-iot/outpost/internal/arm"
)

// Error codes of IoT Hub's resource provider. The provider reports
// validation failures with IoT Hub's numeric codes (a partition count out of
// range is 400016, "IH400016" in the message of real hubs) and hub-name
// problems with the names of its error-code enum.
const (
	codeInvalidName      = "InvalidIotHubName"
	codeNameNotAvailable = "IotHubNameNotAvailable"
	// codeArgumentInvalid is IoT Hub's ArgumentInvalid: "one or more
	// arguments in the request are invalid".
	codeArgumentInvalid = "400004"
	// codeInvalidPartitionCount is what IoT Hub answers for a partition
	// count outside the sku's range.
	codeInvalidPartitionCount = "400016"
	// codeTooManyPolicies is the quota error for shared access policies.
	codeTooManyPolicies = "AuthorizationRulesExceededQuota"
)

// flat builds an error rendered in the provider's flat shape, not in the
// ARM envelope.
func flat(status int, code, format string, args ...any) *arm.Error {
	e := arm.Errorf(status, code, format, args...)
	e.Flat = true
	return e
}

// invalid is a 400 ArgumentInvalid naming what to fix.
func invalid(format string, args ...any) *arm.Error {
	return flat(http.StatusBadRequest, codeArgumentInvalid, format, args...)
}

// nameProblem says what is wrong with a hub name, or "" when it is valid:
// ^(?![0-9]+$)(?!-)[a-zA-Z0-9-]{2,49}[a-zA-Z0-9]$ (Go's regexp has no
// lookahead, so the rule is spelled out).
func nameProblem(name string) string {
	switch {
	case len(name) < 3 || len(name) > 50:
		return fmt.Sprintf("it has %d characters; use 3 to 50", len(name))
	case strings.HasPrefix(name, "-"):
		return "it starts with '-'; start with a letter or digit"
	case strings.HasSuffix(name, "-"):
		return "it ends with '-'; end with a letter or digit"
	}
	digits := true
	for _, r := range name {
		switch {
		case r >= '0' && r <= '9':
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r == '-':
			digits = false
		default:
			return fmt.Sprintf("it contains %q; use only letters, digits and '-'", r)
		}
	}
	if digits {
		return "it has only digits; include a letter or '-'"
	}
	return ""
}

func errInvalidName(name, problem string) *arm.Error {
	return flat(http.StatusBadRequest, codeInvalidName,
		"IotHub name '%s' is invalid: %s. A hub name has 3-50 letters, digits or '-', starts and ends with a letter or digit, and is not only digits.", name, problem)
}

func errNameNotAvailable(name string) *arm.Error {
	return flat(http.StatusConflict, codeNameNotAvailable,
		"IotHub name '%s' is not available: another IoT hub of this installation already uses it. Hub names are host names ({name}.<dns suffix>), so they are unique across all subscriptions and resource groups; choose another name.", name)
}
