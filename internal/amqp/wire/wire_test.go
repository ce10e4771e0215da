package wire

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"reflect"
	"testing"
	"time"

	goamqp "github.com/Azure/go-amqp"
)

func TestValueRoundTrip(t *testing.T) {
	ts := time.UnixMilli(1700000000123).UTC()
	u, _ := ParseUUID("3f2504e0-4f89-11d3-9a0c-0305e82c3301")
	values := []any{
		nil, true, false, uint8(7), uint16(65535), uint32(0), uint32(200), uint32(1 << 20),
		uint64(0), uint64(255), uint64(1 << 40), int8(-3), int16(-300), int32(-5), int32(1 << 20),
		int64(-1), int64(1 << 40), float32(1.5), 2.25, Char('é'), ts, u, []byte{1, 2, 3},
		bytes.Repeat([]byte{9}, 300), "hé", string(bytes.Repeat([]byte("x"), 300)), Symbol("x-opt-offset"),
		[]any{}, []any{"a", int64(1), []any{Symbol("b")}},
		Map{{Symbol("k"), "v"}, {"n", int32(3)}},
		SymbolArray("a", "bb"), StringArray("0", "1"), Array{Code: TypeLong, Items: []any{int64(1), int64(-2)}},
		Array{Code: TypeTimestamp, Items: []any{ts}}, Array{Code: TypeUUID, Items: []any{u}},
		Array{Code: TypeMap32, Items: []any{Map{{Symbol("message"), []byte("x")}}}},
		Described{Descriptor: uint64(0x468C00000004), Value: "amqp.annotation.x-opt-offset > '-1'"},
	}
	for _, v := range values {
		b, err := Append(nil, v)
		if err != nil {
			t.Fatalf("encode %#v: %v", v, err)
		}
		got, n, err := Decode(b)
		if err != nil || n != len(b) {
			t.Fatalf("decode %#v (% x): %v (used %d of %d)", v, b, err, n, len(b))
		}
		if !reflect.DeepEqual(got, v) {
			t.Errorf("round trip %#v: got %#v", v, got)
		}
	}
}

// Golden encodings, checked by hand against the specification's
// constructor table.
func TestGoldenEncodings(t *testing.T) {
	one := uint32(1)
	cases := []struct {
		name string
		v    Marshaler
		hex  string
	}{
		{"accepted", &Accepted{}, "005324" + "45"},
		{"detach closed", &Detach{Handle: 1, Closed: true}, "005316" + "c00402" + "5201" + "41"},
		{"flow", &Flow{NextIncomingID: &one, IncomingWindow: 5000, NextOutgoingID: 0, OutgoingWindow: 5000},
			"005313" + "c00e04" + "5201" + "7000001388" + "43" + "7000001388"},
		{"error", &Error{Condition: "amqp:not-found", Description: "x"},
			"00531d" + "c01402" + "a30e" + hex.EncodeToString([]byte("amqp:not-found")) + "a101" + "78"},
	}
	for _, c := range cases {
		b, err := c.v.AppendAMQP(nil)
		if err != nil {
			t.Fatal(err)
		}
		if got := hex.EncodeToString(b); got != c.hex {
			t.Errorf("%s: got %s want %s", c.name, got, c.hex)
		}
	}
}

func TestFrameRoundTrip(t *testing.T) {
	snd := SenderSettleSettled
	src := &Source{Address: "eh/ConsumerGroups/$Default/Partitions/0",
		Filter: Map{{Symbol("apache.org:selector-filter:string"), Described{uint64(0x468C00000004), "amqp.annotation.x-opt-offset > '-1'"}}}}
	frames := []Marshaler{
		&Open{ContainerID: "c", Hostname: "h", MaxFrameSize: 65536, ChannelMax: 65535, HasChannelMax: true, IdleTimeout: 30000,
			Properties: Map{{Symbol("product"), "x"}}},
		&Attach{Name: "l", Handle: 3, Role: RoleReceiver, SndSettleMode: &snd, Source: src, Target: &Target{Address: "t"},
			MaxMessageSize: 1 << 20, Properties: Map{{Symbol("com.microsoft:epoch"), int64(2)}}},
		&Transfer{Handle: 3, DeliveryID: new(uint32), DeliveryTag: []byte{0}, MessageFormat: new(uint32), Settled: true, Payload: []byte("abc")},
		&Disposition{Role: RoleReceiver, First: 4, Settled: true, State: &Rejected{Error: &Error{Condition: "amqp:not-found", Description: "gone"}}},
		&Close{Error: &Error{Condition: "amqp:connection:forced"}},
	}
	for _, f := range frames {
		var payload []byte
		if tr, ok := f.(*Transfer); ok {
			payload = tr.Payload
		}
		b, err := AppendFrame(nil, FrameAMQP, 7, f, payload)
		if err != nil {
			t.Fatal(err)
		}
		got, err := ReadFrame(bufio.NewReader(bytes.NewReader(b)), 1<<20)
		if err != nil {
			t.Fatalf("%T: %v", f, err)
		}
		if got.Channel != 7 || !reflect.DeepEqual(got.Body, f) {
			t.Errorf("%T: got %#v want %#v", f, got.Body, f)
		}
	}
}

