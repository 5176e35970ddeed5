package backend

import (
	"crypto"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/google/go-tpm/tpm2"
	"github.com/google/go-tpm/tpm2/transport"
)

// Capabilities is what a TPM reports about itself. A property the TPM did not
// report is zero; Properties holds exactly what it reported.
type Capabilities struct {
	Manufacturer    string // TPM_PT_MANUFACTURER as text, e.g. "IBM", "MSFT", "INTC"
	VendorString    string // TPM_PT_VENDOR_STRING_1..4
	VendorTPMType   uint32 // TPM_PT_VENDOR_TPM_TYPE
	FirmwareVersion string // TPM_PT_FIRMWARE_VERSION_1/2 as four 16-bit parts, "a.b.c.d"

	SpecFamily    string // TPM_PT_FAMILY_INDICATOR, "2.0"
	SpecLevel     uint32 // TPM_PT_LEVEL
	SpecRevision  uint32 // TPM_PT_REVISION: the revision times 100, e.g. 159 for 1.59
	SpecYear      uint32 // TPM_PT_YEAR
	SpecDayOfYear uint32 // TPM_PT_DAY_OF_YEAR

	Curves      []string        // ECC curves (TPM_CAP_ECC_CURVES), e.g. "P-256"
	RSAKeySizes []int           // of 2048, 3072 and 4096, those TPM2_TestParms accepts for a signing key
	Hashes      []string        // hash algorithms, e.g. "SHA-256"
	Algorithms  []tpm2.TPMAlgID // every algorithm in TPM_CAP_ALGS
	curveIDs    []tpm2.TPMECCCurve

	NVIndexMax      uint32 // TPM_PT_NV_INDEX_MAX: largest NV index data area, bytes
	NVBufferMax     uint32 // TPM_PT_NV_BUFFER_MAX: most bytes one NV read or write moves
	NVIndices       uint32 // TPM_PT_HR_NV_INDEX: NV indices defined now
	NVCountersMax   uint32 // TPM_PT_NV_COUNTERS_MAX (0: no fixed limit)
	NVCountersAvail uint32 // TPM_PT_NV_COUNTERS_AVAIL
	PersistentAvail uint32 // TPM_PT_HR_PERSISTENT_AVAIL: persistent objects that still fit, an estimate of free NV

	TransientMin      uint32 // TPM_PT_HR_TRANSIENT_MIN: transient objects the TPM holds at least
	TransientAvail    uint32 // TPM_PT_HR_TRANSIENT_AVAIL: more transient objects that fit now
	LoadedMin         uint32 // TPM_PT_HR_LOADED_MIN: sessions the TPM holds loaded at least
	LoadedAvail       uint32 // TPM_PT_HR_LOADED_AVAIL: more sessions that can be loaded now
	ActiveSessionsMax uint32 // TPM_PT_ACTIVE_SESSIONS_MAX: sessions active (loaded or saved) at once
	MaxCommandSize    uint32 // TPM_PT_MAX_COMMAND_SIZE, bytes
	MaxResponseSize   uint32 // TPM_PT_MAX_RESPONSE_SIZE, bytes
	InputBuffer       uint32 // TPM_PT_INPUT_BUFFER: largest TPM2B_MAX_BUFFER, bytes

	OwnerAuthSet    bool   // TPMA_PERMANENT.ownerAuthSet: the owner hierarchy has a password
	LockoutAuthSet  bool   // TPMA_PERMANENT.lockoutAuthSet
	InLockout       bool   // TPMA_PERMANENT.inLockout: dictionary-attack lockout is on
	LockoutCounter  uint32 // TPM_PT_LOCKOUT_COUNTER: failed authorizations counted against DA
	MaxAuthFail     uint32 // TPM_PT_MAX_AUTH_FAIL
	LockoutInterval uint32 // TPM_PT_LOCKOUT_INTERVAL, seconds
	LockoutRecovery uint32 // TPM_PT_LOCKOUT_RECOVERY, seconds

	// Properties holds every fixed and variable property the TPM reported.
	Properties map[tpm2.TPMPT]uint32
}

// RSA key sizes that Probe checks.
var probeRSABits = []int{2048, 3072, 4096}

// TPMA_PERMANENT bits (TPM 2.0 Part 2 §8.6).
const (
	permOwnerAuthSet   = 1 << 0
	permLockoutAuthSet = 1 << 2
	permInLockout      = 1 << 9
)

