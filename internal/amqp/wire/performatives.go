package wire

import (
	"fmt"
)

// Descriptor codes of performatives, SASL frames, terminus and delivery
// states (all 0x00000000:code).
const (
	codeOpen        = 0x10
	codeBegin       = 0x11
	codeAttach      = 0x12
	codeFlow        = 0x13
	codeTransfer    = 0x14
	codeDisposition = 0x15
	codeDetach      = 0x16
	codeEnd         = 0x17
	codeClose       = 0x18
	codeError       = 0x1d
	codeReceived    = 0x23
	codeAccepted    = 0x24
	codeRejected    = 0x25
	codeReleased    = 0x26
	codeModified    = 0x27
	codeSource      = 0x28
	codeTarget      = 0x29
	codeSASLMechs   = 0x40
	codeSASLInit    = 0x41
	codeSASLChall   = 0x42
	codeSASLResp    = 0x43
	codeSASLOutcome = 0x44
)

// Link roles.
const (
	RoleSender   = false
	RoleReceiver = true
)

// Settlement modes.
const (
	SenderSettleUnsettled uint8 = 0
	SenderSettleSettled   uint8 = 1
	SenderSettleMixed     uint8 = 2
	ReceiverSettleFirst   uint8 = 0
	ReceiverSettleSecond  uint8 = 1
)

// Open is the open performative.
type Open struct {
	ContainerID         string
	Hostname            string
	MaxFrameSize        uint32 // 0 when absent (the default is 4 GiB)
	ChannelMax          uint16 // valid when HasChannelMax
	HasChannelMax       bool
	IdleTimeout         uint32 // milliseconds; 0 = none
	OfferedCapabilities []Symbol
	DesiredCapabilities []Symbol
	Properties          Map
}

// AppendAMQP implements Marshaler.
func (o *Open) AppendAMQP(b []byte) ([]byte, error) {
	var chmax, mfs, idle any
	if o.HasChannelMax {
		chmax = o.ChannelMax
	}
	if o.MaxFrameSize != 0 {
		mfs = o.MaxFrameSize
	}
	if o.IdleTimeout != 0 {
		idle = o.IdleTimeout
	}
	return appendComposite(b, codeOpen, []any{o.ContainerID, optStr(o.Hostname), mfs, chmax, idle, nil, nil,
		optSyms(o.OfferedCapabilities), optSyms(o.DesiredCapabilities), optMap(o.Properties)})
}

func parseOpen(f *fields) *Open {
	o := &Open{ContainerID: f.str(0), Hostname: f.str(1), MaxFrameSize: f.u32(2), IdleTimeout: f.u32(4),
		OfferedCapabilities: f.syms(7), DesiredCapabilities: f.syms(8), Properties: f.mapping(9)}
	if n, ok := f.u64(3); ok {
		o.ChannelMax, o.HasChannelMax = uint16(min(n, 0xffff)), true
	}
	return o
}

// Begin is the begin performative.
type Begin struct {
	RemoteChannel  *uint16
	NextOutgoingID uint32
	IncomingWindow uint32
	OutgoingWindow uint32
	HandleMax      *uint32
	Properties     Map
}

// AppendAMQP implements Marshaler.
func (p *Begin) AppendAMQP(b []byte) ([]byte, error) {
	var rc any
	if p.RemoteChannel != nil {
		rc = *p.RemoteChannel
	}
	return appendComposite(b, codeBegin, []any{rc, p.NextOutgoingID, p.IncomingWindow, p.OutgoingWindow,
		optU32(p.HandleMax), nil, nil, optMap(p.Properties)})
}

func parseBegin(f *fields) *Begin {
	p := &Begin{NextOutgoingID: f.u32(1), IncomingWindow: f.u32(2), OutgoingWindow: f.u32(3),
		HandleMax: f.u32p(4), Properties: f.mapping(7)}
	if n, ok := f.u64(0); ok {
		rc := uint16(min(n, 0xffff))
		p.RemoteChannel = &rc
	}
	return p
}

// Source is a link source terminus.
type Source struct {
	Address      string
	Durable      uint32
	ExpiryPolicy Symbol
	Timeout      uint32
	Dynamic      bool
	Filter       Map
	Outcomes     []Symbol
	Capabilities []Symbol
	// DefaultOutcome and DistributionMode are kept as received.
	DefaultOutcome   any
	DistributionMode Symbol
}

