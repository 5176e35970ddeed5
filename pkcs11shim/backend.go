package main

import (
	"fmt"
	"io"
	"time"

	"github.com/tpmcard/tpmcard/service/client"
	"github.com/tpmcard/tpmcard/service/wire"
	"github.com/tpmcard/tpmcard/tpmcard/secret"
)

// Backend is the service as the module sees it: one method per wire
// request, with the signatures of service/client, so that a *client.Client
// is a Backend. Failed requests return a *wire.StatusError; any other error
// means the connection is gone.
type Backend interface {
	SlotList(tokenPresent bool) ([]uint64, error)
	SlotInfo(slot uint64) (wire.SlotDescription, error)
	TokenInfo(slot uint64) (wire.TokenDescription, error)
	SlotMechanisms(slot uint64) ([]wire.MechanismInfo, error)
	OpenSlotSession(slot, flags uint64) (uint32, error)
	CloseSession(session uint32) error
	CloseSlotSessions(slot uint64) error
	SessionInfo(session uint32) (wire.SessionState, error)
	Login(session uint32, user wire.UserType, pin secret.Secret) error
	Logout(session uint32) error
	InitPIN(session uint32, newPIN secret.Secret) error
	SetPIN(session uint32, oldPIN, newPIN secret.Secret) error
	FindObjectsInit(session uint32, template ...wire.Attribute) error
	FindObjectsNext(session uint32, max int) ([]uint64, error)
	FindObjectsFinal(session uint32) error
	GetAttributeValue(session uint32, object uint64, queries []wire.AttributeQuery) (wire.AttributeValue, error)
	Sign(session uint32, object uint64, mechanism uint32, param, data []byte) ([]byte, error)
	SignLength(session uint32, object uint64, mechanism uint32) (int, error)
	GenerateKeyPairTemplates(session uint32, mechanism uint64, param []byte, public, private []wire.Attribute) (pub, priv uint64, err error)
	DestroyObject(session uint32, object uint64) error
	GenerateRandom(session uint32, n int) ([]byte, error)
	Close() error
}

// Requests a Backend may lack; the module then answers
// CKR_FUNCTION_NOT_SUPPORTED.
type (
	objectCreator interface {
		CreateObject(session uint32, template ...wire.Attribute) (uint64, error)
	}
	eventWaiter interface {
		WaitEvent(timeout time.Duration) (wire.Event, error)
	}
	// abandoner lets go of a connection inherited across fork(2) without
	// touching the socket the parent still uses.
	abandoner interface{ Abandon() }
)

var _ Backend = (*client.Client)(nil)

var (
	_ Backend       = (*wireBackend)(nil)
	_ objectCreator = (*wireBackend)(nil)
	_ eventWaiter   = (*wireBackend)(nil)
	_ abandoner     = (*wireBackend)(nil)
)

// helloName is sent in Hello, for the service's log.
const helloName = "tpmcard-pkcs11/1"

// dialService connects to the socket and says Hello. It does not use
// client.Dial: a net.Conn registers its descriptor with the Go runtime's
// epoll instance, which a forked child shares with its parent, so a child
// using the module could steal its parent's I/O readiness events. The
// module's connections are plain blocking descriptors instead (rawConn),
// and the typed methods are the same one-liners over wire.Conn.
func dialService(socket string) (Backend, error) {
	rc, err := dialRaw(socket)
	if err != nil {
		return nil, err
	}
	b := &wireBackend{rc: rc, w: wire.NewConn(rc)}
	if _, err := b.w.Hello(helloName); err != nil {
		rc.Close()
		return nil, fmt.Errorf("hello to %s: %w", socket, err)
	}
	return b, nil
}

// rawConn is a connection the Go runtime does not poll.
type rawConn interface {
	io.ReadWriteCloser
	Abandon() // close the descriptor without shutting the socket down
}

// wireBackend is a Backend over a wire.Conn.
type wireBackend struct {
	rc rawConn
	w  *wire.Conn
}

func (b *wireBackend) Close() error { return b.rc.Close() }
func (b *wireBackend) Abandon()     { b.rc.Abandon() }

func (b *wireBackend) SlotList(tokenPresent bool) ([]uint64, error) {
	var r wire.SlotList
	err := b.w.Call(&wire.GetSlotList{TokenPresent: tokenPresent}, &r)
	return r.Slots, err
}

func (b *wireBackend) SlotInfo(slot uint64) (wire.SlotDescription, error) {
	var r wire.SlotDescription
	err := b.w.Call(&wire.GetSlotInfo{Slot: slot}, &r)
	return r, err
}

func (b *wireBackend) TokenInfo(slot uint64) (wire.TokenDescription, error) {
	var r wire.TokenDescription
	err := b.w.Call(&wire.GetTokenInfo{Slot: slot}, &r)
	return r, err
}

