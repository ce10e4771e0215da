package mqtt

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"runtime"
	"testing"

	"github.com/mochi-mqtt/server/v2/packets"
)

const fuzzMaxPacket = 64 << 10

func encodeTest(t testing.TB, pk packets.Packet) []byte {
	var buf bytes.Buffer
	pk.ProtocolVersion = 4
	var err error
	switch pk.FixedHeader.Type {
	case packets.Connect:
		err = pk.ConnectEncode(&buf)
	case packets.Publish:
		err = pk.PublishEncode(&buf)
	case packets.Subscribe:
		err = pk.SubscribeEncode(&buf)
	case packets.Unsubscribe:
		err = pk.UnsubscribeEncode(&buf)
	case packets.Puback:
		err = pk.PubackEncode(&buf)
	case packets.Pingreq:
		err = pk.PingreqEncode(&buf)
	case packets.Disconnect:
		err = pk.DisconnectEncode(&buf)
	}
	if err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// decodeSession runs the server's decoder over a byte stream as a connection would: CONNECT
// first, then packets until the first error.
func decodeSession(data []byte) {
	r := bufio.NewReaderSize(bytes.NewReader(data), 4096)
	if _, err := readPacket(r, fuzzMaxPacket, 0); err != nil {
		return
	}
	for range 1000 {
		if _, err := readPacket(r, fuzzMaxPacket, protocolLevel311); err != nil {
			return
		}
	}
}

// FuzzDecode feeds arbitrary bytes to the packet decoder, both as a connection's first bytes
// and after a valid CONNECT. It must never panic; allocation is bounded by the packet-size limit
// and by the bytes actually present (TestReadPacketAllocatesWhatArrives checks that).
func FuzzDecode(f *testing.F) {
	connect := encodeTest(f, packets.Packet{
		FixedHeader: packets.FixedHeader{Type: packets.Connect},
		Connect: packets.ConnectParams{
			ProtocolName: []byte("MQTT"), ClientIdentifier: "dev1", Keepalive: 180,
			UsernameFlag: true, Username: []byte(username("dev1")),
			PasswordFlag: true, Password: []byte("SharedAccessSignature sr=h%2Fdevices%2Fdev1&sig=x&se=1"),
			WillFlag: true, WillTopic: "devices/dev1/messages/events/", WillPayload: []byte("w"), WillQos: 1,
		},
	})
	stream := [][]byte{
		encodeTest(f, packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: 1}, PacketID: 1,
			TopicName: "devices/dev1/messages/events/%24.mid=1", Payload: []byte(`{"t":1}`)}),
		encodeTest(f, packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish}, TopicName: "$iothub/twin/GET/?$rid=1", Payload: []byte(" ")}),
		encodeTest(f, packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Subscribe, Qos: 1}, PacketID: 2,
			Filters: packets.Subscriptions{{Filter: "$iothub/twin/res/#"}, {Filter: "devices/dev1/messages/devicebound/#", Qos: 1}}}),
		encodeTest(f, packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Unsubscribe, Qos: 1}, PacketID: 3,
			Filters: packets.Subscriptions{{Filter: "$iothub/twin/res/#"}}}),
		encodeTest(f, packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Puback}, PacketID: 4}),
		encodeTest(f, packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Pingreq}}),
		encodeTest(f, packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Disconnect}}),
	}
	f.Add(connect)
	f.Add(append(append([]byte{}, connect...), bytes.Join(stream, nil)...))
	for _, pk := range stream {
		f.Add(append(append([]byte{}, connect...), pk...))
	}
	f.Add([]byte{0x10, 0xff, 0xff, 0xff, 0x7f})                                     // CONNECT claiming 256 MB
	f.Add(append(append([]byte{}, connect...), 0x30, 0x80, 0x80, 0x80, 0x80, 0x01)) // 5-byte length
	f.Add([]byte{0x10, 0x0c, 0, 4, 'M', 'Q', 'T', 'T', 5, 2, 0, 60, 0, 0})          // MQTT 5 CONNECT
	f.Fuzz(func(t *testing.T, data []byte) {
		decodeSession(data)
		r := bufio.NewReader(bytes.NewReader(data))
		for range 100 {
			if _, err := readPacket(r, fuzzMaxPacket, protocolLevel311); err != nil {
				break
			}
		}
	})
}

func TestReadPacketLimits(t *testing.T) {
	read := func(b []byte, max int) error {
		_, err := readPacket(bufio.NewReader(bytes.NewReader(b)), max, protocolLevel311)
		return err
	}
	if err := read([]byte{0x30, 0xff, 0xff, 0xff, 0x7f}, 1<<20); !errors.Is(err, errPacketTooLarge) {
		t.Errorf("256 MB claim: %v", err)
	}
	if err := read([]byte{0x30, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01}, 1<<20); !errors.Is(err, errMalformed) {
		t.Errorf("endless remaining length: %v", err)
	}
	if err := read([]byte{0x30, 0x05, 0x00}, 1<<20); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("truncated body: %v", err)
	}
}

// A header that claims a large body costs memory only as the bytes arrive.
func TestReadPacketAllocatesWhatArrives(t *testing.T) {
	const claim = 8 << 20
	hdr := []byte{0x30, 0x80, 0x80, 0x80, 0x04} // PUBLISH, remaining length 8 MiB
	data := append(hdr, make([]byte, 1000)...)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for range 10 {
		_, err := readPacket(bufio.NewReader(bytes.NewReader(data)), claim, protocolLevel311)
		if !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Fatalf("err %v", err)
		}
	}
	runtime.ReadMemStats(&after)
	if per := (after.TotalAlloc - before.TotalAlloc) / 10; per > 256<<10 {
		t.Errorf("allocated %d bytes per read for a 1000-byte packet claiming %d", per, claim)
	}
}

func TestReadBodyGrows(t *testing.T) {
	for _, n := range []int{0, 1, eagerBody, eagerBody + 1, 3*eagerBody + 7, 300 << 10} {
		src := bytes.Repeat([]byte{7}, n)
		got, err := readBody(bytes.NewReader(src), n)
		if err != nil || !bytes.Equal(got, src) {
			t.Errorf("readBody(%d): %d bytes, %v", n, len(got), err)
		}
	}
}
