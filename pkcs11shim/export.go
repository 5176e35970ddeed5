//go:build cgo

package main

/*
#cgo !windows pkg-config: p11-kit-1
#cgo windows CFLAGS: -I/usr/include/p11-kit-1
#include <stdlib.h>
#include "shim.h"
*/
import "C"

import (
	"runtime/debug"
	"unsafe"

	"github.com/tpmcard/tpmcard/tpmcard/secret"
)

// The C ABI (PKCS#11 v2.40 §5): shim.c defines the C_* entry points and
// the function list and calls the go* functions below, which check every
// pointer (CKR_ARGUMENTS_BAD), convert the C structures and call the core.
// No pointer into C memory outlives the call.
//
// The PKCS#11 structures are read and written only by the tpmcard_*
// functions of structs.c (see shim.h): packed on Windows, their fields are
// out of cgo's reach. CK_ULONG is C's unsigned long, 64 bits on Unix and
// 32 on Windows; the core works in uint64, as the wire does in host size
// (wire.ULongSize), so values from C widen and values to C narrow, where
// only CK_UNAVAILABLE_INFORMATION (all ones) needs the cut. A handle or
// slot ID that would not survive it is an error, never another object.
//
// The Windows build takes the header from the host's p11-kit
// (libp11-kit-dev), plain C that packs the structures for _WIN32; with
// another one, CGO_CFLAGS can name its directory.

// mod is the one module of this process.
var mod = newModule(dialService)

// Bounds on what the caller hands over.
const (
	maxLen      = 1 << 30 // a C buffer turned into a Go slice
	maxList     = 4096    // slots, mechanisms and handles returned per call
	maxTemplate = 1024    // attributes in a template
	maxPINLen   = 256     // longer than any card's policy allows
)

// guard turns a panic into CKR_GENERAL_ERROR: the host application must
// not die of a bug in the module.
func guard(r *C.CK_RV) {
	if recover() != nil {
		*r = C.CK_RV(ckrGeneralError)
	}
}

// in returns the caller's input bytes; ok is false for NULL with a length.
func in(p *C.CK_BYTE, n C.CK_ULONG) ([]byte, bool) {
	switch {
	case n == 0:
		return []byte{}, true
	case p == nil || n > maxLen:
		return nil, false
	}
	return unsafe.Slice((*byte)(unsafe.Pointer(p)), int(n)), true
}

// out returns the caller's output buffer: nil for NULL (a length query).
func out(p *C.CK_BYTE, n C.CK_ULONG) []byte {
	if p == nil {
		return nil
	}
	return unsafe.Slice((*byte)(unsafe.Pointer(p)), int(min(n, maxLen)))
}

// pin copies a PIN out of C memory; the caller wipes it. A PIN longer
// than maxPINLen is cut there: the service then refuses it as too long.
func pin(p *C.CK_UTF8CHAR, n C.CK_ULONG) (secret.Secret, bool) {
	b, ok := in((*C.CK_BYTE)(p), min(n, maxPINLen+1))
	if !ok {
		return nil, false
	}
	return secret.New(b), true
}

// fits says whether a handle or slot ID survives the conversion to
// CK_ULONG.
func fits(v uint64) bool { return uint64(C.CK_ULONG(v)) == v }

// template converts a CK_ATTRIBUTE array whose values are inputs.
func template(p C.CK_ATTRIBUTE_PTR, n C.CK_ULONG) ([]Attribute, bool) {
	if n == 0 {
		return nil, true
	}
	if p == nil || n > maxTemplate {
		return nil, false
	}
	t := make([]Attribute, n)
	for i := range t {
		a := C.tpmcard_attribute(p, C.CK_ULONG(i))
		v, ok := in((*C.CK_BYTE)(a.value), a.len)
		if !ok {
			return nil, false
		}
		t[i] = Attribute{Type: uint64(a._type), Value: v}
	}
	return t, true
}

func padC(dst unsafe.Pointer, n int, s string) {
	pad(unsafe.Slice((*byte)(dst), n), s)
}

