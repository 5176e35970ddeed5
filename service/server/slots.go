package server

import (
	"hash/fnv"
	"slices"
	"unicode/utf8"

	"github.com/tpmcard/tpmcard/service/p11"
	"github.com/tpmcard/tpmcard/service/wire"
	"github.com/tpmcard/tpmcard/tpmcard"
)

// PKCS#11 slots (PKCS#11 v2.40 §5.5). Each card is a reader with the token
// always in it. Its slot ID is derived from its serial, not counted: no
// state to write (a full or read-only state directory cannot keep a card
// from getting one), the same on every connection, across restarts and
// after a state directory is restored. Slot 0 is never a card's: it is the
// empty reader a connection sees while it knows no card at all.

// Slot and module identity in CK_SLOT_INFO.
const (
	slotDescription  = "tpmcard virtual reader"
	slotManufacturer = "tpmcard"
	firmwareMajor    = 0
	firmwareMinor    = 1
)

// slotHash is a serial's preferred slot ID: 31 bits of FNV-1a (CK_SLOT_ID
// is 32 bits on Windows, and some tools print it signed), never 0.
func slotHash(serial string) uint64 {
	h := fnv.New32a()
	h.Write([]byte(serial))
	id := uint64(h.Sum32() & 0x7fffffff)
	if id == 0 {
		id = 1
	}
	return id
}

// slotIDs gives every card its slot ID. Two serials with the same hash (a
// chance of about n²/2³² among n cards) are taken in serial order, the later
// one moving to the next free ID.
func slotIDs(cards []tpmcard.CardInfo) map[string]uint64 {
	serials := make([]string, 0, len(cards))
	for _, ci := range cards {
		serials = append(serials, ci.Serial)
	}
	slices.Sort(serials)
	ids := make(map[string]uint64, len(serials))
	used := make(map[uint64]bool, len(serials))
	for _, s := range serials {
		id := slotHash(s)
		for used[id] {
			id = id%0x7fffffff + 1
		}
		used[id] = true
		ids[s] = id
	}
	return ids
}

// slotCard is a card the peer may use, with its slot ID.
type slotCard struct {
	id uint64
	ci tpmcard.CardInfo
}

// slotCards lists the cards the peer may use, by slot ID, and remembers
// their slots for this connection. A peer outside the card group has none.
func (c *conn) slotCards() ([]slotCard, error) {
	if !c.role.user {
		return nil, nil
	}
	cards, err := c.s.m.Cards()
	if err != nil {
		return nil, err
	}
	ids := slotIDs(cards)
	if c.slots == nil {
		c.slots = map[uint64]string{}
	}
	var out []slotCard
	for _, ci := range cards {
		if !c.mayUse(ci.Owner) {
			continue
		}
		id := ids[ci.Serial]
		c.slots[id] = ci.Serial
		out = append(out, slotCard{id, ci})
	}
	slices.SortFunc(out, func(a, b slotCard) int { return cmpUint(a.id, b.id) })
	return out, nil
}

