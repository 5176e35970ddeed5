package wire

// PIV readers (docs/piv.md): the service presents chosen cards as PIV card
// applications in vsmartcard's virtual reader (vpcd), and maps card keys
// to PIV key slots. Every request is an administrator's; each answers with
// PIVCards, the readers as they are after it.
const (
	TypePIVEnable  Type = 0x50
	TypePIVDisable Type = 0x51
	TypePIVAssign  Type = 0x52
	TypePIVStatus  Type = 0x53

	TypePIVCards Type = 0xd0
)

var pivCatalog = map[Type]entry{
	TypePIVEnable:  {"PIVEnable", mk[PIVEnable](), TypePIVCards},
	TypePIVDisable: {"PIVDisable", mk[PIVDisable](), TypePIVCards},
	TypePIVAssign:  {"PIVAssign", mk[PIVAssign](), TypePIVCards},
	TypePIVStatus:  {"PIVStatus", mk[PIVStatus](), TypePIVCards},
	TypePIVCards:   {"PIVCards", mk[PIVCards](), 0},
}

func init() { join(pivCatalog) }

// PIVRequest is one of the PIV requests, which the server hands to one
// handler.
type PIVRequest interface{ pivRequest() }

func (*PIVEnable) pivRequest()  {}
func (*PIVDisable) pivRequest() {}
func (*PIVAssign) pivRequest()  {}
func (*PIVStatus) pivRequest()  {}

// PIVEnable puts a card in a PIV reader, connected to vpcd on Port (0: the
// first free port from 35963). AnyLocalUser must be true: pcsc-lite lets
// every local user use every reader, and after one client's VERIFY every
// other client shares the card's security status, so the administrator
// consents to any local user using the card with its PIN.
type PIVEnable struct {
	Serial       string `cbor:"1,keyasint,omitempty"`
	Port         int    `cbor:"2,keyasint,omitempty"`
	AnyLocalUser bool   `cbor:"3,keyasint,omitempty"`
}

// PIVDisable takes a card out of its reader; its slot map goes.
type PIVDisable struct {
	Serial string `cbor:"1,keyasint,omitempty"`
}

// PIVAssign puts a card key (its full ID) in a PIV slot (0x9a, 0x9c,
// 0x9d, 0x9e); an empty KeyID empties the slot.
type PIVAssign struct {
	Serial string `cbor:"1,keyasint,omitempty"`
	Slot   uint8  `cbor:"2,keyasint,omitempty"`
	KeyID  []byte `cbor:"3,keyasint,omitempty"`
}

// PIVStatus asks for the readers.
type PIVStatus struct{}

// PIVCards are the cards in PIV readers.
type PIVCards struct {
	Cards []PIVCard `cbor:"1,keyasint,omitempty"`
}

// PIVCard is one card in a reader: its vpcd port, whether vpcd is
// connected now, and its slots.
type PIVCard struct {
	Serial    string    `cbor:"1,keyasint,omitempty"`
	Port      int       `cbor:"2,keyasint,omitempty"`
	Connected bool      `cbor:"3,keyasint,omitempty"`
	Slots     []PIVSlot `cbor:"4,keyasint,omitempty"`
}

// PIVSlot is a key slot and the card key in it.
type PIVSlot struct {
	Slot  uint8  `cbor:"1,keyasint,omitempty"`
	KeyID []byte `cbor:"2,keyasint,omitempty"`
}