// Probe asks the TPM what it is and what it supports. It sends only
// TPM2_GetCapability and TPM2_TestParms, which change nothing.
func Probe(t transport.TPM) (*Capabilities, error) {
	props, err := properties(t)
	if err != nil {
		return nil, fmt.Errorf("reading TPM properties: %w", err)
	}
	c := &Capabilities{Properties: props}
	c.Manufacturer = ascii(props[tpm2.TPMPTManufacturer])
	c.VendorString = ascii(props[tpm2.TPMPTVendorString1], props[tpm2.TPMPTVendorString2],
		props[tpm2.TPMPTVendorString3], props[tpm2.TPMPTVendorString4])
	c.VendorTPMType = props[tpm2.TPMPTVendorTPMType]
	fw1, fw2 := props[tpm2.TPMPTFirmwareVersion1], props[tpm2.TPMPTFirmwareVersion2]
	c.FirmwareVersion = fmt.Sprintf("%d.%d.%d.%d", fw1>>16, fw1&0xffff, fw2>>16, fw2&0xffff)
	c.SpecFamily = ascii(props[tpm2.TPMPTFamilyIndicator])
	c.SpecLevel = props[tpm2.TPMPTLevel]
	c.SpecRevision = props[tpm2.TPMPTRevision]
	c.SpecYear = props[tpm2.TPMPTYear]
	c.SpecDayOfYear = props[tpm2.TPMPTDayofYear]

	c.NVIndexMax = props[tpm2.TPMPTNVIndexMax]
	c.NVBufferMax = props[tpm2.TPMPTNVBufferMax]
	c.NVIndices = props[tpm2.TPMPTHRNVIndex]
	c.NVCountersMax = props[tpm2.TPMPTNVCountersMax]
	c.NVCountersAvail = props[tpm2.TPMPTNVCountersAvail]
	c.PersistentAvail = props[tpm2.TPMPTHRPersistentAvail]
	c.TransientMin = props[tpm2.TPMPTHRTransientMin]
	c.TransientAvail = props[tpm2.TPMPTHRTransientAvail]
	c.LoadedMin = props[tpm2.TPMPTHRLoadedMin]
	c.LoadedAvail = props[tpm2.TPMPTHRLoadedAvail]
	c.ActiveSessionsMax = props[tpm2.TPMPTActiveSessionsMax]
	c.MaxCommandSize = props[tpm2.TPMPTMaxCommandSize]
	c.MaxResponseSize = props[tpm2.TPMPTMaxResponseSize]
	c.InputBuffer = props[tpm2.TPMPTInputBuffer]

	perm := props[tpm2.TPMPTPermanent]
	c.OwnerAuthSet = perm&permOwnerAuthSet != 0
	c.LockoutAuthSet = perm&permLockoutAuthSet != 0
	c.InLockout = perm&permInLockout != 0
	c.LockoutCounter = props[tpm2.TPMPTLockoutCounter]
	c.MaxAuthFail = props[tpm2.TPMPTMaxAuthFail]
	c.LockoutInterval = props[tpm2.TPMPTLockoutInterval]
	c.LockoutRecovery = props[tpm2.TPMPTLockoutRecovery]

	if c.Algorithms, err = algorithms(t); err != nil {
		return nil, fmt.Errorf("reading TPM algorithms: %w", err)
	}
	for _, a := range c.Algorithms {
		if name, ok := hashNames[a]; ok {
			c.Hashes = append(c.Hashes, name)
		}
	}
	if slices.Contains(c.Algorithms, tpm2.TPMAlgECC) {
		if c.curveIDs, err = curves(t); err != nil {
			return nil, fmt.Errorf("reading TPM ECC curves: %w", err)
		}
		for _, id := range c.curveIDs {
			c.Curves = append(c.Curves, curveName(id))
		}
	}
	if slices.Contains(c.Algorithms, tpm2.TPMAlgRSA) {
		for _, bits := range probeRSABits {
			ok, err := rsaSupported(t, bits)
			if err != nil {
				return nil, fmt.Errorf("testing RSA-%d: %w", bits, err)
			}
			if ok {
				c.RSAKeySizes = append(c.RSAKeySizes, bits)
			}
		}
	}
	return c, nil
}