// goBeforeFork runs in the thread that is about to fork(2) (shim.c).
// Turning the collector off waits for a cycle in progress to end, so that
// the child does not inherit one half done; turning it back on starts
// none. It costs two short stop-the-worlds per fork.
//
//export goBeforeFork
func goBeforeFork() { debug.SetGCPercent(debug.SetGCPercent(-1)) }

//export goInitialize
func goInitialize(p C.CK_VOID_PTR) (r C.CK_RV) {
	defer guard(&r)
	if p == nil {
		return C.CK_RV(mod.Initialize(nil))
	}
	a := C.tpmcard_get_init_args(C.CK_C_INITIALIZE_ARGS_PTR(p))
	return C.CK_RV(mod.Initialize(&initArgs{
		createMutex:  a.createMutex != 0,
		destroyMutex: a.destroyMutex != 0,
		lockMutex:    a.lockMutex != 0,
		unlockMutex:  a.unlockMutex != 0,
		flags:        uint64(a.flags),
		reserved:     a.reserved != 0,
	}))
}

//export goFinalize
func goFinalize(p C.CK_VOID_PTR) (r C.CK_RV) {
	defer guard(&r)
	return C.CK_RV(mod.Finalize(p != nil))
}

//export goGetInfo
func goGetInfo(p C.CK_INFO_PTR) (r C.CK_RV) {
	defer guard(&r)
	info, rv := mod.GetInfo()
	if rv != ckrOK {
		return C.CK_RV(rv)
	}
	if p == nil {
		return C.CK_RV(ckrArgumentsBad)
	}
	var c C.tpmcard_info
	c.cryptokiVersion = C.CK_VERSION{major: 2, minor: 40}
	padC(unsafe.Pointer(&c.manufacturerID[0]), len(c.manufacturerID), info.Manufacturer)
	padC(unsafe.Pointer(&c.libraryDescription[0]), len(c.libraryDescription), info.Description)
	c.libraryVersion = C.CK_VERSION{major: C.CK_BYTE(info.Major), minor: C.CK_BYTE(info.Minor)}
	C.tpmcard_put_info(p, c)
	return C.CK_RV(ckrOK)
}

// ulongs returns the caller's CK_ULONG list of *count entries, nil for a
// NULL list.
func ulongs(list *C.CK_ULONG, count *C.CK_ULONG) []uint64 {
	if list == nil {
		return nil
	}
	return make([]uint64, min(*count, maxList))
}

//export goGetSlotList
func goGetSlotList(present C.CK_BBOOL, list C.CK_SLOT_ID_PTR, count C.CK_ULONG_PTR) (r C.CK_RV) {
	defer guard(&r)
	if rv := mod.isReady(); rv != ckrOK {
		return C.CK_RV(rv)
	}
	if count == nil {
		return C.CK_RV(ckrArgumentsBad)
	}
	ids := ulongs((*C.CK_ULONG)(list), (*C.CK_ULONG)(count))
	n, rv := mod.GetSlotList(present != 0, ids)
	if rv == ckrOK && list != nil {
		for _, id := range ids[:n] {
			if !fits(id) {
				return C.CK_RV(ckrGeneralError)
			}
		}
		dst := unsafe.Slice(list, n)
		for i := range n {
			dst[i] = C.CK_SLOT_ID(ids[i])
		}
	}
	*count = C.CK_ULONG(n)
	return C.CK_RV(rv)
}