func cmpUint(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// slotFor is the slot ID of a card, gone or not, for events and sessions.
func (c *conn) slotFor(serial string) uint64 {
	if cards, err := c.s.m.Cards(); err == nil {
		if id, ok := slotIDs(cards)[serial]; ok {
			return id
		}
	}
	for id, s := range c.slots {
		if s == serial {
			return id
		}
	}
	return slotHash(serial)
}

// resolveSlot names the card in a slot: present is false for a slot this
// connection was shown whose card is gone, and for the empty slot 0;
// any other ID is SlotInvalid.
func (c *conn) resolveSlot(id uint64) (card tpmcard.CardInfo, present bool, err error) {
	cards, err := c.slotCards()
	if err != nil {
		return tpmcard.CardInfo{}, false, err
	}
	for _, sc := range cards {
		if sc.id == id {
			return sc.ci, true, nil
		}
	}
	if _, ok := c.slots[id]; ok || (id == 0 && len(c.slots) == 0) {
		return tpmcard.CardInfo{}, false, nil
	}
	return tpmcard.CardInfo{}, false, wire.Errorf(wire.SlotInvalid, "no slot %d", id)
}

// presentSlot is the serial of the card in a slot, or CardNotFound
// (CKR_TOKEN_NOT_PRESENT) for a slot without one.
func (c *conn) presentSlot(id uint64) (string, error) {
	ci, present, err := c.resolveSlot(id)
	if err != nil {
		return "", err
	}
	if !present {
		return "", wire.Errorf(wire.CardNotFound, "no token in slot %d", id)
	}
	return ci.Serial, nil
}

// getSlotList is C_GetSlotList: the slots of the cards the peer may use
// and, unless only those with a token are asked for, the slots shown on
// this connection whose card is gone, or the empty slot 0.
func (c *conn) getSlotList(m *wire.GetSlotList) (any, error) {
	cards, err := c.slotCards()
	if err != nil {
		// C_GetSlotList has no CK_RV for a card list that cannot be read:
		// the slots show, without tokens.
		c.log.Warn().Err(err).Msg("listing cards for the slot list")
	}
	out := &wire.SlotList{}
	for _, sc := range cards {
		out.Slots = append(out.Slots, sc.id)
	}
	if !m.TokenPresent {
		for id := range c.slots {
			if !slices.Contains(out.Slots, id) {
				out.Slots = append(out.Slots, id)
			}
		}
		if len(out.Slots) == 0 {
			out.Slots = []uint64{0}
		}
		slices.Sort(out.Slots)
	}
	return out, nil
}

// getSlotInfo is C_GetSlotInfo.
func (c *conn) getSlotInfo(m *wire.GetSlotInfo) (any, error) {
	_, present, err := c.resolveSlot(m.Slot)
	if _, shown := c.slots[m.Slot]; err != nil && wire.StatusOf(err) != wire.SlotInvalid && shown {
		c.log.Warn().Err(err).Msg("listing cards for the slot info")
		present, err = false, nil
	}
	if err != nil {
		return nil, err
	}
	return slotInfo(present, c.s.cfg.Simulated), nil
}

// slotInfo is CK_SLOT_INFO: a removable reader, hardware unless the TPM
// is a simulator.
func slotInfo(present, simulated bool) *wire.SlotDescription {
	flags := uint64(p11.CKFRemovableDevice)
	if present {
		flags |= p11.CKFTokenPresent
		if !simulated {
			flags |= p11.CKFHWSlot
		}
	}
	return &wire.SlotDescription{
		Description:   padded(slotDescription, 64),
		Manufacturer:  padded(slotManufacturer, 32),
		Flags:         flags,
		FirmwareMajor: firmwareMajor,
		FirmwareMinor: firmwareMinor,
	}
}

// getTokenInfo is C_GetTokenInfo.
func (c *conn) getTokenInfo(m *wire.GetTokenInfo) (any, error) {
	serial, err := c.presentSlot(m.Slot)
	if err != nil {
		return nil, err
	}
	ci, err := c.s.m.Card(serial)
	if err != nil {
		return nil, err
	}
	st, err := c.s.m.Status(serial)
	if err != nil {
		// A lost card still shows, so that it can be destroyed.
		c.log.Warn().Str("card", serial).Err(err).Msg("reading card status")
		st = &tpmcard.CardStatus{CardInfo: ci, PINTriesLeft: -1, PUKTriesLeft: -1}
	}
	ti := c.s.tokenInfo(st)
	ti.State = cardState(ci, err)
	return tokenDescription(ti), nil
}

// tokenDescription is CK_TOKEN_INFO (PKCS#11 v2.40 §5.5) from the card's
// description: text padded to the fields' widths, session counts and
// memory sizes the module does not know.
func tokenDescription(ti wire.TokenInfo) *wire.TokenDescription {
	return &wire.TokenDescription{
		Label:              padded(tokenLabel(ti), 32),
		Manufacturer:       padded(ti.Manufacturer, 32),
		Model:              padded(ti.Model, 16),
		SerialNumber:       padded(ti.Serial, 16),
		Flags:              uint64(ti.Flags),
		MaxSessionCount:    p11.CKEffectivelyInfinite,
		SessionCount:       p11.CKUnavailableInformation,
		MaxRWSessionCount:  p11.CKEffectivelyInfinite,
		RWSessionCount:     p11.CKUnavailableInformation,
		MaxPINLen:          uint64(max(ti.MaxPINLen, 0)),
		MinPINLen:          uint64(max(ti.MinPINLen, 0)),
		TotalPublicMemory:  p11.CKUnavailableInformation,
		FreePublicMemory:   p11.CKUnavailableInformation,
		TotalPrivateMemory: p11.CKUnavailableInformation,
		FreePrivateMemory:  p11.CKUnavailableInformation,
		FirmwareMajor:      firmwareMajor,
		FirmwareMinor:      firmwareMinor,
		UTCTime:            padded("", 16), // no clock (CKF_CLOCK_ON_TOKEN unset)
	}
}

// tokenLabel is the label tools show: the card's, or "tpmcard <serial>";
// CK_TOKEN_INFO has no field for a damaged card's state, so the label ends
// with it ("(lost)", "(destroy incomplete)") within its 32 bytes.
func tokenLabel(ti wire.TokenInfo) string {
	label := ti.Label
	if label == "" {
		label = "tpmcard " + ti.Serial
	}
	if ti.State.Damaged() {
		suffix := " (" + ti.State.String() + ")"
		label = truncateUTF8(label, 32-len(suffix)) + suffix
	}
	return label
}

// padded is s in a fixed-width CK_UTF8CHAR field of n bytes, blank-padded
// and not NUL-terminated (PKCS#11 v2.40 §3.2), cut at a character boundary
// when too long.
func padded(s string, n int) []byte {
	s = truncateUTF8(s, n)
	b := make([]byte, n)
	copy(b, s)
	for i := len(s); i < n; i++ {
		b[i] = ' '
	}
	return b
}

// truncateUTF8 cuts s to at most n bytes without splitting a character.
func truncateUTF8(s string, n int) string {
	if n < 0 {
		n = 0
	}
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}
