// Package wire is the AMQP 1.0 wire format as a server needs it: the type
// system (encode and decode of every primitive, list, map, array and
// described value), the frame layout, the performatives and SASL frames,
// and message sections.
//
// No maintained Go library serves AMQP 1.0 (github.com/Azure/go-amqp is a
// client whose codec is internal), so this package is written from the
// OASIS specification and checked against go-amqp, rhea and the Azure SDKs
// as clients (docs/architecture.md, docs/dependencies.md). Values decode
// to plain Go types — nil, bool, the sized integers, float32/64, string,
// []byte, time.Time — plus Symbol, UUID, Char, Map, Array, Described and
// the list type []any. Decoding never panics on hostile input and never
// allocates more than the input can justify (FuzzDecode).
package wire