//export goGetSlotInfo
func goGetSlotInfo(id C.CK_SLOT_ID, p C.CK_SLOT_INFO_PTR) (r C.CK_RV) {
	defer guard(&r)
	if p == nil {
		if rv := mod.isReady(); rv != ckrOK {
			return C.CK_RV(rv)
		}
		return C.CK_RV(ckrArgumentsBad)
	}
	si, rv := mod.GetSlotInfo(uint64(id))
	if rv != ckrOK {
		return C.CK_RV(rv)
	}
	var c C.tpmcard_slot_info
	padC(unsafe.Pointer(&c.slotDescription[0]), len(c.slotDescription), si.Description)
	padC(unsafe.Pointer(&c.manufacturerID[0]), len(c.manufacturerID), si.Manufacturer)
	c.flags = C.CK_FLAGS(si.Flags)
	c.hardwareVersion = C.CK_VERSION{major: C.CK_BYTE(si.Hardware[0]), minor: C.CK_BYTE(si.Hardware[1])}
	c.firmwareVersion = C.CK_VERSION{major: C.CK_BYTE(si.Firmware[0]), minor: C.CK_BYTE(si.Firmware[1])}
	C.tpmcard_put_slot_info(p, c)
	return C.CK_RV(ckrOK)
}

//export goGetTokenInfo
func goGetTokenInfo(id C.CK_SLOT_ID, p C.CK_TOKEN_INFO_PTR) (r C.CK_RV) {
	defer guard(&r)
	if p == nil {
		if rv := mod.isReady(); rv != ckrOK {
			return C.CK_RV(rv)
		}
		return C.CK_RV(ckrArgumentsBad)
	}
	ti, rv := mod.GetTokenInfo(uint64(id))
	if rv != ckrOK {
		return C.CK_RV(rv)
	}
	var c C.tpmcard_token_info
	padC(unsafe.Pointer(&c.label[0]), len(c.label), ti.Label)
	padC(unsafe.Pointer(&c.manufacturerID[0]), len(c.manufacturerID), ti.Manufacturer)
	padC(unsafe.Pointer(&c.model[0]), len(c.model), ti.Model)
	padC(unsafe.Pointer(&c.serialNumber[0]), len(c.serialNumber), ti.Serial)
	padC(unsafe.Pointer(&c.utcTime[0]), len(c.utcTime), ti.UTCTime)
	c.flags = C.CK_FLAGS(ti.Flags)
	c.ulMaxSessionCount = C.CK_ULONG(ti.MaxSessions)
	c.ulSessionCount = C.CK_ULONG(ti.Sessions)
	c.ulMaxRwSessionCount = C.CK_ULONG(ti.MaxRW)
	c.ulRwSessionCount = C.CK_ULONG(ti.RW)
	c.ulMaxPinLen = C.CK_ULONG(ti.MaxPINLen)
	c.ulMinPinLen = C.CK_ULONG(ti.MinPINLen)
	c.ulTotalPublicMemory = C.CK_ULONG(ti.TotalPublic)
	c.ulFreePublicMemory = C.CK_ULONG(ti.FreePublic)
	c.ulTotalPrivateMemory = C.CK_ULONG(ti.TotalPriv)
	c.ulFreePrivateMemory = C.CK_ULONG(ti.FreePriv)
	c.hardwareVersion = C.CK_VERSION{major: C.CK_BYTE(ti.Hardware[0]), minor: C.CK_BYTE(ti.Hardware[1])}
	c.firmwareVersion = C.CK_VERSION{major: C.CK_BYTE(ti.Firmware[0]), minor: C.CK_BYTE(ti.Firmware[1])}
	C.tpmcard_put_token_info(p, c)
	return C.CK_RV(ckrOK)
}

//export goGetMechanismList
func goGetMechanismList(id C.CK_SLOT_ID, list C.CK_MECHANISM_TYPE_PTR, count C.CK_ULONG_PTR) (r C.CK_RV) {
	defer guard(&r)
	if rv := mod.isReady(); rv != ckrOK {
		return C.CK_RV(rv)
	}
	if count == nil {
		return C.CK_RV(ckrArgumentsBad)
	}
	ms := ulongs((*C.CK_ULONG)(list), (*C.CK_ULONG)(count))
	n, rv := mod.GetMechanismList(uint64(id), ms)
	if rv == ckrOK || rv == ckrBufferTooSmall {
		*count = C.CK_ULONG(n)
	}
	if rv == ckrOK && list != nil {
		dst := unsafe.Slice(list, n)
		for i := range n {
			dst[i] = C.CK_MECHANISM_TYPE(ms[i])
		}
	}
	return C.CK_RV(rv)
}