// SupportsRSA reports whether the TPM accepted RSA signing keys of bits.
// Only the sizes Probe checks (2048, 3072, 4096) can be true.
func (c *Capabilities) SupportsRSA(bits int) bool { return slices.Contains(c.RSAKeySizes, bits) }

// SupportsCurve reports whether the TPM lists the named ECC curve. Names
// compare without case, spaces, '-' or '_'; the NIST curves also answer to
// their SEC names ("P-256", "p256", "secp256r1", "prime256v1").
func (c *Capabilities) SupportsCurve(name string) bool {
	want := normCurve(name)
	for _, id := range c.curveIDs {
		if normCurve(curveName(id)) == want {
			return true
		}
	}
	return false
}

// SupportsHash reports whether the TPM implements h.
func (c *Capabilities) SupportsHash(h crypto.Hash) bool {
	for id, ch := range cryptoHashes {
		if ch == h {
			return slices.Contains(c.Algorithms, id)
		}
	}
	return false
}

// SupportsAlg reports whether the TPM lists alg in TPM_CAP_ALGS.
func (c *Capabilities) SupportsAlg(alg tpm2.TPMAlgID) bool { return slices.Contains(c.Algorithms, alg) }

// String sums up the TPM in one line.
func (c *Capabilities) String() string {
	name := c.Manufacturer
	if c.VendorString != "" {
		name += " " + c.VendorString
	}
	return fmt.Sprintf("%s firmware %s (TPM %s level %d revision %d.%02d)", name, c.FirmwareVersion,
		c.SpecFamily, c.SpecLevel, c.SpecRevision/100, c.SpecRevision%100)
}

// properties reads the fixed (TPM_PT_FIXED) and variable (TPM_PT_VAR) properties.
func properties(t transport.TPM) (map[tpm2.TPMPT]uint32, error) {
	props := make(map[tpm2.TPMPT]uint32)
	for _, group := range []tpm2.TPMPT{tpm2.TPMPTFamilyIndicator, tpm2.TPMPTPermanent} {
		next := uint32(group)
		for next < uint32(group)+0x100 {
			rsp, err := tpm2.GetCapability{
				Capability:    tpm2.TPMCapTPMProperties,
				Property:      next,
				PropertyCount: maxListLen,
			}.Execute(t)
			if err != nil {
				return nil, err
			}
			list, err := rsp.CapabilityData.Data.TPMProperties()
			if err != nil {
				return nil, err
			}
			for _, p := range list.TPMProperty {
				props[p.Property] = p.Value
				next = uint32(p.Property) + 1
			}
			if !rsp.MoreData || len(list.TPMProperty) == 0 {
				break
			}
		}
	}
	return props, nil
}

// maxListLen asks for as many list entries as one response can hold; the TPM
// returns fewer and sets moreData.
const maxListLen = 128

// algorithms reads TPM_CAP_ALGS.
func algorithms(t transport.TPM) ([]tpm2.TPMAlgID, error) {
	var algs []tpm2.TPMAlgID
	next := uint32(1)
	for next <= 0xffff {
		rsp, err := tpm2.GetCapability{
			Capability:    tpm2.TPMCapAlgs,
			Property:      next,
			PropertyCount: maxListLen,
		}.Execute(t)
		if err != nil {
			return nil, err
		}
		list, err := rsp.CapabilityData.Data.Algorithms()
		if err != nil {
			return nil, err
		}
		for _, a := range list.AlgProperties {
			algs = append(algs, a.Alg)
			next = uint32(a.Alg) + 1
		}
		if !rsp.MoreData || len(list.AlgProperties) == 0 {
			break
		}
	}
	return algs, nil
}

// curves reads TPM_CAP_ECC_CURVES.
func curves(t transport.TPM) ([]tpm2.TPMECCCurve, error) {
	var ids []tpm2.TPMECCCurve
	next := uint32(1)
	for next <= 0xffff {
		rsp, err := tpm2.GetCapability{
			Capability:    tpm2.TPMCapECCCurves,
			Property:      next,
			PropertyCount: maxListLen,
		}.Execute(t)
		if err != nil {
			return nil, err
		}
		list, err := rsp.CapabilityData.Data.ECCCurves()
		if err != nil {
			return nil, err
		}
		for _, id := range list.ECCCurves {
			ids = append(ids, id)
			next = uint32(id) + 1
		}
		if !rsp.MoreData || len(list.ECCCurves) == 0 {
			break
		}
	}
	return ids, nil
}

