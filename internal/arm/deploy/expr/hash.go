package expr

import (
	"crypto/sha1"
	"math/bits"
	"strings"

	"github.com/google/uuid"
)

// UniqueString is ARM's uniqueString(): the arguments joined with '-',
// hashed with the 64-bit MurmurHash variant Azure.Deployments uses (two
// 32-bit lanes with the MurmurHash3 x86 constants, seed 0), and the top 65
// bits of the hash written as 13 base-32 characters.
func UniqueString(parts ...string) string {
	h := murmurHash64([]byte(strings.Join(parts, "-")))
	const alphabet = "abcdefghijklmnopqrstuvwxyz234567"
	var out [13]byte
	for i := range out {
		out[i] = alphabet[h>>59]
		h <<= 5
	}
	return string(out[:])
}

func murmurHash64(data []byte) uint64 {
	const (
		c1 uint32 = 0x239B961B
		c2 uint32 = 0xAB0E9789
	)
	var h1, h2 uint32
	n := len(data)
	i := 0
	for ; i+7 < n; i += 8 {
		k1 := le32(data[i : i+4])
		k2 := le32(data[i+4 : i+8])

		k1 = bits.RotateLeft32(k1*c1, 15) * c2
		h1 ^= k1
		h1 = (bits.RotateLeft32(h1, 19)+h2)*5 + 0x561CCD1B

		k2 = bits.RotateLeft32(k2*c2, 17) * c1
		h2 ^= k2
		h2 = (bits.RotateLeft32(h2, 13)+h1)*5 + 0x0BCAA747
	}
	if rest := n - i; rest > 0 {
		k1 := le32(data[i : i+min(rest, 4)])
		h1 ^= bits.RotateLeft32(k1*c1, 15) * c2
		if rest > 4 {
			k2 := le32(data[i+4 : n])
			h2 ^= bits.RotateLeft32(k2*c2, 17) * c1
		}
	}
	h1 ^= uint32(n)
	h2 ^= uint32(n)
	h1 += h2
	h2 += h1
	h1 = fmix32(h1)
	h2 = fmix32(h2)
	h1 += h2
	h2 += h1
	return uint64(h2)<<32 | uint64(h1)
}

// le32 reads up to four bytes little-endian.
func le32(b []byte) uint32 {
	var v uint32
	for j, c := range b {
		v |= uint32(c) << (8 * j)
	}
	return v
}

func fmix32(h uint32) uint32 {
	h ^= h >> 16
	h *= 0x85EBCA6B
	h ^= h >> 13
	h *= 0xC2B2AE35
	h ^= h >> 16
	return h
}

// armGUIDNamespace is the namespace ARM's guid() hashes names in.
const armGUIDNamespace = "\x11\xfb\x06\xfb\x71\x2d\x4d\xdd\x98\xc7\xe7\x1b\xbd\x58\x88\x30"

// GUID is ARM's guid(): an RFC 4122 version 5 (SHA-1, name-based) UUID of
// the arguments joined with '-' (UTF-8) in the namespace
// 11fb06fb-712d-4ddd-98c7-e71bbd588830.
func GUID(parts ...string) string {
	h := sha1.New()
	h.Write([]byte(armGUIDNamespace))
	h.Write([]byte(strings.Join(parts, "-")))
	var u [16]byte
	copy(u[:], h.Sum(nil))
	u[6] = u[6]&0x0F | 0x50
	u[8] = u[8]&0x3F | 0x80
	return formatUUID(u)
}

func formatUUID(u [16]byte) string { return uuid.UUID(u).String() }
