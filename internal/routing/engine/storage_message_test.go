package engine

import (
	"strings"
	"testing"
)

// TestXMLMessage: a storage refusal's <Message> reaches endpoint health
// unescaped, on one line, and bounded like the messaging errors.
func TestXMLMessage(t *testing.T) {
	body := `RESPONSE 403: 403 This request is not authorized
<?xml version="1.0" encoding="utf-8"?><Error><Code>AuthorizationPermissionMismatch</Code><Message>The principal &apos;a&apos; lacks &quot;write&quot; &amp; more
RequestId:1</Message></Error>`
	if got, want := xmlMessage(body), `The principal 'a' lacks "write" & more`; got != want {
		t.Errorf("xmlMessage = %q, want %q", got, want)
	}
	if got := xmlMessage("no XML here"); got != "" {
		t.Errorf("xmlMessage of a body without <Message> = %q, want empty", got)
	}
	long := xmlMessage("<Message>" + strings.Repeat("x", 600) + "</Message>")
	if len(long) != 512+len("…") {
		t.Errorf("a long message is %d bytes, want it cut at 512", len(long))
	}
}
