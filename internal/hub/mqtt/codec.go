package mqtt

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"slices"

	"github.com/mochi-mqtt/server/v2/packets"
)

// The codec is github.com/mochi-mqtt/server/v2/packets, used for the bytes only: this file owns
// the framing (fixed header, remaining length, size limit, buffer allocation) and hands each
// packet body to the library's per-type decoder. Only MQTT 3.1.1 (protocol level 4) is spoken,
// so the library's MQTT 5 property paths are never reached.

const protocolLevel311 = 4

var (
	errPacketTooLarge = errors.New("packet larger than the maximum packet size")
	errMalformed      = errors.New("malformed packet")
	errProtocol       = errors.New("protocol violation")
	errBadProtocol    = errors.New("unacceptable protocol name or level")
)

// eagerBody is the largest body allocated in full before its bytes arrive; larger bodies grow
// as data comes in, so a 5-byte header that claims 256 KiB costs nothing until the bytes exist.
const eagerBody = 16 << 10

// maxLengthBytes is the most bytes a Remaining Length may take (MQTT-2.2.3).
const maxLengthBytes = 4

// lengthReader stops packets.DecodeLength after four bytes: the library's loop keeps reading
// while continuation bits are set, and past the fourth byte its shift overflows to zero, so an
// endless run of 0x80 bytes would never be reported as malformed.
type lengthReader struct {
	r io.ByteReader
	n int
}

func (l *lengthReader) ReadByte() (byte, error) {
	if l.n == maxLengthBytes {
		return 0, fmt.Errorf("%w: remaining length longer than 4 bytes", errMalformed)
	}
	l.n++
	return l.r.ReadByte()
}

// packetSource is what packets are read from: a bufio.Reader, or a connection's packetReader.
type packetSource interface {
	io.ByteReader
	io.Reader
}

// readPacket reads and decodes one packet. version is 0 before CONNECT (only CONNECT is then
// accepted) and protocolLevel311 after it. Every slice and string in the result points into a
// buffer allocated for this packet alone, so callers may keep them.
func readPacket(r packetSource, maxSize int, version byte) (packets.Packet, error) {
	var pk packets.Packet
	hb, err := r.ReadByte()
	if err != nil {
		return pk, err
	}
	if err := pk.FixedHeader.Decode(hb); err != nil {
		return pk, fmt.Errorf("%w: %w", errMalformed, err)
	}
	remaining, _, err := packets.DecodeLength(&lengthReader{r: r})
	if err != nil {
		if errors.Is(err, io.EOF) {
			return pk, io.ErrUnexpectedEOF
		}
		return pk, fmt.Errorf("%w: %w", errMalformed, err)
	}
	if remaining > maxSize {
		return pk, fmt.Errorf("%w: %d > %d bytes", errPacketTooLarge, remaining, maxSize)
	}
	pk.FixedHeader.Remaining = remaining
	body, err := readBody(r, remaining)
	if err != nil {
		return pk, err
	}
	pk.ProtocolVersion = version
	if err := decodeBody(&pk, body, version); err != nil {
		return pk, err
	}
	return pk, nil
}

// readBody reads n bytes, growing the buffer with the data actually received.
func readBody(r io.Reader, n int) ([]byte, error) {
	if n <= eagerBody {
		b := make([]byte, n)
		if _, err := io.ReadFull(r, b); err != nil {
			return nil, unexpectedEOF(err)
		}
		return b, nil
	}
	b := make([]byte, 0, eagerBody)
	for len(b) < n {
		want := min(n, max(2*len(b), eagerBody))
		b = slices.Grow(b, want-len(b))
		chunk := b[len(b):want]
		if _, err := io.ReadFull(r, chunk); err != nil {
			return nil, unexpectedEOF(err)
		}
		b = b[:want]
	}
	return b, nil
}

func unexpectedEOF(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}

func decodeBody(pk *packets.Packet, body []byte, version byte) error {
	typ := pk.FixedHeader.Type
	if version == 0 {
		if typ != packets.Connect {
			return fmt.Errorf("%w: first packet is %s, not CONNECT", errProtocol, packets.PacketNames[typ])
		}
		return decodeConnect(pk, body)
	}
	var err error
	switch typ {
	case packets.Publish:
		if err = pk.PublishDecode(body); err == nil {
			if code := pk.PublishValidate(0); code != packets.CodeSuccess {
				err = code
			}
		}
	case packets.Puback:
		if len(body) != 2 {
			return fmt.Errorf("%w: PUBACK of %d bytes", errMalformed, len(body))
		}
		err = pk.PubackDecode(body)
	case packets.Subscribe:
		if err = pk.SubscribeDecode(body); err == nil {
			if code := pk.SubscribeValidate(); code != packets.CodeSuccess {
				err = code
			}
		}
	case packets.Unsubscribe:
		if err = pk.UnsubscribeDecode(body); err == nil {
			if code := pk.UnsubscribeValidate(); code != packets.CodeSuccess {
				err = code
			}
		}
	case packets.Pingreq, packets.Disconnect:
		if len(body) != 0 {
			return fmt.Errorf("%w: %s with a body", errMalformed, packets.PacketNames[typ])
		}
	case packets.Connect:
		return fmt.Errorf("%w: second CONNECT", errProtocol)
	case packets.Pubrec, packets.Pubrel, packets.Pubcomp:
		return fmt.Errorf("%w: QoS 2 is not supported", errProtocol)
	default:
		return fmt.Errorf("%w: %s from a client", errProtocol, packets.PacketNames[typ])
	}
	if err != nil {
		return fmt.Errorf("%w: %s: %w", errMalformed, packets.PacketNames[typ], err)
	}
	return nil
}

