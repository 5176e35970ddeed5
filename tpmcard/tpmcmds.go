package tpmcard

// The TPM commands go-tpm v0.9.8 has no command struct for, marshalled by
// hand after TPM 2.0 Part 3 (the command layouts) and Part 2 (the
// structures). Each names its section; when go-tpm gains the command, its
// struct replaces the function here.

import (
	"bytes"
	"encoding/binary"
	"fmt"

	"github.com/google/go-tpm/tpm2"
	"github.com/google/go-tpm/tpm2/transport"
)

// nvChangeAuth runs TPM2_NV_ChangeAuth (Part 3 §31.7), for which go-tpm
// v0.9.8 has no command struct. auth is a policy session that satisfies
// the index's ADMIN policy; enc is a salted session that encrypts the new
// authValue on the bus. It must be a separate session: a decrypt key made
// by an authorization session includes the authorized entity's authValue
// (Part 1 §21.3), the old PIN, which an unblock does not know.
func nvChangeAuth(t transport.TPM, index tpm2.TPMHandle, name []byte, newAuth []byte, auth, enc tpm2.Session) error {
	const cc = tpm2.TPMCCNVChangeAuth
	sess := []tpm2.Session{auth, enc}
	for _, s := range sess {
		if err := s.Init(t); err != nil {
			return err
		}
		if err := s.NewNonceCaller(); err != nil {
			return err
		}
	}
	params := tpm2.Marshal(tpm2.TPM2BAuth{Buffer: newAuth})
	if err := enc.Encrypt(params[2:]); err != nil {
		return fmt.Errorf("encrypting new auth: %w", err)
	}
	names := []tpm2.TPM2BName{{Buffer: name}}
	// The first session's HMAC also covers the decrypt session's nonceTPM
	// (Part 1 §19.6.5).
	var authArea bytes.Buffer
	for i, s := range sess {
		var addNonces []byte
		if i == 0 {
			addNonces = enc.NonceTPM().Buffer
		}
		a, err := s.Authorize(cc, params, addNonces, names, i)
		if err != nil {
			return err
		}
		authArea.Write(tpm2.Marshal(a))
	}

	var cmd bytes.Buffer
	size := 10 + 4 + 4 + authArea.Len() + len(params)
	_ = binary.Write(&cmd, binary.BigEndian, tpm2.TPMSTSessions)
	_ = binary.Write(&cmd, binary.BigEndian, uint32(size))
	_ = binary.Write(&cmd, binary.BigEndian, cc)
	_ = binary.Write(&cmd, binary.BigEndian, index)
	_ = binary.Write(&cmd, binary.BigEndian, uint32(authArea.Len()))
	cmd.Write(authArea.Bytes())
	cmd.Write(params)

	rsp, err := t.Send(cmd.Bytes())
	if err != nil {
		return err
	}
	if len(rsp) < 10 {
		return fmt.Errorf("NV_ChangeAuth: short response (%d bytes)", len(rsp))
	}
	if rc := tpm2.TPMRC(binary.BigEndian.Uint32(rsp[6:10])); rc != tpm2.TPMRCSuccess {
		return rc
	}
	// Success: parameterSize (0: no response parameters), then one
	// TPMS_AUTH_RESPONSE per session.
	buf := bytes.NewBuffer(rsp[10:])
	var paramSize uint32
	if err := binary.Read(buf, binary.BigEndian, &paramSize); err != nil || paramSize != 0 {
		return fmt.Errorf("NV_ChangeAuth: unexpected response parameters")
	}
	for i, s := range sess {
		ra, err := unmarshalAuthResponse(buf)
		if err != nil {
			return fmt.Errorf("NV_ChangeAuth: reading response session %d: %w", i, err)
		}
		if err := s.Validate(tpm2.TPMRCSuccess, cc, nil, names, i, ra); err != nil {
			return fmt.Errorf("NV_ChangeAuth: response session %d: %w", i, err)
		}
	}
	return nil
}

// unmarshalAuthResponse reads one TPMS_AUTH_RESPONSE (Part 2 §10.13.3):
// nonce (TPM2B), attributes (1 byte), HMAC (TPM2B).
func unmarshalAuthResponse(buf *bytes.Buffer) (*tpm2.TPMSAuthResponse, error) {
	readB := func() ([]byte, error) {
		var n uint16
		if err := binary.Read(buf, binary.BigEndian, &n); err != nil {
			return nil, err
		}
		b := buf.Next(int(n))
		if len(b) != int(n) {
			return nil, fmt.Errorf("short buffer")
		}
		return b, nil
	}
	nonce, err := readB()
	if err != nil {
		return nil, err
	}
	attrs, err := buf.ReadByte()
	if err != nil {
		return nil, err
	}
	hmac, err := readB()
	if err != nil {
		return nil, err
	}
	ra := &tpm2.TPMSAuthResponse{Nonce: tpm2.TPM2BNonce{Buffer: nonce}, Authorization: tpm2.TPM2BData{Buffer: hmac}}
	ra.Attributes = tpm2.TPMASession{
		ContinueSession: attrs&0x01 != 0, AuditExclusive: attrs&0x02 != 0, AuditReset: attrs&0x04 != 0,
		Decrypt: attrs&0x20 != 0, Encrypt: attrs&0x40 != 0, Audit: attrs&0x80 != 0,
	}
	return ra, nil
}

// policyRestart runs TPM2_PolicyRestart (Part 3 §23.22), which go-tpm
// v0.9.8 has no command struct for: it resets a policy session's digest
// without the two commands a flush and a new session would cost.
func policyRestart(t transport.TPM, sess tpm2.TPMHandle) error {
	_, err := sendNoAuth(t, tpm2.TPMCCPolicyRestart, sess, nil)
	return err
}

// sendNoAuth sends a command with one handle and no authorization area and
// returns the response parameters.
func sendNoAuth(t transport.TPM, cc tpm2.TPMCC, h tpm2.TPMHandle, params []byte) ([]byte, error) {
	cmd := make([]byte, 14, 14+len(params))
	binary.BigEndian.PutUint16(cmd[0:], uint16(tpm2.TPMSTNoSessions))
	binary.BigEndian.PutUint32(cmd[2:], uint32(14+len(params)))
	binary.BigEndian.PutUint32(cmd[6:], uint32(cc))
	binary.BigEndian.PutUint32(cmd[10:], uint32(h))
	cmd = append(cmd, params...)
	rsp, err := t.Send(cmd)
	if err != nil {
		return nil, err
	}
	if len(rsp) < 10 {
		return nil, fmt.Errorf("%v: short response (%d bytes)", cc, len(rsp))
	}
	if rc := tpm2.TPMRC(binary.BigEndian.Uint32(rsp[6:10])); rc != tpm2.TPMRCSuccess {
		return nil, rc
	}
	return rsp[10:], nil
}
