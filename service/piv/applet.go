package piv

import (
	"bytes"
	"crypto"
	"encoding/asn1"
	"errors"
	"fmt"

	"github.com/tpmcard/tpmcard/tpmcard"
	"github.com/tpmcard/tpmcard/tpmcard/secret"
)

// Card is what the applet asks of the card behind it. The service backs
// it with the card core and the login state of its socket API, so that a
// PIV VERIFY is a login like any other: the TPM checks the PIN, counts a
// wrong one and locks the PIN at the card's limit, and a wrong PIN ends
// every application's login of the card.
type Card interface {
	// Verify proves the PIN to the TPM and keeps the login (Manager.Login).
	Verify(pin secret.Secret) error
	// Verified reports whether the reader's login holds.
	Verified() bool
	// Logout ends the reader's login.
	Logout()
	// Status reads the card's counters from the TPM.
	Status() (*tpmcard.CardStatus, error)
	ChangePIN(oldPIN, newPIN secret.Secret) error
	ChangePUK(oldPUK, newPUK secret.Secret) error
	Unblock(puk, newPIN secret.Secret) error
	// Sign signs after Verify (Manager.Sign).
	Sign(keyID, digest []byte, opts tpmcard.SignOptions) ([]byte, error)
	Key(keyID []byte) (tpmcard.KeyInfo, error)
	// Certificate returns the DER certificate of a key, or an error that
	// is tpmcard.ErrNotFound.
	Certificate(keyID []byte) ([]byte, error)
}

// Key references and algorithm identifiers (SP 800-78-4 Tables 4 and 6-2).
const (
	SlotAuthentication byte = 0x9A
	SlotSignature      byte = 0x9C
	SlotKeyManagement  byte = 0x9D
	SlotCardAuth       byte = 0x9E
	slotManagement     byte = 0x9B

	algRSA2048 byte = 0x07
	algP256    byte = 0x11
	algP384    byte = 0x14

	refPIN byte = 0x80 // PIV Card Application PIN
	refPUK byte = 0x81 // PIN Unblocking Key
)

// Slots are the key slots a card key can be assigned to.
var Slots = []byte{SlotAuthentication, SlotSignature, SlotKeyManagement, SlotCardAuth}

// MaxPINLength is the longest PIN or PUK a PIV card carries: eight bytes,
// padded with 0xFF (SP 800-73-4 Part 2 §2.4.3).
const MaxPINLength = 8

// maxChain bounds the data a chain of commands may gather; the longest
// the applet takes is an RSA-2048 GENERAL AUTHENTICATE of about 270 bytes.
const maxChain = 4096

// pivAID is the PIV Card Application's AID with its version (SP 800-73-4
// Part 1 §2.2); SELECT may name it in full or by its first 9 bytes.
var pivAID = []byte{0xA0, 0x00, 0x00, 0x03, 0x08, 0x00, 0x00, 0x10, 0x00, 0x01, 0x00}

// Applet is one PIV card application: the state of one card in one
// reader. It is not safe for concurrent use; a Link calls it from one
// goroutine.
type Applet struct {
	card   Card
	serial string
	slots  map[byte][]byte // key reference -> card key ID

	chain    *Command // the chain gathered so far
	pending  []byte   // response data GET RESPONSE hands out
	signedOK bool     // the last VERIFY has not yet been used by a 9C signature
}

// NewApplet returns the applet of a card whose slots map key references
// (SlotAuthentication …) to card key IDs.
func NewApplet(serial string, card Card, slots map[byte][]byte) *Applet {
	s := make(map[byte][]byte, len(slots))
	for k, v := range slots {
		s[k] = bytes.Clone(v)
	}
	return &Applet{card: card, serial: serial, slots: s}
}

// Reset is a power cycle or a warm reset: the security status and every
// unfinished exchange end (ISO/IEC 7816-4 §5.4.1).
func (a *Applet) Reset() {
	a.chain, a.pending, a.signedOK = nil, nil, false
	a.card.Logout()
}