// AppendAMQP implements Marshaler.
func (s *Source) AppendAMQP(b []byte) ([]byte, error) {
	if s == nil {
		return append(b, TypeNull), nil
	}
	var dur, to any
	if s.Durable != 0 {
		dur = s.Durable
	}
	if s.Timeout != 0 {
		to = s.Timeout
	}
	return appendComposite(b, codeSource, []any{optStr(s.Address), dur, optSym(s.ExpiryPolicy), to, optBool(s.Dynamic), nil,
		optSym(s.DistributionMode), optMap(s.Filter), s.DefaultOutcome, optSyms(s.Outcomes), optSyms(s.Capabilities)})
}

// Target is a link target terminus.
type Target struct {
	Address      string
	Durable      uint32
	ExpiryPolicy Symbol
	Timeout      uint32
	Dynamic      bool
	Capabilities []Symbol
}

// AppendAMQP implements Marshaler.
func (t *Target) AppendAMQP(b []byte) ([]byte, error) {
	if t == nil {
		return append(b, TypeNull), nil
	}
	var dur, to any
	if t.Durable != 0 {
		dur = t.Durable
	}
	if t.Timeout != 0 {
		to = t.Timeout
	}
	return appendComposite(b, codeTarget, []any{optStr(t.Address), dur, optSym(t.ExpiryPolicy), to, optBool(t.Dynamic), nil, optSyms(t.Capabilities)})
}

// Attach is the attach performative.
type Attach struct {
	Name                 string
	Handle               uint32
	Role                 bool
	SndSettleMode        *uint8
	RcvSettleMode        *uint8
	Source               *Source
	Target               *Target
	InitialDeliveryCount *uint32
	MaxMessageSize       uint64
	OfferedCapabilities  []Symbol
	DesiredCapabilities  []Symbol
	Properties           Map
}

// AppendAMQP implements Marshaler.
func (a *Attach) AppendAMQP(b []byte) ([]byte, error) {
	var mms any
	if a.MaxMessageSize != 0 {
		mms = a.MaxMessageSize
	}
	return appendComposite(b, codeAttach, []any{a.Name, a.Handle, a.Role, optU8(a.SndSettleMode), optU8(a.RcvSettleMode),
		a.Source, a.Target, nil, nil, optU32(a.InitialDeliveryCount), mms,
		optSyms(a.OfferedCapabilities), optSyms(a.DesiredCapabilities), optMap(a.Properties)})
}

func parseAttach(f *fields) *Attach {
	a := &Attach{Name: f.str(0), Handle: f.u32(1), Role: f.boolean(2), SndSettleMode: f.u8p(3), RcvSettleMode: f.u8p(4),
		InitialDeliveryCount: f.u32p(9), OfferedCapabilities: f.syms(11), DesiredCapabilities: f.syms(12), Properties: f.mapping(13)}
	if n, ok := f.u64(10); ok {
		a.MaxMessageSize = n
	}
	if !f.present(1) {
		f.fail(1, "handle")
	}
	if d, ok := f.at(5).(Described); ok {
		sf := &fields{what: "source", list: asList(d.Value)}
		a.Source = &Source{Address: sf.str(0), Durable: sf.u32(1), ExpiryPolicy: sf.sym(2), Timeout: sf.u32(3),
			Dynamic: sf.boolean(4), DistributionMode: sf.sym(6), Filter: sf.mapping(7), DefaultOutcome: sf.at(8),
			Outcomes: sf.syms(9), Capabilities: sf.syms(10)}
		if sf.err != nil && f.err == nil {
			f.err = sf.err
		}
	}
	if d, ok := f.at(6).(Described); ok {
		tf := &fields{what: "target", list: asList(d.Value)}
		a.Target = &Target{Address: tf.str(0), Durable: tf.u32(1), ExpiryPolicy: tf.sym(2), Timeout: tf.u32(3),
			Dynamic: tf.boolean(4), Capabilities: tf.syms(6)}
		if tf.err != nil && f.err == nil {
			f.err = tf.err
		}
	}
	return a
}

func asList(v any) []any {
	l, _ := v.([]any)
	return l
}

// Flow is the flow performative.
type Flow struct {
	NextIncomingID *uint32
	IncomingWindow uint32
	NextOutgoingID uint32
	OutgoingWindow uint32
	Handle         *uint32
	DeliveryCount  *uint32
	LinkCredit     *uint32
	Available      *uint32
	Drain          bool
	Echo           bool
	Properties     Map
}

// AppendAMQP implements Marshaler.
func (p *Flow) AppendAMQP(b []byte) ([]byte, error) {
	return appendComposite(b, codeFlow, []any{optU32(p.NextIncomingID), p.IncomingWindow, p.NextOutgoingID, p.OutgoingWindow,
		optU32(p.Handle), optU32(p.DeliveryCount), optU32(p.LinkCredit), optU32(p.Available), optBool(p.Drain), optBool(p.Echo), optMap(p.Properties)})
}