//export goGetMechanismInfo
func goGetMechanismInfo(id C.CK_SLOT_ID, mech C.CK_MECHANISM_TYPE, p C.CK_MECHANISM_INFO_PTR) (r C.CK_RV) {
	defer guard(&r)
	if rv := mod.isReady(); rv != ckrOK {
		return C.CK_RV(rv)
	}
	if p == nil {
		return C.CK_RV(ckrArgumentsBad)
	}
	mi, rv := mod.GetMechanismInfo(uint64(id), uint64(mech))
	if rv != ckrOK {
		return C.CK_RV(rv)
	}
	C.tpmcard_put_mechanism_info(p, C.tpmcard_mechanism_info{
		ulMinKeySize: C.CK_ULONG(mi.MinKeyBits),
		ulMaxKeySize: C.CK_ULONG(mi.MaxKeyBits),
		flags:        C.CK_FLAGS(mi.Flags),
	})
	return C.CK_RV(ckrOK)
}

//export goWaitForSlotEvent
func goWaitForSlotEvent(flags C.CK_FLAGS, slot C.CK_SLOT_ID_PTR, reserved C.CK_VOID_PTR) (r C.CK_RV) {
	defer guard(&r)
	if rv := mod.isReady(); rv != ckrOK {
		return C.CK_RV(rv)
	}
	if slot == nil || reserved != nil {
		return C.CK_RV(ckrArgumentsBad)
	}
	id, rv := mod.WaitForSlotEvent(uint64(flags))
	if rv == ckrOK {
		if !fits(id) {
			return C.CK_RV(ckrGeneralError)
		}
		*slot = C.CK_SLOT_ID(id)
	}
	return C.CK_RV(rv)
}

//export goOpenSession
func goOpenSession(id C.CK_SLOT_ID, flags C.CK_FLAGS, app C.CK_VOID_PTR, notify C.CK_NOTIFY, ph C.CK_SESSION_HANDLE_PTR) (r C.CK_RV) {
	_, _ = app, notify // no callbacks: the module makes none (§5.16)
	defer guard(&r)
	if rv := mod.isReady(); rv != ckrOK {
		return C.CK_RV(rv)
	}
	if ph == nil {
		return C.CK_RV(ckrArgumentsBad)
	}
	h, rv := mod.OpenSession(uint64(id), uint64(flags))
	if rv == ckrOK {
		if !fits(h) {
			mod.CloseSession(h)
			return C.CK_RV(ckrGeneralError)
		}
		*ph = C.CK_SESSION_HANDLE(h)
	}
	return C.CK_RV(rv)
}

//export goCloseSession
func goCloseSession(h C.CK_SESSION_HANDLE) (r C.CK_RV) {
	defer guard(&r)
	return C.CK_RV(mod.CloseSession(uint64(h)))
}

//export goCloseAllSessions
func goCloseAllSessions(id C.CK_SLOT_ID) (r C.CK_RV) {
	defer guard(&r)
	return C.CK_RV(mod.CloseAllSessions(uint64(id)))
}

//export goGetSessionInfo
func goGetSessionInfo(h C.CK_SESSION_HANDLE, p C.CK_SESSION_INFO_PTR) (r C.CK_RV) {
	defer guard(&r)
	if rv := mod.isReady(); rv != ckrOK {
		return C.CK_RV(rv)
	}
	if p == nil {
		return C.CK_RV(ckrArgumentsBad)
	}
	si, rv := mod.GetSessionInfo(uint64(h))
	if rv != ckrOK {
		return C.CK_RV(rv)
	}
	C.tpmcard_put_session_info(p, C.tpmcard_session_info{
		slotID:        C.CK_SLOT_ID(si.Slot),
		state:         C.CK_STATE(si.State),
		flags:         C.CK_FLAGS(si.Flags),
		ulDeviceError: C.CK_ULONG(si.DeviceError),
	})
	return C.CK_RV(ckrOK)
}