// TestGoAMQPMessageInterop: messages encoded by go-amqp (what azeventhubs
// and azservicebus send) parse here, and ours parse in go-amqp.
func TestGoAMQPMessageInterop(t *testing.T) {
	mid := "m-1"
	ct := "application/json"
	in := &goamqp.Message{
		Header:                &goamqp.MessageHeader{Durable: true, TTL: 5 * time.Second},
		Annotations:           goamqp.Annotations{"x-opt-partition-key": "k"},
		Properties:            &goamqp.MessageProperties{MessageID: mid, ContentType: &ct},
		ApplicationProperties: map[string]any{"n": int64(3), "s": "v"},
		Data:                  [][]byte{[]byte(`{"a":1}`)},
	}
	b, err := in.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	m, err := ParseMessage(b)
	if err != nil {
		t.Fatal(err)
	}
	if m.Properties.MessageID != mid || m.Properties.ContentType != "application/json" || string(m.Body()) != `{"a":1}` ||
		m.Annotations.String("x-opt-partition-key") != "k" || m.Header.TTL != 5*time.Second || !m.Header.Durable {
		t.Fatalf("parsed %#v", m)
	}
	if v, _ := m.ApplicationProperties.Get("n"); v != int64(3) {
		t.Fatalf("application property n = %#v", v)
	}
	m.Annotations.Set("x-opt-sequence-number", int64(42))
	m.Annotations.Set("x-opt-enqueued-time", time.UnixMilli(1700000000000))
	m.Annotations.Set("x-opt-offset", "42")
	out, err := m.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	var back goamqp.Message
	if err := back.UnmarshalBinary(out); err != nil {
		t.Fatal(err)
	}
	if back.Annotations["x-opt-sequence-number"] != int64(42) || back.ApplicationProperties["s"] != "v" ||
		string(back.GetData()) != `{"a":1}` || back.Properties.MessageID != mid {
		t.Fatalf("go-amqp read back %#v", back)
	}
	if _, ok := back.Annotations["x-opt-enqueued-time"].(time.Time); !ok {
		t.Fatalf("enqueued time decoded as %T", back.Annotations["x-opt-enqueued-time"])
	}
}

func TestHostileInput(t *testing.T) {
	for _, in := range []string{
		"d0ffffffff7fffffff",        // list32 claiming 2 GiB
		"f0000000097fffffff" + "40", // array of nulls claiming 2^31 elements
		"c1030141",                  // map with odd count
		"a105616263",                // string past the end
		"00" + "a103666f6f" + "00",  // descriptor then nothing
	} {
		b, _ := hex.DecodeString(in)
		if _, _, err := Decode(b); err == nil {
			t.Errorf("%s: decoded without error", in)
		}
	}
}

func FuzzDecode(f *testing.F) {
	for _, seed := range [][]byte{
		{0x00, 0x53, 0x10, 0xc0, 0x03, 0x01, 0xa1, 0x00},
		{0xd1, 0, 0, 0, 8, 0, 0, 0, 2, 0xa3, 1, 'k', 0x40},
		{0xf0, 0, 0, 0, 9, 0, 0, 0, 1, 0xa1, 0, 0, 0, 0},
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		v, n, err := Decode(b)
		if err != nil {
			return
		}
		enc, err := Append(nil, v)
		if err != nil {
			t.Fatalf("decoded %#v from % x but cannot encode it: %v", v, b[:n], err)
		}
		// Compare encodings, not values: NaN is not equal to itself.
		again, _, err := Decode(enc)
		if err != nil {
			t.Fatalf("re-decode of %#v: %v", v, err)
		}
		enc2, err := Append(nil, again)
		if err != nil || !bytes.Equal(enc, enc2) {
			t.Fatalf("%#v re-encodes as % x, first as % x (%v)", again, enc2, enc, err)
		}
	})
}

func FuzzReadFrame(f *testing.F) {
	b, _ := AppendFrame(nil, FrameAMQP, 0, &Open{ContainerID: "c"}, nil)
	f.Add(b)
	b, _ = AppendFrame(nil, FrameAMQP, 1, &Transfer{Handle: 0, DeliveryTag: []byte{1}}, []byte{0x00, 0x53, 0x75, 0xa0, 0x01, 0x41})
	f.Add(b)
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _ = ReadFrame(bufio.NewReader(bytes.NewReader(b)), 1<<16)
	})
}
