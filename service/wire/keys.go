package wire

// Requests about a card's keys as a whole, beside PKCS#11's one object at
// a time (docs/wire.md, "Key objects").
const (
	TypeDeleteKey Type = 0x2b
)

var keysCatalog = map[Type]entry{
	TypeDeleteKey: {"DeleteKey", mk[DeleteKey](), TypeAck},
}

func init() { join(keysCatalog) }

// DeleteKey removes a key from the card with both its halves and its
// certificate, what `tpmcard key delete` means (administrators; no login:
// the private key object need not be seen). DestroyObject, PKCS#11's
// C_DestroyObject, destroys one half.
type DeleteKey struct {
	Serial string `cbor:"1,keyasint,omitempty"`
	ID     []byte `cbor:"2,keyasint,omitempty"`
}
