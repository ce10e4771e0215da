// Package pki is Outpost's local certificate authority. Unmodified SDKs
// (Go, Node, Python, az) reach Outpost over TLS under many names, and they
// only trust it through a CA file (SSL_CERT_FILE, NODE_EXTRA_CA_CERTS,
// REQUESTS_CA_BUNDLE); this package creates that CA and serves a
// certificate for every name Outpost answers to.
//
// Open creates the CA on first start (ca.pem and ca-key.pem in the data
// directory) and loads it afterwards. Each file is written to a temporary
// name, synced and then hard-linked into place: the link is atomic like a
// rename, but unlike a rename it fails when the file exists, so processes
// racing on first start agree on the first key and the first certificate
// written, and a crash never leaves half a file.
//
// ServerTLSConfig picks a leaf per handshake:
//
//   - no SNI (a client dialing an IP address): the default leaf, which names
//     localhost, the host name, the DNS suffix and its wildcards, 127.0.0.1,
//     ::1 and the Options.Names, plus the connection's local IP address when
//     it is another one (a test bound on 127.0.0.7);
//   - an SNI name the default leaf covers: the default leaf;
//   - another valid DNS name that Options.Allow accepts: a leaf minted for
//     exactly that name;
//   - anything else: the default leaf, so the client fails with a hostname
//     mismatch that names what the certificate is valid for.
//
// Leaves are cached (bounded, least recently used evicted), minted once per
// name even when many handshakes ask at the same moment, and re-minted once
// two thirds of their lifetime has passed. The cache's mutex is the
// package's only lock; minting happens outside it.
package pki