// Process answers one command APDU with a response APDU. It never fails:
// whatever the bytes, the answer is a status word.
func (a *Applet) Process(apdu []byte) []byte {
	c, err := ParseCommand(apdu)
	if err != nil {
		a.chain, a.pending = nil, nil
		return response(nil, SW(err))
	}
	if c.INS == 0xC0 { // GET RESPONSE (ISO/IEC 7816-4 §7.6.1)
		return a.getResponse(c)
	}
	a.pending = nil
	if a.chain != nil {
		if c.INS != a.chain.INS || c.P1 != a.chain.P1 || c.P2 != a.chain.P2 {
			a.chain = nil
			return response(nil, swLastCommandInChain)
		}
		if len(a.chain.Data)+len(c.Data) > maxChain {
			a.chain = nil
			return response(nil, swWrongLength)
		}
		a.chain.Data = append(a.chain.Data, c.Data...)
		a.chain.Ne = c.Ne
		if c.Chained() {
			return response(nil, swOK)
		}
		c, a.chain = a.chain, nil
	} else if c.Chained() {
		if len(c.Data) > maxChain {
			return response(nil, swWrongLength)
		}
		cc := *c
		cc.Data = bytes.Clone(c.Data)
		a.chain = &cc
		return response(nil, swOK)
	}
	data, sw := a.dispatch(c)
	return a.respond(data, sw, c.Ne)
}

// respond sends as much of data as the reader takes and keeps the rest
// for GET RESPONSE, announced with 61xx (ISO/IEC 7816-4 §5.3.4).
func (a *Applet) respond(data []byte, sw uint16, ne int) []byte {
	if sw != swOK || len(data) == 0 {
		return response(data, sw)
	}
	if ne == 0 {
		ne = 256 // no Le: still answer, in parts every reader takes
	}
	if len(data) <= ne {
		return response(data, swOK)
	}
	a.pending = data[ne:]
	return response(data[:ne], swBytesRemaining|uint16(min(len(a.pending), 256)&0xFF))
}

func (a *Applet) getResponse(c *Command) []byte {
	if c.P1 != 0 || c.P2 != 0 {
		return response(nil, swIncorrectP1P2)
	}
	if a.pending == nil {
		return response(nil, swConditions)
	}
	data := a.pending
	a.pending = nil
	return a.respond(data, swOK, max(c.Ne, 1))
}

func (a *Applet) dispatch(c *Command) ([]byte, uint16) {
	switch c.INS {
	case 0xA4:
		return a.selectApp(c)
	case 0xCB:
		return a.getData(c)
	case 0x20:
		return a.verify(c)
	case 0x24:
		return a.changeReference(c)
	case 0x2C:
		return a.resetRetryCounter(c)
	case 0x87:
		return a.generalAuthenticate(c)
	case 0x47, 0xDB, 0xFE:
		// GENERATE ASYMMETRIC KEY PAIR, PUT DATA, SET MANAGEMENT KEY:
		// the card is managed with tpmcard's tools, never through PIV.
		return nil, swSecurityStatus
	}
	return nil, swINSNotSupported
}

// selectApp answers SELECT by AID (ISO/IEC 7816-4 §11.2.2) with the
// application property template (SP 800-73-4 Part 2 §3.1.1).
func (a *Applet) selectApp(c *Command) ([]byte, uint16) {
	if c.P1 != 0x04 {
		return nil, swFuncNotSupported
	}
	if c.P2&^0x0C != 0 {
		return nil, swIncorrectP1P2
	}
	if len(c.Data) < 5 || len(c.Data) > len(pivAID) || !bytes.HasPrefix(pivAID, c.Data) {
		return nil, swNotFound
	}
	// Selecting the application ends its security status, as a YubiKey
	// does: a client that selects it (each one, on the shared reader)
	// starts unverified, and VERIFY without data then answers the tries
	// left (yubico-piv-tool reads them that way).
	a.chain, a.pending, a.signedOK = nil, nil, false
	a.card.Logout()
	return applicationProperties(), swOK
}

func (a *Applet) getData(c *Command) ([]byte, uint16) {
	if c.P1 != 0x3F || c.P2 != 0xFF {
		return nil, swIncorrectP1P2
	}
	tag, v, rest, err := readTLV(c.Data)
	if err != nil || tag != 0x5C || len(rest) != 0 || len(v) < 1 || len(v) > 3 {
		return nil, swIncorrectData
	}
	var id uint32
	for _, b := range v {
		id = id<<8 | uint32(b)
	}
	switch id {
	case 0x7E:
		return discoveryObject(), swOK
	case 0x5FC102:
		return chuid(a.serial), swOK
	case 0x5FC107:
		return ccc(a.serial), swOK
	case 0x5FC10C:
		return keyHistory(), swOK
	}
	slot, ok := certObjects[id]
	if !ok {
		return nil, swNotFound
	}
	keyID := a.slots[slot]
	if keyID == nil {
		return nil, swNotFound
	}
	der, err := a.card.Certificate(keyID)
	if err != nil {
		return nil, statusOf(err)
	}
	return certificateObject(der), swOK
}

