package engine

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/hamba/avro/v2/ocf"

	"github.com/outpost-iot/outpost/internal/hub/telemetry"
)

// AvroSchema is the record schema IoT Hub writes to storage endpoints
// (compact string as observed in real blobs).
const AvroSchema = `{"type":"record","name":"Message","namespace":"Microsoft.Azure.Devices","fields":[{"name":"EnqueuedTimeUtc","type":"string"},{"name":"Properties","type":{"type":"map","values":"string"}},{"name":"SystemProperties","type":{"type":"map","values":"string"}},{"name":"Body","type":["null","bytes"]}]}`

// AvroRecord is one message in a storage endpoint's Avro blob.
type AvroRecord struct {
	EnqueuedTimeUtc  string            `avro:"EnqueuedTimeUtc"`
	Properties       map[string]string `avro:"Properties"`
	SystemProperties map[string]string `avro:"SystemProperties"`
	Body             *[]byte           `avro:"Body"`
}

// enqueuedTimeFormat is .NET's round-trip format, as IoT Hub writes it.
const enqueuedTimeFormat = "2006-01-02T15:04:05.0000000Z"

// storageSystemProperties are the system properties under their storage
// names (azure-wire §4.3).
func storageSystemProperties(m *telemetry.Message) map[string]string {
	out := map[string]string{}
	names := []struct{ from, to string }{
		{telemetry.PropMessageID, "messageId"},
		{telemetry.PropUserID, "userId"},
		{telemetry.PropDeviceID, "connectionDeviceId"},
		{telemetry.PropModuleID, "connectionModuleId"},
		{telemetry.PropGenerationID, "connectionDeviceGenerationId"},
		{telemetry.PropAuthMethod, "connectionAuthMethod"},
		{telemetry.PropContentType, "contentType"},
		{telemetry.PropContentEncoding, "contentEncoding"},
		{telemetry.PropCorrelationID, "correlationId"},
		{telemetry.PropInterfaceID, "dt-dataschema"},
		{telemetry.PropComponent, "dt-subject"},
	}
	for _, n := range names {
		if v := m.System[n.from]; v != "" {
			out[n.to] = v
		}
	}
	out["enqueuedTime"] = m.Enqueued.UTC().Format(enqueuedTimeFormat)
	return out
}

// encodeBlob encodes a window's messages: an Avro object container file
// (codec null, or deflate for avroDeflate), or JSON lines.
func encodeBlob(encoding string, items []*queued) ([]byte, error) {
	var buf bytes.Buffer
	switch encoding {
	case "json":
		for _, q := range items {
			b, err := jsonRecord(&q.m)
			if err != nil {
				return nil, err
			}
			buf.Write(b)
			buf.WriteByte('\n')
		}
		return buf.Bytes(), nil
	case "avro", "avrodeflate":
		codec := ocf.Null
		if encoding == "avrodeflate" {
			codec = ocf.Deflate
		}
		enc, err := ocf.NewEncoder(AvroSchema, &buf, ocf.WithCodec(codec))
		if err != nil {
			return nil, fmt.Errorf("engine: avro encoder: %w", err)
		}
		for _, q := range items {
			body := q.m.Payload
			if body == nil {
				body = []byte{}
			}
			rec := AvroRecord{
				EnqueuedTimeUtc:  q.m.Enqueued.UTC().Format(enqueuedTimeFormat),
				Properties:       q.m.App,
				SystemProperties: storageSystemProperties(&q.m),
				Body:             &body,
			}
			if rec.Properties == nil {
				rec.Properties = map[string]string{}
			}
			if err := enc.Encode(rec); err != nil {
				return nil, fmt.Errorf("engine: avro encode: %w", err)
			}
		}
		if err := enc.Close(); err != nil {
			return nil, fmt.Errorf("engine: avro close: %w", err)
		}
		return buf.Bytes(), nil
	}
	return nil, fmt.Errorf("engine: unknown encoding %q", encoding)
}

// jsonRecord is one JSON line: the body embedded when the message says it
// is UTF-8 JSON (and is), base64 otherwise, as IoT Hub writes it.
func jsonRecord(m *telemetry.Message) ([]byte, error) {
	rec := struct {
		EnqueuedTimeUtc  string            `json:"EnqueuedTimeUtc"`
		Properties       map[string]string `json:"Properties"`
		SystemProperties map[string]string `json:"SystemProperties"`
		Body             any               `json:"Body"`
	}{m.Enqueued.UTC().Format(enqueuedTimeFormat), m.App, storageSystemProperties(m), m.Payload}
	if rec.Properties == nil {
		rec.Properties = map[string]string{}
	}
	if isUTF8JSON(m) {
		rec.Body = json.RawMessage(m.Payload)
	}
	b, err := json.Marshal(rec)
	if err != nil {
		return nil, fmt.Errorf("engine: json record: %w", err)
	}
	return b, nil
}

func isUTF8JSON(m *telemetry.Message) bool {
	ct := strings.ToLower(m.System[telemetry.PropContentType])
	ce := strings.ToLower(strings.ReplaceAll(m.System[telemetry.PropContentEncoding], "-", ""))
	if !strings.HasPrefix(ct, "application/json") || ce != "utf8" {
		return false
	}
	return utf8.Valid(m.Payload) && json.Valid(m.Payload)
}

// blobName fills fileNameFormat for a window that opened at t (UTC).
func blobName(format, hub string, partition int, t time.Time) string {
	t = t.UTC()
	two := func(n int) string { return fmt.Sprintf("%02d", n) }
	return strings.NewReplacer(
		"{iothub}", hub,
		"{partition}", strconv.Itoa(partition),
		"{YYYY}", strconv.Itoa(t.Year()),
		"{MM}", two(int(t.Month())),
		"{DD}", two(t.Day()),
		"{HH}", two(t.Hour()),
		"{mm}", two(t.Minute()),
	).Replace(format)
}

// suffixed is name with a collision counter: before the last segment's
// extension when it has one (…/07.json → …/07_1.json), else appended.
func suffixed(name string, n int) string {
	if n == 0 {
		return name
	}
	slash := strings.LastIndexByte(name, '/')
	if dot := strings.LastIndexByte(name, '.'); dot > slash+1 {
		return name[:dot] + "_" + strconv.Itoa(n) + name[dot:]
	}
	return name + "_" + strconv.Itoa(n)
}