func parseFlow(f *fields) *Flow {
	return &Flow{NextIncomingID: f.u32p(0), IncomingWindow: f.u32(1), NextOutgoingID: f.u32(2), OutgoingWindow: f.u32(3),
		Handle: f.u32p(4), DeliveryCount: f.u32p(5), LinkCredit: f.u32p(6), Available: f.u32p(7),
		Drain: f.boolean(8), Echo: f.boolean(9), Properties: f.mapping(10)}
}

// Transfer is the transfer performative; Payload is the frame's bytes
// after it (a message, or a part of one).
type Transfer struct {
	Handle        uint32
	DeliveryID    *uint32
	DeliveryTag   []byte
	MessageFormat *uint32
	Settled       bool
	More          bool
	RcvSettleMode *uint8
	State         any
	Resume        bool
	Aborted       bool
	Batchable     bool
	Payload       []byte
}

// AppendAMQP implements Marshaler (the payload is not included).
func (p *Transfer) AppendAMQP(b []byte) ([]byte, error) {
	var tag any
	if p.DeliveryTag != nil {
		tag = p.DeliveryTag
	}
	return appendComposite(b, codeTransfer, []any{p.Handle, optU32(p.DeliveryID), tag, optU32(p.MessageFormat),
		optBool(p.Settled), optBool(p.More), optU8(p.RcvSettleMode), p.State, optBool(p.Resume), optBool(p.Aborted), optBool(p.Batchable)})
}

func parseTransfer(f *fields) *Transfer {
	return &Transfer{Handle: f.u32(0), DeliveryID: f.u32p(1), DeliveryTag: f.binary(2), MessageFormat: f.u32p(3),
		Settled: f.boolean(4), More: f.boolean(5), RcvSettleMode: f.u8p(6), State: f.at(7),
		Resume: f.boolean(8), Aborted: f.boolean(9), Batchable: f.boolean(10)}
}

// Disposition is the disposition performative.
type Disposition struct {
	Role      bool
	First     uint32
	Last      *uint32
	Settled   bool
	State     any // *Accepted, *Rejected, *Released, *Modified, *Received or nil
	Batchable bool
}

// AppendAMQP implements Marshaler.
func (p *Disposition) AppendAMQP(b []byte) ([]byte, error) {
	return appendComposite(b, codeDisposition, []any{p.Role, p.First, optU32(p.Last), optBool(p.Settled), p.State, optBool(p.Batchable)})
}

func parseDisposition(f *fields) (*Disposition, error) {
	d := &Disposition{Role: f.boolean(0), First: f.u32(1), Last: f.u32p(2), Settled: f.boolean(3), Batchable: f.boolean(5)}
	if v := f.at(4); v != nil {
		st, err := ParseDeliveryState(v)
		if err != nil {
			return nil, err
		}
		d.State = st
	}
	return d, nil
}

// Detach is the detach performative.
type Detach struct {
	Handle uint32
	Closed bool
	Error  *Error
}

// AppendAMQP implements Marshaler.
func (p *Detach) AppendAMQP(b []byte) ([]byte, error) {
	return appendComposite(b, codeDetach, []any{p.Handle, optBool(p.Closed), errOrNil(p.Error)})
}

// End is the end performative.
type End struct{ Error *Error }

// AppendAMQP implements Marshaler.
func (p *End) AppendAMQP(b []byte) ([]byte, error) {
	return appendComposite(b, codeEnd, []any{errOrNil(p.Error)})
}

// Close is the close performative.
type Close struct{ Error *Error }

// AppendAMQP implements Marshaler.
func (p *Close) AppendAMQP(b []byte) ([]byte, error) {
	return appendComposite(b, codeClose, []any{errOrNil(p.Error)})
}

// errOrNil keeps a nil *Error from encoding as a typed nil Marshaler.
func errOrNil(e *Error) any {
	if e == nil {
		return nil
	}
	return e
}

// Error is an AMQP error: a condition, a description and info.
type Error struct {
	Condition   Symbol
	Description string
	Info        Map
}

func (e *Error) Error() string {
	if e.Description == "" {
		return string(e.Condition)
	}
	return string(e.Condition) + ": " + e.Description
}

// Errorf makes an *Error with a formatted description.
func Errorf(cond Symbol, format string, args ...any) *Error {
	return &Error{Condition: cond, Description: fmt.Sprintf(format, args...)}
}

// AppendAMQP implements Marshaler.
func (e *Error) AppendAMQP(b []byte) ([]byte, error) {
	return appendComposite(b, codeError, []any{e.Condition, optStr(e.Description), optMap(e.Info)})
}