// pinField reads an 8-byte PIN or PUK field: the secret, padded with
// 0xFF (SP 800-73-4 Part 2 §2.4.3). An empty one or one with a 0xFF
// before other bytes is refused.
func pinField(b []byte) (secret.Secret, bool) {
	if len(b) != MaxPINLength {
		return nil, false
	}
	n := bytes.IndexByte(b, 0xFF)
	if n < 0 {
		n = len(b)
	}
	for _, c := range b[n:] {
		if c != 0xFF {
			return nil, false
		}
	}
	if n == 0 {
		return nil, false
	}
	return secret.New(b[:n]), true
}

// verify is VERIFY (SP 800-73-4 Part 2 §3.2.1): with a PIN, the TPM checks
// it; without data, the answer is the security status: 9000 verified,
// 63Cx the tries left, 6983 locked; P1 FF ends the verified state.
func (a *Applet) verify(c *Command) ([]byte, uint16) {
	switch {
	case c.P2 == refPUK || c.P2 == 0x00:
		return nil, swRefNotFound // no global PIN; the PUK is not verified alone
	case c.P2 != refPIN:
		return nil, swIncorrectP1P2
	case c.P1 == 0xFF:
		if len(c.Data) != 0 {
			return nil, swWrongLength
		}
		a.signedOK = false
		a.card.Logout()
		return nil, swOK
	case c.P1 != 0x00:
		return nil, swIncorrectP1P2
	}
	if len(c.Data) == 0 {
		if a.card.Verified() {
			return nil, swOK
		}
		st, err := a.card.Status()
		if err != nil {
			return nil, statusOf(err)
		}
		if st.PINLocked {
			return nil, swAuthBlocked
		}
		return nil, tries(st.PINTriesLeft)
	}
	pin, ok := pinField(c.Data)
	if !ok {
		return nil, swIncorrectData
	}
	defer pin.Wipe()
	a.signedOK = false
	if err := a.card.Verify(pin); err != nil {
		return nil, statusOf(err)
	}
	a.signedOK = true
	return nil, swOK
}

// changeReference is CHANGE REFERENCE DATA (§3.2.2): the old secret and
// the new one, each in an 8-byte field, for the PIN (80) or the PUK (81).
func (a *Applet) changeReference(c *Command) ([]byte, uint16) {
	if c.P1 != 0x00 || (c.P2 != refPIN && c.P2 != refPUK) {
		return nil, swIncorrectP1P2
	}
	if len(c.Data) != 2*MaxPINLength {
		return nil, swIncorrectData
	}
	old, ok1 := pinField(c.Data[:MaxPINLength])
	nw, ok2 := pinField(c.Data[MaxPINLength:])
	defer old.Wipe()
	defer nw.Wipe()
	if !ok1 || !ok2 {
		return nil, swIncorrectData
	}
	var err error
	if c.P2 == refPIN {
		err = a.card.ChangePIN(old, nw)
	} else {
		err = a.card.ChangePUK(old, nw)
	}
	if err != nil {
		return nil, statusOf(err)
	}
	return nil, swOK
}

// resetRetryCounter is RESET RETRY COUNTER (§3.2.3): the PUK and a new
// PIN. The TPM checks the PUK; the card then carries "PIN must change",
// so it signs again only after a CHANGE REFERENCE DATA.
func (a *Applet) resetRetryCounter(c *Command) ([]byte, uint16) {
	if c.P1 != 0x00 || c.P2 != refPIN {
		return nil, swIncorrectP1P2
	}
	if len(c.Data) != 2*MaxPINLength {
		return nil, swIncorrectData
	}
	puk, ok1 := pinField(c.Data[:MaxPINLength])
	pin, ok2 := pinField(c.Data[MaxPINLength:])
	defer puk.Wipe()
	defer pin.Wipe()
	if !ok1 || !ok2 {
		return nil, swIncorrectData
	}
	a.signedOK = false
	if err := a.card.Unblock(puk, pin); err != nil {
		return nil, statusOf(err)
	}
	return nil, swOK
}

