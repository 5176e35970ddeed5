package server

import (
	"bytes"
	"crypto"
	"crypto/sha256"
	"crypto/sha512"
	"testing"

	"github.com/tpmcard/tpmcard/service/p11"
	"github.com/tpmcard/tpmcard/service/wire"
	"github.com/tpmcard/tpmcard/tpmcard"
)

func pss(hash, mgf, sLen uint64) []byte {
	return append(append(wire.ULong(hash), wire.ULong(mgf)...), wire.ULong(sLen)...)
}

func TestPrepareSign(t *testing.T) {
	ecKey, rsaKey := testKeys()
	data := []byte("challenge")
	s256 := sha256.Sum256(data)
	s384 := sha512.Sum384(data)
	s512 := sha512.Sum512(data)
	di256 := append(append([]byte(nil), digestInfoPrefixes[1].prefix...), s256[:]...)
	di512 := append(append([]byte(nil), digestInfoPrefixes[3].prefix...), s512[:]...)
	raw20 := bytes.Repeat([]byte{7}, 20)

	for _, c := range []struct {
		name   string
		key    tpmcard.KeyInfo
		mech   uint32
		param  []byte
		data   []byte
		digest []byte
		opts   tpmcard.SignOptions
		status wire.Status
	}{
		{"ok/ecdsa-raw", ecKey, p11.CKMECDSA, nil, s256[:], s256[:], tpmcard.SignOptions{}, wire.OK},
		{"ok/ecdsa-raw-short", ecKey, p11.CKMECDSA, nil, raw20, raw20, tpmcard.SignOptions{}, wire.OK},
		{"ok/ecdsa-sha256", ecKey, p11.CKMECDSASHA256, nil, data, s256[:], tpmcard.SignOptions{Hash: crypto.SHA256}, wire.OK},
		{"ok/ecdsa-sha384", ecKey, p11.CKMECDSASHA384, nil, data, s384[:], tpmcard.SignOptions{Hash: crypto.SHA384}, wire.OK},
		{"ok/ecdsa-sha512", ecKey, p11.CKMECDSASHA512, nil, data, s512[:], tpmcard.SignOptions{Hash: crypto.SHA512}, wire.OK},
		{"ok/rsa-pkcs-digestinfo-sha256", rsaKey, p11.CKMRSAPKCS, nil, di256, s256[:], tpmcard.SignOptions{Hash: crypto.SHA256}, wire.OK},
		{"ok/rsa-pkcs-digestinfo-sha512", rsaKey, p11.CKMRSAPKCS, nil, di512, s512[:], tpmcard.SignOptions{Hash: crypto.SHA512}, wire.OK},
		{"ok/sha256-rsa-pkcs", rsaKey, p11.CKMSHA256RSAPKCS, nil, data, s256[:], tpmcard.SignOptions{Hash: crypto.SHA256}, wire.OK},
		{"ok/sha384-rsa-pkcs", rsaKey, p11.CKMSHA384RSAPKCS, nil, data, s384[:], tpmcard.SignOptions{Hash: crypto.SHA384}, wire.OK},
		{"ok/rsa-pss-raw", rsaKey, p11.CKMRSAPKCSPSS, pss(p11.CKMSHA256, p11.CKGMGF1SHA256, 32), s256[:], s256[:], tpmcard.SignOptions{Hash: crypto.SHA256, PSS: true}, wire.OK},
		{"ok/sha512-rsa-pss", rsaKey, p11.CKMSHA512RSAPKCSPSS, pss(p11.CKMSHA512, p11.CKGMGF1SHA512, 64), data, s512[:], tpmcard.SignOptions{Hash: crypto.SHA512, PSS: true}, wire.OK},
		{"fail/unknown-mechanism", ecKey, 0x1234, nil, data, nil, tpmcard.SignOptions{}, wire.MechanismInvalid},
		{"fail/keygen-mechanism-cannot-sign", ecKey, p11.CKMECKeyPairGen, nil, data, nil, tpmcard.SignOptions{}, wire.MechanismInvalid},
		{"fail/ecdsa-on-rsa", rsaKey, p11.CKMECDSA, nil, s256[:], nil, tpmcard.SignOptions{}, wire.KeyTypeInconsistent},
		{"fail/rsa-on-ec", ecKey, p11.CKMSHA256RSAPKCS, nil, data, nil, tpmcard.SignOptions{}, wire.KeyTypeInconsistent},
		{"fail/ecdsa-empty", ecKey, p11.CKMECDSA, nil, nil, nil, tpmcard.SignOptions{}, wire.DataLenRange},
		{"fail/ecdsa-param", ecKey, p11.CKMECDSA, []byte{1}, s256[:], nil, tpmcard.SignOptions{}, wire.MechanismParamInvalid},
		{"fail/rsa-pkcs-raw-digest", rsaKey, p11.CKMRSAPKCS, nil, s256[:], nil, tpmcard.SignOptions{}, wire.DataInvalid},
		{"fail/rsa-pkcs-truncated-digestinfo", rsaKey, p11.CKMRSAPKCS, nil, di256[:len(di256)-1], nil, tpmcard.SignOptions{}, wire.DataInvalid},
		{"fail/pss-no-param", rsaKey, p11.CKMRSAPKCSPSS, nil, s256[:], nil, tpmcard.SignOptions{}, wire.MechanismParamInvalid},
		{"fail/pss-short-param", rsaKey, p11.CKMRSAPKCSPSS, []byte{1, 2, 3}, s256[:], nil, tpmcard.SignOptions{}, wire.MechanismParamInvalid},
		{"fail/pss-salt-zero", rsaKey, p11.CKMRSAPKCSPSS, pss(p11.CKMSHA256, p11.CKGMGF1SHA256, 0), s256[:], nil, tpmcard.SignOptions{}, wire.MechanismParamInvalid},
		{"fail/pss-mgf-mismatch", rsaKey, p11.CKMRSAPKCSPSS, pss(p11.CKMSHA256, p11.CKGMGF1SHA1, 32), s256[:], nil, tpmcard.SignOptions{}, wire.MechanismParamInvalid},
		{"fail/pss-hash-vs-mechanism", rsaKey, p11.CKMSHA256RSAPKCSPSS, pss(p11.CKMSHA384, p11.CKGMGF1SHA384, 48), data, nil, tpmcard.SignOptions{}, wire.MechanismParamInvalid},
		{"fail/pss-unknown-hash", rsaKey, p11.CKMRSAPKCSPSS, pss(0x255, p11.CKGMGF1SHA256, 32), s256[:], nil, tpmcard.SignOptions{}, wire.MechanismParamInvalid},
		{"fail/pss-raw-wrong-length", rsaKey, p11.CKMRSAPKCSPSS, pss(p11.CKMSHA256, p11.CKGMGF1SHA256, 32), data, nil, tpmcard.SignOptions{}, wire.DataLenRange},
	} {
		t.Run(c.name, func(t *testing.T) {
			digest, opts, err := prepareSign(c.key, c.mech, c.param, c.data)
			if st := wire.StatusOf(err); st != c.status {
				t.Fatalf("status %v (%v), want %v", st, err, c.status)
			}
			if err != nil {
				return
			}
			if !bytes.Equal(digest, c.digest) || opts != c.opts {
				t.Errorf("prepareSign = %x, %+v; want %x, %+v", digest, opts, c.digest, c.opts)
			}
		})
	}
}

