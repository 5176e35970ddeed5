// Package wire is the protocol spoken over the tpmcard service socket: frame
// layout, CBOR codec, status codes and the catalog of messages. Encoding and
// decoding happen in this package only; the service, the CLI and the PKCS#11
// module all go through it.
//
// # Frames
//
// Every message travels in one frame:
//
//	+----------------------+--------+------------------+
//	| length (u32, BE)     | type   | body (CBOR)      |
//	+----------------------+--------+------------------+
//	  4 bytes               1 byte   length-1 bytes
//
// length counts the type byte plus the body, so it is at least 1. A length
// of 0 is rejected ([ErrEmptyFrame]), as is anything above [MaxFrame]
// (1 MiB, [ErrFrameTooLarge]); both directions enforce the cap and an
// oversized frame is refused before its body is read or allocated.
//
// The body is one CBOR data item, a map with small integer keys, encoded
// deterministically (RFC 8949 §4.2.1 core deterministic encoding) and
// decoded strictly: no duplicate map keys, no indefinite lengths, no tags,
// bounded nesting and sizes, no trailing bytes, valid UTF-8 only.
//
// # Conversation
//
// The client opens with [Hello] naming [Version]; the server answers
// [HelloReply] or an Error frame with [VersionMismatch]. After that each
// request gets exactly one final reply: its own reply type (see
// [ReplyType]), an Error frame carrying a [StatusError], or an
// [UnsupportedReply] for a request type the server does not know — the
// connection stays open in every case. Before the final reply the server
// may send any number of [Progress] frames (key generation can take
// seconds). One connection is one PKCS#11 application; sessions are numbers
// inside it.
//
// # Versioning
//
// Type numbers, status numbers and field keys are written out explicitly
// and are never renumbered or reused. A new field gets a new integer key
// and must be optional: decoders ignore keys they do not know, and a zero
// value is omitted on the wire, so old and new peers read each other. A new
// request gets a new type number; an old server answers it with
// [UnsupportedReply], which lets a client probe for features. [Version] is
// raised only for a change that cannot be expressed that way.
//
// # Secrets
//
// PIN and PUK fields are [github.com/tpmcard/tpmcard/tpmcard/secret.Secret] values, encoded as CBOR byte
// strings. They print as "[REDACTED]" under every fmt verb, so the frame
// trace hook ([Conn.Trace], enabled by TPMCARD_DEBUG=wire in the binaries)
// never shows them. [Conn] clears its own encode and decode buffers after
// use; callers of [Conn.Recv] that decode a secret-bearing request
// themselves should clear the body afterwards.
package wire