// generalAuthenticate signs a challenge (§3.2.4): a dynamic
// authentication template 7C holding an empty response (82) and the
// challenge (81). ECDSA challenges are the digest; an RSA challenge is a
// PKCS #1 v1.5 block whose DigestInfo the TPM signs (TPM2_Sign with
// RSASSA builds the same block again), so the card refuses a block that
// is no signature block: it cannot decrypt, nor sign raw data.
func (a *Applet) generalAuthenticate(c *Command) ([]byte, uint16) {
	if c.P2 == slotManagement {
		return nil, swSecurityStatus
	}
	keyID := a.slots[c.P2]
	if keyID == nil {
		if isSlot(c.P2) {
			return nil, swRefNotFound
		}
		return nil, swIncorrectP1P2
	}
	tag, tmpl, rest, err := readTLV(c.Data)
	if err != nil || tag != 0x7C || len(rest) != 0 {
		return nil, swIncorrectData
	}
	var challenge []byte
	var wantResponse bool
	for len(tmpl) > 0 {
		var t uint32
		var v []byte
		if t, v, tmpl, err = readTLV(tmpl); err != nil {
			return nil, swIncorrectData
		}
		switch {
		case t == 0x82 && len(v) == 0:
			wantResponse = true
		case t == 0x81 && challenge == nil:
			challenge = v
		case t == 0x85, t == 0x80:
			// Key agreement and witnesses: the card keys only sign.
			return nil, swFuncNotSupported
		default:
			return nil, swIncorrectData
		}
	}
	if !wantResponse || len(challenge) == 0 {
		return nil, swIncorrectData
	}
	k, err := a.card.Key(keyID)
	if err != nil {
		return nil, statusOf(err)
	}
	if algID(k.Algorithm) != c.P1 {
		return nil, swIncorrectP1P2
	}
	var digest []byte
	var opts tpmcard.SignOptions
	if k.Algorithm.IsRSA() {
		if len(challenge) != k.Algorithm.Bits()/8 {
			return nil, swIncorrectData
		}
		if opts.Hash, digest, err = parsePKCS1(challenge); err != nil {
			return nil, swIncorrectData
		}
	} else {
		digest = challenge
	}
	if !a.card.Verified() {
		return nil, swSecurityStatus
	}
	if c.P2 == SlotSignature {
		// The digital signature key needs the PIN right before each use
		// (SP 800-73-4 Part 1 §3.2.2, "PIN Always").
		if !a.signedOK {
			return nil, swSecurityStatus
		}
		a.signedOK = false
	}
	sig, err := a.card.Sign(keyID, digest, opts)
	if err != nil {
		return nil, statusOf(err)
	}
	if !k.Algorithm.IsRSA() {
		if sig, err = tpmcard.RawToASN1(sig); err != nil {
			return nil, swUnknown
		}
	}
	return tlv(nil, 0x7C, tlv(nil, 0x82, sig)), swOK
}

func isSlot(b byte) bool { return bytes.IndexByte(Slots, b) >= 0 }

// algID is the PIV algorithm identifier of a card key's algorithm, or 0
// for one PIV has none for.
func algID(a tpmcard.Algorithm) byte {
	switch a {
	case tpmcard.RSA2048:
		return algRSA2048
	case tpmcard.ECDSAP256:
		return algP256
	case tpmcard.ECDSAP384:
		return algP384
	}
	return 0
}

// digestInfoHashes are the hashes whose DigestInfo a PKCS #1 v1.5 block
// may carry (RFC 8017 §9.2 note 1) and the TPM signs.
var digestInfoHashes = map[crypto.Hash]asn1.ObjectIdentifier{
	crypto.SHA1:   {1, 3, 14, 3, 2, 26},
	crypto.SHA256: {2, 16, 840, 1, 101, 3, 4, 2, 1},
	crypto.SHA384: {2, 16, 840, 1, 101, 3, 4, 2, 2},
	crypto.SHA512: {2, 16, 840, 1, 101, 3, 4, 2, 3},
}

var errNotSignatureBlock = errors.New("not a PKCS #1 v1.5 signature block")

