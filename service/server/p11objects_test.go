//go:build linux

package server

import (
	"bytes"
	"testing"

	"github.com/tpmcard/tpmcard/service/p11"
	"github.com/tpmcard/tpmcard/service/wire"
)

// TestFindObjectsSearch: the search lives in the service, with the rules
// of PKCS#11 v2.40 §5.8.
func TestFindObjectsSearch(t *testing.T) {
	e := newEnv(t, nil, nil)
	admin := e.dial()
	serial := e.provisionFor(admin, &wire.CardOwner{UID: 1000})
	id := e.generate(admin, serial, wire.AlgECDSAP256)
	s := mustOpen(t, admin, serial, true)
	pubT := []wire.Attribute{{Type: p11.CKAClass, Value: wire.ULong(p11.CKOPublicKey)}, {Type: p11.CKAID, Value: id}}

	_, err := admin.FindObjectsNext(s, 10)
	wantStatus(t, "FindObjectsNext without a search", err, wire.OperationNotInitialized)
	wantStatus(t, "FindObjectsFinal without a search", admin.FindObjectsFinal(s), wire.OperationNotInitialized)
	if err := admin.FindObjectsInit(s, pubT...); err != nil {
		t.Fatal(err)
	}
	wantStatus(t, "second FindObjectsInit", admin.FindObjectsInit(s), wire.OperationActive)
	if hs, err := admin.FindObjectsNext(s, 0); err != nil || len(hs) != 0 {
		t.Fatalf("FindObjectsNext(0) = %v, %v", hs, err)
	}
	hs, err := admin.FindObjectsNext(s, 10)
	if err != nil || len(hs) != 1 {
		t.Fatalf("FindObjectsNext = %v, %v", hs, err)
	}
	if more, err := admin.FindObjectsNext(s, 10); err != nil || len(more) != 0 {
		t.Fatalf("FindObjectsNext after the end = %v, %v", more, err)
	}
	if err := admin.FindObjectsFinal(s); err != nil {
		t.Fatal(err)
	}
	wantStatus(t, "second FindObjectsFinal", admin.FindObjectsFinal(s), wire.OperationNotInitialized)

	// A vendor attribute type above 32 bits whose low half is CKA_CLASS
	// matches nothing.
	if err := admin.FindObjectsInit(s, wire.Attribute{Type: 1<<40 | p11.CKAClass, Value: wire.ULong(p11.CKOPublicKey)}); err != nil {
		t.Fatal(err)
	}
	if hs, err := admin.FindObjectsNext(s, 10); err != nil || len(hs) != 0 {
		t.Fatalf("64-bit type: %v, %v", hs, err)
	}
	// Closing the session ends its search.
	if err := admin.CloseSession(s); err != nil {
		t.Fatal(err)
	}
	s = mustOpen(t, admin, serial, true)
	if err := admin.FindObjectsInit(s); err != nil {
		t.Fatal(err)
	}

	// C_GetAttributeValue, PKCS#11 v2.40 §5.7.
	av, err := admin.GetAttributeValue(s, hs[0], []wire.AttributeQuery{
		{Type: p11.CKAID, Len: 64},
		{Type: p11.CKAECPoint, Length: true},
		{Type: p11.CKAID, Len: 1},
		{Type: 1<<40 | p11.CKAID, Len: 64},
	})
	if err != nil {
		t.Fatal(err)
	}
	if av.RV != p11.CKRAttributeTypeInvalid || len(av.Values) != 4 {
		t.Fatalf("RV %#x, %d values", av.RV, len(av.Values))
	}
	if v := av.Values[0]; v.RV != p11.CKROK || !bytes.Equal(v.Value, id) || v.Len != uint64(len(id)) {
		t.Errorf("CKA_ID: %+v", v)
	}
	if v := av.Values[1]; v.RV != p11.CKROK || v.Len == 0 || v.Value != nil {
		t.Errorf("CKA_EC_POINT length: %+v", v)
	}
	if v := av.Values[2]; v.RV != p11.CKRBufferTooSmall || v.Value != nil {
		t.Errorf("short buffer: %+v", v)
	}
	if v := av.Values[3]; v.RV != p11.CKRAttributeTypeInvalid {
		t.Errorf("64-bit type: %+v", v)
	}
	av, err = admin.GetAttributeValue(s, hs[0], []wire.AttributeQuery{{Type: p11.CKAID, Len: 1}})
	if err != nil || av.RV != p11.CKRBufferTooSmall {
		t.Fatalf("short buffer alone: %#x, %v", av.RV, err)
	}
}

// TestGetObjectSize: C_GetObjectSize checks the session and the object as
// C_GetAttributeValue does, then answers CK_UNAVAILABLE_INFORMATION.
func TestGetObjectSize(t *testing.T) {
	e := newEnv(t, nil, nil)
	admin := e.dial()
	serial := e.provisionFor(admin, &wire.CardOwner{UID: 1000})
	id := e.generate(admin, serial, wire.AlgECDSAP256)
	s := mustOpen(t, admin, serial, true)
	pub, err := admin.FindObjects(s, wire.Attribute{Type: p11.CKAClass, Value: wire.ULong(p11.CKOPublicKey)}, wire.Attribute{Type: p11.CKAID, Value: id})
	if err != nil || len(pub) != 1 {
		t.Fatalf("finding the public key: %v %v", pub, err)
	}
	if n, err := admin.GetObjectSize(s, pub[0]); err != nil || n != p11.CKUnavailableInformation {
		t.Fatalf("GetObjectSize = %#x, %v; want CK_UNAVAILABLE_INFORMATION", n, err)
	}
	_, err = admin.GetObjectSize(s, pub[0]+1000)
	wantRV(t, "GetObjectSize of no object", err, p11.CKRObjectHandleInvalid)
	_, err = admin.GetObjectSize(s+100, pub[0])
	wantRV(t, "GetObjectSize in no session", err, p11.CKRSessionHandleInvalid)
	// A private key has a size while the session sees it, after a login.
	mustLogin(t, admin, s)
	priv := privateKey(t, admin, s, id)
	if n, err := admin.GetObjectSize(s, priv); err != nil || n != p11.CKUnavailableInformation {
		t.Fatalf("GetObjectSize of the private key = %#x, %v", n, err)
	}
	if err := admin.Logout(s); err != nil {
		t.Fatal(err)
	}
	_, err = admin.GetObjectSize(s, priv)
	wantRV(t, "GetObjectSize of the private key after logout", err, p11.CKRObjectHandleInvalid)
}