//export goLogin
func goLogin(h C.CK_SESSION_HANDLE, user C.CK_USER_TYPE, p C.CK_UTF8CHAR_PTR, n C.CK_ULONG) (r C.CK_RV) {
	defer guard(&r)
	if rv := mod.isReady(); rv != ckrOK {
		return C.CK_RV(rv)
	}
	// No protected authentication path: a NULL PIN is an error.
	if p == nil {
		return C.CK_RV(ckrArgumentsBad)
	}
	s, ok := pin(p, n)
	if !ok {
		return C.CK_RV(ckrArgumentsBad)
	}
	defer s.Wipe()
	return C.CK_RV(mod.Login(uint64(h), uint64(user), s))
}

//export goLogout
func goLogout(h C.CK_SESSION_HANDLE) (r C.CK_RV) {
	defer guard(&r)
	return C.CK_RV(mod.Logout(uint64(h)))
}

//export goInitPIN
func goInitPIN(h C.CK_SESSION_HANDLE, p C.CK_UTF8CHAR_PTR, n C.CK_ULONG) (r C.CK_RV) {
	defer guard(&r)
	if rv := mod.isReady(); rv != ckrOK {
		return C.CK_RV(rv)
	}
	if p == nil {
		return C.CK_RV(ckrArgumentsBad)
	}
	s, ok := pin(p, n)
	if !ok {
		return C.CK_RV(ckrArgumentsBad)
	}
	defer s.Wipe()
	return C.CK_RV(mod.InitPIN(uint64(h), s))
}

//export goSetPIN
func goSetPIN(h C.CK_SESSION_HANDLE, op C.CK_UTF8CHAR_PTR, on C.CK_ULONG, np C.CK_UTF8CHAR_PTR, nn C.CK_ULONG) (r C.CK_RV) {
	defer guard(&r)
	if rv := mod.isReady(); rv != ckrOK {
		return C.CK_RV(rv)
	}
	if op == nil || np == nil {
		return C.CK_RV(ckrArgumentsBad)
	}
	o, ok1 := pin(op, on)
	n, ok2 := pin(np, nn)
	defer o.Wipe()
	defer n.Wipe()
	if !ok1 || !ok2 {
		return C.CK_RV(ckrArgumentsBad)
	}
	return C.CK_RV(mod.SetPIN(uint64(h), o, n))
}

//export goCreateObject
func goCreateObject(h C.CK_SESSION_HANDLE, t C.CK_ATTRIBUTE_PTR, n C.CK_ULONG, ph C.CK_OBJECT_HANDLE_PTR) (r C.CK_RV) {
	defer guard(&r)
	if rv := mod.isReady(); rv != ckrOK {
		return C.CK_RV(rv)
	}
	tmpl, ok := template(t, n)
	if !ok || ph == nil {
		return C.CK_RV(ckrArgumentsBad)
	}
	obj, rv := mod.CreateObject(uint64(h), tmpl)
	if rv == ckrOK {
		if !fits(obj) {
			return C.CK_RV(ckrGeneralError)
		}
		*ph = C.CK_OBJECT_HANDLE(obj)
	}
	return C.CK_RV(rv)
}

//export goDestroyObject
func goDestroyObject(h C.CK_SESSION_HANDLE, obj C.CK_OBJECT_HANDLE) (r C.CK_RV) {
	defer guard(&r)
	return C.CK_RV(mod.DestroyObject(uint64(h), uint64(obj)))
}