// parsePKCS1 takes a PKCS #1 v1.5 signature block apart (RFC 8017 §9.2:
// 00 01 FF… 00 DigestInfo, at least 8 bytes of FF) and returns the hash
// and digest of its DigestInfo, which must be DER with nothing after it.
func parsePKCS1(block []byte) (crypto.Hash, []byte, error) {
	if len(block) < 11 || block[0] != 0x00 || block[1] != 0x01 {
		return 0, nil, errNotSignatureBlock
	}
	i := 2
	for i < len(block) && block[i] == 0xFF {
		i++
	}
	if i-2 < 8 || i >= len(block) || block[i] != 0x00 {
		return 0, nil, errNotSignatureBlock
	}
	info := block[i+1:]
	var di struct {
		Alg struct {
			OID    asn1.ObjectIdentifier
			Params asn1.RawValue `asn1:"optional"`
		}
		Digest []byte
	}
	rest, err := asn1.Unmarshal(info, &di)
	if err != nil || len(rest) != 0 {
		return 0, nil, fmt.Errorf("%w: DigestInfo: %v", errNotSignatureBlock, err)
	}
	if len(di.Alg.Params.FullBytes) != 0 && !bytes.Equal(di.Alg.Params.FullBytes, []byte{0x05, 0x00}) {
		return 0, nil, fmt.Errorf("%w: DigestInfo parameters", errNotSignatureBlock)
	}
	var h crypto.Hash
	for hh, oid := range digestInfoHashes {
		if oid.Equal(di.Alg.OID) {
			h = hh
		}
	}
	if h == 0 || len(di.Digest) != h.Size() {
		return 0, nil, fmt.Errorf("%w: hash %v", errNotSignatureBlock, di.Alg.OID)
	}
	// The block must be the one the TPM builds again for RSASSA: the
	// DigestInfo of RFC 8017 §9.2 note 1, with NULL parameters.
	if !bytes.Equal(canonicalDigestInfo(h, di.Digest), info) {
		return 0, nil, fmt.Errorf("%w: DigestInfo encoding", errNotSignatureBlock)
	}
	return h, di.Digest, nil
}

// canonicalDigestInfo is the DigestInfo of RFC 8017 §9.2 note 1, with
// NULL parameters.
func canonicalDigestInfo(h crypto.Hash, digest []byte) []byte {
	type algID struct {
		OID    asn1.ObjectIdentifier
		Params asn1.RawValue
	}
	b, _ := asn1.Marshal(struct {
		Alg    algID
		Digest []byte
	}{algID{digestInfoHashes[h], asn1.NullRawValue}, digest})
	return b
}

// tries is 63Cx: x tries left, at most 15.
func tries(n int) uint16 {
	if n < 0 {
		return swSecurityStatus
	}
	return swWarnTries | uint16(min(n, 15))
}

// statusOf maps the card core's errors to status words.
func statusOf(err error) uint16 {
	var pe *tpmcard.PINError
	var pol *tpmcard.PolicyError
	switch {
	case errors.As(err, &pe):
		return tries(pe.TriesLeft)
	case errors.Is(err, tpmcard.ErrPINLocked), errors.Is(err, tpmcard.ErrPUKLocked), errors.Is(err, tpmcard.ErrCardBlocked):
		return swAuthBlocked
	case errors.Is(err, tpmcard.ErrNoPUK):
		return swRefNotFound
	case errors.As(err, &pol):
		return swIncorrectData
	case errors.Is(err, tpmcard.ErrPINExpired), errors.Is(err, tpmcard.ErrNotLoggedIn):
		return swSecurityStatus
	case errors.Is(err, tpmcard.ErrNotFound):
		return swNotFound
	case errors.Is(err, tpmcard.ErrUnsupported), errors.Is(err, tpmcard.ErrInvalidOptions):
		return swIncorrectData
	}
	return swUnknown
}

// certificateObject is an X.509 Certificate data object (SP 800-73-4
// Part 1 Appendix A, Table 10): the certificate, uncompressed, no LRC.
func certificateObject(der []byte) []byte {
	var v []byte
	v = tlv(v, 0x70, der)
	v = tlv(v, 0x71, []byte{0x00})
	v = tlv(v, 0xFE, nil)
	return tlv(nil, 0x53, v)
}

// certObjects maps certificate data object tags to their key slots.
var certObjects = map[uint32]byte{
	0x5FC105: SlotAuthentication,
	0x5FC10A: SlotSignature,
	0x5FC10B: SlotKeyManagement,
	0x5FC101: SlotCardAuth,
}
