package server

import (
	"bytes"
	"crypto"
	"crypto/sha256"
	"crypto/sha512"
	"testing"

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
		{"ok/ecdsa-raw", ecKey, ckmECDSA, nil, s256[:], s256[:], tpmcard.SignOptions{}, wire.OK},
		{"ok/ecdsa-raw-short", ecKey, ckmECDSA, nil, raw20, raw20, tpmcard.SignOptions{}, wire.OK},
		{"ok/ecdsa-sha256", ecKey, ckmECDSASHA256, nil, data, s256[:], tpmcard.SignOptions{Hash: crypto.SHA256}, wire.OK},
		{"ok/ecdsa-sha384", ecKey, ckmECDSASHA384, nil, data, s384[:], tpmcard.SignOptions{Hash: crypto.SHA384}, wire.OK},
		{"ok/ecdsa-sha512", ecKey, ckmECDSASHA512, nil, data, s512[:], tpmcard.SignOptions{Hash: crypto.SHA512}, wire.OK},
		{"ok/rsa-pkcs-digestinfo-sha256", rsaKey, ckmRSAPKCS, nil, di256, s256[:], tpmcard.SignOptions{Hash: crypto.SHA256}, wire.OK},
		{"ok/rsa-pkcs-digestinfo-sha512", rsaKey, ckmRSAPKCS, nil, di512, s512[:], tpmcard.SignOptions{Hash: crypto.SHA512}, wire.OK},
		{"ok/sha256-rsa-pkcs", rsaKey, ckmSHA256RSAPKCS, nil, data, s256[:], tpmcard.SignOptions{Hash: crypto.SHA256}, wire.OK},
		{"ok/sha384-rsa-pkcs", rsaKey, ckmSHA384RSAPKCS, nil, data, s384[:], tpmcard.SignOptions{Hash: crypto.SHA384}, wire.OK},
		{"ok/rsa-pss-raw", rsaKey, ckmRSAPKCSPSS, pss(ckmSHA256, ckgMGF1SHA256, 32), s256[:], s256[:], tpmcard.SignOptions{Hash: crypto.SHA256, PSS: true}, wire.OK},
		{"ok/sha512-rsa-pss", rsaKey, ckmSHA512RSAPSS, pss(ckmSHA512, ckgMGF1SHA512, 64), data, s512[:], tpmcard.SignOptions{Hash: crypto.SHA512, PSS: true}, wire.OK},
		{"fail/unknown-mechanism", ecKey, 0x1234, nil, data, nil, tpmcard.SignOptions{}, wire.MechanismInvalid},
		{"fail/keygen-mechanism-cannot-sign", ecKey, ckmECKeyPairGen, nil, data, nil, tpmcard.SignOptions{}, wire.MechanismInvalid},
		{"fail/ecdsa-on-rsa", rsaKey, ckmECDSA, nil, s256[:], nil, tpmcard.SignOptions{}, wire.KeyTypeInconsistent},
		{"fail/rsa-on-ec", ecKey, ckmSHA256RSAPKCS, nil, data, nil, tpmcard.SignOptions{}, wire.KeyTypeInconsistent},
		{"fail/ecdsa-empty", ecKey, ckmECDSA, nil, nil, nil, tpmcard.SignOptions{}, wire.DataLenRange},
		{"fail/ecdsa-param", ecKey, ckmECDSA, []byte{1}, s256[:], nil, tpmcard.SignOptions{}, wire.MechanismParamInvalid},
		{"fail/rsa-pkcs-raw-digest", rsaKey, ckmRSAPKCS, nil, s256[:], nil, tpmcard.SignOptions{}, wire.DataInvalid},
		{"fail/rsa-pkcs-truncated-digestinfo", rsaKey, ckmRSAPKCS, nil, di256[:len(di256)-1], nil, tpmcard.SignOptions{}, wire.DataInvalid},
		{"fail/pss-no-param", rsaKey, ckmRSAPKCSPSS, nil, s256[:], nil, tpmcard.SignOptions{}, wire.MechanismParamInvalid},
		{"fail/pss-short-param", rsaKey, ckmRSAPKCSPSS, []byte{1, 2, 3}, s256[:], nil, tpmcard.SignOptions{}, wire.MechanismParamInvalid},
		{"fail/pss-salt-zero", rsaKey, ckmRSAPKCSPSS, pss(ckmSHA256, ckgMGF1SHA256, 0), s256[:], nil, tpmcard.SignOptions{}, wire.MechanismParamInvalid},
		{"fail/pss-mgf-mismatch", rsaKey, ckmRSAPKCSPSS, pss(ckmSHA256, ckgMGF1SHA1, 32), s256[:], nil, tpmcard.SignOptions{}, wire.MechanismParamInvalid},
		{"fail/pss-hash-vs-mechanism", rsaKey, ckmSHA256RSAPSS, pss(ckmSHA384, ckgMGF1SHA384, 48), data, nil, tpmcard.SignOptions{}, wire.MechanismParamInvalid},
		{"fail/pss-unknown-hash", rsaKey, ckmRSAPKCSPSS, pss(0x255, ckgMGF1SHA256, 32), s256[:], nil, tpmcard.SignOptions{}, wire.MechanismParamInvalid},
		{"fail/pss-raw-wrong-length", rsaKey, ckmRSAPKCSPSS, pss(ckmSHA256, ckgMGF1SHA256, 32), data, nil, tpmcard.SignOptions{}, wire.DataLenRange},
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
		{"ok/p256", ecKey, ckmECDSA, 64, wire.OK},
		{"ok/rsa2048", rsaKey, ckmSHA256RSAPSS, 256, wire.OK},
		{"fail/mismatch", rsaKey, ckmECDSASHA256, 0, wire.KeyTypeInconsistent},
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
		if m.Flags&ckfHW == 0 {
			t.Errorf("mechanism %#x lacks CKF_HW on a hardware TPM", m.Mechanism)
		}
	}
	for m := range signMechs {
		if !listed[m] {
			t.Errorf("sign mechanism %#x not listed", m)
		}
	}
	for _, m := range []uint32{ckmECKeyPairGen, ckmRSAKeyPairGen} {
		if !listed[m] {
			t.Errorf("key generation mechanism %#x not listed", m)
		}
	}
	for _, m := range mechanismList(false) {
		if m.Flags&ckfHW != 0 {
			t.Errorf("mechanism %#x claims CKF_HW on a simulated TPM", m.Mechanism)
		}
	}
}