func (b *wireBackend) SlotMechanisms(slot uint64) ([]wire.MechanismInfo, error) {
	var r wire.MechanismList
	err := b.w.Call(&wire.Mechanisms{Slot: slot}, &r)
	return r.Mechanisms, err
}

func (b *wireBackend) OpenSlotSession(slot, flags uint64) (uint32, error) {
	var r wire.SessionOpened
	err := b.w.Call(&wire.OpenSession{Slot: slot, Flags: flags}, &r)
	return r.Session, err
}

func (b *wireBackend) CloseSession(session uint32) error {
	return b.w.Call(&wire.CloseSession{Session: session}, nil)
}

func (b *wireBackend) CloseSlotSessions(slot uint64) error {
	return b.w.Call(&wire.CloseAllSessions{Slot: slot}, nil)
}

func (b *wireBackend) SessionInfo(session uint32) (wire.SessionState, error) {
	var r wire.SessionState
	err := b.w.Call(&wire.SessionInfo{Session: session}, &r)
	return r, err
}

func (b *wireBackend) Login(session uint32, user wire.UserType, pin secret.Secret) error {
	return b.w.Call(&wire.Login{Session: session, UserType: user, PIN: pin}, nil)
}

func (b *wireBackend) Logout(session uint32) error {
	return b.w.Call(&wire.Logout{Session: session}, nil)
}

func (b *wireBackend) InitPIN(session uint32, newPIN secret.Secret) error {
	return b.w.Call(&wire.InitPIN{Session: session, NewPIN: newPIN}, nil)
}

func (b *wireBackend) SetPIN(session uint32, oldPIN, newPIN secret.Secret) error {
	return b.w.Call(&wire.SetPIN{Session: session, OldPIN: oldPIN, NewPIN: newPIN}, nil)
}

func (b *wireBackend) FindObjectsInit(session uint32, template ...wire.Attribute) error {
	return b.w.Call(&wire.FindObjectsInit{Session: session, Template: template}, nil)
}

func (b *wireBackend) FindObjectsNext(session uint32, max int) ([]uint64, error) {
	var r wire.FoundObjects
	err := b.w.Call(&wire.FindObjectsNext{Session: session, Max: uint64(max)}, &r)
	return r.Handles, err
}

func (b *wireBackend) FindObjectsFinal(session uint32) error {
	return b.w.Call(&wire.FindObjectsFinal{Session: session}, nil)
}

func (b *wireBackend) GetAttributeValue(session uint32, object uint64, queries []wire.AttributeQuery) (wire.AttributeValue, error) {
	var r wire.AttributeValue
	err := b.w.Call(&wire.GetAttributeValue{Session: session, Object: object, Attributes: queries}, &r)
	return r, err
}

func (b *wireBackend) Sign(session uint32, object uint64, mechanism uint32, param, data []byte) ([]byte, error) {
	var r wire.Signature
	err := b.w.Call(&wire.Sign{Session: session, Object: object, Mechanism: mechanism, Param: param, Data: data}, &r)
	return r.Sig, err
}

func (b *wireBackend) SignLength(session uint32, object uint64, mechanism uint32) (int, error) {
	var r wire.Length
	err := b.w.Call(&wire.SignLength{Session: session, Object: object, Mechanism: mechanism}, &r)
	return r.N, err
}

func (b *wireBackend) GenerateKeyPairTemplates(session uint32, mechanism uint64, param []byte, public, private []wire.Attribute) (uint64, uint64, error) {
	var r wire.GeneratedKeyPair
	err := b.w.Call(&wire.GenerateKeyPairTemplates{Session: session, Mechanism: mechanism, Param: param, Public: public, Private: private}, &r)
	return r.Public, r.Private, err
}

func (b *wireBackend) CreateObject(session uint32, template ...wire.Attribute) (uint64, error) {
	var r wire.ObjectCreated
	err := b.w.Call(&wire.CreateObject{Session: session, Template: template}, &r)
	return r.Object, err
}

func (b *wireBackend) DestroyObject(session uint32, object uint64) error {
	return b.w.Call(&wire.DestroyObject{Session: session, Object: object}, nil)
}

func (b *wireBackend) GenerateRandom(session uint32, n int) ([]byte, error) {
	var r wire.Random
	err := b.w.Call(&wire.GenerateRandom{Session: session, N: n}, &r)
	return r.Bytes, err
}

func (b *wireBackend) WaitEvent(timeout time.Duration) (wire.Event, error) {
	var r wire.Event
	err := b.w.Call(&wire.WaitEvent{TimeoutMillis: int(timeout / time.Millisecond)}, &r)
	return r, err
}