func TestSignatureLength(t *testing.T) {
	ecKey, rsaKey := testKeys()
	for _, c := range []struct {
		name   string
		key    tpmcard.KeyInfo
		mech   uint32
		n      int
		status wire.Status
	}{
		{"ok/p256", ecKey, p11.CKMECDSA, 64, wire.OK},
		{"ok/rsa2048", rsaKey, p11.CKMSHA256RSAPKCSPSS, 256, wire.OK},
		{"fail/mismatch", rsaKey, p11.CKMECDSASHA256, 0, wire.KeyTypeInconsistent},
	} {
		t.Run(c.name, func(t *testing.T) {
			n, err := signatureLength(c.key, c.mech)
			if wire.StatusOf(err) != c.status || n != c.n {
				t.Errorf("signatureLength = %d, %v; want %d, %v", n, err, c.n, c.status)
			}
		})
	}
}

func TestMechanismListCoversSignMechs(t *testing.T) {
	listed := map[uint32]bool{}
	for _, m := range mechanismList(true) {
		listed[m.Mechanism] = true
		inTPM := m.Flags&(p11.CKFSign|p11.CKFGenerateKeyPair) != 0
		if inTPM != (m.Flags&p11.CKFHW != 0) {
			t.Errorf("mechanism %#x: CKF_HW is %v on a hardware TPM, want it on what the TPM does", m.Mechanism, !inTPM)
		}
	}
	for m := range signMechs {
		if !listed[m] {
			t.Errorf("sign mechanism %#x not listed", m)
		}
	}
	for _, m := range []uint32{p11.CKMECKeyPairGen, p11.CKMRSAPKCSKeyPairGen} {
		if !listed[m] {
			t.Errorf("key generation mechanism %#x not listed", m)
		}
	}
	for _, m := range mechanismList(false) {
		if m.Flags&p11.CKFHW != 0 {
			t.Errorf("mechanism %#x claims CKF_HW on a simulated TPM", m.Mechanism)
		}
	}
}
