package query

import (
	"strings"
	"unicode/utf8"
)

// Message is what a condition reads from a message. The routing engine
// implements it on its own message type, so evaluating a condition copies
// nothing and allocates nothing; MessageData is a map-backed implementation.
type Message interface {
	// AppProperty returns an application property. IoT Hub matches
	// application property names case-insensitively.
	AppProperty(name string) (value string, ok bool)
	// SystemProperty returns a system property by its routing keyword
	// without the '$' (contentType, connectionDeviceId, enqueuedTime, ...;
	// see the Sys constants). Conditions pass the canonical spelling of the
	// documented keywords and other names as written.
	SystemProperty(name string) (value string, ok bool)
	// Body returns the raw message body. It is read at most once per
	// message (see Input) and only when the SysContentType and
	// SysContentEncoding properties say it is JSON.
	Body() []byte
	// Twin returns the JSON twin of the sending device, or of the module for
	// module messages ({"tags": {...}, "properties": {"desired": {...},
	// "reported": {...}}}), or nil if there is none. Read at most once per
	// message.
	Twin() []byte
}

// Routing keywords of the system properties IoT Hub documents for route
// conditions ($contentType, $connectionDeviceId, ...). Compile maps any
// spelling of these ($CONTENTTYPE) to the one below before it calls
// Message.SystemProperty.
const (
	SysMessageID                    = "messageId"
	SysCorrelationID                = "correlationId"
	SysUserID                       = "userId"
	SysTo                           = "to"
	SysContentType                  = "contentType"
	SysContentEncoding              = "contentEncoding"
	SysConnectionDeviceID           = "connectionDeviceId"
	SysConnectionModuleID           = "connectionModuleId"
	SysConnectionDeviceGenerationID = "connectionDeviceGenerationId"
	SysConnectionAuthMethod         = "connectionAuthMethod"
	SysEnqueuedTime                 = "enqueuedTime"
	SysDTDataSchema                 = "dt-dataschema"
	SysDTSubject                    = "dt-subject"
)

var systemKeywords = [...]string{
	SysMessageID, SysCorrelationID, SysUserID, SysTo, SysContentType, SysContentEncoding,
	SysConnectionDeviceID, SysConnectionModuleID, SysConnectionDeviceGenerationID,
	SysConnectionAuthMethod, SysEnqueuedTime, SysDTDataSchema, SysDTSubject,
}

func canonicalSystemName(name string) string {
	for _, k := range systemKeywords {
		if strings.EqualFold(k, name) {
			return k
		}
	}
	return name
}

// MessageData is a Message backed by maps, for tests, the route test API
// and engines that already hold maps. The zero value is an empty message.
type MessageData struct {
	Properties       map[string]string // application properties
	SystemProperties map[string]string // keyed by routing keyword, e.g. SysContentType
	Payload          []byte
	TwinJSON         []byte
}

func (m *MessageData) AppProperty(name string) (string, bool) {
	return LookupFold(m.Properties, name)
}

func (m *MessageData) SystemProperty(name string) (string, bool) {
	return LookupFold(m.SystemProperties, name)
}

func (m *MessageData) Body() []byte { return m.Payload }

func (m *MessageData) Twin() []byte { return m.TwinJSON }

// LookupFold finds a key case-insensitively without allocating: an exact
// hit first, then a scan. IoT Hub keeps one of several properties whose
// names differ only in case, so which one wins is unspecified.
func LookupFold(m map[string]string, name string) (string, bool) {
	if v, ok := m[name]; ok {
		return v, true
	}
	for k, v := range m {
		if strings.EqualFold(k, name) {
			return v, true
		}
	}
	return "", false
}

type docState uint8

const (
	docUnread  docState = iota
	docReady            // parsed; lookups read the tape
	docMissing          // absent, not JSON, or invalid: every path is undefined
)

// Input carries one message through any number of conditions. It parses
// the body and the twin lazily, at most once each per message, and keeps
// its buffers from message to message, so a routing worker that reuses one
// Input evaluates without allocating once the buffers have grown. An Input
// is not safe for concurrent use; a Condition is.
type Input struct {
	msg       Message
	body      jsonDoc
	twin      jsonDoc
	bodyState docState
	twinState docState
	arena     []byte // strings built during one Eval; see arenaString
	parsed    int    // JSON documents parsed; tests hold the at-most-once promise to it
}