//export goGetAttributeValue
func goGetAttributeValue(h C.CK_SESSION_HANDLE, obj C.CK_OBJECT_HANDLE, t C.CK_ATTRIBUTE_PTR, n C.CK_ULONG) (r C.CK_RV) {
	defer guard(&r)
	if rv := mod.isReady(); rv != ckrOK {
		return C.CK_RV(rv)
	}
	if t == nil && n > 0 || n > maxTemplate {
		return C.CK_RV(ckrArgumentsBad)
	}
	attrs := make([]Attribute, n)
	for i := range attrs {
		a := C.tpmcard_attribute(t, C.CK_ULONG(i))
		attrs[i] = Attribute{Type: uint64(a._type), Value: out((*C.CK_BYTE)(a.value), a.len)}
	}
	rv := mod.GetAttributeValue(uint64(h), uint64(obj), attrs)
	switch rv {
	case ckrOK, ckrAttributeSensitive, ckrAttributeTypeInvalid, ckrBufferTooSmall:
		for i := range attrs {
			C.tpmcard_set_attribute_len(t, C.CK_ULONG(i), C.CK_ULONG(attrs[i].Len))
		}
	}
	return C.CK_RV(rv)
}

//export goFindObjectsInit
func goFindObjectsInit(h C.CK_SESSION_HANDLE, t C.CK_ATTRIBUTE_PTR, n C.CK_ULONG) (r C.CK_RV) {
	defer guard(&r)
	if rv := mod.isReady(); rv != ckrOK {
		return C.CK_RV(rv)
	}
	tmpl, ok := template(t, n)
	if !ok {
		return C.CK_RV(ckrArgumentsBad)
	}
	return C.CK_RV(mod.FindObjectsInit(uint64(h), tmpl))
}

//export goFindObjects
func goFindObjects(h C.CK_SESSION_HANDLE, list C.CK_OBJECT_HANDLE_PTR, max C.CK_ULONG, count C.CK_ULONG_PTR) (r C.CK_RV) {
	defer guard(&r)
	if rv := mod.isReady(); rv != ckrOK {
		return C.CK_RV(rv)
	}
	if list == nil && max > 0 || count == nil {
		return C.CK_RV(ckrArgumentsBad)
	}
	hs := make([]uint64, min(max, maxList)) // fewer than asked is allowed
	n, rv := mod.FindObjects(uint64(h), hs)
	if rv != ckrOK {
		return C.CK_RV(rv)
	}
	for _, h := range hs[:n] {
		if !fits(h) {
			return C.CK_RV(ckrGeneralError)
		}
	}
	if n > 0 {
		dst := unsafe.Slice(list, n)
		for i := range n {
			dst[i] = C.CK_OBJECT_HANDLE(hs[i])
		}
	}
	*count = C.CK_ULONG(n)
	return C.CK_RV(ckrOK)
}

//export goFindObjectsFinal
func goFindObjectsFinal(h C.CK_SESSION_HANDLE) (r C.CK_RV) {
	defer guard(&r)
	return C.CK_RV(mod.FindObjectsFinal(uint64(h)))
}

// mechanism converts a CK_MECHANISM.
func mechanism(p C.CK_MECHANISM_PTR) (uint64, []byte, bool) {
	if p == nil {
		return 0, nil, false
	}
	m := C.tpmcard_mechanism(p)
	param, ok := in((*C.CK_BYTE)(m.value), m.len)
	return uint64(m._type), param, ok
}

//export goSignInit
func goSignInit(h C.CK_SESSION_HANDLE, m C.CK_MECHANISM_PTR, key C.CK_OBJECT_HANDLE) (r C.CK_RV) {
	defer guard(&r)
	if rv := mod.isReady(); rv != ckrOK {
		return C.CK_RV(rv)
	}
	mech, param, ok := mechanism(m)
	if !ok {
		return C.CK_RV(ckrArgumentsBad)
	}
	return C.CK_RV(mod.SignInit(uint64(h), mech, param, uint64(key)))
}

