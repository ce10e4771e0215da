package wire

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Frame types.
const (
	FrameAMQP byte = 0x00
	FrameSASL byte = 0x01
)

// Protocol ids in the 8-byte protocol header "AMQP" id 1 0 0.
const (
	ProtoAMQP byte = 0x00
	ProtoTLS  byte = 0x02
	ProtoSASL byte = 0x03
)

// ProtocolHeader returns the protocol header for id.
func ProtocolHeader(id byte) []byte { return []byte{'A', 'M', 'Q', 'P', id, 1, 0, 0} }

// ReadProtocolHeader reads a protocol header and returns its id.
func ReadProtocolHeader(r io.Reader) (byte, error) {
	var h [8]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return 0, err
	}
	if string(h[:4]) != "AMQP" {
		return 0, fmt.Errorf("wire: not an AMQP protocol header: % x", h)
	}
	if h[5] != 1 || h[6] != 0 || h[7] != 0 {
		return h[4], fmt.Errorf("wire: AMQP version %d.%d.%d is not 1.0.0", h[5], h[6], h[7])
	}
	return h[4], nil
}

// MinMaxFrameSize is the smallest max-frame-size a peer may set.
const MinMaxFrameSize = 512

// Frame is one frame: its type, channel and body (the performative,
// decoded by ParseBody; nil for an empty heartbeat frame).
type Frame struct {
	Type    byte
	Channel uint16
	Body    any
}

// ErrFrameTooLarge is returned for a frame beyond the negotiated size.
var ErrFrameTooLarge = errors.New("wire: frame larger than max-frame-size")

// ReadFrame reads one frame of at most maxSize bytes and decodes its body.
func ReadFrame(r *bufio.Reader, maxSize uint32) (Frame, error) {
	var h [8]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return Frame{}, err
	}
	size := binary.BigEndian.Uint32(h[0:4])
	doff := uint32(h[4]) * 4
	if size < 8 || doff < 8 || doff > size {
		return Frame{}, fmt.Errorf("wire: malformed frame header (size %d, data offset %d)", size, doff)
	}
	if size > maxSize {
		return Frame{}, fmt.Errorf("%w: %d > %d", ErrFrameTooLarge, size, maxSize)
	}
	f := Frame{Type: h[5], Channel: binary.BigEndian.Uint16(h[6:8])}
	if f.Type != FrameAMQP && f.Type != FrameSASL {
		return f, fmt.Errorf("wire: unknown frame type 0x%02x", f.Type)
	}
	body := make([]byte, size-8)
	if _, err := io.ReadFull(r, body); err != nil {
		return f, err
	}
	body = body[doff-8:]
	if len(body) == 0 {
		return f, nil
	}
	var err error
	f.Body, err = ParseBody(body)
	return f, err
}

// ParseBody decodes a frame body: a performative (or SASL frame), and for
// a transfer the payload after it.
func ParseBody(body []byte) (any, error) {
	d := NewDecoder(body)
	v, err := d.Value()
	if err != nil {
		return nil, fmt.Errorf("wire: frame body: %w", err)
	}
	desc, ok := v.(Described)
	if !ok {
		return nil, fmt.Errorf("wire: frame body is %T, not a performative", v)
	}
	list, ok := desc.Value.([]any)
	if !ok {
		return nil, fmt.Errorf("wire: performative %v is not a list", desc.Descriptor)
	}
	code := descriptorCode(desc.Descriptor)
	f := &fields{what: performativeName(code), list: list}
	var p any
	switch code {
	case codeOpen:
		p = parseOpen(f)
	case codeBegin:
		p = parseBegin(f)
	case codeAttach:
		p = parseAttach(f)
	case codeFlow:
		p = parseFlow(f)
	case codeTransfer:
		t := parseTransfer(f)
		t.Payload = d.Rest()
		p = t
	case codeDisposition:
		if p, err = parseDisposition(f); err != nil {
			return nil, err
		}
	case codeDetach:
		p = &Detach{Handle: f.u32(0), Closed: f.boolean(1), Error: f.errorField(2)}
	case codeEnd:
		p = &End{Error: f.errorField(0)}
	case codeClose:
		p = &Close{Error: f.errorField(0)}
	case codeSASLMechs:
		p = &SASLMechanisms{Mechanisms: f.syms(0)}
	case codeSASLInit:
		p = &SASLInit{Mechanism: f.sym(0), InitialResponse: f.binary(1), Hostname: f.str(2)}
	case codeSASLResp:
		p = &SASLResponse{Response: f.binary(0)}
	case codeSASLOutcome:
		n, _ := f.u64(0)
		p = &SASLOutcome{Code: uint8(n), AdditionalData: f.binary(1)}
	default:
		return nil, fmt.Errorf("wire: unknown performative %v", desc.Descriptor)
	}
	if f.err != nil {
		return nil, f.err
	}
	return p, nil
}

func performativeName(code int) string {
	switch code {
	case codeOpen:
		return "open"
	case codeBegin:
		return "begin"
	case codeAttach:
		return "attach"
	case codeFlow:
		return "flow"
	case codeTransfer:
		return "transfer"
	case codeDisposition:
		return "disposition"
	case codeDetach:
		return "detach"
	case codeEnd:
		return "end"
	case codeClose:
		return "close"
	}
	return "frame"
}

// AppendFrame appends a whole frame: header, body and payload.
func AppendFrame(b []byte, typ byte, channel uint16, body Marshaler, payload []byte) ([]byte, error) {
	start := len(b)
	b = append(b, 0, 0, 0, 0, 2, typ, byte(channel>>8), byte(channel))
	var err error
	if body != nil {
		if b, err = body.AppendAMQP(b); err != nil {
			return b[:start], err
		}
	}
	b = append(b, payload...)
	binary.BigEndian.PutUint32(b[start:], uint32(len(b)-start))
	return b, nil
}

// EmptyFrame is the heartbeat: a frame with no body.
var EmptyFrame = [8]byte{0, 0, 0, 8, 2, 0, 0, 0}

// SASL frames.
type (
	// SASLMechanisms lists the mechanisms the server offers.
	SASLMechanisms struct{ Mechanisms []Symbol }
	// SASLInit is the client's choice.
	SASLInit struct {
		Mechanism       Symbol
		InitialResponse []byte
		Hostname        string
	}
	// SASLResponse answers a challenge (unused by the mechanisms served).
	SASLResponse struct{ Response []byte }
	// SASLOutcome ends the exchange.
	SASLOutcome struct {
		Code           uint8
		AdditionalData []byte
	}
)

// SASL outcome codes.
const (
	SASLOK      uint8 = 0
	SASLAuth    uint8 = 1
	SASLSys     uint8 = 2
	SASLSysPerm uint8 = 3
	SASLSysTemp uint8 = 4
)

// AppendAMQP implements Marshaler.
func (s *SASLMechanisms) AppendAMQP(b []byte) ([]byte, error) {
	return appendComposite(b, codeSASLMechs, []any{SymbolArray(s.Mechanisms...)})
}

// AppendAMQP implements Marshaler.
func (s *SASLInit) AppendAMQP(b []byte) ([]byte, error) {
	return appendComposite(b, codeSASLInit, []any{s.Mechanism, s.InitialResponse, optStr(s.Hostname)})
}

// AppendAMQP implements Marshaler.
func (s *SASLOutcome) AppendAMQP(b []byte) ([]byte, error) {
	var data any
	if s.AdditionalData != nil {
		data = s.AdditionalData
	}
	return appendComposite(b, codeSASLOutcome, []any{s.Code, data})
}