// decodeConnect checks the protocol name and level before the library decodes the rest, so a
// level-5 CONNECT never reaches the MQTT 5 property decoder.
func decodeConnect(pk *packets.Packet, body []byte) error {
	if len(body) < 7 || body[0] != 0 || body[1] != 4 {
		if len(body) >= 9 && body[0] == 0 && body[1] == 6 && string(body[2:8]) == "MQIsdp" {
			return errBadProtocol // MQTT 3.1: refused with CONNACK 1
		}
		return fmt.Errorf("%w: CONNECT protocol name", errMalformed)
	}
	if string(body[2:6]) != "MQTT" {
		return fmt.Errorf("%w: CONNECT protocol name %q", errMalformed, body[2:6])
	}
	if body[6] != protocolLevel311 {
		return errBadProtocol
	}
	if err := pk.ConnectDecode(body); err != nil {
		return fmt.Errorf("%w: CONNECT: %w", errMalformed, err)
	}
	if code := pk.ConnectValidate(); code != packets.CodeSuccess {
		return fmt.Errorf("%w: CONNECT: %w", errMalformed, code)
	}
	if pk.Connect.WillFlag && pk.Connect.WillQos > 1 {
		return fmt.Errorf("%w: will QoS 2", errProtocol)
	}
	return nil
}

// Encoders. Each returns a freshly allocated frame that the writer owns.

func encodeConnack(sessionPresent bool, code byte) []byte {
	pk := packets.Packet{
		FixedHeader:     packets.FixedHeader{Type: packets.Connack},
		ProtocolVersion: protocolLevel311,
		SessionPresent:  sessionPresent && code == connackAccepted,
		ReasonCode:      code,
	}
	return encode(pk.ConnackEncode)
}

func encodePuback(id uint16) []byte {
	pk := packets.Packet{
		FixedHeader:     packets.FixedHeader{Type: packets.Puback},
		ProtocolVersion: protocolLevel311,
		PacketID:        id,
	}
	return encode(pk.PubackEncode)
}

func encodeSuback(id uint16, codes []byte) []byte {
	pk := packets.Packet{
		FixedHeader:     packets.FixedHeader{Type: packets.Suback},
		ProtocolVersion: protocolLevel311,
		PacketID:        id,
		ReasonCodes:     codes,
	}
	return encode(pk.SubackEncode)
}

func encodeUnsuback(id uint16) []byte {
	pk := packets.Packet{
		FixedHeader:     packets.FixedHeader{Type: packets.Unsuback},
		ProtocolVersion: protocolLevel311,
		PacketID:        id,
	}
	return encode(pk.UnsubackEncode)
}

func encodePingresp() []byte {
	pk := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Pingresp}}
	return encode(pk.PingrespEncode)
}

// encodePublish refuses what the library would encode wrongly: it writes a topic's length as a
// uint16 without checking it.
func encodePublish(topic string, qos byte, id uint16, payload []byte) ([]byte, error) {
	if err := checkTopic(topic); err != nil {
		return nil, err
	}
	pk := packets.Packet{
		FixedHeader:     packets.FixedHeader{Type: packets.Publish, Qos: qos},
		ProtocolVersion: protocolLevel311,
		TopicName:       topic,
		PacketID:        id,
		Payload:         payload,
	}
	var buf bytes.Buffer
	if err := pk.PublishEncode(&buf); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidDelivery, err)
	}
	return buf.Bytes(), nil
}

func checkTopic(topic string) error {
	if len(topic) > 65535 {
		return fmt.Errorf("%w: topic of %d bytes", ErrInvalidDelivery, len(topic))
	}
	return nil
}

// encode runs an encoder that cannot fail for the packets the server builds (acks, CONNACK,
// PINGRESP: fixed fields only).
func encode(f func(*bytes.Buffer) error) []byte {
	var buf bytes.Buffer
	_ = f(&buf)
	return buf.Bytes()
}

// CONNACK return codes (MQTT 3.1.1 table 3.1).
const (
	connackAccepted            byte = 0
	connackBadProtocol         byte = 1
	connackIdentifierRejected  byte = 2
	connackServerUnavailable   byte = 3
	connackBadUsernamePassword byte = 4
	connackNotAuthorized       byte = 5
)