func parseError(v any) (*Error, error) {
	d, ok := v.(Described)
	if !ok || descriptorCode(d.Descriptor) != codeError {
		return nil, fmt.Errorf("wire: error field holds %T", v)
	}
	f := &fields{what: "error", list: asList(d.Value)}
	e := &Error{Condition: f.sym(0), Description: f.str(1), Info: f.mapping(2)}
	return e, f.err
}

// Delivery states.
type (
	// Accepted is the accepted outcome.
	Accepted struct{}
	// Rejected is the rejected outcome.
	Rejected struct{ Error *Error }
	// Released is the released outcome.
	Released struct{}
	// Modified is the modified outcome.
	Modified struct {
		DeliveryFailed     bool
		UndeliverableHere  bool
		MessageAnnotations Map
	}
	// Received is the received (non-terminal) state.
	Received struct {
		SectionNumber uint32
		SectionOffset uint64
	}
)

// AppendAMQP implements Marshaler.
func (*Accepted) AppendAMQP(b []byte) ([]byte, error) {
	return append(b, 0x00, 0x53, codeAccepted, TypeList0), nil
}

// AppendAMQP implements Marshaler.
func (r *Rejected) AppendAMQP(b []byte) ([]byte, error) {
	return appendComposite(b, codeRejected, []any{errOrNil(r.Error)})
}

// AppendAMQP implements Marshaler.
func (*Released) AppendAMQP(b []byte) ([]byte, error) {
	return append(b, 0x00, 0x53, codeReleased, TypeList0), nil
}

// AppendAMQP implements Marshaler.
func (m *Modified) AppendAMQP(b []byte) ([]byte, error) {
	return appendComposite(b, codeModified, []any{optBool(m.DeliveryFailed), optBool(m.UndeliverableHere), optMap(m.MessageAnnotations)})
}

// AppendAMQP implements Marshaler.
func (r *Received) AppendAMQP(b []byte) ([]byte, error) {
	return appendComposite(b, codeReceived, []any{r.SectionNumber, r.SectionOffset})
}

// ParseDeliveryState decodes a described delivery state.
func ParseDeliveryState(v any) (any, error) {
	d, ok := v.(Described)
	if !ok {
		return nil, fmt.Errorf("wire: delivery state holds %T", v)
	}
	f := &fields{what: "delivery state", list: asList(d.Value)}
	var st any
	switch descriptorCode(d.Descriptor) {
	case codeAccepted:
		st = &Accepted{}
	case codeRejected:
		st = &Rejected{Error: f.errorField(0)}
	case codeReleased:
		st = &Released{}
	case codeModified:
		st = &Modified{DeliveryFailed: f.boolean(0), UndeliverableHere: f.boolean(1), MessageAnnotations: f.mapping(2)}
	case codeReceived:
		n, _ := f.u64(1)
		st = &Received{SectionNumber: f.u32(0), SectionOffset: n}
	default:
		return nil, fmt.Errorf("wire: unknown delivery state %v", d.Descriptor)
	}
	return st, f.err
}

// descriptorCode maps a numeric descriptor 0x00000000:code, or the
// symbolic name of a core type, to its code; anything else gives -1.
func descriptorCode(d any) int {
	switch v := d.(type) {
	case uint64:
		if v < 0x100 {
			return int(v)
		}
	case Symbol:
		return symbolicCode(v)
	}
	return -1
}

// symbolicCode maps the "amqp:…:list" names a peer may use instead of the
// numeric descriptors.
func symbolicCode(s Symbol) int {
	switch s {
	case "amqp:open:list":
		return codeOpen
	case "amqp:begin:list":
		return codeBegin
	case "amqp:attach:list":
		return codeAttach
	case "amqp:flow:list":
		return codeFlow
	case "amqp:transfer:list":
		return codeTransfer
	case "amqp:disposition:list":
		return codeDisposition
	case "amqp:detach:list":
		return codeDetach
	case "amqp:end:list":
		return codeEnd
	case "amqp:close:list":
		return codeClose
	case "amqp:error:list":
		return codeError
	case "amqp:received:list":
		return codeReceived
	case "amqp:accepted:list":
		return codeAccepted
	case "amqp:rejected:list":
		return codeRejected
	case "amqp:released:list":
		return codeReleased
	case "amqp:modified:list":
		return codeModified
	case "amqp:source:list":
		return codeSource
	case "amqp:target:list":
		return codeTarget
	case "amqp:sasl-mechanisms:list":
		return codeSASLMechs
	case "amqp:sasl-init:list":
		return codeSASLInit
	case "amqp:sasl-response:list":
		return codeSASLResp
	case "amqp:sasl-outcome:list":
		return codeSASLOutcome
	}
	return -1
}