//export goSign
func goSign(h C.CK_SESSION_HANDLE, data C.CK_BYTE_PTR, n C.CK_ULONG, sig C.CK_BYTE_PTR, sigLen C.CK_ULONG_PTR) (r C.CK_RV) {
	defer guard(&r)
	if rv := mod.isReady(); rv != ckrOK {
		return C.CK_RV(rv)
	}
	d, ok := in(data, n)
	if !ok || sigLen == nil {
		return C.CK_RV(ckrArgumentsBad)
	}
	var o []byte
	if sig != nil {
		o = out(sig, *sigLen)
	}
	k, rv := mod.Sign(uint64(h), d, o)
	if rv == ckrOK || rv == ckrBufferTooSmall {
		*sigLen = C.CK_ULONG(k)
	}
	return C.CK_RV(rv)
}

//export goSignUpdate
func goSignUpdate(h C.CK_SESSION_HANDLE, part C.CK_BYTE_PTR, n C.CK_ULONG) (r C.CK_RV) {
	defer guard(&r)
	if rv := mod.isReady(); rv != ckrOK {
		return C.CK_RV(rv)
	}
	d, ok := in(part, n)
	if !ok {
		return C.CK_RV(ckrArgumentsBad)
	}
	return C.CK_RV(mod.SignUpdate(uint64(h), d))
}

//export goSignFinal
func goSignFinal(h C.CK_SESSION_HANDLE, sig C.CK_BYTE_PTR, sigLen C.CK_ULONG_PTR) (r C.CK_RV) {
	defer guard(&r)
	if rv := mod.isReady(); rv != ckrOK {
		return C.CK_RV(rv)
	}
	if sigLen == nil {
		return C.CK_RV(ckrArgumentsBad)
	}
	var o []byte
	if sig != nil {
		o = out(sig, *sigLen)
	}
	k, rv := mod.SignFinal(uint64(h), o)
	if rv == ckrOK || rv == ckrBufferTooSmall {
		*sigLen = C.CK_ULONG(k)
	}
	return C.CK_RV(rv)
}

//export goGenerateKeyPair
func goGenerateKeyPair(h C.CK_SESSION_HANDLE, m C.CK_MECHANISM_PTR, pubT C.CK_ATTRIBUTE_PTR, pubN C.CK_ULONG,
	privT C.CK_ATTRIBUTE_PTR, privN C.CK_ULONG, pubH, privH C.CK_OBJECT_HANDLE_PTR) (r C.CK_RV) {
	defer guard(&r)
	if rv := mod.isReady(); rv != ckrOK {
		return C.CK_RV(rv)
	}
	mech, param, ok := mechanism(m)
	pub, ok1 := template(pubT, pubN)
	priv, ok2 := template(privT, privN)
	if !ok || !ok1 || !ok2 || pubH == nil || privH == nil {
		return C.CK_RV(ckrArgumentsBad)
	}
	a, b, rv := mod.GenerateKeyPair(uint64(h), mech, param, pub, priv)
	if rv == ckrOK {
		if !fits(a) || !fits(b) {
			return C.CK_RV(ckrGeneralError)
		}
		*pubH = C.CK_OBJECT_HANDLE(a)
		*privH = C.CK_OBJECT_HANDLE(b)
	}
	return C.CK_RV(rv)
}

//export goSeedRandom
func goSeedRandom(h C.CK_SESSION_HANDLE, seed C.CK_BYTE_PTR, n C.CK_ULONG) (r C.CK_RV) {
	defer guard(&r)
	if rv := mod.isReady(); rv != ckrOK {
		return C.CK_RV(rv)
	}
	if _, ok := in(seed, n); !ok {
		return C.CK_RV(ckrArgumentsBad)
	}
	return C.CK_RV(mod.SeedRandom(uint64(h)))
}

//export goGenerateRandom
func goGenerateRandom(h C.CK_SESSION_HANDLE, p C.CK_BYTE_PTR, n C.CK_ULONG) (r C.CK_RV) {
	defer guard(&r)
	if rv := mod.isReady(); rv != ckrOK {
		return C.CK_RV(rv)
	}
	if p == nil && n > 0 || n > maxLen {
		return C.CK_RV(ckrArgumentsBad)
	}
	return C.CK_RV(mod.GenerateRandom(uint64(h), out(p, n)))
}