// NewInput returns an Input holding m.
func NewInput(m Message) *Input {
	in := &Input{}
	in.Reset(m)
	return in
}

// Reset makes the Input hold the next message and forgets the previous
// one's parsed body and twin.
func (in *Input) Reset(m Message) {
	in.msg = m
	in.bodyState = docUnread
	in.twinState = docUnread
	in.arena = in.arena[:0]
}

// bodyDoc parses the body on first use. IoT Hub queries a body only when
// contentType is application/json and contentEncoding is UTF-8, UTF-16 or
// UTF-32 (both compared case-insensitively, without parameters, as IoT
// Edge does); anything else, invalid JSON included, makes $body paths
// undefined without failing the route.
func (in *Input) bodyDoc() *jsonDoc {
	switch in.bodyState {
	case docReady:
		return &in.body
	case docMissing:
		return nil
	}
	in.bodyState = docMissing
	if in.msg == nil {
		return nil
	}
	if ct, ok := in.msg.SystemProperty(SysContentType); !ok || !strings.EqualFold(ct, "application/json") {
		return nil
	}
	enc, ok := in.msg.SystemProperty(SysContentEncoding)
	if !ok {
		return nil
	}
	raw := in.msg.Body()
	switch {
	case strings.EqualFold(enc, "utf-8"):
		// Copied so that the strings a lookup returns cannot change under
		// the evaluator if the caller reuses the body buffer.
		in.body.src = append(in.body.src[:0], raw...)
	case strings.EqualFold(enc, "utf-16"):
		in.body.src = appendUTF16LE(in.body.src[:0], raw)
	case strings.EqualFold(enc, "utf-32"):
		in.body.src = appendUTF32LE(in.body.src[:0], raw)
	default:
		return nil
	}
	in.parsed++
	if !in.body.parse() {
		return nil
	}
	in.bodyState = docReady
	return &in.body
}

func (in *Input) twinDoc() *jsonDoc {
	switch in.twinState {
	case docReady:
		return &in.twin
	case docMissing:
		return nil
	}
	in.twinState = docMissing
	if in.msg == nil {
		return nil
	}
	raw := in.msg.Twin()
	if len(raw) == 0 {
		return nil
	}
	in.twin.src = append(in.twin.src[:0], raw...)
	in.parsed++
	if !in.twin.parse() {
		return nil
	}
	in.twinState = docReady
	return &in.twin
}

// appendUTF16LE transcodes little-endian UTF-16 (what .NET's
// Encoding.Unicode, IoT Hub's "utf-16", reads) to UTF-8. Unpaired
// surrogates and a trailing odd byte become U+FFFD.
func appendUTF16LE(dst, src []byte) []byte {
	for i := 0; i+1 < len(src); i += 2 {
		u := rune(src[i]) | rune(src[i+1])<<8
		if u >= 0xD800 && u < 0xDC00 && i+3 < len(src) {
			if l := rune(src[i+2]) | rune(src[i+3])<<8; l >= 0xDC00 && l < 0xE000 {
				dst = utf8.AppendRune(dst, 0x10000+(u-0xD800)<<10+(l-0xDC00))
				i += 2
				continue
			}
		}
		dst = utf8.AppendRune(dst, u) // AppendRune writes U+FFFD for surrogates
	}
	if len(src)%2 == 1 {
		dst = utf8.AppendRune(dst, utf8.RuneError)
	}
	return dst
}

// appendUTF32LE transcodes little-endian UTF-32 (.NET's Encoding.UTF32).
func appendUTF32LE(dst, src []byte) []byte {
	for i := 0; i+3 < len(src); i += 4 {
		r := rune(uint32(src[i]) | uint32(src[i+1])<<8 | uint32(src[i+2])<<16 | uint32(src[i+3])<<24)
		dst = utf8.AppendRune(dst, r) // invalid code points become U+FFFD
	}
	if len(src)%4 != 0 {
		dst = utf8.AppendRune(dst, utf8.RuneError)
	}
	return dst
}