// rsaSupported asks TPM2_TestParms about an unrestricted RSA signing key of
// bits. A TPM response code means no; a transport error is returned.
func rsaSupported(t transport.TPM, bits int) (bool, error) {
	_, err := tpm2.TestParms{Parameters: tpm2.TPMTPublicParms{
		Type: tpm2.TPMAlgRSA,
		Parameters: tpm2.NewTPMUPublicParms(tpm2.TPMAlgRSA, &tpm2.TPMSRSAParms{
			Symmetric: tpm2.TPMTSymDefObject{Algorithm: tpm2.TPMAlgNull},
			Scheme:    tpm2.TPMTRSAScheme{Scheme: tpm2.TPMAlgNull},
			KeyBits:   tpm2.TPMKeyBits(bits),
		}),
	}}.Execute(t)
	if err == nil {
		return true, nil
	}
	var rc tpm2.TPMRC
	if errors.As(err, &rc) {
		return false, nil
	}
	return false, err
}

// ascii turns 32-bit properties holding big-endian characters into text,
// dropping NULs and other unprintable bytes.
func ascii(vals ...uint32) string {
	var b strings.Builder
	for _, v := range vals {
		var buf [4]byte
		binary.BigEndian.PutUint32(buf[:], v)
		for _, c := range buf {
			if c >= 0x20 && c < 0x7f {
				b.WriteByte(c)
			}
		}
	}
	return strings.TrimSpace(b.String())
}

var hashNames = map[tpm2.TPMAlgID]string{
	tpm2.TPMAlgSHA1:    "SHA-1",
	tpm2.TPMAlgSHA256:  "SHA-256",
	tpm2.TPMAlgSHA384:  "SHA-384",
	tpm2.TPMAlgSHA512:  "SHA-512",
	tpm2.TPMAlgSM3256:  "SM3-256",
	tpm2.TPMAlgSHA3256: "SHA3-256",
	tpm2.TPMAlgSHA3384: "SHA3-384",
	tpm2.TPMAlgSHA3512: "SHA3-512",
}

var cryptoHashes = map[tpm2.TPMAlgID]crypto.Hash{
	tpm2.TPMAlgSHA1:    crypto.SHA1,
	tpm2.TPMAlgSHA256:  crypto.SHA256,
	tpm2.TPMAlgSHA384:  crypto.SHA384,
	tpm2.TPMAlgSHA512:  crypto.SHA512,
	tpm2.TPMAlgSHA3256: crypto.SHA3_256,
	tpm2.TPMAlgSHA3384: crypto.SHA3_384,
	tpm2.TPMAlgSHA3512: crypto.SHA3_512,
}

var curveNames = map[tpm2.TPMECCCurve]string{
	tpm2.TPMECCNistP192:        "P-192",
	tpm2.TPMECCNistP224:        "P-224",
	tpm2.TPMECCNistP256:        "P-256",
	tpm2.TPMECCNistP384:        "P-384",
	tpm2.TPMECCNistP521:        "P-521",
	tpm2.TPMECCBNP256:          "BN-P256",
	tpm2.TPMECCBNP638:          "BN-P638",
	tpm2.TPMECCSM2P256:         "SM2-P256",
	tpm2.TPMECCBrainpoolP256R1: "brainpoolP256r1",
	tpm2.TPMECCBrainpoolP384R1: "brainpoolP384r1",
	tpm2.TPMECCBrainpoolP512R1: "brainpoolP512r1",
}

// curveName names a curve, or gives its TPM_ECC_CURVE number.
func curveName(id tpm2.TPMECCCurve) string {
	if n, ok := curveNames[id]; ok {
		return n
	}
	return fmt.Sprintf("curve-0x%04x", uint16(id))
}

// normCurve folds a curve name for comparison.
func normCurve(name string) string {
	n := strings.NewReplacer("-", "", "_", "", " ", "").Replace(strings.ToLower(name))
	switch n {
	case "secp192r1", "prime192v1", "nistp192":
		return "p192"
	case "secp224r1", "nistp224":
		return "p224"
	case "secp256r1", "prime256v1", "nistp256":
		return "p256"
	case "secp384r1", "nistp384":
		return "p384"
	case "secp521r1", "nistp521":
		return "p521"
	}
	return n
}
